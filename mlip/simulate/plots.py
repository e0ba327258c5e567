"""MD log figure: energies, temperature and pressure against time (PNG)."""

from __future__ import annotations

import csv

import numpy as np


def md_plot(log_csv, out_png) -> str:
    """Potential and total energy (eV, relative to the first total energy), temperature (K) and,
    for periodic cells, pressure (GPa) against time (ps), from md.csv."""
    from mlip.train.plots import _pyplot

    rows = list(csv.DictReader(open(log_csv)))
    col = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]} if rows else {}
    plt = _pyplot()
    has_pressure = bool(rows) and np.isfinite(col["pressure_GPa"]).any()
    fig, axes = plt.subplots(1, 3 if has_pressure else 2, figsize=(13 if has_pressure else 9, 3.6))
    if rows:
        t = col["time_fs"] / 1000
        for key, label in (("epot_eV", "potential"), ("etot_eV", "total")):
            axes[0].plot(t, col[key] - col["etot_eV"][0], label=label)
        axes[0].set_ylabel("energy - E_total(0) (eV)")
        axes[0].legend()
        axes[1].plot(t, col["temperature_K"], color="C3")
        axes[1].set_ylabel("temperature (K)")
        if has_pressure:
            axes[2].plot(t, col["pressure_GPa"], color="C2")
            axes[2].set_ylabel("pressure (GPa)")
        for ax in axes:
            ax.set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return str(out_png)
