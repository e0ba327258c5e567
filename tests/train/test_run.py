"""End-to-end training runs on the bundled rMD17 ethanol, kept tiny."""

import csv
import os
import re
import subprocess
import sys
import json
from pathlib import Path

import numpy as np
import pytest

import mlip
from mlip.cli import main
from mlip.data import DataError
from mlip.models import registered
from mlip.train.module import NonFiniteLossError, PotentialModule
from mlip.train.run import compose, metric_logs, train

TINY = ["experiment=quickstart", "data.train_size=24", "model.radial_heads=2", "data.val_fraction=0.01", "data.batch_size=4",
        "data.batch_atoms=null",
        "data.test=null", "model.channels=8", "model.hidden=16", "model.num_layers=1",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "optim.warmup_steps=2"]


def run(tmp_path, *extra):
    return train(compose(TINY + [f"run_dir={tmp_path}", *extra]))


def losses(run_dir):
    rows = [r for path in metric_logs(run_dir) for r in csv.DictReader(open(path))]
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


def test_training_writes_everything(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    summary = run(tmp_path, "trainer.max_epochs=2")
    run_dir = Path(summary["run_dir"])
    for name in ("config.yaml", "statistics.json", "summary.json", "learning_curve.png", "parity_val.png",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    config = (run_dir / "config.yaml").read_text()
    assert "train_size: 24" in config and "_target_: mlip.models.build" in config
    stats = json.loads((run_dir / "statistics.json").read_text())
    assert stats["training_split"]["n_structures"] == 24  # statistics from the training split only
    # the checkpoint alone rebuilds the model: hyperparameters, statistics, EMA weights
    model = mlip.load(run_dir / "checkpoints" / "best.ckpt")
    assert model.hyperparameters["channels"] == 8
    assert model.hyperparameters["avg_num_neighbors"] == pytest.approx(stats["applied"]["avg_num_neighbors"])
    assert float(model.reference_energies[6]) == pytest.approx(float(stats["applied"]["reference_energies"]["6"]))
    assert len(losses(run_dir)) >= 2 and all(np.isfinite(losses(run_dir)))
    # a second run never overwrites the first
    second = run(tmp_path, "trainer.max_epochs=1")
    assert second["run_dir"] != summary["run_dir"] and (run_dir / "checkpoints" / "best.ckpt").exists()
    # runs/<name>/latest is the newest run
    assert (run_dir.parent / "latest").resolve() == Path(second["run_dir"]).resolve()


def test_eval_prints_table_and_writes_parity(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    summary = run(tmp_path, "trainer.max_epochs=1")
    out = tmp_path / "parity.png"
    assert main(["eval", summary["best"], "data=rmd17", "data.test=" + str(data_dir / "rmd17" / "rmd17_ethanol_test_01.npz"),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "forces" in text and "meV/Å" in text and "1000 structures" in text
    assert out.exists() and out.stat().st_size > 10_000
    # the rotation report of every potential: Facet is exactly equivariant, so only rounding shows
    change = float(re.search(r"forces change by ([0-9.e+-]+) \(relative\)", text).group(1))
    assert change < 1e-5 and "exactly equivariant" in text


def losses_by_step(run_dir):
    """step -> train loss over a run and its resumes; a resume's values replace the killed run's."""
    out = {}
    for path in metric_logs(run_dir):
        for r in csv.DictReader(open(path)):
            if r.get("train/loss"):
                out[int(r["step"])] = float(r["train/loss"])
    return [out[k] for k in sorted(out)]


def test_resume_after_a_kill_gives_the_same_loss_curve(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    full = run(tmp_path / "full", "trainer.max_epochs=4")

    def killed(self):
        if self.current_epoch == 2:
            raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(PotentialModule, "on_train_epoch_start", killed, raising=False)
        with pytest.raises(RuntimeError, match="killed"):
            run(tmp_path / "part", "trainer.max_epochs=4")
    run_dir = (tmp_path / "part" / "quickstart" / "latest").resolve()
    resumed = run(tmp_path / "part", "trainer.max_epochs=4", f"resume={run_dir / 'checkpoints' / 'last.ckpt'}")
    assert Path(resumed["run_dir"]) == run_dir
    full_curve = losses_by_step(full["run_dir"])
    assert len(full_curve) == 24
    np.testing.assert_allclose(losses_by_step(run_dir), full_curve, rtol=1e-6)


def test_missing_target_is_named_at_start_up(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    with pytest.raises(DataError, match=r"rmd17_ethanol_train_01.npz.*key 'stress'.*stress_weight=0"):
        run(tmp_path, "trainer.max_epochs=1", "loss.stress_weight=1.0")


def test_nan_loss_names_the_structures(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    with pytest.raises(NonFiniteLossError, match=r"structures \(dataset indices\) \[\d+, \d+, \d+, \d+\]"):
        run(tmp_path, "trainer.max_epochs=1", "optim.lr=1e30", "trainer.gradient_clip_val=null")


def test_ddp_two_processes_follow_one_process_with_the_doubled_batch(tmp_path, data_dir):
    """Lightning DDP over 2 CPU processes (gloo), batch 2 each, against 1 process with batch 4; in
    float64, so that the all-reduce's other summation order stays far below the tolerance (in float32
    it reached 1.2e-4 of the validation loss after 3 epochs at the quickstart's learning rate)."""
    env = dict(os.environ, MLIP_DATA=str(data_dir), PYTHONWARNINGS="ignore")
    # a time budget far beyond the 3 epochs: every process plans by the first one's clock (broadcast)
    common = [sys.executable, "-m", "mlip", "train", *TINY, "trainer.max_epochs=3", "trainer.precision=64",
              "time_budget=100000"]
    runs = {}
    for label, extra in (("single", ["data.batch_size=4"]),
                         ("ddp", ["data.batch_size=2", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                  "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"])):
        out = subprocess.run(common + extra + [f"run_dir={tmp_path / label}"], env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        run_dir = (tmp_path / label / "quickstart" / "latest").resolve()
        rows = [r for path in metric_logs(run_dir) for r in csv.DictReader(open(path))]
        runs[label] = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(runs["single"]) == len(runs["ddp"]) == 3
    np.testing.assert_allclose(runs["ddp"], runs["single"], rtol=1e-8)


@pytest.mark.parametrize("name", [n for n in registered() if n != "facet"])
def test_every_model_trains_with_the_quickstart_experiment(tmp_path, data_dir, monkeypatch, name):
    """`mlip train model=NAME experiment=quickstart` (its quickstart preset), shortened."""
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    overrides = ["experiment=quickstart", f"model={name}", "data.train_size=16", "data.val_fraction=0.01",
                 "data.test=null", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                 "trainer.log_every_n_steps=1", f"run_dir={tmp_path}"]
    summary = train(compose(overrides))
    model = mlip.load(summary["best"])
    assert model.name == name and len(losses(summary["run_dir"])) >= 2
    assert all(np.isfinite(losses(summary["run_dir"])))


def test_a_piped_training_log_has_a_line_per_epoch(tmp_path, data_dir):
    """stdout not a terminal: one progress line per epoch (the quickstart's 35 epochs: about 35 lines,
    under 200), not Lightning's bar redrawn after every batch."""
    env = dict(os.environ, MLIP_DATA=str(data_dir), PYTHONWARNINGS="ignore")
    overrides = [o for o in TINY if not o.startswith("trainer.enable_progress_bar")]
    epochs = 4
    out = subprocess.run([sys.executable, "-m", "mlip", "train", *overrides, "data.batch_size=2",
                          f"trainer.max_epochs={epochs}", f"run_dir={tmp_path}"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    pieces = [p for p in re.split(r"[\r\n]", text) if p.strip()]
    bar_redraws = [p for p in pieces if re.search(r"\d+/\d+ \[|it/s|s/it", p)]
    epoch_lines = [p for p in pieces if re.match(r"epoch \d+/\d+ ", p)]
    assert len(epoch_lines) == epochs, text[-3000:]
    assert "ETA" in epoch_lines[0] and "train/loss" in epoch_lines[-1]
    assert len(bar_redraws) <= 2, bar_redraws[:5]  # 12 batches an epoch would give dozens


def test_ensemble_trains_a_calibrated_committee(tmp_path, data_dir, monkeypatch):
    """ensemble=2: two members (seeds 0 and 1) in one run directory, committee.pt calibrated on the
    validation split, tested with its uncertainty report and calibration plot; mlip.load reads it."""
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    overrides = [o for o in TINY if o != "data.test=null"] + ["trainer.max_epochs=1", "ensemble=2",
                                                            "data.val_fraction=0.25"]
    summary = train(compose(overrides + [f"run_dir={tmp_path}"]))
    run_dir = Path(summary["run_dir"])
    for name in ("member-0/checkpoints/best.ckpt", "member-1/checkpoints/best.ckpt", "committee.pt",
                 "uncertainty_test.png", "summary.json"):
        assert (run_dir / name).exists(), name
    seeds = [json.loads((run_dir / f"member-{k}" / "summary.json").read_text()) for k in range(2)]
    assert seeds[0]["test_metrics"]["forces_mae"] != seeds[1]["test_metrics"]["forces_mae"]
    assert summary["calibration"] > 0 and np.isfinite(summary["test_uncertainty"]["spearman_atoms"])
    committee = mlip.load(run_dir / "committee.pt")
    assert float(committee.calibration) == pytest.approx(summary["calibration"])
    from mlip.train.run import evaluate

    result = evaluate(str(run_dir / "committee.pt"), compose(overrides))
    assert Path(result["uncertainty"]["plot"]).exists()
    assert result["uncertainty"]["spearman_atoms"] == pytest.approx(summary["test_uncertainty"]["spearman_atoms"])


def test_an_interrupted_bootstrap_committee_resumes(tmp_path, data_dir, monkeypatch):
    """resume=<committee run directory>: a finished member is kept as it is, a member with only
    last.ckpt continues from it, and committee.pt is written again; members see bootstrap data."""
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    overrides = TINY + ["trainer.max_epochs=1", "ensemble=2", "ensemble_bootstrap=true", "data.val_fraction=0.25",
                        "last_layer_uncertainty=false"]
    summary = train(compose(overrides + [f"run_dir={tmp_path}"]))
    run_dir = Path(summary["run_dir"])
    for k in range(2):
        config = (run_dir / f"member-{k}" / "config.yaml").read_text()
        assert f"bootstrap_seed: {k}" in config
    kept = (run_dir / "member-0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    (run_dir / "member-1" / "summary.json").unlink()  # member 1 was interrupted after its last checkpoint
    (run_dir / "committee.pt").unlink()
    again = train(compose(overrides + [f"resume={run_dir}", "trainer.max_epochs=2"]))
    assert (run_dir / "member-0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns == kept
    assert (run_dir / "member-1" / "logs" / "resume-1" / "metrics.csv").is_file()
    assert json.loads((run_dir / "member-1" / "summary.json").read_text())["epochs"] == 2
    assert (run_dir / "committee.pt").is_file() and again["run_dir"] == str(run_dir)
    with pytest.raises(ValueError, match="committee's run directory"):
        train(compose(overrides + [f"resume={run_dir / 'member-0'}"]))


def test_best_checkpoint_carries_a_calibrated_last_layer_uncertainty(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    overrides = [o for o in TINY if o != "data.test=null"] + ["trainer.max_epochs=1", "data.val_fraction=0.25"]
    summary = train(compose(overrides + [f"run_dir={tmp_path}"]))
    model = mlip.load(summary["best"])
    assert model.provides_uncertainty
    assert float(model.uncertainty.alpha_forces) == pytest.approx(summary["last_layer_uncertainty"]["alpha_forces"])
    assert np.isfinite(summary["test_uncertainty"]["spearman_structures"])
    assert (Path(summary["run_dir"]) / "uncertainty_test.png").exists()
    without = train(compose(overrides + [f"run_dir={tmp_path / 'no'}", "last_layer_uncertainty=false"]))
    assert not mlip.load(without["best"]).provides_uncertainty and "test_uncertainty" not in without
