"""MD17 (original sGDML npz: z, R, E (N,1), F) and revised MD17 (nuclear_charges, coords, energies,
forces). Both store kcal/mol and kcal/mol/Å; converted here to eV and eV/Å."""

from __future__ import annotations

import numpy as np
from ase import units

from mlip.data.atomic_data import AtomicData
from mlip.data.errors import DataError
from mlip.data.readers.base import FrameDataset

KCAL_PER_MOL = units.kcal / units.mol  # eV
LAYOUTS = {
    "revised": {"z": "nuclear_charges", "pos": "coords", "energy": "energies", "forces": "forces"},
    "original": {"z": "z", "pos": "R", "energy": "E", "forces": "F"},
}


class MD17Dataset(FrameDataset):
    """One MD17 or rMD17 molecule file. The arrays are loaded on first access and kept."""

    format_name = "md17"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        self._arrays = None
        with np.load(self.path) as z:
            files = set(z.files)
        for name, keys in LAYOUTS.items():
            if keys["z"] in files:
                self.layout = name
                break
        else:
            raise DataError(f"neither an MD17 (z, R, E, F) nor an rMD17 (nuclear_charges, coords, ...) "
                            f"file; keys are {sorted(files)}", self.path, key="z")
        missing = [k for k in LAYOUTS[self.layout].values() if k not in files]
        if missing:
            raise DataError(f"missing from this {self.layout} MD17 file", self.path, key=missing[0])

    def _load(self):
        if self._arrays is None:
            keys = LAYOUTS[self.layout]
            with np.load(self.path) as z:
                arrays = {field: np.asarray(z[key]) for field, key in keys.items()}
            n_frames = arrays["pos"].shape[0]
            for field in ("energy", "forces"):
                if arrays[field].shape[0] != n_frames:
                    raise DataError(f"has {arrays[field].shape[0]} frames but {keys['pos']} has {n_frames}",
                                    self.path, key=keys[field])
            arrays["energy"] = arrays["energy"].reshape(n_frames, -1)
            self._arrays = arrays
        return self._arrays

    def _length(self) -> int:
        return self._load()["pos"].shape[0]

    def _read(self, i: int) -> AtomicData:
        a = self._load()
        if a["energy"].shape[1] != 1:
            raise DataError(f"energy per frame has {a['energy'].shape[1]} values; expected 1",
                            key=LAYOUTS[self.layout]["energy"])
        return AtomicData.build(
            pos=a["pos"][i],
            atomic_numbers=a["z"],
            energy=a["energy"][i] * KCAL_PER_MOL,
            forces=a["forces"][i] * KCAL_PER_MOL,
            name=f"{i}",
        )
