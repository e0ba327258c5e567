"""Training to a wall-clock budget: a learning-rate schedule that ends where the time does.

``TimeBudget(seconds)`` is a Lightning callback. After every epoch (training and validation) it
plans how many epochs fit in the budget, ``done + floor(left / seconds per epoch)`` (the mean of the
epochs so far, so one slow first epoch does not dominate), at most ``trainer.max_epochs``; it hands
that plan to the PotentialModule, whose cosine schedule then spans exactly the planned steps, and
stops the run when the plan is reached. So a time-limited run ends at the bottom of its decay, not
in the middle (Lightning's ``max_time`` stops wherever it is, and a schedule over ``max_epochs``
never decays if the time ends first). The first epoch runs at the top of the schedule (warm-up, then
the full learning rate) unless, a tenth of the way through it, its training batches so far say that
the budget will not hold two epochs: then the plan is that one epoch, and it decays within it.

Under DDP the time is the first process's, so every process plans alike. The elapsed time and the
plan are saved in checkpoints, so a resumed run keeps its budget.
"""

from __future__ import annotations

import math
import re
import time
from typing import Optional, Union

import lightning as L


def parse_seconds(value: Union[str, float, int, None]) -> Optional[float]:
    """Seconds from a number or from "SS", "MM:SS", "HH:MM:SS" or "DD:HH:MM:SS" (Lightning's
    ``max_time`` format); None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        if not re.fullmatch(r"\d+(\.\d+)?(:\d+(\.\d+)?){0,3}", text):
            raise ValueError(f"time_budget {value!r}: give seconds or DD:HH:MM:SS")
        seconds = 0.0
        for part, unit in zip(reversed(text.split(":")), (1, 60, 3600, 86400)):
            seconds += float(part) * unit
    if not seconds > 0:
        raise ValueError(f"time_budget must be positive, got {value!r}")
    return seconds


class TimeBudget(L.Callback):
    """Plan the epochs that fit in ``seconds`` of training (and validation), set the learning-rate
    schedule over them, and stop at the plan's end."""

    def __init__(self, seconds: Union[str, float]):
        self.seconds = parse_seconds(seconds)
        self.elapsed = 0.0  # seconds of fitting before this process started (resumed runs)
        self.epochs_timed = 0
        self.planned_epochs: Optional[int] = None
        self._start: Optional[float] = None
        self._elapsed_at_start = 0.0

    def state_dict(self) -> dict:
        return {"elapsed": self.elapsed, "epochs_timed": self.epochs_timed, "planned_epochs": self.planned_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed = float(state["elapsed"])
        self.epochs_timed = int(state["epochs_timed"])
        self.planned_epochs = state["planned_epochs"]

    def on_train_start(self, trainer, module) -> None:
        self._start = time.perf_counter()
        self._elapsed_at_start = self.elapsed
        if self.planned_epochs is not None:
            self._apply(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        batches = trainer.num_training_batches
        if self.planned_epochs is not None or trainer.current_epoch > 0 or not math.isfinite(batches):
            return
        seen = batch_idx + 1
        if seen != max(1, math.ceil(batches / 10)):  # once, a tenth of the way through the first epoch
            return
        if 2 * self._elapsed(trainer) * batches / seen > self.seconds:
            self.planned_epochs = 1
            self._apply(trainer, module)

    def on_train_epoch_end(self, trainer, module) -> None:
        # Lightning runs this after the epoch's validation: the time per epoch includes it
        self.elapsed = self._elapsed(trainer)
        done = trainer.current_epoch + 1
        self.epochs_timed = done
        per_epoch = self.elapsed / done
        plan = done + max(0, math.floor((self.seconds - self.elapsed) / per_epoch))
        max_epochs = trainer.max_epochs
        if max_epochs is not None and max_epochs > 0:
            plan = min(plan, max_epochs)
        self.planned_epochs = plan
        self._apply(trainer, module)
        if done >= plan:
            trainer.should_stop = True

    def _elapsed(self, trainer) -> float:
        """Seconds of fitting so far by the first process's clock: under DDP every process then plans
        the same epochs (and stops together) with the same schedule."""
        return float(trainer.strategy.broadcast(self._elapsed_at_start + (time.perf_counter() - self._start), src=0))

    def _apply(self, trainer, module) -> None:
        steps_per_epoch = max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)) \
            if math.isfinite(trainer.num_training_batches) else 1
        if hasattr(module, "schedule_total_steps"):
            module.schedule_total_steps = self.planned_epochs * steps_per_epoch
