"""mlip.kernels.recompute: which gradients a custom backward must give, as the engine will use them."""

import torch

from mlip.kernels.recompute import wanted_gradients


class _Probe(torch.autograd.Function):
    """a * b * c with a non-tensor argument between the tensors; records what its backward is asked."""

    asked: list = []

    @staticmethod
    def forward(ctx, a, scale: float, b, c):
        ctx.save_for_backward(a, b, c)
        return a * b * c * scale

    @staticmethod
    def backward(ctx, grad):
        a, b, c = ctx.saved_tensors
        _Probe.asked.append(wanted_gradients(ctx, (a, None, b, c)))
        return grad * b * c, None, grad * a * c, grad * a * b


def test_only_the_gradients_the_engine_uses_are_wanted():
    a, c = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    b = torch.randn(3)  # needs no gradient
    _Probe.asked.clear()
    torch.autograd.grad(_Probe.apply(a * 2, 0.5, b, c).sum(), a)  # a's branch (through a view) only
    torch.autograd.grad(_Probe.apply(a * 2, 0.5, b, c).sum(), c)  # c only
    torch.autograd.grad(_Probe.apply(a * 2, 0.5, b, c).sum(), [a, c])
    _Probe.apply(a * 2, 0.5, b, c).sum().backward()  # .backward(): every leaf
    assert _Probe.asked == [[True, False, False, False], [False, False, False, True],
                            [True, False, False, True], [True, False, False, True]]
