"""Per-step kernels of the PyTorch backend: in-place where safe, dtype- and
device-preserving, built on torch's own convolution and pooling kernels.

Each function is one equation of the rule (see :mod:`tess_spec` for the
reference form); :mod:`.backend` composes them.  None of them builds an
autograd graph: the backend calls them under :func:`torch.no_grad`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "current",
    "lif_inplace",
    "spike_into",
    "psi_triangle",
    "psi_fast_sigmoid",
    "PSI",
    "decay_add_inplace",
    "corr",
    "pool",
    "pool_vjp",
    "standardize",
    "standardize_vjp",
    "WS_EPS",
]

WS_EPS = 1e-4
"""The ε inside weight standardisation's square root (as :data:`tess_spec.weight_std.WS_EPS`)."""


def current(kind: str, x: torch.Tensor, w_hat: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Synaptic current ``I[t] = Ŵ · x[t] (+ b)``: same-padded stride-1 ``conv2d`` or ``linear``."""
    if kind == "conv":
        return F.conv2d(x, w_hat, bias, padding=w_hat.shape[-1] // 2)
    return F.linear(x, w_hat, bias)


def lif_inplace(u: torch.Tensor, o: torch.Tensor, cur: torch.Tensor, leak: float, reset: str, amount: float) -> None:
    """``u ← γ(u - r·o) + I`` (soft) or ``u ← γ·u·(1 - o) + I`` (hard), in place on ``u``."""
    if reset == "soft":
        if amount:
            u.sub_(o * amount)
    else:
        u.mul_(1 - o)
    u.mul_(leak)
    u.add_(cur)


def spike_into(o: torch.Tensor, u: torch.Tensor, theta: float) -> None:
    """``o ← (u > θ)`` (strict inequality), written into ``o`` in its dtype."""
    o.copy_(u > theta)


def psi_triangle(u: torch.Tensor, theta: float) -> torch.Tensor:
    """``ψ = 0.3 · max(0, 1 - |u - θ|)`` (a new tensor)."""
    r = (u - theta).abs_()
    return r.neg_().add_(1).clamp_(min=0).mul_(0.3)


def psi_fast_sigmoid(u: torch.Tensor, theta: float) -> torch.Tensor:
    """``ψ = 1 / (100·|u - θ| + 1)²`` (a new tensor)."""
    r = (u - theta).abs_().mul_(100).add_(1)
    return r.square_().reciprocal_()


PSI = {"triangle": psi_triangle, "fast_sigmoid": psi_fast_sigmoid}
"""ψ kernels by name (the names of :data:`tess_spec.PSI_NAMES`)."""


def decay_add_inplace(trace: torch.Tensor, value: torch.Tensor, decay: float) -> None:
    """``trace ← λ · trace + value`` (both eligibility traces have this form)."""
    trace.mul_(decay).add_(value)


def corr(delta: torch.Tensor, inp: torch.Tensor, kind: str, weight_shape: tuple[int, ...]) -> torch.Tensor:
    """``δ ⊗ x`` summed over the batch: ``δᵀ x`` (linear) or the conv weight-gradient
    correlation ``G[f,c,a,b] = Σ_{n,i,j} δ[n,f,i,j] · x_pad[n,c,i+a,j+b]`` computed by
    torch's convolution-backward kernel (:func:`torch.nn.grad.conv2d_weight`)."""
    if kind == "linear":
        return delta.t() @ inp
    return torch.nn.grad.conv2d_weight(inp, weight_shape, delta, padding=weight_shape[-1] // 2)


def pool(x: torch.Tensor, kind: str | None, p: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Block pooling and, for max pooling, the flat argmax index of every window.

    ``max``/``avg``: window = stride = ``p`` (floor); ``global_avg`` → ``(B, C, 1, 1)``.
    torch's max pool keeps the FIRST maximal element of each window in row-major
    order, which is the spec's gradient routing.
    """
    if kind is None:
        return x, None
    if kind == "global_avg":
        return x.mean(dim=(2, 3), keepdim=True), None
    if kind == "max":
        return F.max_pool2d(x, p, p, return_indices=True)
    return F.avg_pool2d(x, p, p), None


def pool_vjp(
    g: torch.Tensor, x_shape: tuple[int, ...], kind: str | None, p: int, indices: torch.Tensor | None
) -> torch.Tensor:
    """Vector-Jacobian product of :func:`pool` at an input of shape ``x_shape``.

    max: ``g`` goes to the recorded argmax of each window; avg: ``g / p²`` spread over the
    window; global_avg: ``g / (H·W)``.  Rows and columns cropped by the floor receive zero.
    """
    if kind is None:
        return g
    b, c, h, w = x_shape
    if kind == "global_avg":
        return (g / (h * w)).expand(x_shape).contiguous()
    if kind == "max":
        assert indices is not None
        full = torch.zeros((b, c, h * w), dtype=g.dtype, device=g.device)
        full.scatter_(2, indices.flatten(2), g.flatten(2))
        return full.view(x_shape)
    oh, ow = g.shape[2], g.shape[3]
    full = torch.zeros(x_shape, dtype=g.dtype, device=g.device)
    full[:, :, : oh * p, : ow * p] = (g / (p * p)).repeat_interleave(p, 2).repeat_interleave(p, 3)
    return full


def _ws_stats(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    f = weight.shape[0]
    w = weight.reshape(f, -1)
    n = w.shape[1]
    d = w - w.mean(dim=1, keepdim=True)
    var = (d * d).sum(dim=1, keepdim=True) / max(n - 1, 1)
    return d, torch.sqrt(var * n + WS_EPS), n


def standardize(weight: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``Ŵ_c = g_c · (W_c - mean(W_c)) / sqrt(var(W_c) · fan_in + 1e-4)`` (unbiased var), per row c."""
    d, s, _ = _ws_stats(weight)
    return (gain[:, None] * d / s).reshape(weight.shape)


def standardize_vjp(
    weight: torch.Tensor, gain: torch.Tensor, grad_hat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pull ``G = ∂L/∂Ŵ`` back to ``(∂L/∂W, ∂L/∂g)`` (closed form of
    :func:`tess_spec.weight_std.standardize_vjp`):

    ``∂L/∂g_c = Σ_j G_cj d_j / s``;
    ``∂L/∂W_cj = (Gx_j - mean(Gx)) / s - (Σ_i Gx_i d_i) · n · d_j / ((n-1) · s³)``, ``Gx = g_c G_c``.
    """
    f = weight.shape[0]
    d, s, n = _ws_stats(weight)
    G = grad_hat.reshape(f, -1)
    dgain = (G * d).sum(dim=1) / s[:, 0]
    gx = gain[:, None] * G
    dot = (gx * d).sum(dim=1, keepdim=True)
    dw = (gx - gx.mean(dim=1, keepdim=True)) / s - dot * n * d / (max(n - 1, 1) * s**3)
    return dw.reshape(weight.shape), dgain
