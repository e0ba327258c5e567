"""Potentials: one file an architecture, all behind the Potential interface.

    mlip.models.build(name, preset=None, **hyperparameters) -> Potential
    mlip.models.registered() -> list of names
"""

from __future__ import annotations

from mlip.models.base import Potential

_REGISTRY: dict = {}


def register(name: str):
    """Class decorator adding an architecture to the registry under ``name``."""

    def wrap(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_architectures() -> None:
    from mlip.models import escaip, escn, facet, transip  # noqa: F401  (they register themselves)


def registered() -> list[str]:
    _load_architectures()
    return sorted(_REGISTRY)


def build(name: str, preset: str | None = None, **hyperparameters) -> Potential:
    """An architecture by name, from a preset (``cls.presets``) updated with ``hyperparameters``."""
    _load_architectures()
    if name not in _REGISTRY:
        raise ValueError(f"unknown potential {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    presets = getattr(cls, "presets", {})
    if preset is not None and preset not in presets:
        raise ValueError(f"{name} has no preset {preset!r}; presets: {', '.join(presets)}")
    kwargs = {**presets.get(preset, {}), **hyperparameters}
    model = cls(**kwargs)
    model.hyperparameters = dict(kwargs)
    return model


__all__ = ["Potential", "build", "register", "registered"]
