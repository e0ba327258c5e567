"""The compiled library of mlip's operators, for loading an exported TorchScript file without mlip.

An exported TorchScript file calls ``mlip::block_aggregate`` and ``mlip::grid_mlp``
(mlip.kernels.operators). Importing mlip registers them; a Python process that must not import mlip
loads the compiled library first::

    torch.ops.load_library(path)    # path: `python -c "from mlip.export.native import library; print(library())"`
    model = torch.jit.load("model.pt")

C++ programs compile the source (``mlip.kernels.operators.SOURCE``) into themselves instead (LAMMPS's
pair_style mlip, examples/cpp). The library is built once per source and torch version (about 20 s,
a C++17 compiler) under ``$MLIP_CACHE_DIR`` (default ``~/.cache/mlip``)/operators/<key>.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import List

from mlip.data.cache import cache_dir, locked_build
from mlip.kernels.operators import SOURCE

LIBRARY = "libmlip_ops.so"


def compile_command(sources: List[Path], output: Path, shared: bool) -> List[str]:
    """The compiler's command line for ``sources`` against the installed libtorch (an executable, or a
    shared library with ``shared``)."""
    import torch
    from torch.utils.cpp_extension import include_paths, library_paths

    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("a C++ compiler is needed to build mlip's operator library (install g++)")
    libs = library_paths()
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [compiler, "-std=c++17", "-O2", *(["-shared", "-fPIC"] if shared else []), *map(str, sources),
            "-o", str(output), f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *[f"-I{p}" for p in include_paths()],
            *[f"-L{p}" for p in libs], *[f"-Wl,-rpath,{p}" for p in libs], "-ltorch", "-ltorch_cpu", "-lc10"]


def library(force: bool = False) -> Path:
    """The path of the compiled operator library, built first if this source and torch have none."""
    import torch

    key = hashlib.sha256(SOURCE.read_bytes() + torch.__version__.encode()).hexdigest()[:16]

    def build(tmp: Path) -> None:
        run = subprocess.run(compile_command([SOURCE], tmp, shared=True), capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"building mlip's operator library from {SOURCE} failed:\n{run.stderr[-6000:]}")

    return locked_build(Path(cache_dir()) / "operators" / key / LIBRARY, build, force)
