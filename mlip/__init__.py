"""mlip: an engine for machine-learned interatomic potentials.

Public namespaces: :mod:`mlip.data` (readers, AtomicData), :mod:`mlip.graph` (neighbour lists).
Units follow ASE: Å, eV, eV/Å, stress in eV/Å^3 with ASE's sign.
"""

__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """A model from any file mlip writes (mlip.loading.load): a model file, a training checkpoint or
    an exported model."""
    from mlip.loading import load as _load

    return _load(path, device)
