"""mlip.allocator: with glibc's malloc tuned, a calculator's steps reuse their pages (few page
faults a step); MLIP_MALLOC=system leaves malloc as it is (many). 216 atoms: on 64, glibc's own
adaptive threshold sometimes keeps the pages too (measured 24 to 8 400 faults a step untuned)."""

import json
import os
import subprocess
import sys


SCRIPT = """
import json, resource, sys
import numpy as np
from ase.build import bulk
from mlip.calculator import MLIPCalculator
from mlip.models import build
import mlip.allocator
atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (3, 3, 3)
atoms.calc = MLIPCalculator(build("facet", preset="mp").float())
rng = np.random.default_rng(0)
def step():
    atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
    atoms.get_forces()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(json.dumps({"tuned": mlip.allocator._tuned, "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3}))
"""


def faults_per_step(malloc: str) -> dict:
    env = dict(os.environ, MLIP_MALLOC=malloc, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_malloc_reuses_pages_and_system_leaves_it():
    tuned, system = faults_per_step("tuned"), faults_per_step("system")  # Linux with glibc, as CI
    assert tuned["tuned"] and not system["tuned"]
    assert tuned["faults"] < 0.25 * system["faults"], (tuned, system)
