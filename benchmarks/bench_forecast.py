"""Force-free MD against the MD it replaces, end to end on this machine.

    python benchmarks/bench_forecast.py [--systems quartz ethanol] [--work runs/bench_forecast] [--record forecast]

For each system: reference MD by a real engine (benchmarks/forecast_reference.py), a TrajCast
forecaster trained on it with `mlip train experiment=forecast` within a stated CPU budget, a rollout
with `mlip forecast` under the CSVR thermostat, and the comparison (mlip.analysis.compare).

- quartz: α-quartz, 162 atoms, BKS in LAMMPS at 1 fs and 300 K; the forecaster steps 30 fs
  (stride 3 of frames every 10 fs); a 100 ps rollout. Speeds: LAMMPS BKS, and mlip md with a Facet
  of the forecaster's size (its quickstart preset, 1 fs) on the same cell.
- ethanol: a Facet potential trained by `mlip train experiment=quickstart` (or --potential), mlip md
  at 0.5 fs and 300 K under CSVR; the forecaster steps 5 fs (10 MD steps; stride 5 of frames every
  1 fs) and keeps the angular momentum; a 50 ps rollout. Speed: that mlip md.

Prints one table: test displacement and velocity MAE (absolute and over their RMS), VDOS overlap
(1 - ½∫|a - b|, the reference sampled at the forecast interval), the relative L1 difference of the
pair distributions, mean and standard deviation of T (against sqrt(2/N_f) T), ns/day of the forecast
and of the MD it replaces. Every stage keeps its outputs in --work and is skipped when they exist
(--fresh: redo all). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from record import attach, recorded

ROOT = Path(__file__).resolve().parents[1]
MLIP = [sys.executable, "-m", "mlip"]

SYSTEMS = {
    "quartz": dict(reference_ps=120.0, every=10, md_timestep=1.0, stride=3, interval=30.0, rollout_ps=100.0,
                   budget="00:25:00", pairs=[(14, 8), (8, 8)], model=[], batch_atoms=None),
    "ethanol": dict(reference_ps=40.0, every=2, md_timestep=None, stride=5, interval=5.0, rollout_ps=50.0,
                    budget="00:20:00", pairs=[(6, 1), (6, 6), (8, 1), (1, 1)],
                    model=["model.conserve_angular_momentum=true"], batch_atoms=90),
}


def run(command, log: Path, cwd=ROOT) -> float:
    """Run ``command`` with its output in ``log``; seconds of wall time. Raises with the log's tail on failure."""
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([str(c) for c in command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({done.returncode}):\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def reference(system: str, work: Path, args) -> dict:
    out = work / system / "reference"
    if not (out / "reference.json").exists():
        settings = SYSTEMS[system]
        command = [sys.executable, ROOT / "benchmarks" / "forecast_reference.py", system]
        if system == "ethanol":
            command.append(potential(work, args))
        command += ["--ps", settings["reference_ps"], "--every", settings["every"], "--out", out]
        if settings.get("quick"):
            command += ["--equilibrate", 0.5]
        print(f"[{system}] reference MD ...", flush=True)
        run(command, work / system / "reference.log")
    return json.loads((out / "reference.json").read_text())


def potential(work: Path, args) -> str:
    """The ethanol potential: --potential, or Facet trained by `mlip train experiment=quickstart`."""
    if args.potential:
        return args.potential
    model = work / "ethanol" / "potential.pt"
    if not model.exists():
        print("[ethanol] training the potential (experiment=quickstart) ...", flush=True)
        quick = ["time_budget=30"] if SYSTEMS["ethanol"].get("quick") else []
        run(MLIP + ["train", "experiment=quickstart", f"run_dir={work / 'ethanol' / 'potential'}",
                    "trainer.enable_progress_bar=false", *quick], work / "ethanol" / "potential.log")
        best = work / "ethanol" / "potential" / "quickstart" / "latest" / "checkpoints" / "best.ckpt"
        from mlip.loading import load

        load(best).save(model)
    return str(model)


def train(system: str, work: Path, trajectory: str) -> Path:
    settings = SYSTEMS[system]
    best = work / system / "forecaster" / "forecast" / "latest" / "checkpoints" / "best.ckpt"
    if not best.exists():
        print(f"[{system}] training the forecaster ({settings['budget']}) ...", flush=True)
        overrides = ["experiment=forecast", f"data.train={trajectory}", f"data.stride={settings['stride']}",
                     f"time_budget={settings['budget']}", f"run_dir={work / system / 'forecaster'}",
                     "trainer.enable_progress_bar=false", *settings["model"]]
        overrides.append(f"data.md_timestep={settings['md_timestep']}" if settings["md_timestep"] else "data.md_timestep=null")
        if settings["batch_atoms"]:
            overrides.append(f"data.batch_atoms={settings['batch_atoms']}")
        run(MLIP + ["train", *overrides], work / system / "forecaster.log")
    return best


def rollout(system: str, work: Path, model: Path, start: str) -> dict:
    settings = SYSTEMS[system]
    out = work / system / "forecast"
    steps = int(round(settings["rollout_ps"] * 1000 / settings["interval"]))
    if not (out / "summary.json").exists():
        print(f"[{system}] rollout of {steps} steps ...", flush=True)
        seconds = run(MLIP + ["forecast", model, start, "--steps", steps, "--temperature", 300, "--out", out, "-q",
                              "--restart-interval", 1000], work / system / "forecast.log")
        log = (work / system / "forecast.log").read_text()
        (out / "summary.json").write_text(json.dumps({"steps": steps, "wall_seconds": seconds, "log": log}))
    return json.loads((out / "summary.json").read_text())


def md_speed_with_facet(work: Path, start: str) -> float:
    """ns/day of mlip md (1 fs, NVE) on the quartz cell with a Facet of the forecaster's size (random weights)."""
    import torch

    from mlip.models import build

    out = work / "quartz" / "facet_md"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build("facet", "quickstart", cutoff=5.0)
    model.save(out / "facet.pt")
    steps = 200
    seconds = run(MLIP + ["md", start, out / "facet.pt", "--ensemble", "nve", "--timestep", 1.0, "--steps", steps,
                          "--out", out, "-q", "--trajectory-interval", 1000, "--max-force", 1e6],
                  work / "quartz" / "facet_md.log")
    text = (work / "quartz" / "facet_md.log").read_text()
    marker = "ns/day"
    for line in text.splitlines():
        if marker in line and "steps" in line:
            return float(line.split(":")[-1].split(marker)[0].split()[-1])
    return steps * 1e-6 / seconds * 86400


def evaluate(system: str, work: Path, ref: dict, best: Path) -> dict:
    from mlip.analysis import compare
    from mlip.data.trajectory import Trajectory
    from mlip.loading import load

    settings = SYSTEMS[system]
    summary = json.loads((best.parent.parent / "summary.json").read_text())
    statistics = json.loads((best.parent.parent / "statistics.json").read_text())["applied"]
    metrics = summary["test_metrics"]
    reference_traj = Trajectory.read(ref["trajectory"], md_timestep=settings["md_timestep"])
    forecast = Trajectory.read(work / system / "forecast" / "trajectory.extxyz")
    model = load(best)
    angular = bool(model.conserve_angular_momentum) and not reference_traj.pbc.any()
    dof = 3 * len(reference_traj.masses) - 3 - (3 if angular else 0)
    comparison = compare(reference_traj, forecast, pairs=settings["pairs"], dof=dof, target=300.0,
                         out_png=str(work / system / "comparison.png"), title=f"{system}: TrajCast at "
                         f"{settings['interval']:g} fs against the reference MD")
    attach(comparison["plot"])
    simulated_ps = (forecast.times[-1] - forecast.times[0]) / 1000
    rollout_log = json.loads((work / system / "forecast" / "summary.json").read_text())
    ns_day = None
    for line in rollout_log["log"].splitlines():  # mlip forecast's table: ... ns/day as the last column
        parts = line.split()
        if parts and parts[0] != "structure" and len(parts) >= 7 and parts[1].isdigit():
            ns_day = float(parts[-1])
    return {"system": system, "interval": settings["interval"], "epochs": summary["epochs"],
            "fit_seconds": summary["fit_seconds"], "train_pairs": summary["train_structures"],
            "displacement_mae": metrics["displacement_mae"], "velocity_mae": metrics["velocities_mae"],
            "displacement_rms": statistics["displacement_rms"], "velocity_rms": statistics["velocity_rms"],
            "vdos_overlap": comparison["vdos_overlap"], "rdf": comparison["rdf"],
            "temperature": comparison["temperature"], "reference_temperature": comparison["reference_temperature"],
            "msd": comparison["msd"], "simulated_ps": simulated_ps, "stopped": "stopped" in rollout_log["log"],
            "forecast_ns_day": ns_day, "md_ns_day": ref["ns_per_day"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench_forecast"))
    parser.add_argument("--potential", default=None, help="the ethanol potential (default: train the quickstart's)")
    parser.add_argument("--fresh", action="store_true", help="redo every stage")
    parser.add_argument("--quick", action="store_true", help="a smoke test of the pipeline: 3 ps of MD, 30 s of "
                                                             "training, 1 ps of rollout (figures meaningless)")
    args = parser.parse_args()
    if args.quick:
        for settings in SYSTEMS.values():
            settings.update(reference_ps=3.0, rollout_ps=1.0, budget="00:00:30", quick=True)
    work = Path(args.work)
    if args.fresh and work.exists():
        import shutil

        shutil.rmtree(work)
    rows = []
    for system in args.systems:
        (work / system).mkdir(parents=True, exist_ok=True)
        ref = reference(system, work, args)
        best = train(system, work, ref["trajectory"])
        start = f"{ref['trajectory']}@-1"  # the last frame, with its velocities: after the test stretch
        rollout(system, work, best, start)
        row = evaluate(system, work, ref, best)
        if system == "quartz":
            row["facet_md_ns_day"] = md_speed_with_facet(work, start)
        rows.append(row)
        (work / system / "result.json").write_text(json.dumps(row, indent=1))
    print_table(rows)
    return 0


def print_table(rows) -> None:
    print("\nforce-free MD (TrajCast) against the reference MD, this machine")
    print(f"{'system':<8} {'Δt fs':>6} {'train':>12} {'disp MAE mÅ (/RMS)':>20} {'vel MAE mÅ/fs (/RMS)':>22} "
          f"{'VDOS':>6} {'pair dist. L1':>22} {'T mean ± std K (ref std)':>26} {'ps':>6} {'ns/day':>8} {'MD ns/day':>16}")
    for r in rows:
        rdf = ", ".join(f"{k} {v:.3f}" for k, v in r["rdf"].items())
        t, tr = r["temperature"], r["reference_temperature"]
        md = f"{r['md_ns_day']:.3g}" + (f" / Facet {r['facet_md_ns_day']:.3g}" if "facet_md_ns_day" in r else "")
        print(f"{r['system']:<8} {r['interval']:>6g} {r['epochs']:>4} ep {r['fit_seconds'] / 60:>3.0f} min "
              f"{1000 * r['displacement_mae']:>8.2f} ({r['displacement_mae'] / r['displacement_rms']:.3f})  "
              f"{1000 * r['velocity_mae']:>10.4f} ({r['velocity_mae'] / r['velocity_rms']:.3f})  "
              f"{r['vdos_overlap']:>6.3f} {rdf:>22} {t['mean']:>7.1f} ± {t['std']:.1f} ({tr['std']:.1f}; "
              f"{t['expected_std']:.1f})  {r['simulated_ps']:>6.1f} {r['forecast_ns_day']:>8.3g} {md:>16}"
              + ("  STOPPED" if r["stopped"] else ""))
    for r in rows:
        ratio = r["forecast_ns_day"] / r["md_ns_day"]
        print(f"{r['system']}: forecast {r['forecast_ns_day']:.3g} ns/day = {ratio:.2f} x the reference MD "
              f"({r['md_ns_day']:.3g} ns/day); mean T {r['temperature']['mean_error'] * 100:+.2f}% from 300 K; "
              f"MSD at {r['msd']['lag_fs'] / 1000:.1f} ps {r['msd']['trajectory']:.4f} Å² (reference "
              f"{r['msd']['reference']:.4f})")


if __name__ == "__main__":
    recorded(main)
