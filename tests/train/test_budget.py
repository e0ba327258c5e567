import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlip.train.budget import TimeBudget, parse_seconds
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
    """perf_counter for mlip.train.budget: the readings given (the start, then a tenth of the way
    through the first epoch), then 10 s more at each reading (one per epoch's end)."""

    def __init__(self, *readings: float):
        self.readings = list(readings)
        self.now = self.readings[-1]

    def perf_counter(self):
        if self.readings:
            return self.readings.pop(0)
        self.now += 10.0
        return self.now


def learning_rates(summary) -> list[float]:
    rows = [r for path in metric_logs(summary["run_dir"]) for r in csv.DictReader(open(path)) if r.get("lr")]
    return [float(r["lr"]) for r in rows]


def test_the_schedule_ends_where_the_budget_does(tmp_path, data_dir, monkeypatch):
    """Epochs of 10 s in a 35 s budget: three epochs planned after the first, the cosine schedule
    spans those three (its last step at the bottom of the decay), and the run stops there even
    though max_epochs allows 50."""
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    monkeypatch.setattr("mlip.train.budget.time", Clock(0.0, 1.0))
    summary = run(tmp_path, "time_budget=35", "trainer.max_epochs=50", "optim.lr=0.01", "optim.min_lr_ratio=0.01")
    assert summary["epochs"] == 3 and summary["planned_epochs"] == 3 and summary["time_budget_seconds"] == 35
    lrs = learning_rates(summary)
    assert max(lrs) == pytest.approx(0.01, rel=0.05)  # the top after the warm-up
    assert lrs[-1] < 0.01 * 0.03  # the last step sits at the bottom: 1% of the peak plus the last step's share
    assert Path(summary["last"]).exists()


def test_a_budget_short_of_two_epochs_decays_within_the_first(tmp_path, data_dir, monkeypatch):
    """A 15 s budget whose first epoch's first tenth says 10 s or more an epoch: one epoch is planned
    from there, and its learning rate ends at the bottom of the schedule, not at the top."""
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    monkeypatch.setattr("mlip.train.budget.time", Clock(0.0, 5.0))
    summary = run(tmp_path, "time_budget=15", "trainer.max_epochs=50", "optim.lr=0.01", "optim.min_lr_ratio=0.01")
    assert summary["epochs"] == 1 and summary["planned_epochs"] == 1
    lrs = learning_rates(summary)
    assert max(lrs) == pytest.approx(0.01, rel=0.05)
    assert lrs[-1] < 0.01 * 0.3


class FirstProcess:
    """A strategy whose broadcast hands every process the first process's value: here 10 s fitted."""

    @staticmethod
    def broadcast(obj, src=0):
        assert src == 0
        return 10.0


def test_every_process_plans_by_the_first_process_clock():
    """Under DDP each process has its own clock; the plan (and so the schedule and the stop) follows
    the first process's elapsed time, which the strategy broadcasts: 10 s an epoch in 35 s is three."""
    trainer = SimpleNamespace(strategy=FirstProcess(), current_epoch=0, max_epochs=50, num_training_batches=10,
                              accumulate_grad_batches=1, should_stop=False)
    module = SimpleNamespace(schedule_total_steps=None)
    budget = TimeBudget(35)
    budget.on_train_start(trainer, module)
    budget.on_train_epoch_end(trainer, module)  # this process's own clock says well under a second
    assert budget.planned_epochs == 3 and module.schedule_total_steps == 30 and not trainer.should_stop
