#!/usr/bin/env bash
# A regular install, as a user gets it: build the wheel, install it into a fresh virtual environment
# (torch pinned to the CPU build), and from a folder outside the repository run
# `mlip quickstart --data-only`, a short `mlip train` and `mlip export`. CI runs it (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}
echo "check_wheel: building the wheel and installing it into a fresh environment..."
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/dist" . >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check -c requirements/cpu-constraints.txt \
  "$work"/dist/mlip_engine-*.whl >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
cd "$work"  # outside the repository: nothing of the checkout is on the path
mlip="$work/venv/bin/mlip"
"$work/venv/bin/python" - "$repo" <<'PY'
import sys, mlip, mlip.kernels, mlip.resources
repo = sys.argv[1]
assert not mlip.__file__.startswith(repo), f"mlip imported from the checkout: {mlip.__file__}"
for name in ("configs", "samples"):
    assert str(mlip.resources.shipped(name)).startswith(str(mlip.resources._PACKAGE)), name
from pathlib import Path
import mlip.integrations.lammps as lammps_plugin
for name in ("pair_mlip.cpp", "pair_mlip.h", "plugin.cpp", "CMakeLists.txt"):
    assert (Path(lammps_plugin.__file__).parent / name).is_file(), f"the wheel lacks the LAMMPS plugin's {name}"
import mlip.kernels.operators
assert mlip.kernels.operators.SOURCE.is_file(), "the wheel lacks mlip's operators (csrc/mlip_ops.cpp)"
import mlip.analysis, mlip.simulate.forecast  # force-free MD: its package and its bundled trajectory
assert (mlip.resources.data_dir() / "trajectories" / "quartz_bks_300K.lammpstrj.gz").is_file(), "no quartz trajectory"
print(f"check_wheel: mlip {mlip.__version__} from {mlip.__file__}")
PY
"$mlip" quickstart --data-only --quiet >"$work/quickstart.log" 2>&1 || { cat "$work/quickstart.log"; exit 1; }
tail -n 1 "$work/quickstart.log"
"$mlip" train experiment=quickstart data.train_size=16 data.val_fraction=0.01 data.batch_size=4 data.test=null \
  model.channels=8 model.hidden=16 model.num_layers=1 model.radial_heads=2 trainer.max_epochs=1 \
  run_dir="$work/runs" >"$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
checkpoint="$work"/runs/quickstart/latest/checkpoints/best.ckpt
"$mlip" export "$checkpoint" --format torchscript --out "$work/model.pt"
echo "check_wheel: the installed wheel ran quickstart --data-only, train and export outside the repository"
