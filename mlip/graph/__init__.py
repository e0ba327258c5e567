"""Neighbour lists with periodic images, max-neighbour capping, batching, rigid rotations."""

from mlip.graph.batch import collate
from mlip.graph.build import build_graph, radius_graph_pbc
from mlip.graph.edges import edge_vectors
from mlip.graph.rotate import rotate

__all__ = ["build_graph", "collate", "radius_graph_pbc", "edge_vectors", "rotate"]
