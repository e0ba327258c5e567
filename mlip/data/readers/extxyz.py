"""Extended XYZ (plain, .gz or .xz), random access through a byte-offset index built at open
(and cached, see mlip.data.cache).

Covers the MPtrj extxyz written by the usual converters, OMol25 / 3BPA / SevenNet extxyz files, and
is the frame parser under the OC20 raw extxyz reader.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os

import numpy as np
from ase.io.extxyz import read_xyz

from mlip.data.atomic_data import AtomicData
from mlip.data.cache import cached_index
from mlip.data.errors import DataError
from mlip.data.readers.base import FrameDataset


def open_text_binary(path: str):
    """A binary file object, decompressing .gz and .xz transparently."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".xz"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def index_xyz_frames(path: str) -> np.ndarray:
    """Byte offsets of every frame's start, plus the end of the last frame: (F+1,) int64.

    Raises DataError naming the frame and line if an atom-count line is not an integer or the file
    ends inside a frame (truncated).
    """
    offsets = []
    with open_text_binary(path) as f:
        pos = 0
        line_no = 0
        while True:
            line = f.readline()
            if not line:
                break
            line_no += 1
            if not line.strip():
                pos += len(line)
                continue
            try:
                n_atoms = int(line.split()[0])
            except ValueError:
                raise DataError(f"line {line_no}: expected an atom count, got {line[:60]!r}", path,
                                len(offsets)) from None
            offsets.append(pos)
            pos += len(line)
            for k in range(n_atoms + 1):
                body = f.readline()
                if not body:
                    raise DataError(f"file ends after {k} of the {n_atoms + 1} lines of this frame "
                                    "(truncated)", path, len(offsets) - 1)
                pos += len(body)
            line_no += n_atoms + 1
        offsets.append(pos)
    return np.asarray(offsets, dtype=np.int64)


class ExtXYZDataset(FrameDataset):
    """Frames of one extxyz file as AtomicData.

    Targets come from the keys given (``energy_key``, ``forces_key``, ``stress_key``) or, if not
    given, the usual names (energy / REF_energy / ..., forces / REF_forces / ..., stress).
    Charge and multiplicity come from ``info`` (charge / total_charge, spin / multiplicity).
    """

    format_name = "extxyz"

    def __init__(self, path, energy_key=None, forces_key=None, stress_key=None, **options):
        super().__init__(path, **options)
        self.keys = dict(energy_key=energy_key, forces_key=forces_key, stress_key=stress_key)
        self._offsets = cached_index(self.path, index_xyz_frames, "xyz")
        if len(self._offsets) < 2:
            raise DataError("no frames: an empty file", self.path)
        self._handle = None
        self._pid = None

    def _file(self):
        if self._handle is None or self._pid != os.getpid():  # one handle per worker process
            self._handle, self._pid = open_text_binary(self.path), os.getpid()
        return self._handle

    def _length(self) -> int:
        return len(self._offsets) - 1

    def frame_text(self, i: int) -> str:
        f = self._file()
        f.seek(int(self._offsets[i]))
        return f.read(int(self._offsets[i + 1] - self._offsets[i])).decode()

    def read_atoms(self, i: int):
        """Frame ``i`` as an ``ase.Atoms`` (with its SinglePointCalculator, if any)."""
        return next(read_xyz(io.StringIO(self.frame_text(i)), 0))

    def _read(self, i: int) -> AtomicData:
        return AtomicData.from_ase(self.read_atoms(i), source=self.path, frame=i, name=str(i), **self.keys)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"] = None
        return state
