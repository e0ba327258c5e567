"""Analysis of MD and force-free MD trajectories (mlip.data.trajectory.Trajectory or arrays):

    pair_distribution(traj, pair, r_max, bins) -> (r Å, g(r))   RDF (periodic) or distance distribution
    distribution_difference(a, b, r)                              relative L1 difference of two of them
    vdos(traj, max_lag) -> (frequency THz, spectrum)              from the mass-weighted velocity autocorrelation
    spectral_overlap(a, b)                                        1 - ½∫|a - b|: 1 identical, 0 disjoint
    mean_squared_displacement(traj, max_lag) -> (lag fs, MSD Å²)
    temperatures(traj, dof) -> (T,) K;  temperature_summary(T, dof, target)
    compare(reference, forecast, out_png)                         all of it side by side, plotted
"""

from mlip.analysis.dynamics import mean_squared_displacement, spectral_overlap, vdos
from mlip.analysis.structure import distribution_difference, pair_distribution
from mlip.analysis.thermo import temperature_summary, temperatures
from mlip.analysis.compare import compare

__all__ = ["pair_distribution", "distribution_difference", "vdos", "spectral_overlap", "mean_squared_displacement",
           "temperatures", "temperature_summary", "compare"]
