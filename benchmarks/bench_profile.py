"""Where a step's time goes: each stage's time, its FLOPs counted from the shapes, and the GFLOP/s
it reaches against the machine's measured peak.

    python benchmarks/bench_profile.py [--models facet:mp facet:small facet:quickstart escn:quickstart
        equiformer_v2:quickstart escaip:quickstart] [--atoms 1000] [--steps 3] [--train facet:quickstart]

Inference: energy, forces and stress of rattled diamond Si (``--atoms``), float32, torch threads =
cores, through the same calls as the ASE calculator (neighbour list and graph, then the model).
eSCN, EquiformerV2 and EScAIP at their CPU-sized "quickstart" presets (their OC20 presets need more
memory than this 24 GB machine has at 1000 atoms).
Training (``--train``): one optimiser step's forward, forces (first backward, kept for the loss)
and the loss's backward (the double backward of force training) on a batch of 8 rMD17 aspirin
structures.

Stages, by module class (a module's time counts to its own stage, else to its nearest classified
parent's): graph (neighbour list, edge vectors), frames (eSCN's edge rotations), radial (radial
bases and learned radial functions), messages (tensor products or SO(2) convolutions or
attention and their aggregation), grid MLP (sphere-grid node updates), node (linear layers and
norms on atoms), readout, repulsion (the ZBL prior), backward (the autograd passes). FLOPs are
the matrix products' (mm, bmm, addmm, einsum's; torch.utils.flop_counter's formulas) counted with
the kernels' torch references, so a sparse product counts its useful FLOPs; element-wise work is
not counted. Peak: a 4096^3 float32 GEMM on the same threads.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from record import recorded

ROOT = Path(__file__).resolve().parents[1]

STAGES = {
    "frames": ("EdgeFrame",),
    "radial": ("SplineRadial", "SplineBasis", "RadialMLP", "BesselBasis", "GaussianBasis", "PolynomialEnvelope",
               "EdgeEmbedding", "EdgeDegreeEmbedding"),
    "messages": ("InteractionBlock", "EdgeTensorProduct", "EdgeGauntProduct", "EscnBlock", "_PairBlock", "SO2Linear",
                 "EquivariantGraphAttention", "EquiformerV2Block", "GraphAttentionBlock", "NeighborAttention"),
    "grid MLP": ("GridProductMLP", "SeparableGridActivation", "GauntPower"),
    "node": ("SO3Linear", "SO3RMSNorm", "LayerNorm", "SeparableLayerNorm", "RMSNorm", "Embedding", "Tokens"),
    "repulsion": ("ZBLRepulsion",),
}
ORDER = ["graph", "frames", "radial", "messages", "grid MLP", "node", "readout", "repulsion", "other",
         "forces (backward)", "training backward"]


def stage_of(name: str, module: torch.nn.Module):
    """The stage a module is classified under, or None (its time goes to its parent's stage)."""
    leaf = name.rsplit(".", 1)[-1]
    if "readout" in leaf or leaf.endswith("_head") or leaf.startswith("force_"):
        return "readout"
    for stage, classes in STAGES.items():
        if type(module).__name__ in classes:
            return stage
    return None


class StageClock:
    """Forward hooks on every module: exclusive seconds per stage; ``current`` is the innermost stage
    (the FLOP counter attributes each operation to it)."""

    def __init__(self, model: torch.nn.Module):
        self.seconds = defaultdict(float)
        self.stack = [["other", 0.0, 0.0]]
        self.handles = []
        for name, module in model.named_modules():
            own = stage_of(name, module)
            self.handles.append(module.register_forward_pre_hook(self._enter(own)))
            self.handles.append(module.register_forward_hook(self._leave))

    @property
    def current(self) -> str:
        return self.stack[-1][0]

    def _enter(self, own):
        def hook(module, args):
            self.stack.append([own or self.current, time.perf_counter(), 0.0])
        return hook

    def _leave(self, module, args, output):
        stage, start, children = self.stack.pop()
        elapsed = time.perf_counter() - start
        self.seconds[stage] += elapsed - children
        self.stack[-1][2] += elapsed

    def section(self, stage: str):
        """A context that puts a stretch of code (a backward pass, the graph) under ``stage``."""
        clock = self

        class _Section:
            def __enter__(self):
                clock.stack.append([stage, time.perf_counter(), 0.0])

            def __exit__(self, *exc):
                _, start, children = clock.stack.pop()
                elapsed = time.perf_counter() - start
                clock.seconds[stage] += elapsed - children
                clock.stack[-1][2] += elapsed
        return _Section()

    def close(self):
        for handle in self.handles:
            handle.remove()


class FlopCounter(TorchDispatchMode):
    """Matrix-product FLOPs of every operation, to the clock's current stage."""

    def __init__(self, clock: StageClock):
        super().__init__()
        self.clock = clock
        self.flops = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func._overloadpacket
        if packet in flop_registry:
            self.flops[self.clock.current] += flop_registry[packet](*args, **(kwargs or {}), out_val=out)
        return out


def peak_gflops(size: int = 4096) -> float:
    a = torch.randn(size, size)
    a @ a
    start = time.perf_counter()
    for _ in range(3):
        a @ a
    return 2 * size**3 * 3 / (time.perf_counter() - start) / 1e9


def silicon(n: int):
    from ase.build import bulk

    reps = round((n / 8) ** (1 / 3))
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (reps, reps, reps)
    if len(atoms) != n:
        raise SystemExit(f"--atoms {n}: no cubic Si supercell has that many atoms (8 k^3: 64, 216, 512, 1000)")
    atoms.rattle(0.05, seed=0)
    return atoms


def aspirin_batch(count: int = 8):
    from mlip.data import AtomicData

    z = np.load(ROOT / "data" / "rmd17" / "rmd17_aspirin_train_01.npz")
    return [AtomicData.build(pos=z["coords"][i], atomic_numbers=z["nuclear_charges"], cell=np.zeros((3, 3)),
                             pbc=np.zeros(3, dtype=bool)) for i in range(count)]


def profile(model_spec: str, atoms, steps: int, train: bool) -> dict:
    """Per-stage seconds (mean over ``steps``) and FLOPs of one inference or training step."""
    from mlip.calculator import atoms_to_data
    from mlip.graph import collate
    from mlip.kernels import backend
    from mlip.models import build

    name, preset = model_spec.split(":")
    torch.manual_seed(0)
    model = build(name, preset=preset).float()
    model.train(train)
    frames = aspirin_batch() if train else [atoms_to_data(atoms)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6) if train else None

    def step(clock: StageClock):
        with clock.section("graph"):
            batch = collate(frames, cutoff=model.cutoff, max_neighbors=model.max_neighbors)
        grad = torch.autograd.grad

        def timed_grad(*args, **kwargs):  # the forces' backward inside the model's call
            with clock.section("forces (backward)"):
                return grad(*args, **kwargs)
        torch.autograd.grad = timed_grad
        try:
            out = model(batch, compute_forces=True, compute_stress=not train)
        finally:
            torch.autograd.grad = grad
        if train:
            loss = out["energy"].square().mean() + out["forces"].square().mean()
            with clock.section("training backward"):
                optimizer.zero_grad()
                loss.backward()
            optimizer.step()
        return batch

    warm = StageClock(model)
    batch = step(warm)
    step(warm)
    warm.close()
    clock = StageClock(model)
    for _ in range(steps):
        step(clock)
    clock.close()
    seconds = {k: v / steps for k, v in clock.seconds.items()}
    counting = StageClock(model)
    with backend("torch"), FlopCounter(counting) as counter:
        step(counting)
    counting.close()
    return {"model": model_spec, "atoms": int(batch.pos.shape[0]), "edges": int(batch.edge_index.shape[1]),
            "seconds": seconds, "flops": dict(counter.flops)}


def table(result: dict, peak: float) -> str:
    total_s = sum(result["seconds"].values())
    total_f = sum(result["flops"].values())
    lines = [f"{result['model']}: {result['atoms']} atoms, {result['edges']} edges, {total_s * 1e3:.1f} ms a step "
             f"({result['atoms'] / total_s:.0f} atom-steps/s), {total_f / 1e9:.2f} GFLOP, "
             f"{total_f / total_s / 1e9:.1f} GFLOP/s = {100 * total_f / total_s / 1e9 / peak:.1f}% of peak",
             f"  {'stage':<20}{'ms':>9}{'share':>8}{'GFLOP':>9}{'GFLOP/s':>9}{'% peak':>8}"]
    for stage in ORDER:
        s, f = result["seconds"].get(stage, 0.0), result["flops"].get(stage, 0.0)
        if s == 0.0 and f == 0.0:
            continue
        rate = f / s / 1e9 if s > 0 else 0.0
        lines.append(f"  {stage:<20}{s * 1e3:9.1f}{100 * s / total_s:7.1f}%{f / 1e9:9.3f}{rate:9.1f}"
                     f"{100 * rate / peak:7.1f}%")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["facet:mp", "facet:small", "facet:quickstart",
                                                        "escn:quickstart", "equiformer_v2:quickstart",
                                                        "escaip:quickstart"])
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--train", nargs="*", default=["facet:quickstart"],
                        help="models whose training step (8 aspirin structures) is profiled too")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    peak = peak_gflops()
    print(f"peak: float32 GEMM 4096^3, {torch.get_num_threads()} threads: {peak:.1f} GFLOP/s\n")
    atoms = silicon(args.atoms)
    for spec in args.models:
        print(table(profile(spec, atoms, args.steps, train=False), peak) + "\n", flush=True)
    for spec in args.train:
        print("training step, " + table(profile(spec, atoms, args.steps, train=True), peak) + "\n", flush=True)


if __name__ == "__main__":
    recorded(main)
