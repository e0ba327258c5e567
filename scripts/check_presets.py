"""One training step of every registered preset on a device, with the kernels as they run there
(``auto``: Triton on CUDA) against the torch references on the same device.

    python scripts/check_presets.py [--device cuda] [--dtype float32]

Each step: energy, forces and stress of a batch (a 32-atom copper crystal and ethanol), a loss on all
three and its gradient for the weights (the double backward of training on forces). Prints, per
preset, the step time and peak memory of each backend and the largest relative differences of
energy, forces, stress and weight gradients; exits non-zero when a difference exceeds the dtype's
tolerance or a step fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from mlip import kernels
from mlip.graph import collate
from mlip.models import _REGISTRY, build, registered
from mlip.models.kernel_shapes import probe_structures

TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-8}


def batch_for(model, device, dtype):
    from ase.build import bulk

    from mlip.data import AtomicData

    crystal = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    crystal.rattle(0.05, seed=0)
    structures = [AtomicData.from_ase(crystal), probe_structures()[1]]
    batch = collate(structures, cutoff=model.cutoff, max_neighbors=model.max_neighbors).to(device)
    batch.pos, batch.cell = batch.pos.to(dtype), batch.cell.to(dtype)
    return batch


def step(model, batch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = model(batch)
    loss = out["energy"].square().mean() + out["forces"].square().mean() + out["stress"].square().mean()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    values = {k: v.detach() for k, v in out.items()}
    values["weight gradients"] = torch.cat([g.flatten() for g in grads if g is not None])
    return values, seconds, peak


def relative(a, b) -> float:
    scale = max(float(b.abs().max()), 1e-12)
    return float((a - b).abs().max()) / scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    name_of_device = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"one training step of every preset on {name_of_device}, {args.dtype}; kernels 'auto' against 'torch'")
    print(f"{'model/preset':<22}{'auto s':>9}{'torch s':>9}{'auto MB':>10}{'torch MB':>10}  largest relative difference")
    failures = 0
    for name in registered():
        for preset in _REGISTRY[name].presets:
            torch.manual_seed(0)
            try:
                model = build(name, preset=preset).to(device=device, dtype=dtype).train()
                batch = batch_for(model, device, dtype)
                results = {}
                for backend in ("auto", "torch"):
                    with kernels.backend(backend):
                        step(model, batch, device)  # warm-up: compilation, caches
                        results[backend] = step(model, batch, device)
            except Exception as error:  # noqa: BLE001 - report every preset, then fail
                failures += 1
                print(f"{name + '/' + preset:<22} FAILED: {type(error).__name__}: {error}", flush=True)
                continue
            (auto, t_auto, m_auto), (ref, t_ref, m_ref) = results["auto"], results["torch"]
            diffs = {k: relative(auto[k], ref[k]) for k in ref}
            bad = [k for k, d in diffs.items() if not d <= TOLERANCE[dtype]]
            failures += bool(bad)
            print(f"{name + '/' + preset:<22}{t_auto:>9.3f}{t_ref:>9.3f}{m_auto:>10.0f}{m_ref:>10.0f}  "
                  + ", ".join(f"{k} {d:.1e}" for k, d in diffs.items()) + (f"  OVER {bad}" if bad else ""),
                  flush=True)
    print(f"{failures} preset(s) failed" if failures else "every preset's step agrees with the references")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
