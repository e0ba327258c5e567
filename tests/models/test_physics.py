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


class TestFacetWithGauntProductsAndCorrelation3(PotentialTests):
    """Facet's options from the Gaunt tensor product (mlip.nn.gaunt): Gaunt messages and the
    many-body node product of correlation 3, through the whole suite."""

    @pytest.fixture
    def model(self):
        return make("facet", tensor_product="gaunt", correlation=3)
