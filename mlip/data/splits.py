"""Split index files: one integer per line (CSV/TXT), or npz/npy with train_idx / val_idx / test_idx."""

from __future__ import annotations

import os

import numpy as np

from mlip.data.errors import DataError

SPLIT_KEYS = {"train": "train_idx", "val": "val_idx", "valid": "val_idx", "test": "test_idx"}


def read_indices(path, split: str | None = None) -> np.ndarray:
    """Integer indices from an index file.

    Args:
        path: a text file with one integer per line (commas and blank lines allowed), a .npy
            array, or a .npz holding ``train_idx``/``val_idx``/``test_idx``.
        split: for .npz files, which one: "train", "val" or "test" (or the array's own key).
    Returns:
        (K,) int64.
    """
    path = str(path)
    if not os.path.exists(path):
        raise DataError("no such index file", path)
    if path.endswith(".npz"):
        with np.load(path) as z:
            if split is None:
                raise DataError(f"an npz split file needs split= one of {sorted(z.files)}", path, key="split")
            key = SPLIT_KEYS.get(split, split)
            if key not in z.files:
                raise DataError(f"missing; the file has {sorted(z.files)}", path, key=key)
            idx = np.asarray(z[key])
    elif path.endswith(".npy"):
        idx = np.load(path)
    else:
        values = []
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                for token in line.replace(",", " ").split():
                    try:
                        values.append(int(token))
                    except ValueError:
                        raise DataError(f"line {line_no}: {token!r} is not an integer index", path) from None
        idx = np.asarray(values)
    if idx.dtype.kind not in "iu" and not (idx.dtype.kind == "f" and np.all(idx == np.round(idx))):
        raise DataError(f"indices have dtype {idx.dtype}; expected integers", path)
    return idx.astype(np.int64).reshape(-1)
