"""One eSCN SO(2) convolution against the SO(3) tensor-product convolution it replaces.

    python benchmarks/bench_so2.py [--edges 2000] [--channels 16] [--lmax 2 4 6] [--mmax 2]

Ours (mlip.nn.so2): rotate the neighbour features into each edge frame (Wigner-D, computed per
edge), keep |m| <= mmax, SO(2) linear map gated by a per-edge embedding, rotate back. Theirs
(e3nn, from the MACE virtual environment): FullyConnectedTensorProduct of C x (0e+1o+2e+...)
with the edge's spherical harmonics 1 x (0e+1o+...) to C x (0e+1o+...), all paths, weights
shared across edges (per-edge weights at lmax 6 would not fit in memory). Forward and
forward+backward on the same CPU, float32, 2 threads; prints times, ratios and the exponent of
our cost in lmax (the paper: O(L^3) against O(L^6)).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from record import recorded  # noqa: E402  (benchmarks/record.py: --record NAME)

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def ours(lmax: int, mmax: int, channels: int, edges: int) -> dict:
    from mlip.nn.so2 import EdgeFrame, SO2Linear

    torch.manual_seed(0)
    frame = EdgeFrame(lmax, mmax)
    conv = SO2Linear(lmax, mmax, channels, channels)
    x = torch.randn(edges, (lmax + 1) ** 2, channels, requires_grad=True)
    vec = torch.randn(edges, 3)
    gate = torch.randn(edges, conv.num_gates * channels)

    def forward():
        d = frame.matrices(vec)
        return frame.out_of(d, conv(frame.into(d, x), gate))

    def both():
        forward().square().sum().backward()

    return {"forward_ms": timed(forward), "backward_ms": timed(both)}


def e3nn_worker(lmax: int, channels: int, edges: int) -> dict:
    from e3nn import o3

    torch.manual_seed(0)
    features = o3.Irreps("+".join(f"{channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))
    sh = o3.Irreps.spherical_harmonics(lmax)
    tp = o3.FullyConnectedTensorProduct(features, sh, features, shared_weights=True)
    x = torch.randn(edges, features.dim, requires_grad=True)
    y = o3.spherical_harmonics(sh, torch.randn(edges, 3), normalize=True)

    def both():
        tp(x, y).square().sum().backward()

    return {"forward_ms": timed(lambda: tp(x, y)), "backward_ms": timed(both), "paths": len(tp.instructions),
            "weights": tp.weight_numel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--lmax", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--mmax", type=int, default=2)
    parser.add_argument("--e3nn-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.e3nn_worker is not None:
        print(json.dumps(e3nn_worker(args.e3nn_worker, args.channels, args.edges)))
        return
    from bench_inference import peer_python

    python = peer_python("mace")  # mace-torch brings e3nn
    rows = []
    for lmax in args.lmax:
        mine = ours(lmax, min(args.mmax, lmax), args.channels, args.edges)
        result = subprocess.run([python, __file__, "--e3nn-worker", str(lmax), "--channels", str(args.channels),
                                 "--edges", str(args.edges)], capture_output=True, text=True,
                                env=dict(os.environ, PYTHONWARNINGS="ignore", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))
        if result.returncode != 0:
            raise RuntimeError(f"e3nn at lmax {lmax} failed:\n{result.stderr[-2000:]}")
        theirs = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append((lmax, mine, theirs))
        print(f"lmax {lmax}: done", flush=True)
    print(f"\n{args.edges} edges, {args.channels} channels per degree, mmax {args.mmax}, float32, 2 threads (ms)")
    print(f"{'lmax':>4}{'eSCN fwd':>10}{'e3nn fwd':>10}{'ratio':>8}{'eSCN f+b':>10}{'e3nn f+b':>10}{'ratio':>8}"
          f"{'e3nn paths':>12}")
    for lmax, mine, theirs in rows:
        print(f"{lmax:>4}{mine['forward_ms']:>10.1f}{theirs['forward_ms']:>10.1f}"
              f"{theirs['forward_ms'] / mine['forward_ms']:>8.1f}{mine['backward_ms']:>10.1f}"
              f"{theirs['backward_ms']:>10.1f}{theirs['backward_ms'] / mine['backward_ms']:>8.1f}{theirs['paths']:>12}")
    if len(rows) > 1:
        logs = np.log([r[0] for r in rows])
        ours_slope = np.polyfit(logs, np.log([r[1]["forward_ms"] for r in rows]), 1)[0]
        theirs_slope = np.polyfit(logs, np.log([r[2]["forward_ms"] for r in rows]), 1)[0]
        print(f"\ncost ~ lmax^k (forward, fitted over lmax {args.lmax}): eSCN k = {ours_slope:.2f}, "
              f"e3nn k = {theirs_slope:.2f}")
        verdict = ("within lmax^3 (k <= 3.5), as the paper's O(L^3)" if ours_slope <= 3.5
                   else "grows faster than lmax^3 (k > 3.5): not the paper's O(L^3)")
        print(f"eSCN: {verdict}; expected terms: SO(2) maps ~ L^2 C^2 at fixed mmax, rotations ~ L^3 C")


if __name__ == "__main__":
    recorded(main)
