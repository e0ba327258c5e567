"""Read a >= 1 GB MPtrj JSON (real MPtrj_2022.9_full.json schema) end to end; print peak memory.

    python benchmarks/bench_mptrj_memory.py [--size-gb 1.05] [--path /tmp/mptrj_1gb.json] [--keep]

The file is generated from the bundled MPtrj frames (data/mptrj/MPtrj_sample_DERIVED_from_ffast.json),
each made into a supercell of about 30 atoms (MPtrj's average frame size) with forces and
magmoms tiled, under fresh mp-ids. A child process then opens it with mlip.data.open_dataset
(building the byte-offset index) and reads and validates every frame; its peak resident memory
(ru_maxrss) is the figure. Target: under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import recorded

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "mptrj" / "MPtrj_sample_DERIVED_from_ffast.json"


def enlarged_records(target_atoms: int = 30) -> list[dict]:
    """The sample's frames as ~30-atom supercells, every field kept in the MPtrj schema."""
    from pymatgen.core import Structure

    records = []
    for frames in json.load(open(SAMPLE)).values():
        for rec in frames.values():
            structure = Structure.from_dict(rec["structure"])
            n = len(structure)
            reps = [1, 1, 1]
            k = 0
            while n * reps[0] * reps[1] * reps[2] * 2 <= target_atoms * 1.5:
                reps[k % 3] += 1
                k += 1
            factor = reps[0] * reps[1] * reps[2]
            big = structure * reps
            out = dict(rec)
            out["structure"] = big.as_dict()
            # pymatgen's supercell keeps each original site's images together, in order
            out["force"] = [f for f in rec["force"] for _ in range(factor)]
            if rec.get("magmom") is not None:
                out["magmom"] = [m for m in rec["magmom"] for _ in range(factor)]
            for key in ("uncorrected_total_energy", "corrected_total_energy"):
                out[key] = rec[key] * factor
            records.append(out)
    return records


def generate(path: Path, size_bytes: int) -> int:
    records = [json.dumps(r) for r in enlarged_records()]
    written, frames, mp = 0, 0, 0
    with open(path, "w") as f:
        f.write("{")
        while written < size_bytes:
            parts = []
            for k, rec in enumerate(records):
                parts.append(f'"mp-{mp}-{k}-0": {rec}')
            chunk = ("" if mp == 0 else ", ") + f'"mp-{mp}": {{' + ", ".join(parts) + "}"
            f.write(chunk)
            written += len(chunk)
            frames += len(records)
            mp += 1
        f.write("}")
    return frames


def read_all(path: str) -> None:
    """Child process: open, index, read every frame; print figures as JSON."""
    import mlip.data

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    ds = mlip.data.open_dataset(path, format="mptrj", progress=True)
    t_index = time.perf_counter() - start
    start = time.perf_counter()
    atoms = 0
    energy = 0.0
    from tqdm.auto import tqdm

    for data in tqdm(ds, total=len(ds), unit="frame", desc="reading", mininterval=5):
        atoms += int(data.natoms)
        energy += float(data.energy)
    t_read = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": len(ds), "atoms": atoms, "index_s": t_index, "read_s": t_read,
                      "rss_after_imports_mb": base, "peak_rss_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.05)
    parser.add_argument("--path", default="/tmp/mptrj_bench.json")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--read", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read_all(args.read)
        return
    path = Path(args.path)
    size = int(args.size_gb * 1e9)
    if not path.exists() or path.stat().st_size < size:
        start = time.perf_counter()
        frames = generate(path, size)
        print(f"generated {path}: {path.stat().st_size / 1e9:.2f} GB, {frames} frames in "
              f"{time.perf_counter() - start:.0f} s")
    with tempfile.TemporaryDirectory() as cache:  # a fresh index cache: the scan is timed too
        env = dict(os.environ, MLIP_CACHE_DIR=cache)
        result = subprocess.run([sys.executable, __file__, "--read", str(path)], env=env, stdout=subprocess.PIPE,
                                text=True, check=True)
    r = json.loads(result.stdout.strip().splitlines()[-1])
    size_gb = path.stat().st_size / 1e9
    print(f"file            {size_gb:.2f} GB, {r['frames']} frames, {r['atoms']} atoms")
    print(f"index           {r['index_s']:.1f} s ({size_gb / r['index_s']:.2f} GB/s)")
    print(f"read + validate {r['read_s']:.1f} s ({r['frames'] / r['read_s']:.0f} frames/s)")
    print(f"peak RSS        {r['peak_rss_mb']:.0f} MB (target < 500 MB: {'met' if r['peak_rss_mb'] < 500 else 'NOT met'}); "
          f"of it, imports (torch, torch_geometric, ase) {r['rss_after_imports_mb']:.0f} MB, "
          f"the reader {r['peak_rss_mb'] - r['rss_after_imports_mb']:.0f} MB")
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    recorded(main)
