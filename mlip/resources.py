"""Where the files mlip ships live: the Hydra configs and the bundled data samples. In an installed
wheel they are inside the package (mlip/configs, mlip/samples); in a source checkout (an editable
install) they are the repository's configs/ and data/."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_SOURCE = {"configs": "configs", "samples": "data"}


def shipped(name: str) -> Path:
    """The folder of ``name`` ("configs" or "samples"), installed or in the checkout."""
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _PACKAGE.parent / _SOURCE[name]


def config_dir() -> Path:
    """The Hydra config folder: $MLIP_CONFIG_DIR, else the shipped configs."""
    return Path(os.environ["MLIP_CONFIG_DIR"]) if os.environ.get("MLIP_CONFIG_DIR") else shipped("configs")


def data_dir() -> Path:
    """The bundled data samples: $MLIP_DATA, else the shipped samples."""
    return Path(os.environ["MLIP_DATA"]) if os.environ.get("MLIP_DATA") else shipped("samples")
