import os

import pytest
import torch

from mlip import kernels
from mlip.kernels import backend, get_backend, set_backend, use_triton


def test_auto_takes_the_reference_on_cpu_and_the_setting_forces_either():
    x = torch.zeros(3)
    assert get_backend() == "auto" and not use_triton(x)
    with backend("triton"):
        assert use_triton(x) == (os.environ.get("TRITON_INTERPRET") == "1")
    with backend("torch"):
        assert not use_triton(x)
    assert get_backend() == "auto"
    with pytest.raises(ValueError, match="unknown kernel backend"):
        set_backend("cuda")


def test_every_kernel_has_a_reference_with_the_same_signature():
    import inspect

    for name in ("segment_sum", "bspline", "rotate_into", "rotate_out_of", "grid_mlp", "neighbor_attention",
                 "block_aggregate"):
        kernel, reference = getattr(kernels, name), getattr(kernels, f"{name}_reference")
        assert list(inspect.signature(kernel).parameters) == list(inspect.signature(reference).parameters), name
