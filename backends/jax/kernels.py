"""The JAX backend's kernels: the engine's protocol on ``jax.numpy``, channels-last.

Everything here is traced inside the backend's jit-compiled train step; no function
keeps state, draws random numbers or calls autodiff.  Activations are NHWC inside the
engine (:attr:`JaxKernels.layout`): XLA on CPU runs channels-last convolutions and,
above all, the weight-gradient correlations many times faster than NCHW ones (the
quarter-width VGG-9 step went from ~24 s to under a second).  Weights keep the spec's
``(F, C, k, k)``; the time loop is ``jax.lax.scan``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tess.engine import Kernels
from tess_spec.plan import BlockPlan

__all__ = ["JaxKernels", "MATMUL_PRECISION"]

MATMUL_PRECISION = lax.Precision.HIGHEST
"""Precision of every convolution: full float32 (no TF32/bf16 passes on GPUs).  The backend
also traces under ``jax.default_matmul_precision("highest")`` for the engine's matmuls."""


def _windows(x: jnp.ndarray, p: int) -> jnp.ndarray:
    """``(B, H, W, C)`` → ``(B, H//p, p, W//p, p, C)`` (floor-cropped): a reshape, no transpose,
    so a window's elements are axes 2 and 4 (row-major order ``a·p + b``)."""
    b, h, w, c = x.shape
    oh, ow = h // p, w // p
    return x[:, : oh * p, : ow * p, :].reshape(b, oh, p, ow, p, c)


