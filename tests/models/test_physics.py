"""The physics suite (mlip.testing.PotentialTests, docs/design.md) on every registered potential. A new
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


class TestFacetWithRadialMLP(PotentialTests):
    """Facet with MACE's radial MLP of a Bessel basis in place of the splines (the quickstart's
    choice) through the whole suite: smooth at the cutoff, exact forces and stress."""

    @pytest.fixture
    def model(self):
        return make("facet", radial="mlp")


class TestTransIPWithThePapersOptions(PotentialTests):
    """TransIP as the paper builds it: rotary position encodings and alignment of pooled structure
    embeddings (the rotation error measured, not asserted, as for every non-equivariant model)."""

    @pytest.fixture
    def model(self):
        return make("transip", position_encoding="rotary", alignment="structure", alignment_warmup=0.1)


class TestTransIPWithFrameAveraging(PotentialTests):
    """TransIP averaged over its PCA / cell frames (mlip.nn.frames): exactly equivariant (the suite's
    1e-8), with the departures from locality that frame averaging brings reported."""

    @pytest.fixture
    def model(self):
        return make("transip", frame_averaging="so3")


class TestEScAIPDirectForcesWithFrameAveraging(PotentialTests):
    """EScAIP's direct-force head averaged over frames: exactly equivariant forces, not conservative
    (reported). (The 8 frames of O(3): tests/export/test_export.py and tests/nn/test_frames.py.)"""

    @pytest.fixture
    def model(self):
        with pytest.warns(UserWarning, match="direct_forces"):
            return make("escaip", direct_forces=True, frame_averaging="so3")
