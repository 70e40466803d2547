"""The PyTorch backend's kernels: the engine's protocol on torch tensors (NCHW, CPU or CUDA).

Currents use ``torch.nn.functional.conv2d`` / ``linear``; the weight-gradient
correlations and the input VJP use torch's convolution-backward kernels; max
pooling keeps torch's argmax indices (the FIRST maximal element of each window,
row-major — the spec's routing) for its VJP.  None of them builds an autograd graph
on the TESS path: the backend calls the engine under :func:`torch.no_grad` (the BPTT
method, :mod:`.bptt`, differentiates through the same kernels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tess.engine import Kernels
from tess_spec.plan import BlockPlan

from .device import torch_dtype

__all__ = ["TorchKernels"]


class TorchKernels(Kernels):
    """:class:`tess.engine.Kernels` on torch tensors of ``dtype`` on ``device``."""

    layout = "NCHW"

    def __init__(self, dtype: str = "float32", device: torch.device | str = "cpu") -> None:
        super().__init__(dtype)
        self.device = torch.device(device)
        self.torch_dtype = torch_dtype(dtype)

    def zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Zeros on the device."""
        return torch.zeros(tuple(shape), dtype=self.torch_dtype, device=self.device)

    def labels(self, y: np.ndarray) -> torch.Tensor:
        """int64 labels on the device."""
        return torch.as_tensor(np.asarray(y), dtype=torch.int64, device=self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host copy."""
        if isinstance(a, torch.Tensor):
            return a.detach().to("cpu").numpy().copy()
        return np.array(a, copy=True)

    def cast(self, a: torch.Tensor) -> torch.Tensor:
        """``a`` in this dtype."""
        return a.to(self.torch_dtype)

    def transpose(self, a: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
        """``a.permute(axes)`` (a view)."""
        return a.permute(*axes)

    def one_hot(self, y: torch.Tensor, n: int) -> torch.Tensor:
        """``F.one_hot`` in this dtype."""
        return F.one_hot(y, n).to(self.torch_dtype)

    def abs(self, a: torch.Tensor) -> torch.Tensor:
        """``|a|``."""
        return torch.abs(a)

    def relu(self, a: torch.Tensor) -> torch.Tensor:
        """``max(a, 0)``."""
        return torch.clamp(a, min=0)

    def sqrt(self, a: torch.Tensor) -> torch.Tensor:
        """``√a``."""
        return torch.sqrt(a)

    def exp(self, a: torch.Tensor) -> torch.Tensor:
        """``exp(a)``."""
        return torch.exp(a)

    def log_softmax(self, z: torch.Tensor) -> torch.Tensor:
        """``torch.log_softmax`` over the last axis."""
        return torch.log_softmax(z, dim=-1)

    def softmax(self, z: torch.Tensor) -> torch.Tensor:
        """``torch.softmax`` over the last axis."""
        return torch.softmax(z, dim=-1)

    def sum(self, a: torch.Tensor, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        """``a.sum(dim)``."""
        return a.sum() if axis is None else a.sum(dim=axis, keepdim=keepdims)

    def mean(self, a: torch.Tensor, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        """``a.mean(dim)``."""
        return a.mean() if axis is None else a.mean(dim=axis, keepdim=keepdims)

    def argmax(self, a: torch.Tensor) -> torch.Tensor:
        """First maximum of the last axis."""
        return a.argmax(dim=-1)

    def current(self, bp: BlockPlan, operand: torch.Tensor, w_hat: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        """Same-padded stride-1 ``conv2d`` or ``linear`` (bias included)."""
        if bp.kind == "conv":
            return F.conv2d(operand, w_hat, bias, padding=bp.kernel_size // 2)
        return F.linear(operand, w_hat, bias)

    def weight_corr(self, bp: BlockPlan, delta: torch.Tensor, operand: torch.Tensor) -> torch.Tensor:
        """``δᵀ x``, or torch's convolution-backward kernel (:func:`torch.nn.grad.conv2d_weight`)."""
        if bp.kind == "linear":
            return delta.t() @ operand
        return torch.nn.grad.conv2d_weight(operand, bp.weight, delta, padding=bp.kernel_size // 2)

    def current_vjp(self, bp: BlockPlan, g: torch.Tensor, w_hat: torch.Tensor) -> torch.Tensor:
        """``g Ŵ``, or torch's transposed-convolution kernel (:func:`torch.nn.grad.conv2d_input`)."""
        if bp.kind == "linear":
            return g @ w_hat
        shape = (g.shape[0], w_hat.shape[1], g.shape[2], g.shape[3])
        return torch.nn.grad.conv2d_input(shape, w_hat, g, padding=bp.kernel_size // 2)

    def pool(self, bp: BlockPlan, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooling; for max pooling also the flat argmax index of every window."""
        if bp.pool is None:
            return x, None
        if bp.pool == "global_avg":
            return x.mean(dim=(2, 3), keepdim=True), None
        if bp.pool == "max":
            return F.max_pool2d(x, bp.pool_size, bp.pool_size, return_indices=True)
        return F.avg_pool2d(x, bp.pool_size, bp.pool_size), None

    def pool_vjp(self, bp: BlockPlan, g: torch.Tensor, x: torch.Tensor, aux: Any) -> torch.Tensor:
        """max: ``g`` scattered to the recorded argmax; avg: ``g / p²`` spread; global: ``g / (H·W)``."""
        if bp.pool is None:
            return g
        b, c, h, w = x.shape
        p = bp.pool_size
        if bp.pool == "global_avg":
            return (g / (h * w)).expand(x.shape).contiguous()
        if bp.pool == "max":
            full = torch.zeros((b, c, h * w), dtype=g.dtype, device=g.device)
            full.scatter_(2, aux.flatten(2), g.flatten(2))
            return full.view(x.shape)
        oh, ow = g.shape[2], g.shape[3]
        full = torch.zeros(x.shape, dtype=g.dtype, device=g.device)
        full[:, :, : oh * p, : ow * p] = (g / (p * p)).repeat_interleave(p, 2).repeat_interleave(p, 3)
        return full
