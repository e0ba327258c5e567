"""`mlip train` and `mlip eval`: Hydra configs in, checkpoints, logs, metrics and plots out."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mlip import resources
from mlip.data.statistics import format_pair_distances
from mlip.train.metrics import ErrorMetrics




def _add_or_override(override: str) -> str:
    """``a.b=c`` -> ``++a.b=c`` so any argument of a target (model.channels, trainer.max_steps) can be
    set whether or not its YAML file lists it; group choices (``data=rmd17``) are left alone."""
    key = override.split("=", 1)[0]
    if "=" in override and "." in key and not key.startswith(("+", "~")):
        return "++" + override
    return override


def compose(overrides: list[str]):
    """The config for ``overrides`` (``key=value``, ``group=option``), as `mlip train` sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    config_dir = resources.config_dir()
    if not config_dir.is_dir():
        raise FileNotFoundError(f"no config folder at {config_dir}; set MLIP_CONFIG_DIR")
    if not OmegaConf.has_resolver("mlip_data"):  # the bundled samples, wherever mlip is installed
        OmegaConf.register_new_resolver("mlip_data", lambda: str(resources.data_dir()))
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return hydra_compose("config", overrides=[_add_or_override(o) for o in overrides])


def new_run_dir(root: str, name: str) -> Path:
    """runs/<name>/<timestamp>, never an existing directory; runs/<name>/latest points at it."""
    base = Path(root) / name / time.strftime("%Y%m%d-%H%M%S")
    path, k = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            break
        except FileExistsError:
            k += 1
            path = Path(f"{base}-{k}")
    point_latest(path)
    return path


