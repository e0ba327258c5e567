#!/usr/bin/env bash
# Prepare .gpu/ (git-ignored): the Python wheels scripts/gpu_check.sh installs on a GPU machine that
# has torch, triton and CUDA but no network (Python 3.12, x86-64): mlip's own needs (ase, vesin, ...)
# and the peers' (SevenNet-0 with its checkpoint only, MACE with the e3nn it pins, cuEquivariance).
# Run here, where pip reaches the registry; carry .gpu to the GPU machine (under 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu
rm -rf "$out"; mkdir -p "$out/common" "$out/mace"
download() {  # DEST NAME==VERSION...
  local dest=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$dest" "$@"
}
# mlip: what its models, graph builder and calculator import beyond the GPU image's packages
download "$out/common" ase==3.29.0 vesin==0.6.2
# SevenNet-0 and MACE with their runtime needs missing from the GPU image; cuEquivariance for both
download "$out/common" sevenn==0.13.0 braceexpand==0.1.7 matscipy==1.3.1 mace-torch==0.3.16 torch-ema==0.3 \
  prettytable==3.18.0 configargparse==1.9.0 gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3 \
  lmdb==3.0.0 orjson==3.13.0 cuequivariance==0.13.0 cuequivariance-torch==0.13.0 \
  cuequivariance-ops-torch-cu13==0.13.0
download "$out/mace" e3nn==0.4.4  # MACE pins it; SevenNet wants >= 0.5 (the image's)
# the sevenn wheel carries four checkpoints (43 MB); keep SevenNet-0 (11Jul2024), the one "7net-0" loads
python3 - "$out/common" <<'PY'
import pathlib, sys, zipfile
folder = pathlib.Path(sys.argv[1])
wheel = next(folder.glob("sevenn-*.whl"))
kept = folder / ("trimmed-" + wheel.name)
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(kept, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if "pretrained_potentials/" in item.filename and item.filename.endswith(".pth") \
                and "SevenNet_0__11Jul2024" not in item.filename:
            continue
        dst.writestr(item, src.read(item))
wheel.unlink()
kept.rename(wheel)
PY
du -sh "$out"
