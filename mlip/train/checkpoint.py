"""Checkpoints written atomically: to a temporary file in the same directory, then renamed."""

from __future__ import annotations

import os

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """A crash while saving leaves the previous checkpoint intact, never a truncated file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = str(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
