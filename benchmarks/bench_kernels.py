"""Time each mlip.kernels kernel against its torch reference, and show what every preset's kernel
launches need of a GPU.

    python benchmarks/bench_kernels.py [--repeat 20] [--no-compile-table]

On CUDA: for every kernel, Triton and reference, the time of the forward, forward + backward, and
forward + double backward (the gradient of a gradient, as training on forces takes it), their
ratios, and the peak memory of the forward + backward and of the double backward. Sizes: the
sphere-grid MLP at Facet "mp" (lmax 2, 96 -> 192 -> 96 channels), attention at EScAIP "paper" (8
heads, 30 neighbours, head dim 64 expanded to 256 by lmax 3), the Gaunt edge product at Facet lmax 2
(64 channels, 4 radial heads). Without a GPU it says so and times the
torch references only (on CPU the Triton kernels run only through the interpreter, for the tests).

Then (anywhere, no GPU needed) the compile table: every distinct launch of one training step of
every registered preset (mlip.models.kernel_shapes), compiled ahead of time for an A100 (sm_80)
and an H100/H200 (sm_90): shared memory per program against each target's limit, registers and
spilled bytes per thread.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List

import torch

from mlip import kernels
from mlip.nn.grid_mlp import GridProductMLP
from mlip.nn.so2 import EdgeFrame

from record import recorded


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
        module = GridProductMLP(2, 96, 192).to(device)
        args = (module.grid.to_grid_matrix, module.grid.from_grid_matrix)
        return ((lambda x, lw: kernels.grid_mlp(x, *args, lw, module.left.bias, module.right.weight, module.right.bias,
                                                module.out.weight)), [rand(n, 9, 96), rand(192, 96)],
                f"{n} nodes, lmax 2 ({module.grid.num_points} points), 96 -> 192 -> 96 channels (Facet mp)")

    def neighbor_attention():
        atoms = n // 4
        q, k = (rand(atoms, 8, 31, 256) for _ in range(2))
        v = rand(atoms, 8, 31, 64)
        bias = torch.zeros(atoms, 31, device=device)
        return (lambda q, k, v: kernels.neighbor_attention(q, k, v, bias, 0.125)), [q, k, v], \
            f"{atoms} atoms, 8 heads, 30 neighbours + self, q/k dim 256, v dim 64 (EScAIP paper)"

    def gaunt_edge():
        from mlip.nn.gaunt import fourier_projection

        e, nodes, lmax = edges // 8, n // 8, 2
        p = torch.from_numpy(fourier_projection(lmax, 2 * lmax))
        proj = torch.stack([p.real, p.imag], dim=1).reshape(p.shape[0], 2, -1).float().to(device)
        source = torch.randint(0, nodes, (e,), generator=g).to(device)
        return ((lambda x, y: kernels.gaunt_edge_product(x, source, y, proj)),
                [rand(nodes, 64, 2, (2 * lmax + 1) ** 2), rand(e, 4, 2, (2 * lmax + 1) ** 2)],
                f"{e} edges, lmax 2 x 2 -> 2, 64 channels, 4 radial heads (Facet, tensor_product=gaunt)")

    return {"segment_sum": segment_sum, "bspline": bspline, "edge_rotation": edge_rotation, "grid_mlp": grid_mlp,
            "neighbor_attention": neighbor_attention, "gaunt_edge": gaunt_edge}


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
        for label, step in (("bwd peak MB", backward), ("2bwd peak MB", double_backward)):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            out[label] = torch.cuda.max_memory_allocated() / 2**20
    return out


def compile_table() -> None:
    """Every preset's launches compiled for sm_80 and sm_90: shared memory against the limits."""
    from mlip.kernels.aot import SHARED_MEMORY_LIMIT, compile_specs
    from mlip.models.kernel_shapes import preset_launches

    start = time.perf_counter()
    users: Dict = {}
    for (model, preset, dtype), specs in preset_launches().items():
        for spec in specs:
            users.setdefault(spec, set()).add(f"{model}/{preset}")
    reports = compile_specs(list(users))
    by_spec: Dict = {}
    for r in reports:
        by_spec.setdefault(r.spec, {})[r.arch] = r
    archs = sorted(SHARED_MEMORY_LIMIT)
    print(f"\ncompile table: {len(users)} distinct launches of one training step of every preset, float32 and "
          f"float64, compiled for " + ", ".join(f"sm_{a} (shared memory limit {SHARED_MEMORY_LIMIT[a]:,} B)"
                                               for a in archs) + f" in {time.perf_counter() - start:.0f} s")
    print(f"{'kernel, dtype, constexprs, warps':<100}" + "".join(f"{f'sm_{a} shared B':>16}{'regs':>6}{'spill B':>9}"
                                                                 for a in archs) + "  fits  presets")
    worst = {a: 0 for a in archs}
    for spec, per_arch in sorted(by_spec.items(), key=lambda item: item[0].describe()):
        line = f"{spec.describe():<100}"
        for a in archs:
            r = per_arch[a]
            line += f"{r.shared if r.shared is not None else 'error':>16}{r.registers or '-':>6}{r.spilled or 0:>9}"
            worst[a] = max(worst[a], r.shared or 0)
        fits = all(per_arch[a].fits for a in archs)
        print(line + f"  {'yes' if fits else 'NO':<5} " + ", ".join(sorted(users[spec])))
    failed = [r for r in reports if not r.fits]
    print(f"{len(reports) - len(failed)} of {len(reports)} compilations within limits; largest shared memory: "
          + ", ".join(f"sm_{a} {worst[a]:,} B of {SHARED_MEMORY_LIMIT[a]:,}" for a in archs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-compile-table", action="store_true", help="skip the ahead-of-time compile table")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        print("no GPU here: timing the torch references on the CPU only (the Triton kernels need CUDA; on the CPU "
              "they run only through the interpreter, for the tests)")
    backends: List[str] = ["triton", "torch"] if cuda else ["torch"]
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, float32 (IEEE products: TF32 off)")
    columns = ["forward", "fwd+bwd", "fwd+2bwd"] + (["bwd peak MB", "2bwd peak MB"] if cuda else [])
    print(f"\n{'kernel':<20}{'backend':<9}" + "".join(f"{c + ('' if 'MB' in c else ' ms'):>14}" for c in columns))
    for name, make in cases(device, 1.0 if cuda else 0.1).items():
        fn, inputs, description = make()
        rows = {}
        for b in backends:
            with kernels.backend(b):
                rows[b] = measure(fn, inputs, args.repeat if cuda else max(2, args.repeat // 10), device)
            print(f"{name:<20}{b:<9}" + "".join(f"{rows[b][c]:>14.3f}" for c in columns))
        if cuda:
            print(f"{'':<20}{'ratio':<9}" + "".join(f"{rows['torch'][c] / rows['triton'][c]:>13.2f}x" for c in columns)
                  + "   (reference / Triton)")
        print(f"{'':<29}{description}")
    if not args.no_compile_table:
        compile_table()


if __name__ == "__main__":
    recorded(main)
