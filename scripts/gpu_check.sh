#!/usr/bin/env bash
# The GPU check, end to end, sized for 10 minutes on one GPU. Run it first whenever a GPU is at hand:
#
#   bash scripts/gpu_bundle.sh                 # here, with network: the wheels the GPU image lacks -> .gpu/
#   bash scripts/gpu_check.sh [OUTDIR]         # on the GPU machine (its python3 has CUDA torch and triton)
#
# Steps, each under its own time limit, all output in OUTDIR/gpu_check.log (OUTDIR: $OUT, else
# runs/gpu_check):
#   1. the machine: GPU, driver, torch, triton
#   2. the kernel tests compiled for the real device (no interpreter): tests/kernels on CUDA tensors
#   3. bench_kernels.py: each kernel, Triton against its reference: forward, +backward, +double
#      backward, peak memory
#   4. check_presets.py: one training step of every preset, Triton against the references
#   5. bench_neighbors.py: vesin's CUDA path and the torch fallback against ase
#   6. bench_inference.py on CUDA at 1000 atoms: mlip Facet "mp", eSCN "oc20", EScAIP "paper" against
#      SevenNet-0 and MACE, plain and with cuEquivariance
# It goes on past a failing step and ends with one line a step (ok / FAILED / TIMED OUT).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_check}}
mkdir -p "$out"
log="$out/gpu_check.log"
: >"$log"
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 TRITON_DEFAULT_FP_FUSION=1

# packages the GPU image lacks, from .gpu/ (scripts/gpu_bundle.sh); mlip itself from this tree
if [ -d .gpu/common ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/mlip-site \
    .gpu/common/*.whl >>"$log" 2>&1
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/mlip-site-mace .gpu/mace/*.whl >>"$log" 2>&1
fi
export PYTHONPATH="$PWD:/tmp/mlip-site${PYTHONPATH:+:$PYTHONPATH}"
# kernels/ installs as mlip.kernels; without an install, a link gives the same package
"$python" -c "import mlip.kernels" 2>/dev/null || ln -sfn ../kernels mlip/kernels

summary=()
step() {  # NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo -e "\n===== $name (limit ${limit} s) =====" | tee -a "$log"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]} took=$((SECONDS - start))
  case $rc in
    0) summary+=("ok         $name (${took} s)") ;;
    124) summary+=("TIMED OUT  $name (${took} s)") ;;
    *) summary+=("FAILED     $name (exit $rc, ${took} s)") ;;
  esac
}

step "machine" 30 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; date -u; \
  $python -c 'import torch, triton; print(\"torch\", torch.__version__, \"triton\", triton.__version__, \
  \"cuda\", torch.version.cuda, torch.cuda.get_device_name())'"
step "kernel tests on the device (no interpreter)" 110 env MLIP_TEST_DEVICE=cuda "$python" -m pytest -q -p no:cacheprovider \
  tests/kernels/test_segment_sum.py tests/kernels/test_bspline.py tests/kernels/test_edge_rotation.py \
  tests/kernels/test_grid_mlp.py tests/kernels/test_attention.py tests/kernels/test_gaunt.py
step "bench_kernels (Triton against the references)" 90 "$python" benchmarks/bench_kernels.py --no-compile-table
step "one training step of every preset" 120 "$python" scripts/check_presets.py --device cuda
step "neighbour lists on the GPU" 45 "$python" benchmarks/bench_neighbors.py --sizes 1000 10000 --repeats 3
step "inference against SevenNet-0 and MACE at 1000 atoms" 180 "$python" benchmarks/bench_inference.py --device cuda \
  --sizes 1000 --molecule "" --steps 5 --min-seconds 1 --ours facet:mp escn:oc20 escaip:paper \
  --peers sevenn sevenn-cueq mace mace-cueq --peer-python "$python" --peer-path mace=/tmp/mlip-site-mace

echo -e "\n===== summary =====" | tee -a "$log"
printf '%s\n' "${summary[@]}" | tee -a "$log"
