"""The cache folder: byte-offset indexes of large text files (keyed by path, size and mtime) and
compiled builds (the operator library, the LAMMPS plugin)."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np


def cache_dir() -> str:
    """Where index files go: $MLIP_CACHE_DIR, else ~/.cache/mlip."""
    return os.environ.get("MLIP_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "mlip"))


def cached_index(path: str, build, suffix: str) -> np.ndarray:
    """``build(path)``, cached under :func:`cache_dir` by path, size and mtime; written atomically."""
    st = os.stat(path)
    key = hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
    target = os.path.join(cache_dir(), f"{key}.{suffix}.npy")
    if os.path.exists(target):
        try:
            return np.load(target, mmap_mode="r")  # memory-mapped: an 11 GB file's index costs no RSS
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    index = build(path)
    try:
        os.makedirs(cache_dir(), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, index)
        os.replace(tmp, target)
    except OSError:
        return index  # an unwritable cache only costs a re-scan next time
    return np.load(target, mmap_mode="r")


def locked_build(path: Path, build: Callable[[Path], None], force: bool = False) -> Path:
    """``path``, made first by ``build(tmp)`` (which writes the file ``tmp``) unless it exists or
    ``force``; concurrent callers (the ranks of one ``mpirun``, test workers) wait for one build
    (a file lock beside it) and take it; the file appears atomically."""
    path = Path(path)
    if path.is_file() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file() and not force:
            return path
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        build(tmp)
        os.replace(tmp, path)
    return path
