"""``mlip.load``: any file mlip writes, back as a model with the Potential interface."""

from __future__ import annotations


def load(path, device: str = "cpu"):
    """A model from a file written by ``Potential.save``, a training checkpoint (which carries the
    EMA weights, hyperparameters and statistics), ``mlip export`` (TorchScript, torch.export,
    AOTInductor: an :class:`mlip.export.ExportedPotential` with the same interface), a committee file
    (``mlip train ... ensemble=K``), or a list of model files / checkpoints (a committee of them);
    committees are :class:`mlip.uncertainty.Committee`. A forecaster's file or checkpoint gives the
    :class:`mlip.models.forecaster.Forecaster`."""
    from mlip.export import exported_kind, load_exported
    from mlip.models.file import FORMAT, from_payload, read_content
    from mlip.models.forecaster import FORMAT as FORECASTER
    from mlip.uncertainty.committee import FORMAT as COMMITTEE, Committee

    if isinstance(path, (list, tuple)):
        return Committee([load(p, device) for p in path]).to(device).eval()
    if exported_kind(path) is not None:
        return load_exported(path, device)
    content = read_content(path, device)
    if content["format"] == COMMITTEE:
        return Committee.from_content(content, device).eval()
    if content["format"] not in (FORMAT, FORECASTER):
        raise ValueError(f"{path}: unknown mlip file format {content['format']!r}")
    return from_payload(content, device)
