"""The CuPy backend's kernels: the engine's protocol over an array namespace ``xp``,
channels-last, with the fused neuron step as generated kernels.

:class:`CupyKernels` runs with ``xp = cupy`` and a runner that launches the CUDA source
of :mod:`.codegen` (:class:`~.backend.CupyRunner`), or with ``xp = numpy`` and
:class:`NumpyRunner`, which evaluates the very same expression tables with NumPy (the
CPU twin, :mod:`.twin`).  Everything but the kernel launch itself is therefore tested
on CPU against the spec.

Per block and step: one GEMM for the current (im2col patches × Ŵᵀ: the result is
already the neuron layout, no transpose), ONE fused launch for LIF + spike + ψ + h + h̃
+ q (+ dropout) — this backend's implementation of the engine's coarse neuron step —
and on learning steps the engine's LSG (two GEMMs and a softmax on the device), ONE
fused launch for ``m, m⊙ψ, m⊙h̃`` (its :meth:`~tess.engine.Kernels.modulate`) and the
correlation GEMMs, the non-causal one on the step's own patches.  Only the labels go to
the device and the loss and accuracy come back per batch.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Protocol

import numpy as np

from tess.engine import BlockState, BlockStep, Kernels
from tess_spec.plan import BlockPlan, NetworkPlan

from .codegen import ModulateSpec, Program, StepSpec, evaluate, modulate_program, neuron_step_program

__all__ = [
    "KernelRunner",
    "NumpyRunner",
    "CupyKernels",
    "step_program",
    "mod_program",
    "im2col_nhwc",
    "pool_nhwc",
    "pool_vjp_nhwc",
]


class KernelRunner(Protocol):
    """Executes a fused :class:`~.codegen.Program` in place on ``xp`` arrays."""

    def __call__(
        self, program: Program, dtype: str, arrays: Mapping[str, Any], params: Mapping[str, float],
        lengths: Mapping[str, int],
    ) -> None:
        """Run ``program`` over ``lengths`` with the named arrays and scalar params."""


class NumpyRunner:
    """The CPU twin of the CUDA launcher: :func:`~.codegen.evaluate` on NumPy arrays.

    ``launches`` counts calls per program name (tests use it to check that each
    block step is exactly one fused launch).
    """

    def __init__(self) -> None:
        self.launches: dict[str, int] = {}

    def __call__(
        self, program: Program, dtype: str, arrays: Mapping[str, Any], params: Mapping[str, float],
        lengths: Mapping[str, int],
    ) -> None:
        self.launches[program.name] = self.launches.get(program.name, 0) + 1
        evaluate(program, dtype, arrays, params, lengths)


@functools.lru_cache(maxsize=None)
def step_program(spec: StepSpec) -> Program:
    """Cached :func:`~.codegen.neuron_step_program`."""
    return neuron_step_program(spec)


@functools.lru_cache(maxsize=None)
def mod_program(spec: ModulateSpec) -> Program:
    """Cached :func:`~.codegen.modulate_program`."""
    return modulate_program(spec)


# -- channels-last operators, namespace-generic ------------------------------------------


def im2col_nhwc(xp: Any, x: Any, k: int) -> Any:
    """Patches of a same-padded, stride-1 ``k×k`` convolution of a channels-last input.

    ``x``: ``(B, H, W, C)`` → ``(B·H·W, C·k·k)``; row ``(b, i, j)`` holds
    ``x_pad[b, i + a, j + c', ch]`` at column ``ch·k² + a·k + c'`` — the column
    order of ``weight.reshape(F, C·k·k)``, so ``cols @ Ŵ2dᵀ`` is the current
    ``(B·H·W, F)`` and ``δᵀ @ cols`` the weight correlation ``(F, C·k·k)``.
    """
    b, h, w, c = x.shape
    p = k // 2
    if p:
        xpad = xp.zeros((b, h + 2 * p, w + 2 * p, c), dtype=x.dtype)
        xpad[:, p : p + h, p : p + w, :] = x
    else:
        xpad = x
    cols = xp.empty((b, h, w, c, k * k), dtype=x.dtype)
    for a in range(k):  # k² strided copies (k = 3: nine), not a loop over pixels
        for c2 in range(k):
            cols[..., a * k + c2] = xpad[:, a : a + h, c2 : c2 + w, :]
    return cols.reshape(b * h * w, c * k * k)


def _windows(x: Any, p: int) -> Any:
    """``(B, H, W, C)`` → ``(B, H//p, W//p, C, p·p)``, window elements in row-major order."""
    b, h, w, c = x.shape
    oh, ow = h // p, w // p
    xc = x[:, : oh * p, : ow * p, :].reshape(b, oh, p, ow, p, c)
    return xc.transpose(0, 1, 3, 5, 2, 4).reshape(b, oh, ow, c, p * p)


def pool_nhwc(xp: Any, x: Any, pool: str | None, p: int) -> Any:
    """Block pooling, channels-last: ``None``; ``"max"``/``"avg"`` (window = stride = p, floor);
    ``"global_avg"`` → ``(B, 1, 1, C)``."""
    if pool is None:
        return x
    if pool == "global_avg":
        return x.mean(axis=(1, 2), keepdims=True)
    win = _windows(x, p)
    return win.max(axis=-1) if pool == "max" else win.mean(axis=-1)


def pool_vjp_nhwc(xp: Any, g: Any, x: Any, pool: str | None, p: int) -> Any:
    """Vector-Jacobian product of :func:`pool_nhwc` at input ``x`` (C-contiguous).

    max: the whole gradient goes to the FIRST maximal element of each window in
    row-major order (found as the first position whose running count of maxima
    is 1 — no reliance on an ``argmax`` tie rule); avg: ``g / p²``; global
    average: ``g / (H·W)``; cropped rows/columns get zero.
    """
    if pool is None:
        return g
    b, h, w, c = x.shape
    if pool == "global_avg":
        full = xp.empty(x.shape, dtype=g.dtype)
        full[...] = g / (h * w)
        return full
    oh, ow = h // p, w // p
    if pool == "max":
        win = _windows(x, p)
        eq = win == win.max(axis=-1, keepdims=True)
        first = eq & (xp.cumsum(eq.astype(xp.int32), axis=-1) == 1)
        spread = first.astype(g.dtype) * g[..., None]
    else:
        spread = xp.broadcast_to(g[..., None] / (p * p), (b, oh, ow, c, p * p))
    inner = spread.reshape(b, oh, ow, c, p, p).transpose(0, 1, 4, 2, 5, 3).reshape(b, oh * p, ow * p, c)
    if oh * p == h and ow * p == w:
        return xp.ascontiguousarray(inner)
    full = xp.zeros(x.shape, dtype=g.dtype)
    full[:, : oh * p, : ow * p, :] = inner
    return full


class CupyKernels(Kernels):
    """:class:`tess.engine.Kernels` over ``xp`` (``cupy`` or ``numpy``) and a :class:`KernelRunner`.

    Args:
        xp: the array namespace.
        runner: executes the fused programs (CUDA launches, or the NumPy twin).
        dtype: ``"float32"`` or ``"float64"``.
    """

    layout = "NHWC"

    def __init__(self, xp: Any, runner: KernelRunner, dtype: str = "float32") -> None:
        super().__init__(dtype)
        self.xp = xp
        self.runner = runner

    # -- primitives ---------------------------------------------------------------------
    def zeros(self, shape: tuple[int, ...]) -> Any:
        """Zeros on the device."""
        return self.xp.zeros(shape, self.dtype)

    def labels(self, y: np.ndarray) -> Any:
        """int64 labels on the device."""
        return self.xp.asarray(np.asarray(y, dtype=np.int64))

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host copy."""
        if isinstance(a, np.ndarray) or np.isscalar(a):
            return np.array(a, copy=True)
        return a.get()

    def cast(self, a: Any) -> Any:
        """``a`` in this dtype."""
        return a.astype(self.dtype)

    def transpose(self, a: Any, axes: tuple[int, ...]) -> Any:
        """A transposed view."""
        return a.transpose(axes)

    def one_hot(self, y: Any, n: int) -> Any:
        """``(arange(n) == y)`` in this dtype."""
        return (self.xp.arange(n)[None, :] == y[:, None]).astype(self.dtype)

    def abs(self, a: Any) -> Any:
        """``|a|``."""
        return self.xp.abs(a)

    def relu(self, a: Any) -> Any:
        """``max(a, 0)``."""
        return self.xp.maximum(a, 0)

    def sqrt(self, a: Any) -> Any:
        """``√a``."""
        return self.xp.sqrt(a)

    def exp(self, a: Any) -> Any:
        """``exp(a)``."""
        return self.xp.exp(a)

    def log_softmax(self, z: Any) -> Any:
        """``z - max - log Σ exp(z - max)`` over the last axis."""
        z = z - z.max(axis=-1, keepdims=True)
        return z - self.xp.log(self.xp.exp(z).sum(axis=-1, keepdims=True))

    def softmax(self, z: Any) -> Any:
        """``exp(z - max) / Σ exp(z - max)`` over the last axis."""
        e = self.xp.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def sum(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``a.sum(axis)``."""
        return a.sum(axis=axis, keepdims=keepdims)

    def mean(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``a.mean(axis)``."""
        return a.mean(axis=axis, keepdims=keepdims)

    def argmax(self, a: Any) -> Any:
        """First maximum of the last axis."""
        return a.argmax(axis=-1)

    # -- layout: the fused kernels need C-contiguous arrays -------------------------------------
    def to_layout(self, a: Any) -> Any:
        """Channels-last, C-contiguous."""
        return self.xp.ascontiguousarray(super().to_layout(a))

    def frames(self, x: Any) -> Any:
        """Time-major channels-last frames, C-contiguous (one copy of the sequence per batch)."""
        return self.xp.ascontiguousarray(super().frames(x))

    # -- the network's operators (GEMMs on im2col patches) ------------------------------------------
    def operand(self, bp: BlockPlan, x: Any) -> Any:
        """im2col patches of a conv block's input (:func:`im2col_nhwc`), shared by the current
        and the non-causal correlation of the step."""
        return im2col_nhwc(self.xp, x, bp.kernel_size) if bp.kind == "conv" else x

    def current(self, bp: BlockPlan, operand: Any, w_hat: Any, bias: Any | None) -> Any:
        """``patches @ Ŵᵀ`` is ``(B·H·W, F)``: the channels-last current, as is; or ``x Ŵᵀ``."""
        f = bp.features
        cur = operand @ w_hat.reshape(f, -1).T
        if bp.kind == "conv":
            cur = cur.reshape(-1, *self.layout_shape(bp.neurons))
        return cur if bias is None else cur + bias

    def weight_corr(self, bp: BlockPlan, delta: Any, operand: Any) -> Any:
        """``(δ as (B·H·W, F))ᵀ @ patches`` → ``(F, C, k, k)``, or ``δᵀ x``."""
        return (delta.reshape(-1, bp.features).T @ operand).reshape(bp.weight)

    def pool(self, bp: BlockPlan, x: Any) -> tuple[Any, None]:
        """:func:`pool_nhwc`."""
        return pool_nhwc(self.xp, x, bp.pool, bp.pool_size), None

    def pool_vjp(self, bp: BlockPlan, g: Any, x: Any, aux: Any) -> Any:
        """:func:`pool_vjp_nhwc` (C-contiguous, as the fused kernels need)."""
        return pool_vjp_nhwc(self.xp, g, x, bp.pool, bp.pool_size)

    # -- the fused coarse steps ------------------------------------------------------------------------
    # --8<-- [start:neuron-step]
    def neuron_step(
        self, plan: NetworkPlan, bp: BlockPlan, s: BlockState, cur: Any, x: Any, mask: Any | None,
        *, traces: bool = True, noncausal: bool = False,
    ) -> BlockStep:
        """ONE launch of :func:`~.codegen.neuron_step_program`: u, o, h, q updated in place
        in the state's arrays; ψ, h̃ and the dropped spikes written to new ones."""
        xp, dt, lif, tc = self.xp, self.dtype, plan.lif, plan.traces
        prog = step_program(StepSpec(dt, lif.reset, bp.psi, plan.profile, traces, noncausal, mask is not None))
        arrays = {"cur": xp.ascontiguousarray(cur), "u": s.u, "o": s.o}
        if traces:
            arrays.update(h=s.h, q=s.q, x=x, psi=xp.empty_like(s.u))
            if noncausal:
                arrays["htilde"] = xp.empty_like(s.u)
        if mask is not None:
            arrays.update(mask=mask, dropped=xp.empty_like(s.u))
        values = {"leak": lif.leak, "theta": lif.theta, "amount": bp.amount, "lambda_post": tc.lambda_post,
                  "lambda_pre": tc.lambda_pre}
        lengths = {"n_neurons": int(s.u.size), "n_inputs": int(s.q.size) if traces else 0}
        self.runner(prog, dt, arrays, {p: values[p] for p in prog.params}, {n: lengths[n] for n in prog.lengths})
        dropped = s.o if mask is None else arrays["dropped"]
        if not traces:
            return BlockStep(u=s.u, o=s.o, dropped=dropped)
        return BlockStep(u=s.u, o=s.o, q=s.q, h=s.h, psi=arrays["psi"], h_tilde=arrays.get("htilde"),
                         dropped=dropped)
    # --8<-- [end:neuron-step]

    def modulate(self, g: Any, mask: Any | None, psi: Any, h_tilde: Any | None) -> tuple[Any, Any, Any]:
        """ONE launch of :func:`~.codegen.modulate_program`: ``m = g ⊙ mask``, ``m ⊙ ψ``, ``m ⊙ h̃``."""
        xp = self.xp
        g = xp.ascontiguousarray(g)
        spec = ModulateSpec(self.dtype, mask is not None, h_tilde is not None, mask is not None)
        arrays = {"g": g, "psi": psi, "mpsi": xp.empty_like(g)}
        if mask is not None:
            arrays.update(mask=mask, m=xp.empty_like(g))
        if h_tilde is not None:
            arrays.update(htilde=h_tilde, mh=xp.empty_like(g))
        self.runner(mod_program(spec), self.dtype, arrays, {}, {"n_neurons": int(g.size)})
        return arrays.get("m", g), arrays["mpsi"], arrays.get("mh")
