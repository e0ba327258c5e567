"""Format names, guessing a format from a path, and open_dataset."""

from __future__ import annotations

import glob
import os

from mlip.data.errors import DataError
from mlip.data.splits import read_indices

XYZ_SUFFIXES = (".xyz", ".extxyz", ".xyz.gz", ".extxyz.gz", ".xyz.xz", ".extxyz.xz")


def _reader(fmt: str):
    from mlip.data import prepared, readers

    return {
        "md17": readers.MD17Dataset,
        "rmd17": readers.MD17Dataset,
        "extxyz": readers.ExtXYZDataset,
        "mptrj": readers.MPtrjDataset,
        "mptrj_extxyz": readers.MPtrjExtXYZDataset,
        "oc20_lmdb": readers.OC20LMDBDataset,
        "oc20_extxyz": readers.OC20ExtXYZDataset,
        "ase_db": readers.ASEDatabaseDataset,
        "omol25": readers.ASEDatabaseDataset,
        "mlip": prepared.PreparedDataset,
    }[fmt]


FORMATS = ("md17", "rmd17", "extxyz", "mptrj", "mptrj_extxyz", "oc20_lmdb", "oc20_extxyz", "ase_db", "omol25", "mlip")
# for a directory: the files each format reads, in the order they are tried
DIRECTORY_PATTERNS = {"omol25": "*.aselmdb", "oc20_lmdb": "*.lmdb", "oc20_extxyz": "*.extxyz*", "ase_db": "*.db"}


def _json_kind(path: str) -> str:
    """"ase_db" for an ASE JSON database (numeric top-level keys), else "mptrj"."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"{"):
        raise DataError("a .json file that is not a JSON object", path)
    key = head[1:].lstrip()[1:].split(b'"', 1)[0]
    return "ase_db" if key.isdigit() or key in (b"ids", b"nextid") else "mptrj"


MPTRJ_MARKERS = (b"mp_id=", b"corrected_total_energy=", b"mp2020_corrected_energy=")


def _xyz_kind(path: str) -> str:
    """"mptrj_extxyz" if the first frame's comment line carries MPtrj's keys, else "extxyz"."""
    from mlip.data.readers.extxyz import open_text_binary

    with open_text_binary(path) as f:
        f.readline()
        comment = f.readline()
    return "mptrj_extxyz" if any(m in comment for m in MPTRJ_MARKERS) else "extxyz"


def guess_format(path) -> str:
    """The format name for ``path`` from its suffix (and, for .json, its first key)."""
    path = str(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "metadata.json")):
            return "mlip"
        for fmt, pattern in DIRECTORY_PATTERNS.items():
            if glob.glob(os.path.join(path, pattern)):
                return fmt
        raise DataError(f"cannot tell the format of this directory (looked for metadata.json, "
                        f"{', '.join(DIRECTORY_PATTERNS.values())}); pass format=", path)
    lower = path.lower()
    if lower.endswith(".npz"):
        return "md17"
    if lower.endswith(".json"):
        return _json_kind(path)
    if lower.endswith(".lmdb"):
        return "oc20_lmdb"
    if lower.endswith((".aselmdb", ".db")):
        return "ase_db"
    if lower.endswith(XYZ_SUFFIXES):
        from mlip.data.readers.oc20 import txt_for

        return "oc20_extxyz" if txt_for(path) else _xyz_kind(path)
    raise DataError(f"cannot tell the format from the name; pass format= one of {', '.join(FORMATS)}", path)


def _open(reader, fmt: str, path: str, options: dict):
    """``reader(path, **options)``; whatever the format's own library raises on a truncated, empty or
    corrupt file (zipfile, numpy, lmdb, ase, json) becomes a DataError naming the file."""
    try:
        return reader(path, **options)
    except DataError as err:
        raise err.at(path) from None
    except Exception as err:
        raise DataError(f"cannot open as {fmt} ({type(err).__name__}: {err or 'empty or truncated file'})",
                        path) from err


def open_dataset(path, format: str | None = None, indices=None, split: str | None = None, **options):
    """Open a dataset file or directory: ``len(ds)``, ``ds[i] -> AtomicData``, read lazily.

    Args:
        path: a file, or a directory of files of one format (OMol25 .aselmdb, OC20 .lmdb or
            raw .extxyz + .txt), or a directory written by ``mlip prepare``.
        format: one of FORMATS; guessed from the path if None.
        indices: a split: an index file (see :func:`mlip.data.splits.read_indices`) or a
            sequence of ints; ``split`` picks train/val/test from an npz index file.
        **options: passed to the reader (``energy="uncorrected"`` for MPtrj, ``energy_key`` for
            extxyz, ``on_error="skip"``, ``min_distance``...).
    """
    from mlip.data.readers import ConcatFrames, IndexedFrames

    path = str(path)
    if not os.path.exists(path):
        raise DataError("no such file or directory", path)
    fmt = format or guess_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    reader = _reader(fmt)
    if os.path.isdir(path) and fmt in DIRECTORY_PATTERNS:
        files = sorted(glob.glob(os.path.join(path, DIRECTORY_PATTERNS[fmt])))
        if fmt == "oc20_extxyz":
            files = [f for f in files if f.endswith((".extxyz", ".extxyz.xz"))]
        if not files:
            raise DataError(f"no {DIRECTORY_PATTERNS[fmt]} files for format {fmt}", path)
        dataset = ConcatFrames([_open(reader, fmt, f, options) for f in files], path=path)
    else:
        dataset = _open(reader, fmt, path, options)
    if indices is not None:
        if isinstance(indices, (str, os.PathLike)):
            indices = read_indices(indices, split)
        dataset = IndexedFrames(dataset, indices)
    return dataset
