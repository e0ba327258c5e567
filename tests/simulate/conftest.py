import pytest

from tests.simulate.fitted import copper_model, ethanol_model


@pytest.fixture(scope="session")
def cu_model():
    return copper_model()


@pytest.fixture(scope="session")
def ethanol():
    return ethanol_model()
