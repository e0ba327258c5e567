"""mlip: an engine for machine-learned interatomic potentials.

Public namespaces: :mod:`mlip.data` (readers, AtomicData), :mod:`mlip.graph` (neighbour lists).
Units follow ASE: Å, eV, eV/Å, stress in eV/Å^3 with ASE's sign.
"""

__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """A model from a file written by ``Potential.save``, a training checkpoint (which carries the
    EMA weights, hyperparameters and statistics) or ``mlip export`` (TorchScript, torch.export,
    AOTInductor: an :class:`mlip.export.ExportedPotential` with the same interface)."""
    import torch

    from mlip.export import exported_kind, load_exported
    from mlip.models import build

    if exported_kind(path) is not None:
        return load_exported(path, device)

    payload = torch.load(path, map_location=device, weights_only=False)
    if isinstance(payload, dict) and isinstance(payload.get("mlip"), dict):
        payload = payload["mlip"]  # a Lightning checkpoint written by mlip train
    if not isinstance(payload, dict) or payload.get("format") != "mlip-potential":
        raise ValueError(f"{path}: not an mlip model file or training checkpoint")
    model = build(payload["name"], **payload["hyperparameters"]).to(getattr(torch, payload.get("dtype", "float32")))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
