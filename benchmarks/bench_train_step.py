"""Seconds per training step of a potential's variants, on the bundled molecules.

    python benchmarks/bench_train_step.py [--model facet] [--preset quickstart]
                                       [--variant NAME:KEY=VALUE,KEY=VALUE ...] [--batch 4] [--steps 10]

One training step as mlip trains (energy and forces, forces by autograd, MSE on both, backward, Adam
step; no stress) on batches of ``--batch`` structures of rMD17 ethanol (9 atoms) and 3BPA (27
atoms), after two untimed warm-up steps. A variant overrides the preset's hyperparameters
(``corr3:correlation=3``); "base" (the preset itself) always runs first. Prints milliseconds per
step, the ratio to base and the parameter count. It answers what a change costs per epoch before a
wall-clock training benchmark (bench_train.py) spends minutes per molecule on it. Run it alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from record import recorded

ROOT = Path(__file__).resolve().parents[1]
MOLECULES = {"ethanol": ROOT / "data" / "rmd17" / "rmd17_ethanol_train_01.npz",
             "3bpa": ROOT / "data" / "extxyz" / "3bpa_train_300K.xyz"}


def parse_variant(text: str) -> tuple[str, dict]:
    """"corr3:correlation=3,cutoff=5.0" -> ("corr3", {"correlation": 3, "cutoff": 5.0})."""
    name, _, body = text.partition(":")
    if not body:
        raise ValueError(f"variant {text!r}: write NAME:KEY=VALUE[,KEY=VALUE]")
    settings = {}
    for item in body.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"variant {text!r}: {item!r} is not KEY=VALUE")
        settings[key] = yaml.safe_load(value)
    return name, settings


def milliseconds_per_step(model_name: str, preset: str, settings: dict, frames: list, batch: int,
                          steps: int) -> tuple[float, int]:
    from mlip.graph import collate
    from mlip.models import build

    torch.manual_seed(0)
    model = build(model_name, preset=preset, **settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for k in range(steps + 2):
        chosen = [frames[(k * batch + i) % len(frames)] for i in range(batch)]
        data = collate(chosen, cutoff=model.cutoff, max_neighbors=model.max_neighbors)
        start = time.perf_counter()
        out = model(data, compute_stress=False)
        loss = (out["forces"] - data.forces).pow(2).mean() + (out["energy"] - data.energy).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return 1000 * sum(times[2:]) / steps, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="facet")
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--variant", nargs="*", default=["corr2:correlation=2", "corr3:correlation=3",
                                                         "cutoff5:cutoff=5.0", "layers2:num_layers=2"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    from mlip.data import open_dataset

    variants = [("base", {})] + [parse_variant(v) for v in args.variant]
    print(f"{args.model} ({args.preset} preset), training steps of {args.batch} structures, "
          f"{torch.get_num_threads()} threads")
    print(f"{'molecule':<10}{'variant':<12}{'ms/step':>9}{'x base':>8}{'parameters':>12}")
    for molecule, path in MOLECULES.items():
        dataset = open_dataset(str(path))
        frames = [dataset[i] for i in range(args.batch * (args.steps + 2))]
        if molecule == next(iter(MOLECULES)):  # the process's first model pays one-time costs: untimed
            milliseconds_per_step(args.model, args.preset, {}, frames, args.batch, 2)
        base = None
        for name, settings in variants:
            ms, parameters = milliseconds_per_step(args.model, args.preset, settings, frames, args.batch, args.steps)
            base = base or ms
            print(f"{molecule:<10}{name:<12}{ms:>9.1f}{ms / base:>8.2f}{parameters:>12,}", flush=True)


if __name__ == "__main__":
    recorded(main)
