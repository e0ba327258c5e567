"""Triton kernels under the potentials' hot paths, each beside its pure-torch reference (same
signature) and an autograd.Function whose backward is itself differentiable. Installed as
``mlip.kernels``; which implementation runs is chosen by mlip.kernels.dispatch (Triton on CUDA,
the reference elsewhere, or forced either way); every launch goes through mlip.kernels.launch
(counting, recording for the ahead-of-time compile check in mlip.kernels.aot, the fallback to the
reference when a launch fails, IEEE float32 products unless TF32 is allowed)."""

from mlip.kernels.attention import neighbor_attention, neighbor_attention_reference
from mlip.kernels.block_sparse import block_aggregate, block_aggregate_reference
from mlip.kernels.bspline import bspline, bspline_reference
from mlip.kernels.dispatch import backend, get_backend, set_backend, use_triton
from mlip.kernels.gaunt import gaunt_edge_product, gaunt_edge_product_reference
from mlip.kernels.edge_rotation import rotate_into, rotate_into_reference, rotate_out_of, rotate_out_of_reference
from mlip.kernels.grid_mlp import grid_mlp, grid_mlp_reference
from mlip.kernels.launch import launches, record
from mlip.kernels import operators  # registers mlip::block_aggregate and mlip::grid_mlp (TorchScript calls them)

# kernels whose first-order backward (forces) is a fused kernel of its own, launched as "<name>_backward"
FUSED_BACKWARD = frozenset({"grid_mlp", "neighbor_attention"})
from mlip.kernels.segment_sum import segment_sum, segment_sum_reference

__all__ = ["backend", "get_backend", "set_backend", "use_triton", "segment_sum", "segment_sum_reference",
           "bspline", "bspline_reference", "rotate_into", "rotate_into_reference", "rotate_out_of",
           "rotate_out_of_reference", "grid_mlp", "grid_mlp_reference", "neighbor_attention",
           "neighbor_attention_reference", "block_aggregate", "block_aggregate_reference", "gaunt_edge_product", "gaunt_edge_product_reference", "launches", "record", "FUSED_BACKWARD", "operators"]
