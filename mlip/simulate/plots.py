"""MD log figures: energies, temperature and pressure against time (PNG); a forecast's temperature."""

from __future__ import annotations

import csv

import numpy as np


def md_plot(log_csv, out_png) -> str:
    """Potential and total energy (eV, relative to the first total energy), temperature (K), for
    periodic cells pressure (GPa), for a model with an uncertainty the largest per-atom force
    uncertainty (eV/Å), and for a model that knows its training data's shortest pair distances the
    closest pair relative to them (below 1: outside the data), against time (ps), from md.csv."""
    from mlip.train.plots import _pyplot

    rows = list(csv.DictReader(open(log_csv)))
    col = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]} if rows else {}
    plt = _pyplot()
    has_pressure = bool(rows) and np.isfinite(col["pressure_GPa"]).any()
    has_uncertainty = bool(rows) and "max_forces_std_eVA" in col
    has_data = bool(rows) and "closest_over_rmin" in col
    panels = 2 + has_pressure + has_uncertainty + has_data
    fig, axes = plt.subplots(1, panels, figsize=(4.4 * panels, 3.6))
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
        if has_uncertainty:
            axes[2 + has_pressure].plot(t, col["max_forces_std_eVA"], color="C4")
            axes[2 + has_pressure].set_ylabel("largest force uncertainty (eV/Å)")
        if has_data:
            axes[-1].plot(t, col["closest_over_rmin"], color="C5")
            axes[-1].axhline(1.0, color="0.5", linestyle="--", label="shortest training distance")
            axes[-1].set_ylabel("closest pair / its training r_min")
            axes[-1].legend()
        for ax in axes:
            ax.set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return str(out_png)


def forecast_plot(log_csv, out_png, target=None, dof=None, title: str = "") -> str:
    """Temperature (K) against time (ps) from forecast.csv, with the thermostat's target and the
    canonical spread target x (1 ± sqrt(2 / N_f)) when given; and its histogram."""
    from mlip.train.plots import _pyplot, save_figure

    rows = list(csv.DictReader(open(log_csv)))
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    if rows:
        t = np.array([float(r["time_fs"]) for r in rows]) / 1000
        temperature = np.array([float(r["temperature_K"]) for r in rows])
        axes[0].plot(t, temperature, color="C3", lw=0.8, label="forecast")
        axes[1].hist(temperature, bins=40, orientation="horizontal", color="C3", alpha=0.6)
        if target:
            for ax in axes:
                ax.axhline(target, color="k", lw=1, label="target")
                if dof:
                    spread = target * np.sqrt(2.0 / dof)
                    ax.axhspan(target - spread, target + spread, color="0.8", alpha=0.5, label="target ± sqrt(2/N_f)")
        axes[0].legend(loc="upper right")
    axes[0].set_xlabel("time (ps)")
    axes[0].set_ylabel("temperature (K)")
    axes[1].set_xlabel("steps")
    return save_figure(fig, out_png, title)
