"""Any ASE database (SQLite .db, JSON .json, ASE-LMDB .aselmdb as OMol25 ships it), and
directories of them. ``row.data`` and ``row.key_value_pairs`` go into ``atoms.info`` as fairchem's
AseDBDataset does, so OMol25's ``charge`` and ``spin`` (multiplicity) are read from there."""

from __future__ import annotations

import os

from mlip.data.atomic_data import AtomicData
from mlip.data.errors import DataError
from mlip.data.readers.base import FrameDataset
from mlip.data.readers.lmdb_file import check_lmdb_file


def connect_readonly(path: str):
    import ase.db

    if path.endswith(".aselmdb"):
        check_lmdb_file(path)  # a truncated one would crash the process when mapped
    try:
        if path.endswith(".aselmdb"):
            return ase.db.connect(path, readonly=True)
        return ase.db.connect(path)
    except Exception as err:
        raise DataError(f"cannot open as an ASE database ({type(err).__name__}: {err})", path) from err


def _close_inherited(db) -> None:
    """Close an ASE-LMDB handle inherited through fork: lmdb refuses a second open of one path in a
    process, and ase-db-backends' own close() would reopen it first (its pid check), so the raw
    environment is closed and marked as this process's, which makes its later __del__ harmless."""
    env = getattr(db, "_env", None)
    if env is not None:
        env.close()
        db._env_pid = os.getpid()


class ASEDatabaseDataset(FrameDataset):
    """Rows of one ASE database as AtomicData, in id order."""

    format_name = "ase_db"

    def __init__(self, path, energy_key=None, forces_key=None, stress_key=None, **options):
        super().__init__(path, **options)
        self.keys = dict(energy_key=energy_key, forces_key=forces_key, stress_key=stress_key)
        self._db = None
        self._pid = None
        db = self._connect()
        try:
            self._ids = list(db.ids) if hasattr(db, "ids") else [row.id for row in db.select(include_data=False)]
        except Exception as err:
            raise DataError(f"cannot list rows ({type(err).__name__}: {err})", self.path) from err

    def _connect(self):
        if self._db is None or self._pid != os.getpid():  # LMDB handles must not cross a fork
            if self._db is not None:
                _close_inherited(self._db)
            self._db, self._pid = connect_readonly(self.path), os.getpid()
        return self._db

    def _length(self) -> int:
        return len(self._ids)

    def read_atoms(self, i: int):
        row = self._connect().get(id=self._ids[i])
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        if row.data:
            atoms.info.update(dict(row.data))
        return atoms

    def _read(self, i: int) -> AtomicData:
        return AtomicData.from_ase(self.read_atoms(i), source=self.path, frame=i, name=str(self._ids[i]),
                                   **self.keys)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_db"] = None
        return state
