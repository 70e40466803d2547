"""Per-step kernels of the JAX backend: small pure ``jax.numpy`` functions, one
equation each (see :mod:`tess_spec` for the NumPy reference form).

Everything here is traced inside the backend's jit-compiled train step
(:mod:`.backend`); no function keeps state, draws random numbers or calls
autodiff.  Python-level arguments (block kind, pooling, kernel size, ψ name,
factors) are static: they shape the traced program, they are not traced values.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from jax import lax

__all__ = [
    "MATMUL_PRECISION",
    "lif_step",
    "spike",
    "psi_triangle",
    "psi_fast_sigmoid",
    "PSI",
    "decay_add",
    "conv_current",
    "linear_current",
    "conv_weight_corr",
    "corr",
    "pool",
    "pool_vjp",
    "standardize",
    "standardize_vjp",
    "lsg_signal",
    "readout_features",
    "adam_update",
    "sgd_update",
]

MATMUL_PRECISION = lax.Precision.HIGHEST
"""Precision of every matmul/convolution: full float32 (no TF32/bf16 passes on GPUs)."""

_CONV_DN = ("NCHW", "OIHW", "NCHW")


def lif_step(u_prev: jnp.ndarray, o_prev: jnp.ndarray, cur: jnp.ndarray, leak: float, reset: str,
             amount: float) -> jnp.ndarray:
    """``u[t] = γ(u[t-1] - r·o[t-1]) + I[t]`` (soft) or ``u[t] = γ·u[t-1]·(1 - o[t-1]) + I[t]`` (hard)."""
    if reset == "soft":
        return leak * (u_prev - amount * o_prev) + cur
    return leak * (u_prev * (1 - o_prev)) + cur


def spike(u: jnp.ndarray, theta: float) -> jnp.ndarray:
    """``o[t] = 1 if u[t] > θ else 0`` (strict), in u's dtype."""
    return (u > theta).astype(u.dtype)


def psi_triangle(u: jnp.ndarray, theta: float) -> jnp.ndarray:
    """``ψ = 0.3 · max(0, 1 - |u - θ|)``."""
    return 0.3 * jnp.maximum(0, 1 - jnp.abs(u - theta))


def psi_fast_sigmoid(u: jnp.ndarray, theta: float) -> jnp.ndarray:
    """``ψ = 1 / (100·|u - θ| + 1)²``."""
    return 1 / (100 * jnp.abs(u - theta) + 1) ** 2


PSI: dict[str, Callable[[jnp.ndarray, float], jnp.ndarray]] = {
    "triangle": psi_triangle,
    "fast_sigmoid": psi_fast_sigmoid,
}
"""ψ functions by name (the names of :data:`tess_spec.config.PSI_NAMES`)."""


def decay_add(trace: jnp.ndarray, value: jnp.ndarray, decay: float) -> jnp.ndarray:
    """``trace[t] = λ · trace[t-1] + value[t]`` (both eligibility traces q and h)."""
    return decay * trace + value


def conv_current(x: jnp.ndarray, w_hat: jnp.ndarray) -> jnp.ndarray:
    """``I = Ŵ ⋆ x``: same-padded stride-1 cross-correlation, ``(B,C,H,W)·(F,C,k,k) → (B,F,H,W)``."""
    p = w_hat.shape[-1] // 2
    return lax.conv_general_dilated(x, w_hat, (1, 1), [(p, p), (p, p)], dimension_numbers=_CONV_DN,
                                    precision=MATMUL_PRECISION)


def linear_current(x: jnp.ndarray, w_hat: jnp.ndarray) -> jnp.ndarray:
    """``I = x · Ŵᵀ``, ``(B, N)·(F, N) → (B, F)``."""
    return jnp.matmul(x, w_hat.T, precision=MATMUL_PRECISION)


