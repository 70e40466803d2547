"""The fused per-block step of the torch backend, three ways (``get_backend("torch", fuse=...)``).

Each *ops* object implements the same four operations on torch tensors:

* :meth:`~EagerOps.neuron_step` — LIF update, spike, dropout ``mask ⊙ o``, ψ, h̃[t-1],
  the postsynaptic trace ``h`` and the presynaptic trace ``q`` (TESS_RULE.md §2–§3);
* :meth:`~EagerOps.modulate` — ``m = mask ⊙ g``, ``m ⊙ ψ``, ``m ⊙ h̃``;
* :meth:`~EagerOps.max_pool` / :meth:`~EagerOps.max_pool_vjp` — max pooling (window =
  stride = p, floor) and its VJP routing each window's gradient to the FIRST maximal
  element (row-major).  ``cpp`` and ``compile`` recompute that element from the pooled
  input: no argmax indices are kept and the VJP writes each element once (no zero fill,
  no scatter); ``eager`` keeps torch's indices and backward kernel (on channels-last
  tensors as fast as the forward).

The implementations:

* :class:`EagerOps` (``fuse="eager"``): torch operations, in place where the arithmetic
  stays the engine's default composition; no compiler needed (CPU and CUDA).
* :class:`NativeOps` (``fuse="cpp"``): the C++ kernels of :mod:`.native` — one pass over
  the neurons, one over the inputs (CPU tensors).
* :class:`CompiledOps` (``fuse="compile"``): :func:`torch.compile` of the functional
  forms below (inductor: generated C++/OpenMP on the CPU, Triton on CUDA); the time it
  spends compiling is kept in :attr:`CompiledOps.compile_seconds`.

All keep the closed-form updates and O(neurons) state: nothing here depends on T.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

__all__ = [
    "StepConsts",
    "FUSE_OPTIONS",
    "EagerOps",
    "NativeOps",
    "CompiledOps",
    "step_functional",
    "modulate_functional",
    "max_pool_vjp_functional",
    "dense",
    "like",
]

log = logging.getLogger(__name__)

FUSE_OPTIONS = ("auto", "none", "eager", "cpp", "compile")
"""Values of the torch backend's ``fuse`` option: ``"none"`` is the engine's default
composition (the unfused step, NCHW, argmax-scatter pooling); ``"auto"`` picks
``"cpp"`` on the CPU when a C++ compiler builds the native kernels, else ``"eager"``."""

Step = tuple[torch.Tensor, torch.Tensor, Any, Any, Any, Any, torch.Tensor]
"""``(u, o, h, q, psi, h_tilde, dropped)`` of one block step (``None`` where not formed)."""


@dataclasses.dataclass(frozen=True)
class StepConsts:
    """The constants of one block's neuron step (hashable: a compiled step is cached per value).

    Attributes:
        leak, theta, amount: γ, θ and the soft-reset amount r.
        lambda_post, lambda_pre: the trace factors.
        soft: soft reset (else hard).
        psi: ``"triangle"`` or ``"fast_sigmoid"``.
        traces: form ψ, q, h (training) or not (prediction).
        noncausal: also form h̃[t-1].
        paper: h̃[t-1] = λ_post·h[t-1] (paper profile), else h[t-1] (reference-code).
    """

    leak: float
    theta: float
    amount: float
    lambda_post: float
    lambda_pre: float
    soft: bool
    psi: str
    traces: bool
    noncausal: bool
    paper: bool


def dense(t: torch.Tensor) -> bool:
    """Whether ``t`` covers its storage densely in a plain or channels-last order (a flat loop may run over it)."""
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` with ``ref``'s strides (a copy only when they differ; ``ref`` dense)."""
    if t.stride() == ref.stride():
        return t
    return torch.empty_like(ref).copy_(t)


# -- the functional forms (what torch.compile compiles; each is the engine's composition) -----------------------