def point_latest(path: Path) -> None:
    """Make the link ``latest`` beside the run directory ``path`` point at it (replaced atomically), so
    that ``runs/<name>/latest/checkpoints/best.ckpt`` is the newest run's model."""
    link = path.parent / "latest"
    tmp = path.parent / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(path.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # a file system without symbolic links: the timestamped directory is still there
        if tmp.is_symlink():
            tmp.unlink()


def shared_run_dir(root: str, name: str) -> Path:
    """The run directory, the same for every DDP process: the launching process makes a new one and
    passes it to the processes Lightning starts (MLIP_RUN_DIR); under SLURM, where srun starts all
    ranks at once, it is named after the job."""
    if int(os.environ.get("LOCAL_RANK", "0")) > 0 and os.environ.get("MLIP_RUN_DIR"):
        return Path(os.environ["MLIP_RUN_DIR"])
    if "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        path = Path(root) / name / f"slurm-{os.environ['SLURM_JOB_ID']}"
        path.mkdir(parents=True, exist_ok=True)
        if int(os.environ.get("SLURM_PROCID", "0")) == 0:
            point_latest(path)
        return path
    path = new_run_dir(root, name)
    os.environ["MLIP_RUN_DIR"] = str(path)
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def apply_statistics(model, stats: dict, cfg) -> dict:
    """Reference energies (linear regression), scale (force RMS or a number), shift (a number,
    eV/atom; 0 by default since the reference energies take the mean), the average neighbour count
    and the shortest distance of each element pair (which places the repulsion prior), all from the
    training split."""
    refs = stats["reference_energies"] if cfg.get("reference_energies", True) else {}
    scale = cfg.get("scale", "force_rms")
    scale = float(stats["force_rms"] or 1.0) if scale == "force_rms" else float(scale)
    shift = float(cfg.get("shift", 0.0))
    pairs = stats.get("pair_min_distance") or []
    model.set_statistics(refs, scale=scale, shift=shift, avg_num_neighbors=stats["avg_num_neighbors"],
                         pair_min_distance=pairs)
    if model.repulsion is not None and pairs:
        print(f"shortest distance of each element pair in the training split (Å); below it the ZBL prior "
              f"switches on, and below {float(model.repulsion.freeze):g} of it the learned part no longer sees the "
              f"pair come closer:\n  {format_pair_distances(pairs)}")
    return {"reference_energies": refs, "scale": scale, "shift": shift,
            "avg_num_neighbors": stats["avg_num_neighbors"], "pair_min_distance": pairs}



def graph_loader(dataset, cutoff: float, batch_size: int, max_neighbors=None):
    """Batches of ``dataset`` in order, with their graphs (for evaluation)."""
    from functools import partial

    from torch.utils.data import DataLoader

    from mlip.graph import collate

    return DataLoader(dataset, batch_size=batch_size,
                      collate_fn=partial(collate, cutoff=cutoff, max_neighbors=max_neighbors))


def predictions(model, dataset, cutoff: float, batch_size: int = 16, max_neighbors=None) -> tuple[dict, dict]:
    """Model predictions and references over ``dataset`` as flat numpy arrays; for a model with an
    uncertainty also forces_std (N,), energy_std (B,) and structure (N,), the structure of each atom."""
    model.eval()
    pred = {"energy": [], "energy_per_atom": [], "forces": [], "stress": []}
    ref = {k: [] for k in pred}
    graphs_seen = 0
    for batch in graph_loader(dataset, cutoff, batch_size, max_neighbors):
        out = model(batch)
        n = batch.natoms.double()
        pred["energy"].append(out["energy"].detach().double())
        pred["energy_per_atom"].append(out["energy"].detach().double() / n)
        pred["forces"].append(out["forces"].detach().double().reshape(-1))
        if "forces_std" in out:  # a model with an uncertainty (mlip.uncertainty)
            pred.setdefault("forces_std", []).append(out["forces_std"].detach().double())
            pred.setdefault("energy_std", []).append(out["energy_std"].detach().double())
            pred.setdefault("structure", []).append(batch.batch + graphs_seen)
        graphs_seen += int(batch.num_graphs)
        ref["energy"].append(batch.energy.double() if "energy" in batch else torch.full_like(n, float("nan")))
        ref["energy_per_atom"].append(ref["energy"][-1] / n)
        ref["forces"].append(batch.forces.double().reshape(-1) if "forces" in batch
                             else torch.full_like(pred["forces"][-1], float("nan")))
        if "stress" in batch and bool(batch.pbc.all()):
            pred["stress"].append(out["stress"].detach().double().reshape(-1))
            ref["stress"].append(batch.stress.double().reshape(-1))
    cat = {k: torch.cat(v).numpy() if v else np.zeros(0) for k, v in pred.items()}
    cat_ref = {k: torch.cat(v).numpy() if v else np.zeros(0) for k, v in ref.items()}
    return cat, cat_ref


def rotation_report(model, dataset, cutoff: float, batch_size: int = 16, max_neighbors=None,
                    max_batches: int = 4) -> dict:
    """mlip.testing.rotation_sensitivity averaged over the first ``max_batches`` batches: the mean
    relative change of forces and the change of energy (eV/atom) under random rotations."""
    from mlip.testing import rotation_sensitivity

    totals, count = {"forces": 0.0, "energy_per_atom": 0.0}, 0
    for i, batch in enumerate(graph_loader(dataset, cutoff, batch_size, max_neighbors)):
        if i == max_batches:
            break
        for key, value in rotation_sensitivity(model.eval(), batch, rotations=2, seed=i).items():
            totals[key] += value
        count += 1
    return {key: value / max(count, 1) for key, value in totals.items()}


def error_table(pred: dict, ref: dict) -> dict:
    """MAE and RMSE of every quantity in ``pred`` against ``ref`` (arrays), by ErrorMetrics."""
    metrics = ErrorMetrics()
    for key in ref:
        metrics.add(key, pred[key], ref[key])
    return metrics.compute()


def format_table(metrics: dict, title: str) -> str:
    units = {"energy": ("meV", 1000), "energy_per_atom": ("meV/atom", 1000), "forces": ("meV/Å", 1000),
             "stress": ("meV/Å³", 1000), "displacement": ("mÅ", 1000), "velocities": ("mÅ/fs", 1000)}
    lines = [title, f"{'quantity':<18}{'MAE':>12}{'RMSE':>12}  unit"]
    for key, (unit, factor) in units.items():
        if f"{key}_mae" in metrics:
            lines.append(f"{key:<18}{metrics[f'{key}_mae'] * factor:>12.3f}{metrics[f'{key}_rmse'] * factor:>12.3f}  {unit}")
    return "\n".join(lines)


def uncertainty_summary(pred: dict, ref: dict, out_png: Optional[str] = None, title: str = "") -> dict:
    """mlip.uncertainty.uncertainty_report of predictions with an uncertainty (and its plot)."""
    from mlip.train.plots import calibration
    from mlip.uncertainty import uncertainty_report

    force_error = np.linalg.norm((pred["forces"] - ref["forces"]).reshape(-1, 3), axis=1)
    report = uncertainty_report(pred["forces_std"], force_error, pred["structure"], pred["energy_std"],
                                pred["energy"] - ref["energy"])
    if out_png:
        report["plot"] = calibration(report, pred["forces_std"], force_error, out_png, title)
    return report


def format_uncertainty(report: dict) -> str:
    return (f"force uncertainty against actual error: Spearman {report['spearman_atoms']:.3f} per atom, "
            f"{report['spearman_structures']:.3f} per structure; RMS predicted "
            f"{1000 * report['forces_std_rms']:.2f} meV/Å, actual {1000 * report['force_error_rms']:.2f} meV/Å")


def metric_logs(run_dir) -> list[str]:
    """The run's CSV metric logs in order: the first run's, then each resume's."""
    logs = Path(run_dir) / "logs"
    first = [logs / "metrics.csv"] if (logs / "metrics.csv").exists() else []
    resumes = sorted(logs.glob("resume-*/metrics.csv"), key=lambda p: int(p.parent.name.split("-")[1]))
    return [str(p) for p in first + resumes]


def train(cfg, run_dir: Optional[Path] = None) -> dict:
    """Train from a composed config; returns a summary (paths and test metrics). ``cfg.ensemble`` > 1
    trains a committee (:func:`train_committee`); ``run_dir``: this directory instead of a new one."""
    if int(cfg.get("ensemble", 1) or 1) > 1:
        return train_committee(cfg)
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from omegaconf import OmegaConf

    from mlip.train.budget import TimeBudget
    from mlip.train.checkpoint import AtomicCheckpointIO
    from mlip.models.forecaster import Forecaster
    from mlip.train.forecast import ForecastModule, apply_forecast_statistics, forecast_predictions
    from mlip.train.module import PotentialModule
    from mlip.train.plots import learning_curve, parity
    from mlip.train.progress import progress_callback

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    log_version = ""
    if cfg.get("resume"):
        run_dir = Path(cfg.resume).resolve().parent.parent  # <run>/checkpoints/last.ckpt
        log_version = f"resume-{len(list((run_dir / 'logs').glob('resume-*'))) + 1}"  # earlier logs stay
        config_name = f"config.{log_version}.yaml"
    else:
        if run_dir is None:
            run_dir = shared_run_dir(cfg.run_dir, cfg.name)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        config_name = "config.yaml"
    _write_atomic(run_dir / config_name, OmegaConf.to_yaml(cfg, resolve=True))
    model = instantiate(cfg.model)
    forecasting = isinstance(model, Forecaster)  # force-free MD: trained on trajectories (experiment=forecast)
    datamodule = instantiate(cfg.data)
    datamodule.cutoff, datamodule.max_neighbors = model.cutoff, model.max_neighbors
    loss = instantiate(cfg.loss)
    datamodule.check(loss.required_targets())
    # no prior to take out: the repulsion prior's windows are placed below each element pair's shortest
    # distance in these very frames (set_statistics), so it is zero on every one of them
    stats = datamodule.compute_statistics(model.cutoff)
    if forecasting:
        applied = apply_forecast_statistics(model, loss, stats)
    else:
        applied = apply_statistics(model, stats, cfg.statistics)
    _write_atomic(run_dir / "statistics.json", json.dumps({"training_split": stats, "applied": applied,
                                                           "batch_size": datamodule.batch_size},
                                                          indent=1, default=str))
    if cfg.trainer.get("precision") in ("64", "64-true", 64):
        model = model.double()
    module = (ForecastModule if forecasting else PotentialModule)(model, loss=loss, **cfg.optim)
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=cfg.checkpoint.monitor,
                                  mode="min", save_top_k=1, save_last=True,
                                  every_n_train_steps=cfg.checkpoint.get("every_n_train_steps"))
    bars = [progress_callback()] if cfg.trainer.get("enable_progress_bar", True) else []
    budget = [TimeBudget(cfg.time_budget)] if cfg.get("time_budget") is not None else []
    trainer = L.Trainer(**cfg.trainer, default_root_dir=str(run_dir), callbacks=[*budget, checkpoints, *bars],
                        logger=[CSVLogger(str(run_dir), name="logs", version=log_version),
                                TensorBoardLogger(str(run_dir), name="tensorboard", version=log_version)],
                        plugins=[AtomicCheckpointIO()],
                        use_distributed_sampler=False)  # EpochShuffleSampler splits the data itself
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("resume"))
    summary = {"run_dir": str(run_dir), "best": checkpoints.best_model_path, "last": checkpoints.last_model_path,
               "fit_seconds": time.perf_counter() - start, "epochs": trainer.current_epoch,
               "train_structures": len(datamodule.splits["train"]), "batch_size": datamodule.batch_size}
    if budget:
        summary.update(time_budget_seconds=budget[0].seconds, planned_epochs=budget[0].planned_epochs)
    if trainer.is_global_zero:
        logs = metric_logs(run_dir)
        if logs:
            summary["learning_curve"] = learning_curve(logs, str(run_dir / "learning_curve.png"))
        split = "test" if "test" in datamodule.splits else "val"
        if (cfg.get("last_layer_uncertainty", False) and not forecasting and "val" in datamodule.splits
                and checkpoints.best_model_path):
            summary["last_layer_uncertainty"] = store_last_layer_uncertainty(
                checkpoints.best_model_path, datamodule, model.cutoff, model.max_neighbors)
        if split in datamodule.splits:
            from mlip.loading import load

            best = load(checkpoints.best_model_path or checkpoints.last_model_path)
            pred, ref = (forecast_predictions if forecasting else predictions)(
                best, datamodule.splits[split], model.cutoff, datamodule.val_batch_size, model.max_neighbors)
            summary[f"{split}_metrics"] = error_table(pred, ref)
            summary["parity"] = parity(pred, ref, str(run_dir / f"parity_{split}.png"), title=f"{cfg.name}: {split} split")
            if "forces_std" in pred:
                summary[f"{split}_uncertainty"] = uncertainty_summary(
                    pred, ref, str(run_dir / f"uncertainty_{split}.png"), title=f"{cfg.name}: last layer, {split} split")
            print(format_table(summary[f"{split}_metrics"], f"\n{split} split ({len(datamodule.splits[split])} "
                                                             f"structures), best checkpoint:"))
            if f"{split}_uncertainty" in summary:
                print("last-layer " + format_uncertainty(summary[f"{split}_uncertainty"]))
        _write_atomic(run_dir / "summary.json", json.dumps(summary, indent=1))
        print(f"run directory: {run_dir}")
    return summary


