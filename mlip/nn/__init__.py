"""Shared building blocks: spherical harmonics, Wigner-D, coupling tensors, sphere grids, radial
functions, equivariant linear/norm layers, the edge tensor product, scatter."""

from mlip.nn.edge_embedding import EdgeDegreeEmbedding, EdgeEmbedding
from mlip.nn.embedding import NUM_ELEMENTS, ChargeSpinEmbedding
from mlip.nn.equivariant import SO3Linear, SO3RMSNorm
from mlip.nn.gaunt import EdgeGauntProduct, GauntPower, GauntProduct
from mlip.nn.grid_mlp import GridProductMLP
from mlip.nn.radial import BesselBasis, PolynomialEnvelope, RadialMLP, SplineBasis, SplineRadial, cubic_bspline_basis
from mlip.nn.s2_grid import S2Grid
from mlip.nn.scatter import scatter_sum
from mlip.nn.separable import SeparableGridActivation, SeparableLayerNorm
from mlip.nn.so3 import block_wigner_D, coupling, random_rotation, sphere_quadrature, wigner_D
from mlip.nn.spherical_harmonics import degree_index, spherical_harmonics
from mlip.nn.tensor_product import EdgeTensorProduct, parity_paths

__all__ = ["NUM_ELEMENTS", "ChargeSpinEmbedding", "EdgeEmbedding", "EdgeDegreeEmbedding", "SeparableLayerNorm",
           "SeparableGridActivation", "SO3Linear", "SO3RMSNorm", "EdgeGauntProduct", "GauntPower", "GauntProduct", "GridProductMLP", "BesselBasis", "PolynomialEnvelope",
           "SplineRadial", "SplineBasis", "RadialMLP", "cubic_bspline_basis", "S2Grid", "scatter_sum", "block_wigner_D", "coupling",
           "random_rotation", "sphere_quadrature", "wigner_D", "degree_index", "spherical_harmonics",
           "EdgeTensorProduct", "parity_paths"]
