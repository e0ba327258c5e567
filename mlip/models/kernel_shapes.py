"""The kernel launches each registered potential's presets make, recorded from the models
themselves: one training step (energy, forces and stress, a loss on all three, its gradient for the
weights: the forward, the first-order backward for forces without weight gradients, as inference
takes it, and the double backward) on a small crystal and on a molecule, with every kernel forced on
and recorded dry (the torch fallbacks compute; nothing runs on a GPU).
What mlip.kernels.aot compiles for the GPU targets, so the check follows the presets as they change.
Deep presets are recorded with two blocks: every block but the last launches the first one's shapes.

    preset_launches(dtypes=(torch.float32, torch.float64)) -> {(model, preset, dtype name): [LaunchSpec]}
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from mlip.data import AtomicData
from mlip.graph import collate
from mlip.kernels import backend
from mlip.kernels.launch import LaunchSpec, record
from mlip.models import build, registered


def probe_structures() -> List[AtomicData]:
    """A rattled 4-atom fcc copper cell (periodic, many images within any cutoff) and ethanol."""
    from ase.build import bulk, molecule

    out = []
    for seed, atoms in enumerate((bulk("Cu", "fcc", a=3.61, cubic=True), molecule("CH3CH2OH"))):
        atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
        out.append(AtomicData.from_ase(atoms))
    return out


def record_steps(model, dtype: torch.dtype) -> List[LaunchSpec]:
    """The distinct launches of a training step of ``model`` in ``dtype`` on each probe structure."""
    model = model.to(dtype).train()
    with backend("triton"), record(dry=True) as recorder:
        for structure in probe_structures():  # one at a time: a molecule's neighbour tables are narrower
            batch = collate([structure], cutoff=model.cutoff, max_neighbors=model.max_neighbors)
            batch.pos, batch.cell = batch.pos.to(dtype), batch.cell.to(dtype)
            out = model(batch)
            loss = out["energy"].square().sum() + out["forces"].square().sum() + out["stress"].square().sum()
            loss.backward()
    model.zero_grad(set_to_none=True)
    return list(recorder.specs)


def preset_launches(dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64)
                    ) -> Dict[Tuple[str, str, str], List[LaunchSpec]]:
    """{(model name, preset, dtype name): distinct launches} for every registered model and preset."""
    from mlip.models import _REGISTRY

    result = {}
    for name in registered():
        for preset, settings in getattr(_REGISTRY[name], "presets", {}).items():
            torch.manual_seed(0)
            # two blocks launch every shape a deeper stack does (the first block's shapes repeat in the
            # middle ones; the last may differ), at a fraction of the recording time
            layers = min(int(settings.get("num_layers", 2)), 2)
            model = build(name, preset=preset, num_layers=layers)
            for dtype in dtypes:
                result[(name, preset, str(dtype).replace("torch.", ""))] = record_steps(model, dtype)
    return result
