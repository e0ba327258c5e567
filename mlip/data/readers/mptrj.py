"""MPtrj_2022.9_full.json (11 GB): ``{mp_id: {frame_id: {structure, energies, force, stress, magmom, ...}}}``.

The file is never read whole. At open, a vectorised byte scanner (numpy over 256 KiB chunks) finds
where each frame object starts and ends; the offsets are cached beside the user's cache dir, keyed
by the file's path, size and mtime. A frame is then read by seeking to it and parsing only its bytes.

Units: energies eV, forces eV/Å; stress in the file is kBar with VASP's sign (positive =
compressive), converted here to eV/Å^3 with ASE's sign: ``stress_ase = -0.1 * GPa * stress_kbar``.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
from ase import units
from ase.data import atomic_numbers as ATOMIC_NUMBERS

from mlip.data.atomic_data import AtomicData
from mlip.data.cache import cached_index
from mlip.data.errors import DataError
from mlip.data.readers.base import FrameDataset
from mlip.data.readers.extxyz import ExtXYZDataset

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional
    _loads = json.loads

KBAR_TO_EV_PER_A3 = 0.1 * units.GPa
ENERGY_FIELDS = {"corrected": "corrected_total_energy", "uncorrected": "uncorrected_total_energy"}
# the same energies as the MPtrj -> extxyz converters name them, in order of preference
EXTXYZ_ENERGY_KEYS = {"corrected": ("corrected_total_energy", "mp2020_corrected_energy"),
                      "uncorrected": ("uncorrected_total_energy", "energy")}
CHUNK = 1 << 18  # 256 KiB: the scan's temporaries stay small enough not to swell the heap
_OPEN, _CLOSE, _OPEN_L, _CLOSE_L, _QUOTE, _BACKSLASH = b"{}[]\"\\"
_KEY_BEFORE = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*$')


def _escaped_quotes(buf: np.ndarray, backslashes: np.ndarray, carry: int) -> tuple[np.ndarray, int]:
    """Positions of quotes preceded by an odd run of backslashes, and the trailing run length.

    ``carry`` is the length of a backslash run that ended the previous chunk.
    """
    if len(backslashes) == 0:
        return np.zeros(0, dtype=np.int64), 0
    run_start = np.ones(len(backslashes), dtype=bool)
    run_start[1:] = backslashes[1:] != backslashes[:-1] + 1
    starts = np.flatnonzero(run_start)
    ends = np.append(starts[1:], len(backslashes))  # exclusive, in backslash-index space
    lengths = ends - starts
    if backslashes[0] == 0:
        lengths[0] += carry
    last = backslashes[ends - 1]  # position of each run's last backslash
    trailing = int(lengths[-1]) if last[-1] == len(buf) - 1 else 0
    after = last + 1
    ok = (after < len(buf)) & (lengths % 2 == 1)
    after = after[ok]
    return after[buf[after] == _QUOTE], trailing


def index_mptrj_json(path: str, progress: bool = False) -> np.ndarray:
    """(F,2) int64 byte ranges [start, end) of every frame object (depth 3) in an MPtrj JSON file."""
    from mlip.progress import progress as tqdm

    size = os.path.getsize(path)
    in_string = False
    carry_bs = 0
    depth = 0
    starts, ends = [], []
    # Buffers are allocated once and reused: fresh temporaries per chunk fragment the heap
    # and grow resident memory far past what is live.
    buffer = np.empty(CHUNK, dtype=np.uint8)
    mask_buffer = np.empty(CHUNK, dtype=bool)
    scratch_buffer = np.empty(CHUNK, dtype=bool)
    with open(path, "rb", buffering=0) as f, tqdm(total=size, unit="B", unit_scale=True, disable=not progress,
                                                  desc=f"indexing {os.path.basename(path)}") as bar:
        base = 0
        while True:
            n = f.readinto(memoryview(buffer))
            if not n:
                break
            buf, mask, scratch = buffer[:n], mask_buffer[:n], scratch_buffer[:n]
            escaped_first = carry_bs % 2 == 1 and buf[0] == _QUOTE
            np.equal(buf, _QUOTE, out=mask)
            for char in (_OPEN, _CLOSE, _OPEN_L, _CLOSE_L, _BACKSLASH):
                np.logical_or(mask, np.equal(buf, char, out=scratch), out=mask)
            special = np.flatnonzero(mask)
            chars = buf[special]
            bs = special[chars == _BACKSLASH]
            escaped, carry_bs = _escaped_quotes(buf, bs, carry_bs)
            keep = chars != _BACKSLASH
            special, chars = special[keep], chars[keep]
            is_quote = chars == _QUOTE
            if len(escaped) or escaped_first:
                esc = np.isin(special, escaped)
                if escaped_first:
                    esc |= special == 0
                is_quote &= ~esc
                keep = ~(esc & (chars == _QUOTE))
                special, chars, is_quote = special[keep], chars[keep], is_quote[keep]
            # inside a string iff an odd number of real quotes came before (counting this chunk's start)
            quotes_before = np.cumsum(is_quote, dtype=np.int32) - is_quote + (1 if in_string else 0)
            outside = (quotes_before % 2 == 0) & ~is_quote
            delta = np.zeros(len(chars), dtype=np.int32)
            delta[outside & ((chars == _OPEN) | (chars == _OPEN_L))] = 1
            delta[outside & ((chars == _CLOSE) | (chars == _CLOSE_L))] = -1
            level = depth + np.cumsum(delta, dtype=np.int32)
            opens = outside & (chars == _OPEN) & (level == 3)
            closes = outside & (chars == _CLOSE) & (level == 2)
            starts.append(special[opens] + base)
            ends.append(special[closes] + base + 1)
            if len(level):
                depth = int(level[-1])
            in_string = bool((int(is_quote.sum()) + (1 if in_string else 0)) % 2)
            base += n
            bar.update(n)
    starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    ends = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
    if depth != 0 or in_string or len(starts) != len(ends):
        frame = min(len(starts), len(ends))
        raise DataError(f"JSON ends inside frame {frame} (depth {depth}{', in a string' if in_string else ''}): "
                        "the file is truncated or corrupt", path, frame)
    return np.stack([starts, ends], axis=1).astype(np.int64)


class MPtrjDataset(FrameDataset):
    """Frames of MPtrj_2022.9_full.json (or any file in its schema).

    Args:
        energy: "corrected" (MP2020-corrected total energy, the usual training target) or
            "uncorrected" (raw VASP total energy), eV.
        progress: show a progress bar while indexing (default: for files over 256 MB).
    Each record keeps ``magmom`` (μB per site) when the file has it; ``name`` is "mp_id/frame_id".
    """

    format_name = "mptrj"

    def __init__(self, path, energy: str = "corrected", progress: bool | None = None, **options):
        super().__init__(path, **options)
        if energy not in ENERGY_FIELDS:
            raise ValueError(f"energy must be one of {sorted(ENERGY_FIELDS)}, got {energy!r}")
        self.energy_field = ENERGY_FIELDS[energy]
        if progress is None:  # a bar only where indexing takes noticeable time
            progress = os.path.getsize(self.path) > (256 << 20)
        self._ranges = cached_index(self.path, lambda p: index_mptrj_json(p, progress=progress), "mptrj")
        self._handle = None
        self._pid = None

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = open(self.path, "rb"), os.getpid()
        return self._handle

    def _length(self) -> int:
        return len(self._ranges)

    def frame_id(self, i: int) -> str:
        """The frame's key in the file ("mp-1234-5-6" style)."""
        start = int(self._ranges[i, 0])
        lo = max(0, start - 512)
        f = self._file()
        f.seek(lo)
        match = _KEY_BEFORE.search(f.read(start - lo))
        return json.loads(b'"' + match.group(1) + b'"') if match else str(i)

    def read_record(self, i: int) -> dict:
        start, end = (int(x) for x in self._ranges[i])
        f = self._file()
        f.seek(start)
        return _loads(f.read(end - start))

    def _read(self, i: int) -> AtomicData:
        rec = self.read_record(i)

        def need(mapping, key, where=""):
            if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
                raise DataError("missing", key=f"{where}{key}")
            return mapping[key]

        structure = need(rec, "structure")
        lattice = need(structure, "lattice", "structure.")
        sites = need(structure, "sites", "structure.")
        numbers, positions = [], []
        for k, site in enumerate(sites):
            species = need(site, "species", f"structure.sites[{k}].")
            if len(species) != 1 or abs(float(species[0].get("occu", 1)) - 1) > 1e-8:
                raise DataError(f"site {k} is partially occupied ({species}); MLIPs need ordered structures",
                                key="structure.sites")
            element = species[0].get("element")
            if element not in ATOMIC_NUMBERS:
                raise DataError(f"unknown element {element!r} at site {k}", key="structure.sites")
            numbers.append(ATOMIC_NUMBERS[element])
            positions.append(need(site, "xyz", f"structure.sites[{k}]."))
        stress = np.asarray(need(rec, "stress"), dtype=np.float64) * -KBAR_TO_EV_PER_A3
        magmom = rec.get("magmom")
        return AtomicData.build(
            pos=positions,
            atomic_numbers=numbers,
            cell=need(lattice, "matrix", "structure.lattice."),
            pbc=lattice.get("pbc", (True, True, True)),
            energy=need(rec, self.energy_field),
            forces=need(rec, "force"),
            stress=stress,
            magmom=magmom,
            charge=int(round(float(structure.get("charge") or 0))),
            name=f"{rec.get('mp_id', '?')}/{self.frame_id(i)}",
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"] = None
        return state


class MPtrjExtXYZDataset(ExtXYZDataset):
    """MPtrj as the usual converters write it to extxyz (stress already in eV/Å^3, ASE sign).

    ``energy`` picks the corrected (``corrected_total_energy`` / ``mp2020_corrected_energy``) or
    the uncorrected energy (``uncorrected_total_energy``, else the converter's ``energy``).
    """

    format_name = "mptrj_extxyz"

    def __init__(self, path, energy: str = "corrected", **options):
        if energy not in EXTXYZ_ENERGY_KEYS:
            raise ValueError(f"energy must be one of {sorted(EXTXYZ_ENERGY_KEYS)}, got {energy!r}")
        self.energy_choice = energy
        super().__init__(path, **options)

    def _read(self, i: int) -> AtomicData:
        atoms = self.read_atoms(i)
        results = atoms.calc.results if atoms.calc is not None else {}
        for key in EXTXYZ_ENERGY_KEYS[self.energy_choice]:
            if key in atoms.info or key in results:
                return AtomicData.from_ase(atoms, energy_key=key, source=self.path, frame=i,
                                           name=str(atoms.info.get("frame_id", i)))
        raise DataError(f"no {self.energy_choice} energy", key=" or ".join(EXTXYZ_ENERGY_KEYS[self.energy_choice]))