def step_functional(c: StepConsts, u: torch.Tensor, o: torch.Tensor, cur: torch.Tensor, h: Any, q: Any, x: Any,
                    mask: Any) -> Step:
    """The neuron step as a pure function: the expressions of :meth:`tess.engine.Kernels.neuron_step`."""
    return _step_math(c.soft, c.psi, c.traces, c.noncausal, c.paper, u, o, cur, h, q, x, mask, c.leak, c.theta,
                      c.amount, c.lambda_post, c.lambda_pre)


def _step_math(soft: bool, psi_name: str, traces: bool, noncausal: bool, paper: bool, u: torch.Tensor,
               o: torch.Tensor, cur: torch.Tensor, h: Any, q: Any, x: Any, mask: Any, leak: float, theta: float,
               amount: float, lambda_post: float, lambda_pre: float) -> Step:
    un = leak * (u - amount * o) + cur if soft else leak * u * (1 - o) + cur
    on = (un > theta).to(un.dtype)
    dropped = on if mask is None else on * mask
    if not traces:
        return un, on, None, None, None, None, dropped
    a = torch.abs(un - theta)
    psi = 0.3 * torch.clamp(1 - a, min=0) if psi_name == "triangle" else 1 / (100 * a + 1) ** 2
    ht = (lambda_post * h if paper else h) if noncausal else None
    return un, on, lambda_post * h + psi, lambda_pre * q + x, psi, ht, dropped


def modulate_functional(g: torch.Tensor, mask: Any, psi: torch.Tensor, ht: Any) -> tuple[Any, Any, Any]:
    """``(m, m⊙ψ, m⊙h̃)`` with ``m = g ⊙ mask`` (``g`` without a mask)."""
    m = g if mask is None else g * mask
    return m, m * psi, (None if ht is None else m * ht)


def max_pool_vjp_functional(g: torch.Tensor, x: torch.Tensor, p: int) -> torch.Tensor:
    """The first-max VJP of ``p×p`` max pooling, densely: the window's elements are visited in
    row-major order, the first one strictly above every earlier one keeps the running
    maximum (so ties go to the first), and each output element is ``g`` where its window's
    winner is, else 0; the rows/columns the floor cropped are 0."""
    b, ch, hh, ww = x.shape
    oh, ow = hh // p, ww // p
    views = [x[:, :, a: oh * p: p, e: ow * p: p] for a in range(p) for e in range(p)]
    best, k = views[0], torch.zeros_like(g, dtype=torch.int8 if p * p < 128 else torch.int32)
    for i, v in enumerate(views[1:], 1):
        up = v > best
        best = torch.where(up, v, best)
        k = torch.where(up, torch.full_like(k, i), k)
    zero = torch.zeros((), dtype=g.dtype, device=g.device)
    parts = torch.stack([torch.where(k == i, g, zero) for i in range(p * p)], dim=-1)  # (B, C, OH, OW, p·p)
    inner = parts.view(b, ch, oh, ow, p, p).permute(0, 1, 2, 4, 3, 5).reshape(b, ch, oh * p, ow * p)
    if oh * p == hh and ow * p == ww:
        return inner
    return F.pad(inner, (0, ww - ow * p, 0, hh - oh * p))


# -- eager ---------------------------------------------------------------------------------------------


