"""Simulation with mlip potentials: structure relaxation (one by one or batched) and MD."""

from mlip.sim.md import ENSEMBLES, Limits, MDInstability, run_md
from mlip.sim.relax import OPTIMIZERS, RelaxResult, relax, relax_batched, relax_one_by_one
from mlip.sim.structures import read_structures

__all__ = ["relax", "relax_batched", "relax_one_by_one", "RelaxResult", "OPTIMIZERS", "run_md", "Limits",
           "MDInstability", "ENSEMBLES", "read_structures"]
