"""The example backend: TESS on NumPy, written as the kernel protocol of :mod:`tess.engine`.

It is written to be read next to the "Write your own backend" page, not to be fast:
each kernel is one line of NumPy or one of the specification's own operators
(:mod:`tess_spec.ops`).  The algorithm — the loop over time and blocks, the
learning window, the learning signal, the update, the gradient chain and the
optimiser — is the engine's; the conformance suite checks that these kernels make
it compute what the oracle computes.  A real backend replaces each body by its
framework's kernel.

The sections between ``--8<--`` markers are quoted by the documentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tess.engine import EngineBackend, Kernels
from tess_spec.ops import conv2d, conv2d_weight_corr, pool_backward, pool_forward
from tess_spec.plan import BlockPlan

__all__ = ["ExampleKernels", "ExampleBackend"]


# --8<-- [start:arrays]
class ExampleKernels(Kernels):
    """The engine's primitives on NumPy arrays, in the spec's NCHW layout."""

    layout = "NCHW"

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, self.dtype)

    def labels(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int64)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.array(a, copy=True)

    def cast(self, a: np.ndarray) -> np.ndarray:
        return a.astype(self.dtype)

    def transpose(self, a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return a.transpose(axes)

    def one_hot(self, y: np.ndarray, n: int) -> np.ndarray:
        return np.eye(n, dtype=self.dtype)[y]

    def abs(self, a: np.ndarray) -> np.ndarray:
        return np.abs(a)

    def relu(self, a: np.ndarray) -> np.ndarray:
        return np.maximum(a, 0)

    def sqrt(self, a: np.ndarray) -> np.ndarray:
        return np.sqrt(a)

    def exp(self, a: np.ndarray) -> np.ndarray:
        return np.exp(a)

    def log_softmax(self, z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    def sum(self, a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        return a.sum(axis=axis, keepdims=keepdims)

    def mean(self, a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        return a.mean(axis=axis, keepdims=keepdims)

    def argmax(self, a: np.ndarray) -> np.ndarray:
        return a.argmax(axis=-1)
    # --8<-- [end:arrays]

    # --8<-- [start:network]
    def current(self, bp: BlockPlan, x: np.ndarray, w_hat: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """I[t] = Ŵ · x[t] (+ b): a same-padded convolution, or a matrix product."""
        cur = conv2d(x, w_hat) if bp.kind == "conv" else x @ w_hat.T
        return self.add_bias(bp, cur, bias)

    def weight_corr(self, bp: BlockPlan, delta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """δ ⊗ x summed over the batch: the conv weight-gradient correlation, or δᵀ x."""
        return conv2d_weight_corr(delta, x, bp.kernel_size) if bp.kind == "conv" else delta.T @ x

    def pool(self, bp: BlockPlan, x: np.ndarray) -> tuple[np.ndarray, None]:
        """The block's pooling (nothing kept for the VJP: it recomputes the argmax)."""
        return pool_forward(x, bp.pool, bp.pool_size), None

    def pool_vjp(self, bp: BlockPlan, g: np.ndarray, x: np.ndarray, aux: Any) -> np.ndarray:
        """Pooling's VJP: max routes to the first maximal element of each window."""
        return pool_backward(g, x, bp.pool, bp.pool_size)
    # --8<-- [end:network]


# --8<-- [start:backend]
class ExampleBackend(EngineBackend):
    """TESS in plain NumPy, as the engine's kernel protocol (CPU only)."""

    name = "example"
    devices = ("cpu",)
    kernels_class = ExampleKernels

    def asarray(self, a: np.ndarray) -> np.ndarray:
        """A copy of ``a`` in this backend's dtype."""
        return np.array(a, dtype=self.dtype, copy=True)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy (the arrays already are NumPy)."""
        return np.array(a, copy=True)

    def info(self) -> dict[str, str]:
        """Name, dtype, device, and the NumPy version (shown in conformance reports)."""
        return {**super().info(), "numpy": np.__version__}
# --8<-- [end:backend]
