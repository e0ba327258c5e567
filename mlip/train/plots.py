"""Figures people look at: learning curves, parity plots and uncertainty calibration (PNG, matplotlib's
Agg backend)."""

from __future__ import annotations

import csv
import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_png, title: str = "") -> str:
    """Title, layout, write (PNG, 120 dpi) and close a figure; returns the path."""
    plt = _pyplot()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return str(out_png)


def learning_curve(metrics_csvs, out_png: str) -> str:
    """Train and validation loss and force MAE against epoch, from Lightning's CSV logs (one file, or
    a list: a run and its resumes, in order)."""
    files = [metrics_csvs] if isinstance(metrics_csvs, str) else list(metrics_csvs)
    rows = [row for path in files for row in csv.DictReader(open(path))]

    def series(key):
        """(epoch, mean of the values logged in that epoch) pairs: step losses become one point."""
        by_epoch: dict = {}
        for r in rows:
            if r.get(key) not in (None, ""):
                by_epoch.setdefault(int(float(r["epoch"])), []).append(float(r[key]))
        return np.array([(e, np.mean(v)) for e, v in sorted(by_epoch.items())]).reshape(-1, 2)

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train/loss", "train loss (epoch mean)"), ("val/loss", "val loss")):
        pts = series(key)
        if len(pts):
            axes[0].plot(pts[:, 0], pts[:, 1], label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    # a potential's force MAE, or a forecaster's displacement MAE
    curves = (("forces", "force MAE (meV/Å)"), ("displacement", "displacement MAE (mÅ)"))
    quantity, ylabel = next(((q, y) for q, y in curves if len(series(f"val/{q}_mae")) or len(series(f"train/{q}_mae"))),
                            curves[0])
    for key, label in ((f"train/{quantity}_mae", "train"), (f"val/{quantity}_mae", "val")):
        pts = series(key)
        if len(pts):
            axes[1].plot(pts[:, 0], 1000 * pts[:, 1], label=label)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel(ylabel)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def parity(predicted: dict, reference: dict, out_png: str, title: str = "") -> str:
    """Predicted against reference energy per atom (eV/atom), force (eV/Å) and stress components; for
    a forecaster displacement (Å) and new velocity (Å/fs) components."""
    plt = _pyplot()
    panels = [(k, u) for k, u in (("energy_per_atom", "eV/atom"), ("forces", "eV/Å"), ("stress", "eV/Å³"),
                                  ("displacement", "Å"), ("velocities", "Å/fs"))
              if k in predicted and len(predicted[k])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.2), squeeze=False)
    for ax, (key, unit) in zip(axes[0], panels):
        p, r = np.asarray(predicted[key]).ravel(), np.asarray(reference[key]).ravel()
        ok = np.isfinite(r)
        p, r = p[ok], r[ok]
        ax.scatter(r, p, s=4, alpha=0.5)
        lo, hi = float(min(r.min(), p.min())), float(max(r.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae = np.abs(p - r).mean()
        ax.set_title(f"{key}: MAE {mae:.4g} {unit}")
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.locator_params(nbins=5)
        ax.tick_params(axis="x", labelrotation=30)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out_png) or ".", exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def calibration(report: dict, forces_std, force_error, out_png: str, title: str = "") -> str:
    """Predicted against actual per-atom force error: a scatter of atoms, and the calibration curve
    (RMS actual against RMS predicted in quantile bins; the diagonal is perfect calibration)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    std, err = np.asarray(forces_std) * 1000, np.asarray(force_error) * 1000
    axes[0].loglog(std, np.maximum(err, 1e-3), ".", ms=2, alpha=0.3)
    lo, hi = max(min(std.min(), err[err > 0].min() if np.any(err > 0) else 1.0), 1e-3), max(std.max(), err.max())
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=1)
    axes[0].set_xlabel("predicted force std per atom (meV/Å)")
    axes[0].set_ylabel("actual |force error| per atom (meV/Å)")
    axes[0].set_title(f"Spearman: atoms {report['spearman_atoms']:.2f}, structures {report['spearman_structures']:.2f}")
    curve = np.array(report["calibration_curve"]) * 1000
    axes[1].plot(curve[:, 0], curve[:, 1], "o-", label="RMS in quantile bins")
    top = float(curve.max()) * 1.05
    axes[1].plot([0, top], [0, top], "k--", lw=1, label="perfect calibration")
    axes[1].set_xlabel("predicted RMS (meV/Å)")
    axes[1].set_ylabel("actual RMS (meV/Å)")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    tmp = f"{out_png}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png
