"""Potentials: one file an architecture, all behind the Potential interface.

    mlip.models.build(name, preset=None, **hyperparameters) -> Potential
    mlip.models.registered() -> list of names (potentials; registered("forecaster"): forecasters)

An architecture registers itself with ``@register("name")`` on its Potential subclass; every module
of this package is imported on first use, and so is every ``mlip.models`` entry point of installed
packages (``[project.entry-points."mlip.models"] mymodel = "mypackage.mymodel"``).
"""

from __future__ import annotations

import inspect

from mlip.models.base import Potential

_REGISTRY: dict = {}


def register(name: str):
    """Class decorator adding an architecture to the registry under ``name``."""

    def wrap(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


_loaded = False


def _load_architectures() -> None:
    """Import every module of this package and every ``mlip.models`` entry point of installed
    packages (plugins): their ``@register`` decorators fill the registry. No hand-kept list."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil
    from importlib.metadata import entry_points

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    for entry in entry_points(group="mlip.models"):
        entry.load()


def registered(kind: str = "potential") -> list[str]:
    """Names of the registered potentials (``kind="potential"``: what the physics suite, the kernel
    checks and the MD engines take) or forecasters (``kind="forecaster"``: force-free MD models,
    mlip.models.forecaster)."""
    from mlip.models.forecaster import Forecaster

    if kind not in ("potential", "forecaster"):
        raise ValueError(f"kind must be 'potential' or 'forecaster', got {kind!r}")
    _load_architectures()
    return sorted(name for name, cls in _REGISTRY.items() if issubclass(cls, Forecaster) == (kind == "forecaster"))


def architecture(name: str) -> type:
    """The registered Potential subclass called ``name``."""
    _load_architectures()
    if name not in _REGISTRY:
        raise ValueError(f"unknown potential {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build(name: str, preset: str | None = None, **hyperparameters) -> Potential:
    """An architecture by name, from a preset (``cls.presets``) updated with ``hyperparameters``.
    The model's ``hyperparameters`` record the repulsion prior explicitly, so that a model file
    rebuilds the same model whatever the default becomes."""
    cls = architecture(name)
    presets = getattr(cls, "presets", {})
    if preset is not None and preset not in presets:
        raise ValueError(f"{name} has no preset {preset!r}; presets: {', '.join(presets)}")
    kwargs = {**presets.get(preset, {}), **hyperparameters}
    model = cls(**kwargs)
    model.hyperparameters = dict(kwargs)
    if "repulsion" not in kwargs and "repulsion" in inspect.signature(cls).parameters and hasattr(model, "repulsion"):
        model.hyperparameters["repulsion"] = "zbl" if model.repulsion is not None else None
    return model


__all__ = ["Potential", "architecture", "build", "register", "registered"]