class JaxKernels(Kernels):
    """:class:`tess.engine.Kernels` on JAX arrays, NHWC activations."""

    layout = "NHWC"

    def zeros(self, shape: tuple[int, ...]) -> jnp.ndarray:
        """Zeros of this dtype."""
        return jnp.zeros(shape, self.dtype)

    def labels(self, y: np.ndarray) -> jnp.ndarray:
        """int32 labels."""
        return jnp.asarray(np.asarray(y, dtype=np.int32))

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host copy."""
        return np.array(a, copy=True)

    def cast(self, a: jnp.ndarray) -> jnp.ndarray:
        """``a`` in this dtype."""
        return a.astype(self.dtype)

    def transpose(self, a: jnp.ndarray, axes: tuple[int, ...]) -> jnp.ndarray:
        """``jnp.transpose``."""
        return jnp.transpose(a, axes)

    def one_hot(self, y: jnp.ndarray, n: int) -> jnp.ndarray:
        """``jax.nn.one_hot`` in this dtype."""
        return jax.nn.one_hot(y, n, dtype=self.dtype)

    def abs(self, a: jnp.ndarray) -> jnp.ndarray:
        """``|a|``."""
        return jnp.abs(a)

    def relu(self, a: jnp.ndarray) -> jnp.ndarray:
        """``max(a, 0)``."""
        return jnp.maximum(a, 0)

    def sqrt(self, a: jnp.ndarray) -> jnp.ndarray:
        """``√a``."""
        return jnp.sqrt(a)

    def exp(self, a: jnp.ndarray) -> jnp.ndarray:
        """``exp(a)``."""
        return jnp.exp(a)

    def log_softmax(self, z: jnp.ndarray) -> jnp.ndarray:
        """``z - max - log Σ exp(z - max)`` over the last axis."""
        z = z - jnp.max(z, axis=-1, keepdims=True)
        return z - jnp.log(jnp.sum(jnp.exp(z), axis=-1, keepdims=True))

    def softmax(self, z: jnp.ndarray) -> jnp.ndarray:
        """``exp(z - max) / Σ exp(z - max)`` over the last axis."""
        e = jnp.exp(z - jnp.max(z, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    def sum(self, a: jnp.ndarray, axis: Any = None, keepdims: bool = False) -> jnp.ndarray:
        """``jnp.sum``."""
        return jnp.sum(a, axis=axis, keepdims=keepdims)

    def mean(self, a: jnp.ndarray, axis: Any = None, keepdims: bool = False) -> jnp.ndarray:
        """``jnp.mean``."""
        return jnp.mean(a, axis=axis, keepdims=keepdims)

    def argmax(self, a: jnp.ndarray) -> jnp.ndarray:
        """First maximum of the last axis."""
        return jnp.argmax(a, axis=-1)

    def current(self, bp: BlockPlan, operand: jnp.ndarray, w_hat: jnp.ndarray,
                bias: jnp.ndarray | None) -> jnp.ndarray:
        """``I = Ŵ ⋆ x`` as an NHWC/HWIO convolution, or ``x Ŵᵀ``; plus the bias."""
        if bp.kind == "conv":
            p = bp.kernel_size // 2
            cur = lax.conv_general_dilated(operand, jnp.transpose(w_hat, (2, 3, 1, 0)), (1, 1), [(p, p), (p, p)],
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=MATMUL_PRECISION)
        else:
            cur = jnp.matmul(operand, w_hat.T, precision=MATMUL_PRECISION)
        return self.add_bias(bp, cur, bias)

    def weight_corr(self, bp: BlockPlan, delta: jnp.ndarray, operand: jnp.ndarray) -> jnp.ndarray:
        """``δᵀ x``, or ``G[f,c,a,b] = Σ_{n,i,j} δ[n,i,j,f] x_pad[n,i+a,j+b,c]`` as ONE convolution
        whose batch is the input channel c, whose contracted feature is the sample n and
        whose kernel is δ.

        The operands are transposed explicitly into the canonical ``NHWC``/``HWIO`` form:
        inside ``lax.scan`` XLA CPU runs a convolution with any other dimension numbers
        (say ``CHWN``/``IHWO``, the same arithmetic) through a generic loop, 50× slower."""
        if bp.kind == "linear":
            return jnp.matmul(delta.T, operand, precision=MATMUL_PRECISION)
        p = bp.kernel_size // 2
        out = lax.conv_general_dilated(jnp.transpose(operand, (3, 1, 2, 0)), jnp.transpose(delta, (1, 2, 0, 3)),
                                       (1, 1), [(p, p), (p, p)], dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       precision=MATMUL_PRECISION)
        return jnp.transpose(out, (3, 0, 1, 2))  # (C, k, k, F) -> (F, C, k, k)

    def current_vjp(self, bp: BlockPlan, g: jnp.ndarray, w_hat: jnp.ndarray) -> jnp.ndarray:
        """``g Ŵ`` at full precision, or the engine's default (the transposed convolution)."""
        if bp.kind == "linear":
            return jnp.matmul(g, w_hat, precision=MATMUL_PRECISION)
        return super().current_vjp(bp, g, w_hat)

    def pool(self, bp: BlockPlan, x: jnp.ndarray) -> tuple[jnp.ndarray, None]:
        """Pooling, channels-last."""
        if bp.pool is None:
            return x, None
        if bp.pool == "global_avg":
            return jnp.mean(x, axis=(1, 2), keepdims=True), None
        win = _windows(x, bp.pool_size)
        return (jnp.max(win, axis=(2, 4)) if bp.pool == "max" else jnp.mean(win, axis=(2, 4))), None

    def pool_vjp(self, bp: BlockPlan, g: jnp.ndarray, x: jnp.ndarray, aux: Any) -> jnp.ndarray:
        """The VJP written out: max sends a window's gradient to its FIRST maximal element
        (the smallest row-major index ``a·p + b`` among the maxima; autodiff of a
        reduce-window max may route ties differently).  Channels-last windows by reshape
        alone: every step here is elementwise or a window reduction, no transpose."""
        if bp.pool is None:
            return g
        b, h, w, c = x.shape
        if bp.pool == "global_avg":
            return jnp.broadcast_to(g / (h * w), x.shape)
        p = bp.pool_size
        oh, ow = h // p, w // p
        g6 = g[:, :, None, :, None, :]
        if bp.pool == "max":
            win = _windows(x, p)
            k = (jnp.arange(p)[:, None, None] * p + jnp.arange(p)[None, None, :]).reshape(1, 1, p, 1, p, 1)
            score = jnp.where(win == jnp.max(win, axis=(2, 4), keepdims=True), k, p * p)
            spread = (k == jnp.min(score, axis=(2, 4), keepdims=True)).astype(g.dtype) * g6
        else:
            spread = jnp.broadcast_to(g6 / (p * p), (b, oh, p, ow, p, c))
        full = spread.reshape(b, oh * p, ow * p, c)
        if oh * p != h or ow * p != w:
            full = jnp.pad(full, ((0, 0), (0, h - oh * p), (0, w - ow * p), (0, 0)))
        return full

    def scan(self, body: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, length: int) -> tuple[Any, Any]:
        """``jax.lax.scan`` over the same step function the other backends loop over."""
        return lax.scan(body, carry, xs, length=length)
