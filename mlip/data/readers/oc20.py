"""OC20 S2EF: LMDB files of pickled torch_geometric Data, and the raw extxyz + txt form.

LMDB layout (fairchem's preprocessing): keys ``str(i)`` hold pickled Data with pos, cell (1,3,3),
atomic_numbers, natoms, tags, fixed, sid, fid and the energy/forces under their old names
(``y``, ``force``) or new ones (``energy``, ``forces``); key ``"length"`` holds the count.

Raw form: ``*.extxyz[.xz]`` frames with a ``*.txt[.xz]`` beside each, one line a frame:
``random<sid>,frame<fid>,<reference energy>``. With ``subtract_reference`` (default, as
fairchem's S2EF preprocessing does) the target energy is the DFT energy minus that reference.
"""

from __future__ import annotations

import glob
import lzma
import os
import pickle

import numpy as np
import torch

from mlip.data.atomic_data import AtomicData
from mlip.data.errors import DataError
from mlip.data.readers.base import FrameDataset
from mlip.data.readers.extxyz import ExtXYZDataset
from mlip.data.readers.lmdb_file import check_lmdb_file


def _fields(obj) -> dict:
    """The attributes of an unpickled PyG Data of any version (or a plain dict)."""
    if isinstance(obj, dict):
        return obj
    store = obj.__dict__.get("_store")
    if store is not None:
        return dict(store)
    return {k: v for k, v in obj.__dict__.items() if not k.startswith("__")}


def _get(fields: dict, names, required=True):
    for name in names:
        if name in fields and fields[name] is not None:
            return fields[name]
    if required:
        raise DataError("missing", key="/".join(names))
    return None


def _numpy(x):
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def _scalar(x, kind=int):
    """A Python int (or float) from a number, 0-d or 1-element tensor or array."""
    return kind(_numpy(x).reshape(-1)[0])


