"""Every Triton launch that every registered potential's presets make (one training step each, in
float32 and float64, recorded from the models: mlip.models.kernel_shapes) compiles ahead of time for
an A100 (sm_80) and an H100/H200 (sm_90) within the shared memory one block may use; float32
products are IEEE unless TF32 is allowed. Runs on a CPU: Triton compiles for a GPU target without one."""

import dataclasses

import pytest
import torch

from mlip.kernels.aot import SHARED_MEMORY_LIMIT, compile_specs, table
from mlip.kernels.launch import dot_precision
from mlip.models import build, registered
from mlip.models.kernel_shapes import preset_launches, record_steps

# one xdist worker runs this module (its fixtures are expensive; scripts/test.sh)
pytestmark = pytest.mark.xdist_group("compile")

KERNELS = {"_segment_sum_kernel", "_bspline_kernel", "_block_rotation_kernel", "_grid_mlp_kernel",
           "_grid_mlp_backward_kernel", "_attention_kernel", "_attention_key_grads_kernel",
           "_attention_query_grads_kernel"}


@pytest.fixture(scope="module")
def by_preset():
    return preset_launches()


@pytest.fixture(scope="module")
def reports(by_preset):
    specs = list(dict.fromkeys(s for specs in by_preset.values() for s in specs))
    return compile_specs(specs)


def test_every_preset_of_every_model_is_recorded_in_both_dtypes(by_preset):
    from mlip.models import _REGISTRY

    for name in registered():
        presets = _REGISTRY[name].presets
        assert len(presets) >= 2, name
        for preset in presets:
            for dtype in ("float32", "float64"):
                specs = by_preset[(name, preset, dtype)]
                assert specs, (name, preset, dtype)
                assert all(f"*fp{dtype[-2:]}" in dict(s.signature).values() for s in specs)
    recorded = {s.kernel for specs in by_preset.values() for s in specs}
    assert recorded == KERNELS, recorded ^ KERNELS  # forward and fused backward kernels alike


def test_every_launch_compiles_within_each_targets_shared_memory(reports):
    assert {r.arch for r in reports} == set(SHARED_MEMORY_LIMIT)
    failed = [r for r in reports if not r.fits]
    assert not failed, "\n" + table(failed)
    # the shapes the issue found over the limit: Facet "mp" and eSCN "oc20" sphere-grid MLPs
    grid = [r for r in reports if r.spec.kernel == "_grid_mlp_kernel"]
    assert max(r.shared for r in grid) < min(SHARED_MEMORY_LIMIT.values())


def test_float32_products_are_ieee_unless_tf32_is_allowed(reports):
    fp32_dots = [r for r in reports if ("PRECISION", "ieee") in r.spec.constexprs
                 and "*fp32" in dict(r.spec.signature).values()]
    assert fp32_dots and not any(r.tf32 for r in fp32_dots)
    assert dot_precision(torch.float32) == "ieee"
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # the user's opt-in, as for torch's own matmuls
        assert dot_precision(torch.float32) == "tf32" and dot_precision(torch.float64) == "ieee"
    finally:
        torch.set_float32_matmul_precision(previous)
    assert dot_precision(torch.float32) == "ieee"
    opted_in = dataclasses.replace(fp32_dots[0].spec, constexprs=tuple(
        (k, "tf32" if k == "PRECISION" else v) for k, v in fp32_dots[0].spec.constexprs))
    (report,) = compile_specs([opted_in], archs=(90,))
    assert report.fits and report.tf32


def test_gaunt_edge_kernels_compile_without_spills_at_lmax_2_and_6():
    """Facet with Gaunt messages is not a preset: its launches (forward, both gradients, float32 and
    float64) are recorded from training steps at lmax 2 and 6 and compiled for both targets (lmax 4,
    between them, also compiled without spills when measured: benchmarks/bench_kernels.py's table)."""
    specs = []
    for lmax in (2, 6):
        torch.manual_seed(0)
        model = build("facet", preset="small", lmax=lmax, tensor_product="gaunt")
        for dtype in (torch.float32, torch.float64):
            specs += [s for s in record_steps(model, dtype) if "gaunt" in s.kernel]
    assert {s.kernel for s in specs} == {"_gaunt_edge_kernel", "_gaunt_edge_x_grad_kernel", "_gaunt_edge_y_grad_kernel"}
    assert len({dict(s.constexprs)["BLOCK_S"] for s in specs}) == 2  # 9 and 49 output harmonics
    reports = compile_specs(specs)
    bad = [r for r in reports if not r.fits or r.spilled]
    assert not bad, "\n" + table(bad)