class EagerOps:
    """The step as torch operations, in place where that keeps the engine's arithmetic; max
    pooling's VJP as torch's own ``max_pool2d_with_indices_backward`` kernel on the indices
    the forward kept (no compiler needed; CPU and CUDA)."""

    name = "eager"
    compile_seconds: float | None = None

    def neuron_step(self, c: StepConsts, u: torch.Tensor, o: torch.Tensor, cur: torch.Tensor, h: Any, q: Any,
                    x: Any, mask: Any) -> Step:
        """u, o, h, q updated in place (``u ← γ(u - r·o) + I`` etc., operation for operation)."""
        u, o = like(u, cur) if dense(cur) else u, like(o, cur) if dense(cur) else o
        if c.soft:
            u.sub_(o * c.amount).mul_(c.leak).add_(cur)
        else:
            u.mul_(c.leak).mul_(1 - o).add_(cur)
        o.copy_(u > c.theta)
        dropped = o if mask is None else o * mask
        if not c.traces:
            return u, o, None, None, None, None, dropped
        if dense(u):
            h = like(h, u)
        psi = (u - c.theta).abs_()
        if c.psi == "triangle":
            psi.neg_().add_(1).clamp_(min=0).mul_(0.3)  # 0.3·max(0, 1 - a): -a + 1 is 1 - a exactly
        else:
            psi.mul_(100).add_(1)
            psi.mul_(psi).reciprocal_()  # 1 / (100a + 1)²
        ht = None
        if c.noncausal:
            ht = h * c.lambda_post if c.paper else h.clone()
        h.mul_(c.lambda_post).add_(psi)
        q.mul_(c.lambda_pre).add_(x)
        return u, o, h, q, psi, ht, dropped

    def modulate(self, g: torch.Tensor, mask: Any, psi: torch.Tensor, ht: Any) -> tuple[Any, Any, Any]:
        """:func:`modulate_functional` (two or three products)."""
        return modulate_functional(g, mask, psi, ht)

    def max_pool(self, x: torch.Tensor, p: int) -> tuple[torch.Tensor, Any]:
        """``max_pool2d`` and its first-max indices."""
        return F.max_pool2d(x, p, p, return_indices=True)

    def max_pool_vjp(self, g: torch.Tensor, x: torch.Tensor, p: int, aux: Any) -> torch.Tensor:
        """torch's max-pool backward kernel on the forward's indices (the first maximum)."""
        return torch.ops.aten.max_pool2d_with_indices_backward(g, x, [p, p], [p, p], [0, 0], [1, 1], False, aux)


# -- native (C++) --------------------------------------------------------------------------------------


