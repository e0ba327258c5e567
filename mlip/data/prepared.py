"""The prepared format: any source converted once into flat memory-mapped arrays plus metadata.

A prepared dataset is a directory::

    metadata.json        format version, source, array dtypes/shapes, statistics (see statistics.py)
    pos.bin ...          one raw little-endian array per field, per atom or per structure
    ptr.bin              (S+1,) int64 atom offsets of the structures

Reading frame i is two memmap slices: no parsing, no decompression, cheap in worker processes.
Writing streams (memory does not grow with the dataset) into a temporary directory that is renamed
into place at the end, so an interrupted ``mlip prepare`` never leaves a half-written dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np

from mlip.data.atomic_data import AtomicData
from mlip.data.errors import DataError
from mlip.data.readers.base import FrameDataset
from mlip.data.statistics import StatisticsAccumulator

FORMAT_VERSION = 1
# name: (dtype, trailing shape, per "atom" or "structure")
FIELDS = {
    "pos": ("<f8", (3,), "atom"),
    "atomic_numbers": ("<u1", (), "atom"),
    "forces": ("<f8", (3,), "atom"),
    "fixed": ("<u1", (), "atom"),
    "tags": ("<i4", (), "atom"),
    "magmom": ("<f8", (), "atom"),
    "cell": ("<f8", (3, 3), "structure"),
    "pbc": ("<u1", (3,), "structure"),
    "energy": ("<f8", (), "structure"),
    "stress": ("<f8", (3, 3), "structure"),
    "charge": ("<i4", (), "structure"),
    "spin": ("<i4", (), "structure"),
    "has": ("<u1", (4,), "structure"),  # energy, forces, stress, magmom present
}
HAS = ("energy", "forces", "stress", "magmom")


def _row(data, name: str, n: int) -> np.ndarray:
    dtype, shape, _ = FIELDS[name]
    if name == "has":
        return np.array([[k in data for k in HAS]], dtype=dtype)
    if name in data:
        return data[name].detach().cpu().numpy().astype(dtype).reshape((-1,) + shape)
    rows = n if FIELDS[name][2] == "atom" else 1
    fill = 1 if name == "spin" else 0
    return np.full((rows,) + shape, fill, dtype=dtype)


def write_prepared(dataset, out, cutoff: float | None = 5.0, overwrite: bool = False,
                   progress: bool = True, source: str | None = None) -> dict:
    """Convert ``dataset`` (any mlip dataset) into a prepared directory ``out``; returns its metadata."""
    from mlip.progress import progress as tqdm

    out = os.path.abspath(str(out))
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    tmp = f"{out}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    stats = StatisticsAccumulator(cutoff)
    files = {name: open(os.path.join(tmp, f"{name}.bin"), "wb") for name in FIELDS}
    ptr = [0]
    names = bytearray()
    name_ptr = [0]
    start = time.time()
    try:
        for data in tqdm(dataset, total=len(dataset), disable=not progress, unit="frame",
                         desc=f"preparing {os.path.basename(out)}"):
            n = int(data.pos.shape[0])
            for name, f in files.items():
                f.write(_row(data, name, n).tobytes())
            ptr.append(ptr[-1] + n)
            names += str(getattr(data, "name", "")).encode()
            name_ptr.append(len(names))
            stats.add(data)
    except BaseException:
        for f in files.values():
            f.close()
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
        raise
    for f in files.values():
        f.close()
    np.asarray(ptr, dtype="<i8").tofile(os.path.join(tmp, "ptr.bin"))
    np.asarray(name_ptr, dtype="<i8").tofile(os.path.join(tmp, "name_ptr.bin"))
    with open(os.path.join(tmp, "names.bin"), "wb") as f:
        f.write(bytes(names))
    n_structures, n_atoms = len(ptr) - 1, ptr[-1]
    metadata = {
        "format": "mlip-prepared",
        "format_version": FORMAT_VERSION,
        "source": source or getattr(dataset, "path", None),
        "source_format": getattr(dataset, "format_name", None),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - start, 2),
        "n_structures": n_structures,
        "n_atoms": int(n_atoms),
        "fields": {name: {"dtype": d, "shape": list(s), "per": per} for name, (d, s, per) in FIELDS.items()},
        "statistics": stats.result(),
    }
    with open(os.path.join(tmp, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=1)
    if os.path.exists(out):
        trash = f"{out}.old-{os.getpid()}"
        os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return metadata


class PreparedDataset(FrameDataset):
    """A directory written by :func:`write_prepared` (``mlip prepare``)."""

    format_name = "mlip"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        meta_path = os.path.join(self.path, "metadata.json")
        try:
            with open(meta_path) as f:
                self.metadata = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read prepared metadata ({err})", meta_path) from err
        if self.metadata.get("format_version") != FORMAT_VERSION:
            raise DataError(f"prepared format version {self.metadata.get('format_version')}; this mlip reads "
                            f"{FORMAT_VERSION}: run mlip prepare again", meta_path, key="format_version")
        self._arrays = None

    def _array(self, name: str, dtype, shape):
        path = os.path.join(self.path, f"{name}.bin")
        count = int(np.prod(shape))
        expected = count * np.dtype(dtype).itemsize
        if not os.path.exists(path) or os.path.getsize(path) != expected:
            size = os.path.getsize(path) if os.path.exists(path) else "missing"
            raise DataError(f"expected {expected} bytes, found {size}: the prepared dataset is truncated "
                            "or corrupt", path, key=name)
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=tuple(shape))

    def _load(self):
        if self._arrays is None:
            s, a = self.metadata["n_structures"], self.metadata["n_atoms"]
            arrays = {"ptr": self._array("ptr", "<i8", (s + 1,)), "name_ptr": self._array("name_ptr", "<i8", (s + 1,))}
            for name, spec in self.metadata["fields"].items():
                rows = a if spec["per"] == "atom" else s
                arrays[name] = self._array(name, spec["dtype"], [rows] + spec["shape"])
            arrays["names"] = self._array("names", "u1", (int(arrays["name_ptr"][-1]),))
            self._arrays = arrays
        return self._arrays

    @property
    def statistics(self) -> dict:
        return self.metadata["statistics"]

    def _length(self) -> int:
        return self.metadata["n_structures"]

    def _read(self, i: int) -> AtomicData:
        a = self._load()
        lo, hi = int(a["ptr"][i]), int(a["ptr"][i + 1])
        has = dict(zip(HAS, a["has"][i].astype(bool)))
        return AtomicData.build(
            pos=a["pos"][lo:hi],
            atomic_numbers=a["atomic_numbers"][lo:hi],
            cell=a["cell"][i],
            pbc=a["pbc"][i].astype(bool),
            energy=a["energy"][i] if has["energy"] else None,
            forces=a["forces"][lo:hi] if has["forces"] else None,
            stress=a["stress"][i] if has["stress"] else None,
            magmom=a["magmom"][lo:hi] if has["magmom"] else None,
            fixed=a["fixed"][lo:hi].astype(bool),
            tags=a["tags"][lo:hi],
            charge=int(a["charge"][i]),
            spin=int(a["spin"][i]),
            name=bytes(a["names"][int(a["name_ptr"][i]):int(a["name_ptr"][i + 1])]).decode(),
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state
