import csv
from pathlib import Path

import pytest

from mlip.train.budget import parse_seconds
from mlip.train.run import metric_logs
from tests.train.test_run import run


@pytest.mark.parametrize("text, seconds", [(90, 90.0), ("90", 90.0), ("01:30", 90.0), ("00:10:00", 600.0),
                                           ("00:00:11:00", 660.0), ("1:00:00:00", 86400.0)])
def test_budget_formats(text, seconds):
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "-5", 0, "1:2:3:4:5"])
def test_bad_budgets_are_refused(bad):
    with pytest.raises(ValueError, match="time_budget"):
        parse_seconds(bad)


class Clock:
    """perf_counter for mlip.train.budget: 10 s per reading (one at the start, one per epoch)."""

    def __init__(self):
        self.now = -10.0

    def perf_counter(self):
        self.now += 10.0
        return self.now


def test_the_schedule_ends_where_the_budget_does(tmp_path, data_dir, monkeypatch):
    """Epochs of 10 s in a 35 s budget: three epochs planned after the first, the cosine schedule
    spans those three (its last step at the bottom of the decay), and the run stops there even
    though max_epochs allows 50."""
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    monkeypatch.setattr("mlip.train.budget.time", Clock())
    summary = run(tmp_path, "time_budget=35", "trainer.max_epochs=50", "optim.lr=0.01", "optim.min_lr_ratio=0.01")
    assert summary["epochs"] == 3 and summary["planned_epochs"] == 3 and summary["time_budget_seconds"] == 35
    rows = [r for path in metric_logs(summary["run_dir"]) for r in csv.DictReader(open(path)) if r.get("lr")]
    lrs = [float(r["lr"]) for r in rows]
    assert max(lrs) == pytest.approx(0.01, rel=0.05)  # the top after the warm-up
    assert lrs[-1] < 0.01 * 0.03  # the last step sits at the bottom: 1% of the peak plus the last step's share
    assert Path(summary["last"]).exists()