def conv_weight_corr(delta: jnp.ndarray, x: jnp.ndarray, k: int) -> jnp.ndarray:
    """``G[f,c,a,b] = Σ_{n,i,j} δ[n,f,i,j] · x_pad[n,c,i+a,j+b]`` → ``(F, C, k, k)``.

    Written as one convolution whose "batch" is the input channel c, whose
    contracted feature is the sample n and whose kernel is δ.
    """
    p = k // 2
    out = lax.conv_general_dilated(
        x, delta, (1, 1), [(p, p), (p, p)],
        dimension_numbers=("CNHW", "IOHW", "NCHW"), precision=MATMUL_PRECISION,
    )  # (C, F, k, k)
    return jnp.transpose(out, (1, 0, 2, 3))


def corr(delta: jnp.ndarray, inp: jnp.ndarray, kind: str, k: int) -> jnp.ndarray:
    """Outer product summed over the batch (linear: ``δᵀ x``) or the conv weight correlation."""
    if kind == "linear":
        return jnp.matmul(delta.T, inp, precision=MATMUL_PRECISION)
    return conv_weight_corr(delta, inp, k)


def _windows(x: jnp.ndarray, p: int) -> jnp.ndarray:
    """``(B,C,H,W) → (B,C,H//p,W//p,p·p)`` (floor-cropped; window elements in row-major order)."""
    b, c, h, w = x.shape
    oh, ow = h // p, w // p
    xc = x[:, :, : oh * p, : ow * p].reshape(b, c, oh, p, ow, p)
    return jnp.transpose(xc, (0, 1, 2, 4, 3, 5)).reshape(b, c, oh, ow, p * p)


def pool(x: jnp.ndarray, kind: str | None, p: int) -> jnp.ndarray:
    """Block pooling: none, ``"max"``/``"avg"`` (window = stride = p, floor) or ``"global_avg"``."""
    if kind is None:
        return x
    if kind == "global_avg":
        return jnp.mean(x, axis=(2, 3), keepdims=True)
    win = _windows(x, p)
    return jnp.max(win, axis=-1) if kind == "max" else jnp.mean(win, axis=-1)


def pool_vjp(g: jnp.ndarray, x: jnp.ndarray, kind: str | None, p: int) -> jnp.ndarray:
    """Vector-Jacobian product of :func:`pool` at ``x``, written out explicitly.

    max: the whole gradient of a window goes to its FIRST maximal element in
    row-major order (``argmax`` one-hot; binary spikes tie often, and autodiff
    of a reduce-window max may route ties differently); avg: ``g / p²`` to each
    element; global_avg: ``g / (H·W)``.  Cropped rows/columns get zero.
    """
    if kind is None:
        return g
    b, c, h, w = x.shape
    if kind == "global_avg":
        return jnp.broadcast_to(g / (h * w), x.shape)
    oh, ow = h // p, w // p
    if kind == "max":
        idx = jnp.argmax(_windows(x, p), axis=-1)
        spread = (jnp.arange(p * p) == idx[..., None]).astype(g.dtype) * g[..., None]
    else:
        spread = jnp.broadcast_to(g[..., None] / (p * p), (b, c, oh, ow, p * p))
    full = jnp.transpose(spread.reshape(b, c, oh, ow, p, p), (0, 1, 2, 4, 3, 5)).reshape(b, c, oh * p, ow * p)
    if oh * p != h or ow * p != w:
        full = jnp.pad(full, ((0, 0), (0, 0), (0, h - oh * p), (0, w - ow * p)))
    return full


_WS_EPS = 1e-4


def _ws_stats(weight: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, int]:
    f = weight.shape[0]
    w = weight.reshape(f, -1)
    n = w.shape[1]
    d = w - jnp.mean(w, axis=1, keepdims=True)
    var = jnp.sum(d * d, axis=1, keepdims=True) / max(n - 1, 1)
    return d, jnp.sqrt(var * n + _WS_EPS), n


def standardize(weight: jnp.ndarray, gain: jnp.ndarray) -> jnp.ndarray:
    """``Ŵ_c = g_c (W_c - mean W_c) / sqrt(var(W_c)·fan_in + 1e-4)`` (unbiased var), per row c."""
    d, s, _ = _ws_stats(weight)
    return (gain[:, None] * d / s).reshape(weight.shape)


