"""Simulation with mlip potentials: structure relaxation (one by one or batched) and MD."""

from mlip.simulate.md import ENSEMBLES, Limits, MDInstability, run_md
from mlip.simulate.relax import OPTIMIZERS, RelaxResult, relax, relax_batched, relax_one_by_one
from mlip.simulate.structures import read_structures

__all__ = ["relax", "relax_batched", "relax_one_by_one", "RelaxResult", "OPTIMIZERS", "run_md", "Limits",
           "MDInstability", "ENSEMBLES", "read_structures"]
