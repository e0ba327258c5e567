"""PotentialModule: the LightningModule that trains any mlip Potential on energies, forces, stress."""

from __future__ import annotations

import copy
import math
import random
from typing import Optional

import lightning as L
import numpy as np
import torch

from mlip.train.loss import PotentialLoss
from mlip.models.file import payload
from mlip.train.metrics import ErrorMetrics


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the batch's structures."""


class PotentialModule(L.LightningModule):
    """Training, validation and test steps for a Potential.

    Args:
        model: the Potential. loss: a PotentialLoss.
        lr, weight_decay, amsgrad: AdamW (amsgrad: its AMSGrad variant, MACE's default).
        warmup_steps: linear warm-up of the learning rate.
        scheduler: "cosine" (to ``min_lr_ratio`` * lr at the last step), "plateau" (reduce by
            ``plateau_factor`` after ``plateau_patience`` epochs without improvement of val/loss)
            or "constant".
        ema_decay: exponential moving average of the weights, used for validation, test and the
            exported model (None or 0: off); its decay warms up over the first steps (update_ema).

    The cosine schedule spans ``schedule_total_steps`` when set (mlip.train.budget.TimeBudget sets
    it to the steps that fit in a wall-clock budget), else the trainer's estimated steps
    (``max_epochs``); with neither finite the learning rate stays at its top after the warm-up.
    """

    def __init__(self, model, loss: Optional[PotentialLoss] = None, lr: float = 1e-3, weight_decay: float = 0.0,
                 warmup_steps: int = 0, scheduler: str = "cosine", min_lr_ratio: float = 0.01,
                 plateau_patience: int = 10, plateau_factor: float = 0.5, ema_decay: Optional[float] = 0.99,
                 amsgrad: bool = False):
        super().__init__()
        if scheduler not in ("cosine", "plateau", "constant"):
            raise ValueError(f"scheduler must be cosine, plateau or constant, got {scheduler!r}")
        self.model = model
        self.loss_fn = loss or PotentialLoss()
        self.lr, self.weight_decay, self.amsgrad = lr, weight_decay, amsgrad
        self.warmup_steps, self.scheduler_name = warmup_steps, scheduler
        self.min_lr_ratio = min_lr_ratio
        self.plateau_patience, self.plateau_factor = plateau_patience, plateau_factor
        self.ema_decay = ema_decay or 0.0
        self.schedule_total_steps: Optional[int] = None
        self.ema = None
        if self.ema_decay:
            self.ema = copy.deepcopy(model)
            for p in self.ema.parameters():
                p.requires_grad_(False)
        self.metrics = {"train": ErrorMetrics(), "val": ErrorMetrics(), "test": ErrorMetrics()}

    @property
    def evaluation_model(self):
        return self.ema if self.ema is not None else self.model

    @property
    def training_progress(self) -> Optional[float]:
        """The fraction of the planned optimizer steps done (the schedule's plan: the time budget's or the
        trainer's estimate); None when neither is finite."""
        if self.schedule_total_steps is not None:
            total = float(max(1, self.schedule_total_steps))
        elif self._trainer is not None:
            total = float(self.trainer.estimated_stepping_batches)
        else:
            return None
        if not math.isfinite(total) or total <= 0:
            return None
        return min(1.0, self.global_step / total)

    # -- steps ----------------------------------------------------------------------------
    def predict(self, model, batch, training: bool) -> dict:
        """``model``'s output on ``batch``, what the loss and the metrics read (stress where the loss
        weighs it in training, where the batch has it in evaluation)."""
        stress = self.loss_fn.weights["stress"] > 0 if training else "stress" in batch
        return model(batch, compute_stress=stress)

    def training_step(self, batch, batch_idx):
        out = self.predict(self.model, batch, training=True)
        losses = self.loss_fn(out, batch)
        # e.g. TransIP's learned-equivariance alignment (its weight may follow the progress of training)
        auxiliary = self.model.auxiliary_loss(batch, self.training_progress)
        if auxiliary is not None:
            losses["loss_auxiliary"] = auxiliary
            losses["loss"] = losses["loss"] + auxiliary
        if not bool(torch.isfinite(losses["loss"])):
            names = getattr(batch, "name", None)
            raise NonFiniteLossError(
                f"loss is {float(losses['loss'].detach())} at step {self.global_step} (epoch {self.current_epoch}); batch "
                f"structures (dataset indices) {batch.idx.tolist()}" + (f", names {list(names)[:10]}" if names else "")
                + "; the last good checkpoint is kept")
        self.metrics["train"].update(out, batch)
        size = int(batch.num_graphs)
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size)
        for key, value in losses.items():
            if key != "loss":
                self.log(f"train/{key}", value, batch_size=size)
        self.log("lr", self.optimizers().param_groups[0]["lr"], prog_bar=True, batch_size=size)
        return losses["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.update_ema(self.global_step)

    def update_ema(self, step: int) -> None:
        """Move the EMA weights towards the model's after optimizer step ``step`` (1, 2, ...), with the decay
        warmed up as torch_ema's (MACE's): min(ema_decay, (1 + step) / (10 + step)), so the first epochs'
        averages do not keep the random initial weights."""
        if self.ema is None:
            return
        with torch.no_grad():
            d = min(self.ema_decay, (1.0 + step) / (10.0 + step))
            ema, params = list(self.ema.parameters()), [p.detach() for p in self.model.parameters()]
            torch._foreach_mul_(ema, d)
            torch._foreach_add_(ema, params, alpha=1 - d)
            for e, b in zip(self.ema.buffers(), self.model.buffers()):
                e.copy_(b)

    def _evaluate(self, batch, stage: str):
        model = self.evaluation_model
        training = model.training
        model.eval()
        with torch.enable_grad():  # forces and stress are gradients
            out = self.predict(model, batch, training=False)
        model.train(training)
        losses = self.loss_fn(out, batch)
        self.metrics[stage].update(out, batch)
        self.log(f"{stage}/loss", losses["loss"], prog_bar=stage == "val", batch_size=int(batch.num_graphs),
                 sync_dist=True)
        return out

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")
        if batch_idx == 0:
            self._log_rotation_sensitivity(batch, "val")

    def on_train_start(self) -> None:
        """The untrained model's rotation sensitivity, so that the log shows where training started."""
        loader = self.trainer.val_dataloaders
        if self.trainer.global_step == 0 and loader and not self.evaluation_model.exactly_equivariant:
            self._log_rotation_sensitivity(next(iter(loader)).to(self.device), "start")

    def _log_rotation_sensitivity(self, batch, stage: str) -> None:
        """For a model that is not exactly equivariant: how its predictions change under rotations of
        the first validation batch (the same rotations every time; see mlip.testing.rotation_sensitivity)."""
        model = self.evaluation_model
        if model.exactly_equivariant:
            return
        from mlip.testing import rotation_sensitivity

        training = model.training
        model.eval()
        with torch.enable_grad():
            errors = rotation_sensitivity(model, batch, rotations=2, seed=0)
        model.train(training)
        self.log(f"{stage}/rotation_forces", errors["forces"], sync_dist=True, batch_size=int(batch.num_graphs))
        self.log(f"{stage}/rotation_energy_per_atom", errors["energy_per_atom"], sync_dist=True,
                 batch_size=int(batch.num_graphs))

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def _log_metrics(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        for key, value in values.items():
            self.log(f"{stage}/{key}", value, prog_bar=stage == "val" and key == "forces_mae", sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay,
                                      amsgrad=self.amsgrad)
        warmup = max(0, int(self.warmup_steps))
        if self.scheduler_name == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=self.plateau_factor,
                                                                 patience=self.plateau_patience)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": plateau, "monitor": "val/loss", "interval": "epoch"}}
        estimated = float(max(1, self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1.0

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if self.scheduler_name == "constant":
                return 1.0
            # read at every step: a time budget (mlip.train.budget) may re-plan it after each epoch
            total = float(max(1, self.schedule_total_steps)) if self.schedule_total_steps is not None else estimated
            if not math.isfinite(total):
                return 1.0
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mlip"] = payload(self.evaluation_model)  # the model file, as mlip.load reads it
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain tensors and Python types only, so that torch.load(weights_only=True) reads them
        checkpoint["rng"] = {"torch": torch.get_rng_state(),
                             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
                             "python": random.getstate()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        rng = checkpoint.get("rng")
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            kind, keys, pos, has_gauss, gauss = rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
            random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in rng["python"]))
