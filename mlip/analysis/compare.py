"""A forecast (or any trajectory) against its reference MD: structure, dynamics and temperature,
printed as numbers and plotted side by side."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from mlip.analysis.dynamics import mean_squared_displacement, spectral_overlap, vdos
from mlip.analysis.structure import distribution_difference, pair_distribution
from mlip.analysis.thermo import temperature_summary, temperatures


def _sampling(reference, trajectory) -> int:
    """Frames of ``reference`` per frame of ``trajectory`` (the reference sampled at the other's interval)."""
    ratio = (trajectory.times[1] - trajectory.times[0]) / (reference.times[1] - reference.times[0])
    every = int(round(ratio))
    if every < 1 or abs(ratio - every) > 1e-6 * ratio:
        raise ValueError(f"the trajectory's interval {trajectory.times[1] - trajectory.times[0]:g} fs is not a "
                         f"multiple of the reference's {reference.times[1] - reference.times[0]:g} fs")
    return every


def compare(reference, trajectory, pairs: Sequence[Tuple[int, int]] = (), out_png: Optional[str] = None,
            dof: Optional[int] = None, target: Optional[float] = None, max_lag: float = 2000.0,
            r_max: float = 6.0, title: str = "") -> dict:
    """Compare ``trajectory`` with ``reference`` (Trajectory objects of the same system):

    - ``vdos_overlap``: spectral_overlap of their VDOS, the reference sampled at the trajectory's
      interval and both over lags up to ``max_lag`` fs (or a quarter of the shorter one);
    - ``rdf``: per element pair, distribution_difference of their pair distributions;
    - ``temperature`` / ``reference_temperature``: temperature_summary of each (``dof``: N_f,
      default 3N - 3; ``target`` K);
    - ``msd``: the mean squared displacement at the longest common lag, Å², of each.

    With ``out_png``, a figure of the VDOS, the pair distributions, the MSD and the temperature
    histograms. Returns the numbers (and ``plot``)."""
    every = _sampling(reference, trajectory)
    interval = float(trajectory.times[1] - trajectory.times[0])
    frames = min(len(trajectory.times), len(reference.times) // every)
    lag = min(max_lag, interval * (frames // 4))
    f_ref, s_ref = vdos(reference, lag, every=every)
    f, s = vdos(trajectory, lag)
    n = min(len(f), len(f_ref))
    out = {"vdos_overlap": spectral_overlap(s_ref[:n], s[:n], f[:n]), "rdf": {}}
    curves = {}
    for a, b in pairs:
        r, g_ref = pair_distribution(reference, (a, b), r_max, every=max(1, len(reference.times) // 200))
        _, g = pair_distribution(trajectory, (a, b), r_max, every=max(1, len(trajectory.times) // 200))
        out["rdf"][f"{a}-{b}"] = distribution_difference(g_ref, g, r)
        curves[(a, b)] = (r, g_ref, g)
    dof = 3 * len(trajectory.masses) - 3 if dof is None else dof
    t_ref, t = temperatures(reference, dof), temperatures(trajectory, dof)
    out["temperature"] = temperature_summary(t, dof, target)
    out["reference_temperature"] = temperature_summary(t_ref, dof, target)
    span = min(interval * (len(trajectory.times) - 1), float(reference.times[-1] - reference.times[0])) / 2
    lag_ref, msd_ref = mean_squared_displacement(reference, span)
    lag_t, msd_t = mean_squared_displacement(trajectory, span)
    out["msd"] = {"lag_fs": float(lag_t[-1]), "reference": float(msd_ref[-1]), "trajectory": float(msd_t[-1])}
    if out_png:
        out["plot"] = _plot(out_png, (f_ref[:n], s_ref[:n], s[:n]), curves, (lag_ref, msd_ref, lag_t, msd_t),
                            (t_ref, t), out, title)
    return out


def _plot(out_png, spectra, curves, msd, temps, numbers, title) -> str:
    from ase.data import chemical_symbols

    from mlip.train.plots import _pyplot, save_figure

    plt = _pyplot()
    panels = 3 + len(curves)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6))
    f, s_ref, s = spectra
    axes[0].plot(f, s_ref, color="k", lw=1, label="reference MD")
    axes[0].plot(f, s, color="C3", lw=1, label="forecast")
    axes[0].set_xlabel("frequency (THz)")
    axes[0].set_ylabel("VDOS (unit area)")
    axes[0].set_title(f"overlap {numbers['vdos_overlap']:.3f}")
    axes[0].legend()
    for ax, ((a, b), (r, g_ref, g)) in zip(axes[1:], curves.items()):
        name = f"{chemical_symbols[a]}-{chemical_symbols[b]}"
        ax.plot(r, g_ref, color="k", lw=1, label="reference MD")
        ax.plot(r, g, color="C3", lw=1, label="forecast")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel(f"g(r) {name}")
        ax.set_title(f"{name}: relative L1 {numbers['rdf'][f'{a}-{b}']:.3f}")
    lag_ref, msd_ref, lag_t, msd_t = msd
    ax = axes[1 + len(curves)]
    ax.plot(lag_ref / 1000, msd_ref, color="k", lw=1, label="reference MD")
    ax.plot(lag_t / 1000, msd_t, color="C3", lw=1, label="forecast")
    ax.set_xlabel("lag (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax = axes[-1]
    t_ref, t = temps
    bins = np.linspace(min(t_ref.min(), t.min()), max(t_ref.max(), t.max()), 40)
    ax.hist(t_ref, bins=bins, density=True, histtype="step", color="k", label="reference MD")
    ax.hist(t, bins=bins, density=True, histtype="step", color="C3", label="forecast")
    summary = numbers["temperature"]
    ax.set_title(f"T {summary['mean']:.1f} ± {summary['std']:.1f} K")
    ax.set_xlabel("temperature (K)")
    ax.legend()
    return save_figure(fig, out_png, title)
