"""Neighbour lists with periodic images, max-neighbour capping, batching."""

from mlip.graph.batch import collate
from mlip.graph.build import build_graph, radius_graph_pbc
from mlip.graph.edges import edge_vectors

__all__ = ["build_graph", "collate", "radius_graph_pbc", "edge_vectors"]
