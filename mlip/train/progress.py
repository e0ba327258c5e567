"""The training progress display: Lightning's live bar on a terminal; elsewhere (a log, a pipe, a
batch job) one line per epoch with its metrics, elapsed time and ETA, and none in between."""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from mlip.progress import is_terminal


class EpochLines(ProgressBar):
    """One line per finished epoch on stdout: ``epoch 3/35  train/loss 0.12  val/... 12 s, ETA 1 min``."""

    def __init__(self):
        super().__init__()
        self._enabled = True
        self._start = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._enabled or self._start is None:
            return
        # a time budget's plan (mlip.train.budget.TimeBudget, re-planned each epoch) before max_epochs
        planned = next((c.planned_epochs for c in trainer.callbacks if getattr(c, "planned_epochs", None)), None)
        epoch, total = trainer.current_epoch + 1, planned or trainer.max_epochs
        elapsed = time.monotonic() - self._start
        metrics = self.get_metrics(trainer, pl_module)
        shown = "  ".join(f"{k} {float(v):.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                          for k, v in metrics.items() if k != "v_num")
        eta = f", ETA {_duration(elapsed / epoch * (total - epoch))}" if total and total > 0 else ""
        of = f"/{total}" if total and total > 0 else ""
        print(f"epoch {epoch}{of}  {shown}  ({_duration(elapsed)}{eta})", file=sys.stdout, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_callback() -> ProgressBar:
    """The bar for this process's stdout: live on a terminal, a line per epoch elsewhere."""
    return TQDMProgressBar() if is_terminal(sys.stdout) else EpochLines()
