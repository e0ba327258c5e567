"""How soon TransIP starts learning forces, per position encoding (model.position_encoding).

    python benchmarks/bench_transip_positions.py [--encodings none offset rotary] [--seeds 0 1 2]
                                              [--steps 600] [--lr 1e-3]

TransIP at its quickstart preset without the alignment loss, trained by a plain Adam loop (batches
of 8 drawn without replacement, loss 10 * MSE of the force components, output scale = the force
RMS of the training set) on 200 rMD17 ethanol structures (train_01, the first 200), tested on the
next 60 every 100 steps. A non-equivariant model first sits at the zero-force error (the mean |F|
of the test set) until its tokens learn which geometry matters; this measures how long, per
encoding and seed. Prints the test force MAE (meV/Å) per step, seed and encoding, and the mean.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from record import recorded

ROOT = Path(__file__).resolve().parents[1]


def curve(encoding: str, seed: int, steps: int, lr: float, train, test) -> list[float]:
    """Test force MAE (meV/Å) at steps 0, 100, ..., ``steps``."""
    from mlip.graph import collate
    from mlip.models import build

    torch.manual_seed(seed)
    model = build("transip", preset="quickstart", alignment_weight=0.0, position_encoding=encoding)
    force_rms = float(torch.cat([f.forces for f in train]).pow(2).mean().sqrt())
    model.set_statistics(scale=force_rms)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    test_batch = collate(test, cutoff=model.cutoff, max_neighbors=model.max_neighbors)

    def test_mae() -> float:
        model.eval()
        forces = model(test_batch)["forces"].detach()
        model.train()
        return 1000 * float((forces - test_batch.forces).abs().mean())

    rng = np.random.default_rng(seed)
    maes, step = [test_mae()], 0
    while step < steps:
        for chosen in rng.permutation(len(train)).reshape(-1, 8):
            batch = collate([train[i] for i in chosen], cutoff=model.cutoff, max_neighbors=model.max_neighbors)
            loss = 10 * (model(batch)["forces"] - batch.forces).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 100 == 0:
                maes.append(test_mae())
            if step >= steps:
                break
    return maes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encodings", nargs="+", default=["none", "offset", "rotary"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    from mlip.data import open_dataset

    dataset = open_dataset(str(ROOT / "data" / "rmd17" / "rmd17_ethanol_train_01.npz"))
    frames = [dataset[i] for i in range(260)]
    train, test = frames[:200], frames[200:]
    zero = 1000 * float(torch.cat([f.forces for f in test]).abs().mean())
    checkpoints = list(range(0, args.steps + 1, 100))
    print(f"rMD17 ethanol, 200 training / 60 test structures, Adam lr {args.lr:g}, batch 8; test force MAE "
          f"(meV/Å) by step; zero-force error {zero:.1f}")
    print(f"{'encoding':<10}{'seed':>5}" + "".join(f"{s:>8}" for s in checkpoints) + f"{'s':>7}")
    for encoding in args.encodings:
        rows = []
        for seed in args.seeds:
            start = time.perf_counter()
            rows.append(curve(encoding, seed, args.steps, args.lr, train, test))
            print(f"{encoding:<10}{seed:>5}" + "".join(f"{v:>8.1f}" for v in rows[-1])
                  + f"{time.perf_counter() - start:>7.0f}", flush=True)
        print(f"{encoding:<10}{'mean':>5}" + "".join(f"{v:>8.1f}" for v in np.mean(rows, axis=0)), flush=True)


if __name__ == "__main__":
    recorded(main)
