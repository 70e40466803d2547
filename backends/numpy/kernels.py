"""The NumPy backend's kernels: the engine's protocol on NumPy arrays (NCHW, CPU).

Speed-minded but plain: a conv block's input becomes im2col patches once per step
(:meth:`NumpyKernels.operand`), shared by the current (one GEMM) and the non-causal
correlation; pooling and its VJP are the spec's own operators.  The neuron step,
learning signal, weight standardisation and optimiser are the engine's defaults.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tess.engine import Kernels
from tess_spec.lsg import softmax
from tess_spec.ops import im2col, pool_backward, pool_forward
from tess_spec.plan import BlockPlan

__all__ = ["NumpyKernels"]


class NumpyKernels(Kernels):
    """:class:`tess.engine.Kernels` on NumPy (float32 or float64)."""

    layout = "NCHW"

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        """Zeros of this dtype."""
        return np.zeros(shape, self.dtype)

    def labels(self, y: np.ndarray) -> np.ndarray:
        """int64 labels."""
        return np.asarray(y, dtype=np.int64)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A copy."""
        return np.array(a, copy=True)

    def cast(self, a: np.ndarray) -> np.ndarray:
        """``a`` as this dtype."""
        return a.astype(self.dtype)

    def transpose(self, a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        """A transposed view."""
        return a.transpose(axes)

    def one_hot(self, y: np.ndarray, n: int) -> np.ndarray:
        """Rows of the identity."""
        return np.eye(n, dtype=self.dtype)[y]

    def abs(self, a: np.ndarray) -> np.ndarray:
        """``|a|``."""
        return np.abs(a)

    def relu(self, a: np.ndarray) -> np.ndarray:
        """``max(a, 0)``."""
        return np.maximum(a, 0)

    def sqrt(self, a: np.ndarray) -> np.ndarray:
        """``√a``."""
        return np.sqrt(a)

    def exp(self, a: np.ndarray) -> np.ndarray:
        """``exp(a)``."""
        return np.exp(a)

    def log_softmax(self, z: np.ndarray) -> np.ndarray:
        """``z - max - log Σ exp(z - max)`` over the last axis."""
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    def softmax(self, z: np.ndarray) -> np.ndarray:
        """:func:`tess_spec.lsg.softmax`."""
        return softmax(z)

    def sum(self, a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        """``a.sum(axis)``."""
        return a.sum(axis=axis, keepdims=keepdims)

    def mean(self, a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        """``a.mean(axis)``."""
        return a.mean(axis=axis, keepdims=keepdims)

    def argmax(self, a: np.ndarray) -> np.ndarray:
        """First maximum of the last axis."""
        return a.argmax(axis=-1)

    def operand(self, bp: BlockPlan, x: np.ndarray) -> np.ndarray:
        """im2col patches ``(B·H·W, C·k·k)`` of a conv block's input (:func:`tess_spec.ops.im2col`)."""
        return im2col(x, bp.kernel_size) if bp.kind == "conv" else x

    def current(self, bp: BlockPlan, operand: np.ndarray, w_hat: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """``patches @ Ŵᵀ`` laid out as ``(B, F, H, W)``, or ``x @ Ŵᵀ``; plus the bias."""
        if bp.kind == "conv":
            f, h, w = bp.neurons
            cur = operand @ w_hat.reshape(f, -1).T
            cur = np.ascontiguousarray(cur.reshape(-1, h, w, f).transpose(0, 3, 1, 2))
        else:
            cur = operand @ w_hat.T
        return self.add_bias(bp, cur, bias)

    def weight_corr(self, bp: BlockPlan, delta: np.ndarray, operand: np.ndarray) -> np.ndarray:
        """``δᵀ x`` or ``(δ as (B·H·W, F))ᵀ @ patches`` reshaped to ``(F, C, k, k)``."""
        if bp.kind == "linear":
            return delta.T @ operand
        f = delta.shape[1]
        return (delta.transpose(0, 2, 3, 1).reshape(-1, f).T @ operand).reshape(bp.weight)

    def pool(self, bp: BlockPlan, x: np.ndarray) -> tuple[np.ndarray, None]:
        """:func:`tess_spec.ops.pool_forward`."""
        return pool_forward(x, bp.pool, bp.pool_size), None

    def pool_vjp(self, bp: BlockPlan, g: np.ndarray, x: np.ndarray, aux: Any) -> np.ndarray:
        """:func:`tess_spec.ops.pool_backward` (max: first maximal element)."""
        return pool_backward(g, x, bp.pool, bp.pool_size)