class NativeOps:
    """The step on the C++ kernels of :mod:`.native` (CPU tensors; float32/float64).

    Arrays that a flat loop cannot run over together (different strides) are first made
    alike (:func:`like`: at the first step the zero state takes the current's layout)."""

    name = "cpp"
    compile_seconds: float | None = None

    def __init__(self) -> None:
        from . import native

        self.lib = native.load()
        self.flags = native

    def neuron_step(self, c: StepConsts, u: torch.Tensor, o: torch.Tensor, cur: torch.Tensor, h: Any, q: Any,
                    x: Any, mask: Any) -> Step:
        """One kernel over the neurons (u, o, h in place; ψ, h̃, dropped new), one over the inputs (q in place)."""
        N = self.flags
        if not dense(cur):
            cur = cur.contiguous()
        u, o = like(u, cur), like(o, cur)
        f = (N.SOFT if c.soft else 0) | (N.FAST if c.psi == "fast_sigmoid" else 0)
        psi = ht = dropped = None
        if mask is not None:
            mask = like(mask, cur)
            dropped = torch.empty_like(cur)
            f |= N.MASK
        if c.traces:
            h = like(h, cur)
            psi = torch.empty_like(cur)
            f |= N.TRACES
            if c.noncausal:
                ht = torch.empty_like(cur)
                f |= N.NONCAUSAL | (N.PAPER if c.paper else 0)
        ptr = _ptr
        self.lib.step[cur.dtype](f, cur.numel(), u.data_ptr(), o.data_ptr(), cur.data_ptr(), ptr(h), ptr(mask),
                                 ptr(dropped), ptr(psi), ptr(ht), c.leak, c.theta, c.amount, c.lambda_post)
        dropped = o if mask is None else dropped
        if not c.traces:
            return u, o, None, None, None, None, dropped
        return u, o, h, self._trace(q, x, c.lambda_pre), psi, ht, dropped

    def _trace(self, q: torch.Tensor, x: torch.Tensor, lam: float) -> torch.Tensor:
        if x.dtype != q.dtype or x.device != q.device:
            x = x.to(q)
        if q.stride()[1:] != x.stride()[1:] and dense(x):
            q = like(q, x)
        rows = q.shape[0]
        inner_dense = dense(q) and q.stride()[1:] == x.stride()[1:] and rows > 0
        if not inner_dense:  # an unusual layout: the same arithmetic with torch
            return q.mul_(lam).add_(x)
        n = q.numel() // rows
        qs = q.stride(0) if rows > 1 else n
        xs = x.stride(0) if rows > 1 else n
        if qs < n or xs < n:  # rows overlap (a broadcast input): torch handles it
            return q.mul_(lam).add_(x)
        self.lib.trace[q.dtype](rows, n, q.data_ptr(), qs, x.data_ptr(), xs, lam)
        return q

    def modulate(self, g: torch.Tensor, mask: Any, psi: torch.Tensor, ht: Any) -> tuple[Any, Any, Any]:
        """One kernel: ``m = g⊙mask`` (with a mask), ``m⊙ψ``, ``m⊙h̃``."""
        N = self.flags
        g = like(g, psi) if dense(psi) else g
        if not (dense(psi) and g.stride() == psi.stride() and (ht is None or ht.stride() == psi.stride())):
            return modulate_functional(g, mask, psi, ht)
        f = 0
        m = None
        if mask is not None:
            mask = like(mask, psi)
            m = torch.empty_like(psi)
            f |= N.MASK
        mh = None
        if ht is not None:
            mh = torch.empty_like(psi)
            f |= N.HTILDE
        mpsi = torch.empty_like(psi)
        self.lib.modulate[psi.dtype](f, psi.numel(), g.data_ptr(), _ptr(mask), psi.data_ptr(), _ptr(ht), _ptr(m),
                                     mpsi.data_ptr(), _ptr(mh))
        return (g if m is None else m), mpsi, mh

    def max_pool(self, x: torch.Tensor, p: int) -> tuple[torch.Tensor, None]:
        """One pass over ``x``: the window maxima, in ``x``'s memory format; no indices."""
        b, ch, hh, ww = x.shape
        fmt = torch.channels_last if (not x.is_contiguous() and dense(x)) else torch.contiguous_format
        out = torch.empty((b, ch, hh // p, ww // p), dtype=x.dtype, device=x.device, memory_format=fmt)
        if out.numel():
            self.lib.maxpool[x.dtype](_i64(x.shape), p, x.data_ptr(), _i64(x.stride()), out.data_ptr(),
                                      _i64(out.stride()))
        return out, None

    def max_pool_vjp(self, g: torch.Tensor, x: torch.Tensor, p: int, aux: Any) -> torch.Tensor:
        """One pass: each window's gradient to its first maximum of ``x``, every element written once."""
        if g.dtype != x.dtype:
            g = g.to(x.dtype)
        if x.stride(1) == 1 and g.stride(1) != 1 and x.shape[1] > 1:  # channels innermost in both
            g = g.contiguous(memory_format=torch.channels_last)
        out = torch.empty_like(x) if dense(x) else torch.empty(x.shape, dtype=x.dtype, device=x.device)
        if out.numel():
            self.lib.maxpool_vjp[x.dtype](_i64(x.shape), p, x.data_ptr(), _i64(x.stride()), g.data_ptr(),
                                          _i64(g.stride()), out.data_ptr(), _i64(out.stride()))
        return out


def _ptr(t: Any) -> int | None:
    return None if t is None else t.data_ptr()


def _i64(values: Any) -> Any:
    import ctypes

    return (ctypes.c_int64 * 4)(*values)


# -- torch.compile -------------------------------------------------------------------------------------


class CompiledOps:
    """:func:`torch.compile` of :func:`step_functional`, :func:`modulate_functional`, max pooling and
    :func:`max_pool_vjp_functional` (inductor's C++ on the CPU, Triton on CUDA).

    One graph per structure (reset, ψ, which traces, dropout or not) and tensor rank, with
    dynamic shapes and the float constants (γ, θ, λ, ...) as graph inputs, so a network's
    blocks share their graphs.  Compilation happens at a new signature's first call; its wall
    time is added to :attr:`compile_seconds`.  Should compiling fail (no compiler, Dynamo's
    recompile limit, an inductor error), that structure falls back to running the same
    functional form eagerly, with a warning: the result is the same arithmetic.  Dynamo's
    recompile limits are raised process-wide (``torch._dynamo.config``)."""

    name = "compile"

    def __init__(self, *, recompile_limit: int = 512) -> None:
        import torch._dynamo

        cfg = torch._dynamo.config
        for key in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
            if hasattr(cfg, key):
                setattr(cfg, key, max(int(getattr(cfg, key)), recompile_limit))
        self.compile_seconds = 0.0
        self._fns: dict[Any, Callable[..., Any]] = {}
        self._seen: set[Any] = set()
        self.failed: dict[Any, str] = {}
        """Structures whose compilation failed, with the reason (they run eagerly)."""

    def _call(self, key: Any, make: Callable[[], Callable[..., Any]], sig: Any, *args: Any) -> Any:
        if key in self.failed:
            return make()(*args)
        fn = self._fns.get(key)
        if fn is None:
            fn = self._fns[key] = torch.compile(make(), dynamic=True, fullgraph=True)
        if sig in self._seen:
            return fn(*args)
        t0 = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as exc:  # compiling failed: the same function, eagerly
            self.failed[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            log.warning("torch.compile failed for %s (%s); running it eagerly", key, self.failed[key])
            return make()(*args)
        finally:
            self.compile_seconds += time.perf_counter() - t0
        self._seen.add(sig)
        return out

    @staticmethod
    def _sig(*ts: Any) -> tuple[Any, ...]:
        return tuple(None if t is None else (t.dim(), t.is_contiguous(), t.dtype, t.device) for t in ts)

    def neuron_step(self, c: StepConsts, u: torch.Tensor, o: torch.Tensor, cur: torch.Tensor, h: Any, q: Any,
                    x: Any, mask: Any) -> Step:
        """The compiled :func:`step_functional` (new tensors; the state is not updated in place)."""
        flags = (c.soft, c.psi, c.traces, c.noncausal, c.paper)

        def make() -> Callable[..., Any]:
            return functools.partial(_step_math, *flags)

        args = (u, o, cur, h, q, x, mask, c.leak, c.theta, c.amount, c.lambda_post, c.lambda_pre)
        return self._call(("step", flags, mask is None), make, ("step", flags, self._sig(u, o, cur, h, q, x, mask)),
                          *args)

    def modulate(self, g: torch.Tensor, mask: Any, psi: torch.Tensor, ht: Any) -> tuple[Any, Any, Any]:
        """The compiled :func:`modulate_functional` (its ``m`` is ``g`` itself without a mask)."""
        if mask is None and ht is None:
            return g, g * psi, None  # one product: nothing to fuse
        return self._call(("modulate", mask is None, ht is None), lambda: modulate_functional,
                          ("mod", self._sig(g, mask, psi, ht)), g, mask, psi, ht)

    def max_pool(self, x: torch.Tensor, p: int) -> tuple[torch.Tensor, None]:
        """The compiled ``max_pool2d`` (no indices)."""
        return self._call(("pool", p), lambda: functools.partial(_max_pool, p=p), ("pool", p, self._sig(x)), x), None

    def max_pool_vjp(self, g: torch.Tensor, x: torch.Tensor, p: int, aux: Any) -> torch.Tensor:
        """The compiled :func:`max_pool_vjp_functional`."""
        return self._call(("pool_vjp", p), lambda: functools.partial(max_pool_vjp_functional, p=p),
                          ("pool_vjp", p, self._sig(g, x)), g, x)


def _max_pool(x: torch.Tensor, p: int) -> torch.Tensor:
    return F.max_pool2d(x, p, p)
