"""Read and write the structures that relaxations and MD start from.

Any file ASE reads (CIF, POSCAR/CONTCAR, extxyz, xyz, traj, ASE db, ...), with every frame of a
multi-frame file, or pymatgen where ASE cannot (pymatgen's Structure.from_file formats); a
directory contributes every file in it that either reads, in sorted order. ``file@INDEX`` takes
frames as ASE's tools do: ``traj.xyz@0`` the first, ``traj.xyz@-1`` the last, ``traj.xyz@0:8`` the
first eight.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Tuple

from ase import Atoms


def _read_file(path: Path) -> List[Atoms]:
    import ase.io

    errors = []
    try:
        frames = ase.io.read(str(path), index=":")
        frames = frames if isinstance(frames, list) else [frames]
        if frames:
            return frames
        errors.append("ASE: no frames")
    except Exception as error:  # ASE raises many types for unknown or bad files
        errors.append(f"ASE: {type(error).__name__}: {error}")
    try:
        from pymatgen.core import Structure
        from pymatgen.io.ase import AseAtomsAdaptor

        return [AseAtomsAdaptor.get_atoms(Structure.from_file(str(path)))]
    except Exception as error:
        errors.append(f"pymatgen: {type(error).__name__}: {error}")
    raise ValueError(f"{path}: cannot read structures ({'; '.join(errors)})")


def _frame_selection(path: str):
    """(file, selected frame numbers of n frames -> list) for ``file@INDEX``; (path, None) otherwise."""
    from ase.io.formats import string2index

    if os.path.exists(path) or "@" not in path:
        return path, None
    file, index = path.rsplit("@", 1)
    try:
        selection = string2index(index)
    except ValueError:
        selection = None
    if not isinstance(selection, (int, slice)):
        raise ValueError(f"{path}: {index!r} is not a frame index (file@0, file@-1, file@0:8)")
    return file, lambda n: list(range(n))[selection] if isinstance(selection, slice) else [range(n)[selection]]


def read_structures(paths) -> List[Tuple[str, Atoms]]:
    """(name, Atoms) for every structure in ``paths`` (files, ``file@INDEX`` selections or directories);
    names are ``file`` for one-frame files and ``file:i`` for frame i of a multi-frame file."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: List[Tuple[str, Atoms]] = []
    for given in paths:
        name, select = _frame_selection(str(given))
        path = Path(name)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")) if path.is_dir() \
            else [path]
        for file in files:
            try:
                frames = _read_file(file)
            except ValueError:
                if path.is_dir():  # a directory may hold other files (READMEs, logs): say which were left
                    print(f"mlip: skipped {file} (not a structure file ASE or pymatgen reads)")
                    continue
                raise
            if select is not None:
                try:
                    chosen = select(len(frames))
                except IndexError:
                    raise ValueError(f"{given}: {file} holds {len(frames)} frames") from None
            else:
                chosen = range(len(frames))
            for i in chosen:
                out.append((file.name if len(frames) == 1 else f"{file.name}:{i}", frames[i]))
    if not out:
        raise ValueError(f"no structures found in {', '.join(map(str, paths))}")
    return out


def write_atomic(path, frames, format: str | None = None) -> None:
    """Write ``frames`` with ASE to ``path`` via a temporary file and a rename (never half-written)."""
    import ase.io

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    ase.io.write(str(tmp), frames, format=format or ase.io.formats.filetype(str(path), read=False))
    os.replace(tmp, path)
