"""Every registered forecaster through the shared symmetry and conservation suite."""

import pytest

from mlip.models import build, registered
from mlip.testing.forecast_suite import ForecasterTests, randomized_forecaster


class TestForecasters(ForecasterTests):
    @pytest.fixture(params=registered("forecaster"))
    def model(self, request):
        return randomized_forecaster(build(request.param, "small"))
