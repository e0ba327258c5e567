"""The model file: one writer and one reader of what rebuilds a Potential without any config
(architecture name, hyperparameters, dtype, weights and statistics). ``Potential.save`` writes it,
a training checkpoint carries the same payload under its "mlip" key, ``mlip.load`` reads both."""

from __future__ import annotations

import os

import torch

FORMAT = "mlip-potential"
# 2: lone atoms give the reference energies; the ZBL repulsion prior unless repulsion=None
# 3: the prior placed below each element pair's shortest training distance, the learned part frozen there
VERSION = 3


def payload(model) -> dict:
    """The dict that rebuilds ``model`` (what a model file holds, and a checkpoint's "mlip" entry)."""
    return {"format": getattr(model, "file_format", FORMAT), "version": VERSION, "name": model.name,
            "hyperparameters": model.hyperparameters, "dtype": str(model.dtype).replace("torch.", ""), "state_dict": model.state_dict()}


def save(model, path) -> None:
    """Write ``model``'s payload to ``path`` atomically (a temporary file renamed into place)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(payload(model), tmp)
    os.replace(tmp, path)


def from_payload(content: dict, device: str = "cpu"):
    """The Potential (or Forecaster) a payload describes, in eval mode on ``device``."""
    from mlip.models import build
    from mlip.models.forecaster import FORMAT as FORECASTER

    hyperparameters, state = dict(content["hyperparameters"]), dict(content["state_dict"])
    if content.get("format") == FORECASTER:
        model = build(content["name"], **hyperparameters).to(getattr(torch, content.get("dtype", "float32")))
        model.load_state_dict(state)
        return model.to(device).eval()
    if int(content.get("version", 1)) < 2:  # written before both: the same energies as then
        if accepts(content["name"], "repulsion"):
            hyperparameters.setdefault("repulsion", None)
        state.setdefault("lone_reference", torch.tensor(False))
    model = build(content["name"], **hyperparameters).to(getattr(torch, content.get("dtype", "float32")))
    if int(content.get("version", 1)) < 3 and model.repulsion is not None:  # the covalent rule alone, as then
        for key, value in model.state_dict().items():
            if key.startswith("repulsion.") and key not in state:
                state[key] = value
        state["repulsion.freeze_learned"] = torch.tensor(False)
    if any(key.startswith("uncertainty.") for key in state):  # a fitted last-layer uncertainty (mlip.nn.llpr)
        from mlip.nn.llpr import LastLayerUncertainty

        model.uncertainty = LastLayerUncertainty(model.last_layer.in_features)
    model.load_state_dict(state)
    return model.to(device).eval()


def accepts(name: str, argument: str) -> bool:
    """Does architecture ``name``'s constructor take ``argument``?"""
    import inspect

    from mlip.models import architecture

    return argument in inspect.signature(architecture(name)).parameters


def read_content(path, device: str = "cpu") -> dict:
    """The dict a file mlip wrote holds (a checkpoint's "mlip" entry for a training checkpoint);
    ValueError naming the file for anything else."""
    content = torch.load(path, map_location=device, weights_only=False)
    if isinstance(content, dict) and isinstance(content.get("mlip"), dict):
        content = content["mlip"]  # a Lightning checkpoint written by mlip train
    if not isinstance(content, dict) or not str(content.get("format", "")).startswith("mlip-"):
        raise ValueError(f"{path}: not an mlip model file or training checkpoint")
    return content


def read(path, device: str = "cpu"):
    """A Potential (or Forecaster) from a model file or a training checkpoint written by ``mlip train``."""
    from mlip.models.forecaster import FORMAT as FORECASTER

    content = read_content(path, device)
    if content.get("format") not in (FORMAT, FORECASTER):
        raise ValueError(f"{path}: a {content.get('format')} file, not a single model ({FORMAT})")
    return from_payload(content, device)