class OC20LMDBDataset(FrameDataset):
    """One OC20 S2EF (or IS2RE-style) LMDB file."""

    format_name = "oc20_lmdb"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        self._env = None
        self._pid = None
        with self._open().begin() as txn:
            raw = txn.get(b"length")
            if raw is not None:
                self._n = int(pickle.loads(raw))
            else:
                self._n = self._open().stat()["entries"]

    def _open(self):
        import lmdb

        if self._env is None or self._pid != os.getpid():  # LMDB handles must not cross a fork
            if self._env is not None:
                self._env.close()  # the parent's handle, inherited: lmdb refuses a second open of a path
            check_lmdb_file(self.path)  # a truncated file would crash the process when mapped
            try:
                self._env = lmdb.open(self.path, subdir=os.path.isdir(self.path), readonly=True, lock=False,
                                      readahead=False, meminit=False, max_readers=1)
            except lmdb.Error as err:
                raise DataError(f"cannot open as LMDB ({err})", self.path) from err
            self._pid = os.getpid()
        return self._env

    def _length(self) -> int:
        return self._n

    def _read(self, i: int) -> AtomicData:
        with self._open().begin() as txn:
            raw = txn.get(str(i).encode("ascii"))
        if raw is None:
            raise DataError(f"no entry under key '{i}' although 'length' says {self._n}", key=str(i))
        f = _fields(pickle.loads(raw))
        pos = _numpy(_get(f, ("pos",))).reshape(-1, 3)
        cell = _get(f, ("cell",), required=False)
        pbc = _get(f, ("pbc",), required=False)
        stress = _get(f, ("stress",), required=False)
        energy = _get(f, ("energy", "y"), required=False)
        sid, fid = f.get("sid"), f.get("fid")
        name = str(i) if sid is None or fid is None else f"{_scalar(sid)}/{_scalar(fid)}"
        return AtomicData.build(
            pos=pos,
            atomic_numbers=_numpy(_get(f, ("atomic_numbers",))).astype(np.int64),
            cell=None if cell is None else _numpy(cell),
            pbc=(True, True, True) if pbc is None else _numpy(pbc).reshape(-1)[:3],
            energy=None if energy is None else _scalar(energy, float),
            forces=_get(f, ("forces", "force"), required=False),
            stress=None if stress is None else _numpy(stress),
            fixed=_get(f, ("fixed",), required=False),
            tags=_get(f, ("tags",), required=False),
            charge=_scalar(f.get("charge", 0)),
            spin=_scalar(f.get("spin", 1)),
            name=name,
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_env"] = None
        return state


def write_oc20_lmdb(path, records, old_names: bool = False) -> None:
    """Write AtomicData records as an OC20 S2EF LMDB (pickled torch_geometric Data, keys str(i),
    "length"). ``old_names`` stores energy/forces as ``y``/``force`` as pre-2023 fairchem did."""
    import lmdb
    from torch_geometric.data import Data

    env = lmdb.open(str(path), map_size=1 << 34, subdir=False, meminit=False, map_async=True)
    n = 0
    with env.begin(write=True) as txn:
        for i, rec in enumerate(records):
            fields = dict(pos=rec.pos.float(), cell=rec.cell.float(), atomic_numbers=rec.atomic_numbers.float(),
                          natoms=int(rec.natoms), tags=rec.tags if "tags" in rec else torch.zeros_like(rec.atomic_numbers),
                          fixed=(rec.fixed if "fixed" in rec else torch.zeros_like(rec.atomic_numbers, dtype=torch.bool)).float(),
                          sid=i, fid=0)
            fields["y" if old_names else "energy"] = float(rec.energy)
            fields["force" if old_names else "forces"] = rec.forces.float()
            txn.put(str(i).encode("ascii"), pickle.dumps(Data(**fields), protocol=-1))
            n += 1
        txn.put(b"length", pickle.dumps(n, protocol=-1))
    env.sync()
    env.close()


def _open_text(path: str):
    return lzma.open(path, "rt") if path.endswith(".xz") else open(path)


def txt_for(xyz_path: str) -> str | None:
    """The reference-energy .txt(.xz) beside an OC20 raw .extxyz(.xz), if any."""
    stem = xyz_path[:-3] if xyz_path.endswith(".xz") else xyz_path
    stem = os.path.splitext(stem)[0]
    for candidate in (stem + ".txt", stem + ".txt.xz"):
        if os.path.exists(candidate):
            return candidate
    return None


class OC20ExtXYZDataset(ExtXYZDataset):
    """One OC20 raw S2EF file: extxyz frames plus the sid/fid/reference-energy lines beside it."""

    format_name = "oc20_extxyz"

    def __init__(self, path, subtract_reference: bool = True, **options):
        super().__init__(path, **options)
        self.subtract_reference = subtract_reference
        self.txt_path = txt_for(self.path)
        if self.txt_path is None:
            raise DataError("no .txt (sid, fid, reference energy per frame) beside this OC20 extxyz file", self.path)
        self._log = []
        with _open_text(self.txt_path) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.strip().split(",")
                try:
                    sid = int(parts[0].replace("random", ""))
                    fid = int(parts[1].replace("frame", ""))
                    ref = float(parts[2]) if len(parts) > 2 else 0.0
                except (ValueError, IndexError):
                    raise DataError(f"line {line_no}: expected 'random<sid>,frame<fid>,<reference energy>', "
                                    f"got {line.strip()[:60]!r}", self.txt_path, len(self._log)) from None
                self._log.append((sid, fid, ref))
        if len(self._log) != self._length():
            raise DataError(f"has {len(self._log)} lines but {self.path} has {self._length()} frames",
                            self.txt_path)

    def _read(self, i: int) -> AtomicData:
        data = super()._read(i)
        sid, fid, ref = self._log[i]
        if "energy" in data and self.subtract_reference:
            data.energy = data.energy - ref
        data.name = f"{sid}/{fid}"
        return data


def oc20_files(directory: str, pattern: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(directory, pattern)))
    if not files:
        raise DataError(f"no files matching {pattern}", directory)
    return files
