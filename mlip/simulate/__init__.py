"""Simulation with mlip models: structure relaxation (one by one or batched), MD, and force-free MD with a
forecaster."""

from mlip.simulate.forecast import ForecastLimits, ForecastResult, run_forecast
from mlip.simulate.md import ENSEMBLES, Limits, MDInstability, run_md
from mlip.simulate.relax import OPTIMIZERS, RelaxResult, relax, relax_batched, relax_one_by_one
from mlip.simulate.structures import read_structures

__all__ = ["relax", "relax_batched", "relax_one_by_one", "RelaxResult", "OPTIMIZERS", "run_md", "Limits",
           "MDInstability", "ENSEMBLES", "read_structures", "run_forecast", "ForecastLimits", "ForecastResult"]
