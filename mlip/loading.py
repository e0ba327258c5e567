"""``mlip.load``: any file mlip writes, back as a model with the Potential interface."""

from __future__ import annotations


def load(path, device: str = "cpu"):
    """A model from a file written by ``Potential.save``, a training checkpoint (which carries the
    EMA weights, hyperparameters and statistics) or ``mlip export`` (TorchScript, torch.export,
    AOTInductor: an :class:`mlip.export.ExportedPotential` with the same interface)."""
    from mlip.export import exported_kind, load_exported
    from mlip.models.file import read

    if exported_kind(path) is not None:
        return load_exported(path, device)
    return read(path, device)
