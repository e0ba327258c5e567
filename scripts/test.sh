#!/usr/bin/env bash
# Set up (if needed) and run the test suite. Triton kernels run through the CPU interpreter.
# Tests run in one pytest worker per core (pytest-xdist), each worker on one thread; modules with
# expensive fixtures are each kept on one worker (pytest.mark.xdist_group), the rest spread test by test; MLIP_TEST_WORKERS=0 runs them in one
# process (arguments after the script's name go to pytest either way).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TRITON_INTERPRET=1
workers=${MLIP_TEST_WORKERS:-auto}
if [ "$workers" = "0" ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
export OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -q -n "$workers" --dist loadgroup "$@"
