"""The quickstart job end to end, timed: what `bash scripts/quickstart.sh` does after set-up.

    python benchmarks/bench_quickstart.py [--record quickstart]

Runs `mlip quickstart` (read and validate every bundled dataset, train Facet on rMD17 ethanol for its
10-minute budget, test on the 1000 test_01 structures, relax, MD, export) in a child process on the
repository's data, and prints its output without the per-epoch lines (the whole log goes to
runs/bench_quickstart.log) followed by the wall time. Run it alone on the machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from record import recorded

ROOT = Path(__file__).resolve().parents[1]
EPOCH_LINE = re.compile(r"^\s*epoch \d+")
# Lightning's model summary (box drawing, then its totals): the model's size is in the run directory
SUMMARY_LINE = re.compile(r"^\s*([┏┃┡│└]|(Non-)?[Tt]rainable params|Total (params|estimated|FLOPs)|Modules in)")


def main() -> int:
    log = ROOT / "runs" / "bench_quickstart.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    mlip = Path(sys.executable).parent / "mlip"
    start = time.perf_counter()
    done = subprocess.run([str(mlip), "quickstart", "-q", "--data", str(ROOT / "data"), *sys.argv[1:]], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log.write_text(done.stdout + done.stderr)
    epochs = 0
    for line in done.stdout.splitlines():
        if EPOCH_LINE.match(line):
            epochs += 1
            continue
        if not SUMMARY_LINE.match(line):
            print(line)
    print(f"\nmlip quickstart: exit {done.returncode}, {seconds / 60:.1f} min wall ({epochs} epoch lines left out; "
          f"whole log: {log.relative_to(ROOT)})")
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    recorded(main)
