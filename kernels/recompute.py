"""Backward by recomputing the torch reference: for the fused kernels whose forward keeps no
intermediate (the sphere grid, the attention matrix). The reference's vector-Jacobian product is
taken with torch.func.vjp, a function transform: it never walks into the inputs' own history (an
input such as the attention bias may feed earlier layers too), and it composes with the outer
autograd, so the backward is itself differentiable (training on forces takes the gradient of the
gradient)."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch


def reference_vjp(reference: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor],
                  needs_grad: Sequence[bool], grad_output: torch.Tensor) -> List[Optional[torch.Tensor]]:
    """Gradients of <reference(*inputs), grad_output> for the inputs with ``needs_grad`` (None for the rest)."""
    wanted = [i for i, need in enumerate(needs_grad) if need]
    result: List[Optional[torch.Tensor]] = [None] * len(inputs)
    if not wanted:
        return result

    def of_wanted(*xs):
        args = list(inputs)
        for i, x in zip(wanted, xs):
            args[i] = x
        return reference(*args)

    _, vjp = torch.func.vjp(of_wanted, *[inputs[i] for i in wanted])
    for i, g in zip(wanted, vjp(grad_output)):
        result[i] = g
    return result


def wanted_gradients(ctx, inputs: Sequence[Optional[torch.Tensor]]) -> List[bool]:
    """Which of a Function's leading inputs (``inputs``, as passed to its forward) this backward call
    must return a gradient for: those that need one (``ctx.needs_input_grad``) and whose gradient the
    autograd engine will use now. Forces take the gradient for positions only; the weights'
    gradients are skipped then, and a kernel can serve the call (the engine's own pruning, asked
    of the nodes the inputs' gradients go to, ``ctx.next_functions``: one per tensor input, through
    torch's private ``_will_engine_execute_node``; without it, every input that needs a gradient)."""
    wanted = list(ctx.needs_input_grad[: len(inputs)])
    will_execute = getattr(torch._C, "_will_engine_execute_node", None)
    edges = getattr(ctx, "next_functions", None)
    if will_execute is None or edges is None:
        return wanted
    edge = 0
    for i, t in enumerate(inputs):
        if not isinstance(t, torch.Tensor):
            continue  # no edge for an input that is not a tensor
        if wanted[i]:
            node = edges[edge][0]
            try:
                wanted[i] = node is not None and bool(will_execute(node))
            except RuntimeError:  # outside a backward pass
                wanted[i] = True
        edge += 1
    return wanted