def standardize_vjp(weight: jnp.ndarray, gain: jnp.ndarray, grad_hat: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Pull ``G = ∂L/∂Ŵ`` back to ``(∂L/∂W, ∂L/∂g)`` in closed form (see
    :func:`tess_spec.weight_std.standardize_vjp`)."""
    f = weight.shape[0]
    d, s, n = _ws_stats(weight)
    G = grad_hat.reshape(f, -1)
    dgain = jnp.sum(G * d, axis=1) / s[:, 0]
    gx = gain[:, None] * G
    dot = jnp.sum(gx * d, axis=1, keepdims=True)
    dw = (gx - jnp.mean(gx, axis=1, keepdims=True)) / s - dot * n * d / (max(n - 1, 1) * s**3)
    return dw.reshape(weight.shape), dgain


def lsg_signal(out: jnp.ndarray, dropped: jnp.ndarray, mask: jnp.ndarray | None, lsg_matrix: jnp.ndarray,
               onehot: jnp.ndarray, weight: jnp.ndarray, n_real: jnp.ndarray, temperature: float,
               pool_kind: str | None, pool_size: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Learning signal ``m = ∂L_l/∂o`` and the local loss ``L_l`` of one block.

    ``z = M · out`` with ``M`` = B̃ composed with the adaptive pool (one
    ``(n_classes × outputs)`` matrix); ``L_l = Σ_b w_b CE(softmax(z_b/τ), y_b) / n``;
    ``∂L_l/∂out = ((softmax(z/τ) - onehot(y)) · w / (τ n)) · M``, pulled back through
    the pooling and the dropout mask.  ``w`` is 1 for real samples and 0 for the
    rows that pad a short batch, ``n`` the number of real samples, so padding
    changes nothing.
    """
    nb = out.shape[0]
    z = jnp.matmul(out.reshape(nb, -1), lsg_matrix.T, precision=MATMUL_PRECISION) / temperature
    logp = z - jnp.max(z, axis=1, keepdims=True)
    logp = logp - jnp.log(jnp.sum(jnp.exp(logp), axis=1, keepdims=True))
    loss = -jnp.sum(weight * jnp.sum(logp * onehot, axis=1)) / n_real
    err = (jnp.exp(logp) - onehot) * (weight / (temperature * n_real))[:, None]
    g_out = jnp.matmul(err, lsg_matrix, precision=MATMUL_PRECISION).reshape(out.shape)
    g = pool_vjp(g_out, dropped, pool_kind, pool_size) if out.ndim == 4 else g_out
    return (g if mask is None else g * mask), loss


def readout_features(out: jnp.ndarray) -> jnp.ndarray:
    """``a_L[t]``: the last block's output, globally average-pooled if spatial → ``(B, F)``."""
    return jnp.mean(out, axis=(2, 3)) if out.ndim == 4 else out


def adam_update(p: jnp.ndarray, g: jnp.ndarray, m: jnp.ndarray, v: jnp.ndarray, corrections: jnp.ndarray,
                lr: jnp.ndarray, betas: tuple[float, float], eps: float,
                weight_decay: float) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Adam: ``m ← β1 m + (1-β1) g``; ``v ← β2 v + (1-β2) g²``;
    ``p ← p - lr (m/c1) / (sqrt(v/c2) + ε)`` (``g ← g + wd·p`` first), with the bias
    corrections ``corrections = (c1, c2) = (1-β1^step, 1-β2^step)`` computed by the
    caller in float64 (in float32, ``1 - 0.999^1`` would lose five digits)."""
    b1, b2 = betas
    if weight_decay:
        g = g + weight_decay * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * (g * g)
    c1, c2 = corrections[0], corrections[1]
    return p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), m, v


def sgd_update(p: jnp.ndarray, g: jnp.ndarray, buf: jnp.ndarray, lr: jnp.ndarray, momentum: float,
               weight_decay: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """SGD with momentum (torch semantics): ``buf ← μ buf + g``; ``p ← p - lr · buf``."""
    if weight_decay:
        g = g + weight_decay * p
    buf = momentum * buf + g
    return p - lr * buf, buf
