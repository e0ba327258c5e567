"""No run crashes on a kernel: in auto mode a launch that fails runs the torch reference and warns
once (naming kernel, shapes and dtype); a forced triton backend raises."""

import importlib
import warnings

import pytest
import torch

from mlip.kernels import backend, segment_sum, segment_sum_reference

launch_module = importlib.import_module("mlip.kernels.launch")
segment_sum_module = importlib.import_module("mlip.kernels.segment_sum")  # the package's name is the function


class Failing:
    """Stands in for a Triton kernel whose launch fails as an out-of-resources one does."""

    def __init__(self, kernel):
        self.arg_names = kernel.arg_names
        self.fn = kernel.fn
        self.calls = 0

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            self.calls += 1
            raise RuntimeError("out of resource: shared memory, Required: 421888, Hardware limit: 232448")

        return run


@pytest.fixture
def failing_kernel(monkeypatch):
    failing = Failing(segment_sum_module._segment_sum_kernel)
    monkeypatch.setattr(segment_sum_module, "_segment_sum_kernel", failing)
    monkeypatch.setattr(launch_module, "_warned", set())
    return failing


def case():
    src = torch.randn(7, 3, dtype=torch.float64)
    return src, torch.tensor([0, 0, 1, 2, 2, 2, 4]), 5


def test_auto_falls_back_to_the_reference_and_warns_once(failing_kernel, monkeypatch):
    monkeypatch.setattr(segment_sum_module, "use_triton", lambda x: True)  # as auto does on CUDA tensors
    src, index, n = case()
    with backend("auto"), pytest.warns(RuntimeWarning, match=r"segment_sum failed for \(7, 3\) float64"):
        out = segment_sum(src, index, n)
    torch.testing.assert_close(out, segment_sum_reference(src, index, n))
    with backend("auto"), warnings.catch_warnings():
        warnings.simplefilter("error")  # the same kernel, shape and dtype: no second warning
        torch.testing.assert_close(segment_sum(src, index, n), out)
    assert failing_kernel.calls == 2


def test_forced_triton_raises(failing_kernel):
    src, index, n = case()
    with backend("triton"), pytest.raises(RuntimeError, match="out of resource"):
        segment_sum(src, index, n)
