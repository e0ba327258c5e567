"""The physics suite (mlip.testing.PotentialTests, DESIGN.md) on every registered potential. A new
architecture registers itself with a "small" preset and runs all of it unchanged."""

import pytest

from mlip.models import registered
from mlip.testing import PotentialTests
from tests.models.structures import make


class TestRegisteredPotentials(PotentialTests):
    @pytest.fixture(params=registered())
    def model(self, request):
        return make(request.param)
