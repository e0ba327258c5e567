"""benchmarks/bench_inference.py: mlip's runs spread around the peers', the median run reported."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports record.py beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_inference", ROOT / "benchmarks" / "bench_inference.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_schedule_puts_the_peers_between_our_rounds():
    bench = load()
    assert bench.schedule(["a", "b"], ["p", "q"], 3) == ["a", "b", "a", "b", "p", "q", "a", "b"]
    assert bench.schedule(["a"], ["p"], 1) == ["a", "p"]
    assert bench.schedule(["a"], ["p"], 2) == ["a", "p", "a"]


def test_median_run_takes_the_middle_speed_and_the_largest_peak():
    bench = load()
    runs = [{"atom_steps_per_s": s, "peak_mb": m} for s, m in [(10.0, 5), (30.0, 7), (20.0, 6)]]
    assert bench.median_run(runs) == {"atom_steps_per_s": 20.0, "peak_mb": 7, "runs": 3}
    assert bench.median_run(runs[:2])["atom_steps_per_s"] == 10.0  # even: the lower middle
