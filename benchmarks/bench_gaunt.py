"""Time and peak memory of one equivariant product at degree L = 1..8: the Gaunt tensor product
(mlip.nn.gaunt, FFT and direct convolution) against this project's Clebsch-Gordan
EdgeTensorProduct and e3nn's FullTensorProduct.

    python benchmarks/bench_gaunt.py [--lmax 1 2 3 4 5 6 7 8] [--items 256] [--channels 16]

The product is a feature of degree L with its edge's harmonics of degree L, to degree L out,
channel-wise: x (items, channels, (L+1)^2) times Y(r) (items, (L+1)^2), float32 on the CPU threads
(or CUDA when there is one). The Gaunt product and EdgeTensorProduct (every parity-keeping path,
one weight per path) compute it; e3nn's FullTensorProduct of the single-channel irreps
0e + 1o + ... (L) with itself computes every path of the full product (all output degrees up to
2L, odd paths too) for items x channels pairs: the O(L^6) reference of the paper. Each (method, L)
runs in a fresh process: forward time (median of repeats after a warm-up) and the peak resident
memory above what the inputs take (/proc/self/clear_refs and VmHWM, as bench_memory.py). The fitted
exponent is the slope of log(time) over log(L) for L >= 3; the paper: Gaunt O(L^3), CG O(L^6).

    python benchmarks/bench_gaunt.py --facet [--facet-lmax 2 4 6] [--channels 16]

Facet with each message backend (tensor_product cg and gaunt) at lmax 2, 4, 6 on 512-atom diamond Si
(rattled, cutoff 5 Å, 2 blocks, float32): energy and forces per call, atom-steps/s (best of 3 after a
warm-up), each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from record import recorded

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("gaunt-fft", "gaunt-direct", "cg-edge", "e3nn-full")


def status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(method: str, lmax: int, items: int, channels: int, repeats: int) -> dict:
    import torch

    from mlip.nn.spherical_harmonics import spherical_harmonics

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    s = (lmax + 1) ** 2
    x = torch.randn(items, channels, s, device=device)
    sh = spherical_harmonics(lmax, torch.randn(items, 3, device=device))
    if method.startswith("gaunt"):
        from mlip.nn.gaunt import GauntProduct

        product = GauntProduct(lmax, lmax, lmax, method.split("-")[1]).to(device)
        run = lambda: product(x, sh[:, None, :])  # noqa: E731
    elif method == "cg-edge":
        from mlip.nn.tensor_product import EdgeTensorProduct

        product = EdgeTensorProduct(lmax, lmax, lmax).to(device)
        xt = x.transpose(1, 2).contiguous()
        weights = torch.ones(items, product.num_paths, 1, device=device)
        run = lambda: product(xt, sh, weights)  # noqa: E731
    elif method == "e3nn-full":
        from e3nn import o3

        irreps = o3.Irreps("+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))
        product = o3.FullTensorProduct(irreps, irreps).to(device)
        a = x.reshape(items * channels, s)
        b = sh[:, None, :].expand(items, channels, s).reshape(items * channels, s)
        run = lambda: product(a, b)  # noqa: E731
    else:
        raise ValueError(method)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        run()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = run()
            sync()
            times.append(time.perf_counter() - start)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            out = run()
            sync()
            peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            del out
            before = status_kb("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            out = run()
            peak_mb = (status_kb("VmHWM") - before) / 1024
    return {"method": method, "lmax": lmax, "seconds": float(np.median(times)), "peak_mb": peak_mb,
            "outputs": int(out.shape[-1]), "device": device}


def facet_worker(backend: str, lmax: int, channels: int, repeats: int) -> dict:
    import torch
    from ase.build import bulk

    from mlip.data import AtomicData
    from mlip.graph import build_graph
    from mlip.models import build

    torch.manual_seed(0)
    model = build("facet", cutoff=5.0, lmax=lmax, channels=channels, num_layers=2, hidden=2 * channels,
                  avg_num_neighbors=30.0, tensor_product=backend).float().eval()
    crystal = bulk("Si", "diamond", a=5.43, cubic=True) * (4, 4, 4)
    crystal.rattle(0.05, seed=0)
    data = build_graph(AtomicData.from_ase(crystal), model.cutoff)
    data.pos = data.pos.float()
    data.cell = data.cell.float()
    model(data, compute_stress=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model(data, compute_stress=False)
        times.append(time.perf_counter() - start)
    assert torch.isfinite(out["forces"]).all()
    return {"backend": backend, "lmax": lmax, "seconds": min(times), "atoms": len(crystal),
            "edges": int(data.edge_index.shape[1]), "atom_steps_per_s": len(crystal) / min(times)}


def facet_main(args) -> None:
    rows = []
    for lmax in args.facet_lmax:
        for backend in ("cg", "gaunt"):
            command = [sys.executable, __file__, "--facet-worker", backend, str(lmax), "--channels",
                       str(args.channels), "--repeats", str(min(args.repeats, 3))]
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if result.returncode != 0:
                tail = result.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"facet {backend} lmax {lmax}: failed ({tail[0][:200]})", flush=True)
                continue
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"facet {backend} lmax {lmax}: {rows[-1]['atom_steps_per_s']:.0f} atom-steps/s", flush=True)
    print(f"\nFacet, 512-atom Si, cutoff 5 Å, 2 blocks, {args.channels} channels, float32, energy + forces")
    print(f"{'lmax':>5}{'cg atom-steps/s':>18}{'gaunt atom-steps/s':>21}{'gaunt / cg':>12}")
    for lmax in args.facet_lmax:
        found = {r["backend"]: r for r in rows if r["lmax"] == lmax}
        cg, ga = found.get("cg"), found.get("gaunt")
        ratio = f"{ga['atom_steps_per_s'] / cg['atom_steps_per_s']:.2f}x" if cg and ga else "-"
        print(f"{lmax:>5}{cg['atom_steps_per_s'] if cg else float('nan'):>18.0f}"
              f"{ga['atom_steps_per_s'] if ga else float('nan'):>21.0f}{ratio:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmax", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--facet", action="store_true", help="Facet with each backend at --facet-lmax instead")
    parser.add_argument("--facet-lmax", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--facet-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.facet_worker:
        print(json.dumps(facet_worker(args.facet_worker[0], int(args.facet_worker[1]), args.channels, args.repeats)))
        return
    if args.facet:
        facet_main(args)
        return
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.items, args.channels, args.repeats)))
        return
    rows: dict = {}
    for method in args.methods:
        for lmax in args.lmax:
            command = [sys.executable, __file__, "--worker", method, str(lmax), "--items", str(args.items),
                       "--channels", str(args.channels), "--repeats", str(args.repeats)]
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if result.returncode != 0:
                tail = result.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"{method} L={lmax}: failed ({tail[0][:160]})", flush=True)
                break
            rows.setdefault(method, []).append(json.loads(result.stdout.strip().splitlines()[-1]))
            r = rows[method][-1]
            print(f"{method} L={lmax}: {1000 * r['seconds']:.2f} ms, +{r['peak_mb']:.1f} MB", flush=True)
    device = next(iter(rows.values()))[0]["device"] if rows else "?"
    print(f"\none product, {args.items} items x {args.channels} channels, float32, {device}: "
          "forward ms (peak MB above the inputs)")
    print(f"{'L':>3}" + "".join(f"{m:>22}" for m in rows))
    for i, lmax in enumerate(args.lmax):
        cells = []
        for m in rows:
            r = rows[m][i] if i < len(rows[m]) else None
            cells.append(f"{1000 * r['seconds']:>11.2f} ({r['peak_mb']:>6.1f})" if r else f"{'-':>22}")
        print(f"{lmax:>3}" + "".join(f"{c:>22}" for c in cells))
    print("fitted exponent of time in L (L >= 3):" + "".join(
        f"  {m} {np.polyfit(np.log([r['lmax'] for r in rs if r['lmax'] >= 3]), np.log([r['seconds'] for r in rs if r['lmax'] >= 3]), 1)[0]:.2f}"
        for m, rs in rows.items() if sum(r["lmax"] >= 3 for r in rs) >= 2))
    for m in ("cg-edge", "e3nn-full"):
        if m in rows and "gaunt-fft" in rows:
            common = min(len(rows[m]), len(rows["gaunt-fft"]))
            r, g = rows[m][common - 1], rows["gaunt-fft"][common - 1]
            print(f"at L={r['lmax']}: {m} takes {r['seconds'] / g['seconds']:.2f}x gaunt-fft's time and "
                  f"{r['peak_mb'] / max(g['peak_mb'], 1e-3):.2f}x its peak memory")


if __name__ == "__main__":
    recorded(main)