def store_last_layer_uncertainty(checkpoint: str, datamodule, cutoff: float, max_neighbors=None,
                                 max_structures: int = 5000) -> dict:
    """Fit the checkpoint's LLPR uncertainty on (at most ``max_structures`` of) the training split,
    calibrate it on the validation split, and write it into the checkpoint (atomically)."""
    from mlip.loading import load
    from mlip.models.file import payload
    from mlip.uncertainty import attach_last_layer

    model = load(checkpoint)
    train_split = datamodule.splits["train"]
    if len(train_split) > max_structures:
        from torch.utils.data import Subset

        train_split = Subset(train_split, np.linspace(0, len(train_split) - 1, max_structures).astype(int).tolist())
    batch_size = datamodule.val_batch_size
    attach_last_layer(model, graph_loader(train_split, cutoff, batch_size, max_neighbors),
                      graph_loader(datamodule.splits["val"], cutoff, batch_size, max_neighbors))
    content = torch.load(checkpoint, map_location="cpu", weights_only=False)
    content["mlip"] = payload(model)
    tmp = f"{checkpoint}.tmp-{os.getpid()}"
    torch.save(content, tmp)
    os.replace(tmp, checkpoint)
    return {"alpha_forces": float(model.uncertainty.alpha_forces), "alpha_energy": float(model.uncertainty.alpha_energy),
            "structures": len(train_split)}


