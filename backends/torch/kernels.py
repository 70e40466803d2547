"""The PyTorch backend's kernels: the engine's protocol on torch tensors (NCHW, CPU or CUDA).

Currents use ``torch.nn.functional.conv2d`` / ``linear``; the weight-gradient
correlations and the input VJP use torch's convolution-backward kernels; max
pooling keeps torch's argmax indices (the FIRST maximal element of each window,
row-major — the spec's routing) for its VJP.  None of them builds an autograd graph
on the TESS path: the backend calls the engine under :func:`torch.no_grad` (the BPTT
method, :mod:`.bptt`, differentiates through the same kernels).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tess.engine import BlockState, BlockStep, Kernels, ReadoutParams
from tess_spec.errors import ConfigError
from tess_spec.plan import BlockPlan, NetworkPlan

from .device import torch_dtype
from .fused import CompiledOps, EagerOps, NativeOps, StepConsts, like

__all__ = ["TorchKernels", "FusedTorchKernels"]


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


class FusedTorchKernels(TorchKernels):
    """:class:`TorchKernels` with the per-block step fused (``get_backend("torch", fuse=...)``).

    Args:
        dtype: ``"float32"`` or ``"float64"``.
        device: a torch device.
        fuse: ``"eager"``, ``"cpp"`` or ``"compile"`` (:data:`~.fused.FUSE_OPTIONS`; resolved
            from ``"auto"`` by the backend): who runs the neuron step, the modulation and max
            pooling (:mod:`.fused`).
        channels_last: keep 4-D activations, Ŵ and the traces in torch's channels-last memory
            format (still logically NCHW: :attr:`layout` stays the spec's), which oneDNN's CPU
            convolutions run faster; ``None``: on the CPU, not on CUDA.

    What changes against :class:`TorchKernels` (each a kernel substitution of the engine's
    protocol, the arithmetic unchanged): the neuron step (u, o, h, q updated in place, one
    pass each with ``"cpp"``), the modulation, max pooling without kept indices and its
    first-max VJP written once per element (``"cpp"``, ``"compile"``; ``"eager"`` keeps torch's
    indices and backward kernel), the average-pooling VJP as torch's backward
    kernel, the window sums accumulated in place (:meth:`accumulate_corr`: a GEMM with β = 1
    for a linear block), the weight-gradient correlation as one ``convolution_backward``, the
    readout as ``F.linear``, and the LSG products on channels-last outputs without a copy.
    """

    def __init__(self, dtype: str = "float32", device: torch.device | str = "cpu", fuse: str = "eager",
                 channels_last: bool | None = None) -> None:
        super().__init__(dtype, device)
        ops = {"eager": EagerOps, "cpp": NativeOps, "compile": CompiledOps}
        if fuse not in ops:
            raise ConfigError(f"fuse={fuse!r} is invalid for the fused kernels: expected one of {sorted(ops)}")
        self.fuse = fuse
        self.ops = ops[fuse]()
        self.channels_last = (self.device.type == "cpu") if channels_last is None else bool(channels_last)
        self._weight_like: dict[tuple[int, ...], torch.Tensor] = {}
        self._lsg_nhwc: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def compile_seconds(self) -> float | None:
        """Seconds :func:`torch.compile` has spent so far (``fuse="compile"``), else ``None``."""
        return self.ops.compile_seconds

    # -- layout: logically NCHW, channels-last in memory ------------------------------------------
    def _cl(self, a: torch.Tensor) -> torch.Tensor:
        if self.channels_last and a.dim() == 4:
            return a.contiguous(memory_format=torch.channels_last)
        return a

    def to_layout(self, a: torch.Tensor) -> torch.Tensor:
        """``a`` (masks, a direct input), channels-last in memory when :attr:`channels_last`."""
        return self._cl(a)

    def operand(self, bp: BlockPlan, x: torch.Tensor) -> torch.Tensor:
        """A conv block's input in channels-last memory (a copy only for the input frames)."""
        return self._cl(x) if bp.kind == "conv" else x

    def standardize(self, weight: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """Ŵ (the engine's composition), channels-last in memory for a conv weight."""
        return self._cl(super().standardize(weight, gain))

    # -- the network's operators ----------------------------------------------------------------------
    def current(self, bp: BlockPlan, operand: torch.Tensor, w_hat: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        """``conv2d`` (in the operand's memory format) or ``linear``."""
        if bp.kind == "conv":
            return F.conv2d(operand, self._cl(w_hat), bias, padding=bp.kernel_size // 2)
        return F.linear(operand, w_hat, bias)

    def weight_corr(self, bp: BlockPlan, delta: torch.Tensor, operand: torch.Tensor) -> torch.Tensor:
        """``δᵀ x``, or the weight gradient of one ``convolution_backward`` call (no input gradient)."""
        if bp.kind == "linear":
            return delta.t() @ operand
        w = self._weight_like.get(bp.weight)
        if w is None:  # only its shape and memory format are read
            w = self._weight_like[bp.weight] = self._cl(torch.empty(bp.weight, dtype=self.torch_dtype,
                                                                    device=self.device))
        if delta.dtype != operand.dtype:
            delta = delta.to(operand.dtype)
        p = bp.kernel_size // 2
        return torch.ops.aten.convolution_backward(delta, self._cl(operand), w, None, [1, 1], [p, p], [1, 1],
                                                   False, [0, 0], 1, [False, True, False])[1]

    def accumulate_corr(self, bp: BlockPlan, acc: torch.Tensor, alpha: float, delta: torch.Tensor,
                        operand: torch.Tensor) -> torch.Tensor:
        """``acc += α (δ ⊗ x)`` in place: ``addmm_`` (one GEMM with β = 1) for a linear block; the
        conv correlation, scaled by α in place when α ≠ 1, added into ``acc``."""
        if bp.kind == "linear":
            return acc.addmm_(delta.t(), operand, alpha=alpha)
        g = self.weight_corr(bp, delta, operand)
        if alpha != 1:
            g.mul_(alpha)
        return (acc if acc.stride() == g.stride() else like(acc, g)).add_(g)

    def pool(self, bp: BlockPlan, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Max pooling by the fused ops (no indices kept, except by ``"eager"``), the rest as before."""
        if bp.pool == "max":
            return self.ops.max_pool(x, bp.pool_size)
        return super().pool(bp, x)

    def pool_vjp(self, bp: BlockPlan, g: torch.Tensor, x: torch.Tensor, aux: Any) -> torch.Tensor:
        """max: the fused first-max VJP; avg: torch's ``avg_pool2d_backward``; global average:
        ``g / (H·W)`` in ``x``'s memory format."""
        if bp.pool is None:
            return g
        if bp.pool == "max":
            return self.ops.max_pool_vjp(g, x, bp.pool_size, aux)
        if bp.pool == "global_avg":
            return torch.empty_like(x).copy_((g / (x.shape[2] * x.shape[3])).expand(x.shape))
        p = bp.pool_size
        return torch.ops.aten.avg_pool2d_backward(g, x, [p, p], [p, p], [0, 0], False, True, None)

    # -- the fused coarse steps ------------------------------------------------------------------------
    def neuron_step(
        self, plan: NetworkPlan, bp: BlockPlan, s: BlockState, cur: torch.Tensor, x: torch.Tensor,
        mask: torch.Tensor | None, *, traces: bool = True, noncausal: bool = False,
    ) -> BlockStep:
        """The fused step of :attr:`ops` (u, o, h, q updated in place except by ``"compile"``)."""
        lif, tc = plan.lif, plan.traces
        c = _consts(lif.leak, lif.theta, bp.amount, tc.lambda_post, tc.lambda_pre, lif.reset == "soft", bp.psi,
                    traces, noncausal, plan.profile == "paper")
        u, o, h, q, psi, ht, dropped = self.ops.neuron_step(c, s.u, s.o, cur, s.h, s.q, x, mask)
        return BlockStep(u=u, o=o, q=q, h=h, psi=psi, h_tilde=ht, dropped=dropped)

    def modulate(self, g: torch.Tensor, mask: torch.Tensor | None, psi: torch.Tensor,
                 h_tilde: torch.Tensor | None) -> tuple[Any, Any, Any]:
        """``(m, m⊙ψ, m⊙h̃)`` by the fused ops."""
        return self.ops.modulate(g, mask, psi, h_tilde)

    def lsg_grad(
        self, bp: BlockPlan, M: torch.Tensor, out: torch.Tensor, onehot: torch.Tensor, weights: Any, n: Any,
        temperature: float, want_loss: bool,
    ) -> tuple[torch.Tensor, Any]:
        """The engine's LSG gradient; a channels-last output is read as ``(B, H·W·C)`` (a view) against
        the basis with its columns in that order, and the gradient comes back channels-last."""
        if not (out.dim() == 4 and not out.is_contiguous() and out.is_contiguous(memory_format=torch.channels_last)):
            return super().lsg_grad(bp, M, out, onehot, weights, n, temperature, want_loss)
        b, ch, hh, ww = out.shape
        hit = self._lsg_nhwc.get(id(M))
        if hit is None or hit[0] is not M:
            Mp = M.reshape(M.shape[0], ch, hh, ww).permute(0, 2, 3, 1).reshape(M.shape[0], -1).contiguous()
            hit = self._lsg_nhwc[id(M)] = (M, Mp)
        view = out.permute(0, 2, 3, 1).reshape(b, -1)
        g, loss = super().lsg_grad(bp, hit[1], view, onehot, weights, n, temperature, want_loss)
        return g.reshape(b, hh, ww, ch).permute(0, 3, 1, 2), loss

    def readout(self, rp: ReadoutParams, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``F.linear`` of the last block's (globally averaged) output."""
        feats = self.spatial_mean(out) if out.dim() == 4 else out
        return F.linear(feats, rp.weight, rp.bias), feats


@functools.lru_cache(maxsize=256)
def _consts(*values: Any) -> StepConsts:
    return StepConsts(*values)
