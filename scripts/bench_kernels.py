"""Time each mlip.kernels kernel against its torch reference.

    python scripts/bench_kernels.py [--repeat 20]

On CUDA: for every kernel, Triton and reference, the time of the forward, forward + backward, and
forward + double backward (the gradient of a gradient, as training on forces takes it), their
ratios, and the peak memory of the double backward. Without a GPU it says so and times the torch
references only (on CPU the Triton kernels run only through the interpreter, which is for tests).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List

import torch

from mlip import kernels
from mlip.nn.grid_mlp import GridProductMLP
from mlip.nn.so2 import EdgeFrame


def cases(device: torch.device, scale: float) -> Dict[str, Callable]:
    """name -> make() returning (fn(*inputs) -> out, inputs that require grad, description)."""
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape, grad=True):
        return torch.randn(*shape, generator=g).to(device).requires_grad_(grad)

    n = int(20000 * scale)
    edges = 30 * n

    def segment_sum():
        index = torch.sort(torch.randint(0, n, (edges,), generator=g)).values.to(device)
        return (lambda src: kernels.segment_sum(src, index, n)), [rand(edges, 64)], f"{edges} edges x 64 -> {n} nodes"

    def bspline():
        r = (torch.rand(edges, generator=g) * 5.0).to(device).requires_grad_()
        return (lambda r, c: kernels.bspline(r, c, 5.0)), [r, rand(10, 64)], f"{edges} edges, 10 knots x 64 paths"

    def edge_rotation():
        frame = EdgeFrame(4, 2).to(device)
        e = edges // 4
        d = frame.matrices(torch.randn(e, 3, generator=g).to(device)).detach().requires_grad_()
        return ((lambda d, x: kernels.rotate_into(d, x, frame.row_start, frame.row_end)), [d, rand(e, 25, 64)],
                f"{e} edges, lmax 4, mmax 2, 64 channels")

    def grid_mlp():
        module = GridProductMLP(3, 64, 128).to(device)
        args = (module.grid.to_grid_matrix, module.grid.from_grid_matrix)
        return ((lambda x, lw: kernels.grid_mlp(x, *args, lw, module.left.bias, module.right.weight, module.right.bias,
                                                module.out.weight)), [rand(n, 16, 64), rand(128, 64)],
                f"{n} nodes, lmax 3 ({module.grid.num_points} points), 64 -> 128 -> 64 channels")

    def neighbor_attention():
        q, k, v = (rand(n, 8, 33, 16) for _ in range(3))
        bias = torch.zeros(n, 33, device=device)
        return (lambda q, k, v: kernels.neighbor_attention(q, k, v, bias, 0.25)), [q, k, v], \
            f"{n} atoms, 8 heads, 32 neighbours, head dim 16"

    return {"segment_sum": segment_sum, "bspline": bspline, "edge_rotation": edge_rotation, "grid_mlp": grid_mlp,
            "neighbor_attention": neighbor_attention}


def timed(step: Callable, repeat: int, device: torch.device) -> float:
    step()  # warm-up (and compilation)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat * 1e3


def measure(fn, inputs, repeat: int, device: torch.device) -> Dict[str, float]:
    def forward():
        with torch.no_grad():
            fn(*inputs)

    def backward():
        torch.autograd.grad(fn(*inputs).square().sum(), inputs)

    def double_backward():
        grads = torch.autograd.grad(fn(*inputs).square().sum(), inputs, create_graph=True)
        torch.autograd.grad(sum(gr.square().sum() for gr in grads), inputs, allow_unused=True)

    out = {"forward": timed(forward, repeat, device), "fwd+bwd": timed(backward, repeat, device),
           "fwd+2bwd": timed(double_backward, repeat, device)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        double_backward()
        torch.cuda.synchronize()
        out["peak MB"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        print("no GPU here: timing the torch references on the CPU only (the Triton kernels need CUDA; on the CPU "
              "they run only through the interpreter, for the tests)")
    backends: List[str] = ["triton", "torch"] if cuda else ["torch"]
    columns = ["forward", "fwd+bwd", "fwd+2bwd"] + (["peak MB"] if cuda else [])
    print(f"\n{'kernel':<20}{'backend':<9}" + "".join(f"{c + (' ms' if c != 'peak MB' else ''):>13}" for c in columns))
    for name, make in cases(device, 1.0 if cuda else 0.1).items():
        fn, inputs, description = make()
        rows = {}
        for b in backends:
            with kernels.backend(b):
                rows[b] = measure(fn, inputs, args.repeat if cuda else max(2, args.repeat // 10), device)
            print(f"{name:<20}{b:<9}" + "".join(f"{rows[b][c]:>13.3f}" for c in columns))
        if cuda:
            print(f"{'':<20}{'ratio':<9}" + "".join(f"{rows['torch'][c] / rows['triton'][c]:>12.2f}x" for c in columns)
                  + "   (reference / Triton)")
        print(f"{'':<29}{description}")


if __name__ == "__main__":
    main()