def train_committee(cfg) -> dict:
    """K members (seeds seed, seed+1, ...) trained one after another into member-k/ of one run
    directory, then committee.pt: their Committee with its spread calibrated on the validation split
    (one factor: predicted and actual per-atom force errors agree in RMS), tested on the test split
    with the uncertainty's rank correlation and a calibration plot.

    ``ensemble_bootstrap``: each member trains on its own bootstrap resample of the training split
    (``data.bootstrap_seed`` = its seed). ``resume=<committee run directory>`` continues an
    interrupted committee: finished members (member-k/summary.json) are kept, a member with
    checkpoints/last.ckpt continues from it, the rest are trained."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    from mlip.loading import load
    from mlip.uncertainty import Committee, calibration_factor

    k_members = int(cfg.ensemble)
    if cfg.get("resume"):
        run_dir = Path(cfg.resume).resolve()
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "member-0").is_dir():
            raise ValueError(f"resume={cfg.resume}: with ensemble={k_members}, resume takes the committee's run "
                             "directory (the one holding config.yaml and member-0/, member-1/, ...)")
    else:
        run_dir = shared_run_dir(cfg.run_dir, cfg.name)
        _write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    members = []
    for k in range(k_members):
        seed = int(cfg.seed) + k
        member_cfg = OmegaConf.merge(cfg, {"ensemble": 1, "seed": seed, "last_layer_uncertainty": False,
                                           "resume": None})
        if cfg.get("ensemble_bootstrap", False):
            with open_dict(member_cfg):
                member_cfg.data.bootstrap_seed = seed
        member_dir = run_dir / f"member-{k}"
        done, last = member_dir / "summary.json", member_dir / "checkpoints" / "last.ckpt"
        if done.is_file():
            print(f"\ncommittee member {k + 1}/{k_members}: finished earlier ({done})")
            members.append(json.loads(done.read_text()))
            continue
        if last.is_file():
            print(f"\ncommittee member {k + 1}/{k_members} (seed {seed}): continuing from {last}")
            member_cfg.resume = str(last)
            members.append(train(member_cfg))
            continue
        print(f"\ncommittee member {k + 1}/{k_members} (seed {seed}"
              + (", bootstrap resample of the training split)" if cfg.get("ensemble_bootstrap", False) else ")"))
        members.append(train(member_cfg, run_dir=member_dir))
    committee = Committee([load(m["best"] or m["last"]) for m in members])
    datamodule = instantiate(cfg.data)
    splits = datamodule.build_splits()
    batch_size = datamodule.val_batch_size
    summary = {"run_dir": str(run_dir), "members": [m["run_dir"] for m in members]}
    if "val" in splits:
        pred, ref = predictions(committee, splits["val"], committee.cutoff, batch_size, committee.max_neighbors)
        error = np.linalg.norm((pred["forces"] - ref["forces"]).reshape(-1, 3), axis=1)
        committee.calibration.fill_(calibration_factor(pred["forces_std"], error))
    summary["calibration"] = float(committee.calibration)
    committee.save(run_dir / "committee.pt")
    summary["committee"] = str(run_dir / "committee.pt")
    split = "test" if "test" in splits else "val"
    if split in splits:
        pred, ref = predictions(committee, splits[split], committee.cutoff, batch_size, committee.max_neighbors)
        summary[f"{split}_metrics"] = error_table(pred, ref)
        report = uncertainty_summary(pred, ref, str(run_dir / f"uncertainty_{split}.png"),
                                     title=f"{cfg.name}: committee of {k_members}, {split} split")
        summary[f"{split}_uncertainty"] = report
        print(format_table(summary[f"{split}_metrics"], f"\ncommittee of {k_members} on the {split} split "
                                                         f"({len(splits[split])} structures):"))
        print(format_uncertainty(report))
    _write_atomic(run_dir / "summary.json", json.dumps(summary, indent=1))
    print(f"committee: {run_dir / 'committee.pt'} (calibration factor {summary['calibration']:.3f})")
    return summary


def evaluate(checkpoint: str, cfg, out: Optional[str] = None, split: str = "test") -> dict:
    """Metrics of a checkpoint or model file on a split of ``cfg.data``; writes a parity plot."""
    from hydra.utils import instantiate

    from mlip.loading import load
    from mlip.train.plots import parity

    model = load(checkpoint)
    datamodule = instantiate(cfg.data)
    splits = datamodule.build_splits()
    if split not in splits:
        split = "test" if "test" in splits else ("val" if "val" in splits else "train")
    pred, ref = predictions(model, splits[split], model.cutoff, datamodule.val_batch_size, model.max_neighbors)
    metrics = error_table(pred, ref)
    rotation = rotation_report(model, splits[split], model.cutoff, datamodule.val_batch_size, model.max_neighbors)
    out = out or str(Path(checkpoint).with_name(f"parity_{split}_{Path(checkpoint).stem}.png"))
    parity(pred, ref, out, title=f"{Path(checkpoint).name}: {split} split")
    print(format_table(metrics, f"{checkpoint} on the {split} split ({len(splits[split])} structures):"))
    print(f"under random rotations: forces change by {rotation['forces']:.2e} (relative), energy by "
          f"{1000 * rotation['energy_per_atom']:.2e} meV/atom"
          + ("" if not model.exactly_equivariant else " (an exactly equivariant model: rounding only)"))
    print(f"parity plot: {out}")
    result = {"metrics": metrics, "rotation": rotation, "parity": out, "split": split}
    if "forces_std" in pred:
        plot = str(Path(out).with_name(f"uncertainty_{split}_{Path(checkpoint).stem}.png"))
        result["uncertainty"] = uncertainty_summary(pred, ref, plot, title=f"{Path(checkpoint).name}: {split} split")
        print(format_uncertainty(result["uncertainty"]))
        print(f"calibration plot: {plot}")
    return result
