import pytest

from tests.simulate.fitted import copper_model, ethanol_model


@pytest.fixture(scope="session")
def cu_model():
    return copper_model()


@pytest.fixture(scope="session")
def ethanol():
    return ethanol_model()


@pytest.fixture(scope="session")
def cu_committee(cu_model):
    """Two EMT-copper fits differing in their initial weights."""
    from mlip.uncertainty import Committee

    return Committee([cu_model, copper_model(seed=1)])

