"""The kernel protocol: the primitives a backend implements on its framework, and the
coarser steps it may replace (for fusion), with their default compositions.

The engine (:mod:`tess.engine.step`, :mod:`tess.engine.train`) writes the algorithm
once against a :class:`Kernels` object.  A backend subclasses :class:`Kernels` and

* **must** implement the primitives (marked *primitive* below): array creation
  and conversion, a few elementwise and reduction functions, and the network
  operators — the synaptic current, the weight-gradient correlation, pooling and
  its vector-Jacobian product;
* **may** replace any coarser step (marked *coarse*): the fused neuron step
  (LIF + spike + ψ + both traces + h̃ + dropout), the learning-signal product,
  the LSG gradient, weight standardisation and its VJP, the readout, the
  optimiser step, the addition of a correlation to a window sum
  (:meth:`Kernels.accumulate_corr`), the input VJP of the current and the per-block VJP that
  readout back-propagation chains (:meth:`Kernels.block_vjp`,
  :meth:`Kernels.readout_input_vjp`), the layout conversions — each
  has a default written here in terms of the primitives, which is what the
  conformance suite checks it against.

What a backend never replaces is the loop: the order of the blocks and of the
quantities in a step, the learning window, which terms the update sums and when, the
chain through weight standardisation and the optimiser application are the
engine's.  :meth:`scan` runs the time loop — a Python loop by default, ``jax.lax.scan``
on JAX — over the engine's step function.

Layout.  Activations (state, inputs, masks) are held in :attr:`Kernels.layout`
inside the engine: ``"NCHW"`` (the spec's) or ``"NHWC"`` (channels-last, which
XLA on CPU and an im2col GEMM prefer).  Weights always keep the spec's
``(F, C, k, k)`` / ``(F, N)`` layout; the boundary converts everything else.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import numpy as np

from tess_spec.config import OptimizerConfig
from tess_spec.errors import ConfigError
from tess_spec.plan import BlockPlan, NetworkPlan
from tess_spec.weight_std import WS_EPS

from .types import BlockState, BlockStep, Params, ReadoutParams, tree_map

__all__ = ["Kernels", "Array"]

Array = Any
"""A framework array (NumPy, torch, JAX, CuPy)."""


class Kernels:
    """Base class of every backend's kernels (see the module docstring).

    Args:
        dtype: ``"float32"`` or ``"float64"``: the dtype of every array the kernels create.
    """

    layout: ClassVar[str] = "NCHW"
    """Activation layout inside the engine: ``"NCHW"`` or ``"NHWC"``."""

    def __init__(self, dtype: str = "float32") -> None:
        self.dtype = dtype

    # -- primitives: arrays ----------------------------------------------------------
    def zeros(self, shape: tuple[int, ...]) -> Array:
        """*Primitive.* A zero array of ``shape`` in :attr:`dtype` on the backend's device."""
        raise NotImplementedError

    def labels(self, y: np.ndarray) -> Array:
        """*Primitive.* Integer labels ``(B,)`` (NumPy int64) as an array on the device."""
        raise NotImplementedError

    def to_numpy(self, a: Array) -> np.ndarray:
        """*Primitive.* A NumPy copy of ``a``."""
        raise NotImplementedError

    def cast(self, a: Array) -> Array:
        """*Primitive.* ``a`` (e.g. a boolean array) as :attr:`dtype`."""
        raise NotImplementedError

    def transpose(self, a: Array, axes: tuple[int, ...]) -> Array:
        """*Primitive.* ``a`` with its axes permuted (a view where the framework allows)."""
        raise NotImplementedError

    def one_hot(self, y: Array, n: int) -> Array:
        """*Primitive.* ``(B, n)`` one-hot rows of the labels ``y`` in :attr:`dtype`."""
        raise NotImplementedError

    # -- primitives: elementwise and reductions ------------------------------------------
    def abs(self, a: Array) -> Array:
        """*Primitive.* ``|a|``."""
        raise NotImplementedError

    def relu(self, a: Array) -> Array:
        """*Primitive.* ``max(a, 0)``."""
        raise NotImplementedError

    def sqrt(self, a: Array) -> Array:
        """*Primitive.* ``√a``."""
        raise NotImplementedError

    def exp(self, a: Array) -> Array:
        """*Primitive.* ``exp(a)``."""
        raise NotImplementedError

    def log_softmax(self, z: Array) -> Array:
        """*Primitive.* ``log softmax(z)`` over the last axis (numerically stable)."""
        raise NotImplementedError

    def softmax(self, z: Array) -> Array:
        """*Coarse.* ``softmax(z)`` over the last axis: ``exp(log_softmax(z))`` by default."""
        return self.exp(self.log_softmax(z))

    def sum(self, a: Array, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Array:
        """*Primitive.* Sum over ``axis`` (all axes when ``None``)."""
        raise NotImplementedError

    def mean(self, a: Array, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Array:
        """*Primitive.* Mean over ``axis`` (all axes when ``None``)."""
        raise NotImplementedError

    def argmax(self, a: Array) -> Array:
        """*Primitive.* Index of the first maximum along the last axis."""
        raise NotImplementedError

    # -- primitives: the network's operators ------------------------------------------------
    def current(self, bp: BlockPlan, operand: Array, w_hat: Array, bias: Array | None) -> Array:
        """*Primitive.* Synaptic current ``I[t] = Ŵ · x[t] (+ b)``: a same-padded stride-1
        convolution (``(B, C, H, W) → (B, F, H, W)`` in :attr:`layout`) or ``x Ŵᵀ``
        (``(B, N) → (B, F)``).  ``operand`` is :meth:`operand` of the block input."""
        raise NotImplementedError

    def weight_corr(self, bp: BlockPlan, delta: Array, operand: Array) -> Array:
        """*Primitive.* ``δ ⊗ x`` summed over the batch (and positions): ``δᵀ x`` for a linear
        block, the conv weight-gradient correlation
        ``G[f,c,a,b] = Σ_{n,i,j} δ[n,f,i,j] · x_pad[n,c,i+a,j+b]`` for a conv block, in the
        weight's layout ``bp.weight``.  ``operand`` is :meth:`operand` of ``x``."""
        raise NotImplementedError

    def pool(self, bp: BlockPlan, x: Array) -> tuple[Array, Any]:
        """*Primitive.* The block's pooling of ``x`` (``bp.pool``: ``None``, ``"max"``/``"avg"``
        with window = stride = ``bp.pool_size`` (floor), or ``"global_avg"`` → 1×1) and
        whatever its VJP needs (``None`` if nothing)."""
        raise NotImplementedError

    def pool_vjp(self, bp: BlockPlan, g: Array, x: Array, aux: Any) -> Array:
        """*Primitive.* Vector-Jacobian product of :meth:`pool` at ``x``: max routes each window's
        gradient to its FIRST maximal element (row-major), avg spreads ``g / p²``, global
        average ``g / (H·W)``; rows and columns cropped by the floor get zero."""
        raise NotImplementedError

    # -- layout (coarse; defaults from :attr:`layout`) -----------------------------------------
    def to_layout(self, a: Array) -> Array:
        """*Coarse.* An ``(B, C, H, W)`` array in :attr:`layout` (other ranks unchanged)."""
        if self.layout == "NHWC" and a.ndim == 4:
            return self.transpose(a, (0, 2, 3, 1))
        return a

    def from_layout(self, a: Array) -> Array:
        """*Coarse.* The inverse of :meth:`to_layout`: back to the spec's ``(B, C, H, W)``."""
        if self.layout == "NHWC" and a.ndim == 4:
            return self.transpose(a, (0, 3, 1, 2))
        return a

    def layout_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """*Coarse.* A per-sample spec shape ``(C, H, W)`` in :attr:`layout` (other ranks unchanged)."""
        if self.layout == "NHWC" and len(shape) == 3:
            return (shape[1], shape[2], shape[0])
        return tuple(shape)

    def frames(self, x: Array) -> Array:
        """*Coarse.* A sequence ``(B, T, *input)`` as time-major frames ``(T, B, *input)`` in :attr:`layout`."""
        if self.layout == "NHWC" and x.ndim == 5:
            return self.transpose(x, (1, 0, 3, 4, 2))
        return self.transpose(x, (1, 0, *range(2, x.ndim)))

    def flatten(self, x: Array) -> Array:
        """*Coarse.* ``(B, ...)`` → ``(B, N)`` in the spec's ``(C, H, W)`` order (a linear block's input)."""
        return self.from_layout(x).reshape(x.shape[0], -1)

    def spatial_mean(self, x: Array) -> Array:
        """*Coarse.* ``(B, C, H, W)`` (in :attr:`layout`) → ``(B, C)``: the global average pool."""
        return self.mean(x, (1, 2) if self.layout == "NHWC" else (2, 3))

    def channel_sum(self, a: Array) -> Array:
        """*Coarse.* Sum over every axis but the channel one → ``(C,)`` (a bias gradient)."""
        if a.ndim == 2:
            return self.sum(a, 0)
        return self.sum(a, (0, 1, 2) if self.layout == "NHWC" else (0, 2, 3))

    def add_bias(self, bp: BlockPlan, cur: Array, bias: Array | None) -> Array:
        """*Coarse.* ``cur + b`` broadcast over the channel axis of :attr:`layout`."""
        if bias is None:
            return cur
        if bp.kind == "conv" and self.layout == "NCHW":
            return cur + bias[:, None, None]
        return cur + bias

    # -- the block input -----------------------------------------------------------------------
    def operand(self, bp: BlockPlan, x: Array) -> Array:
        """*Coarse.* ``x`` as :meth:`current` and :meth:`weight_corr` consume it — im2col patches
        for a GEMM backend, so one step's current and non-causal correlation share them;
        ``x`` itself by default."""
        return x

    def current_vjp(self, bp: BlockPlan, g: Array, w_hat: Array) -> Array:
        """*Coarse.* ``∂(g · I)/∂x``: the input VJP of :meth:`current` (``g Ŵ`` for a linear block,
        the transposed convolution — with the flipped, transposed kernel — for a conv block).
        The engine's LSG method does not use it; a learning signal that crosses blocks does."""
        if bp.kind == "linear":
            return g @ w_hat
        flipped = self.transpose(w_hat, (1, 0, 2, 3))[:, :, ::-1, ::-1]
        c = bp.input[0]
        bt = dataclasses.replace(bp, features=c, input=bp.neurons, neurons=(c, *bp.neurons[1:]),
                                 weight=(c, bp.features, *bp.weight[2:]))
        return self.current(bt, self.operand(bt, g), flipped, None)

    def unflatten(self, g: Array, shape: tuple[int, ...]) -> Array:
        """*Coarse.* The inverse of :meth:`flatten`: ``(B, N)`` → ``(B, *shape)`` (a per-sample
        spec shape ``(C, H, W)``) in :attr:`layout` — a linear block's input gradient back to
        the spatial output it flattened."""
        return self.to_layout(g.reshape(g.shape[0], *shape)) if len(shape) == 3 else g

    def block_vjp(self, bp: BlockPlan, g_out: Array, st: BlockStep, mask: Array | None, w_hat: Array,
                  input_shape: tuple[int, ...] | None) -> tuple[Array, Array | None]:
        """*Coarse.* One block's VJP within a step (readout back-propagation,
        :func:`tess_spec.signals.readout_backprop`), from ``g_out = ∂L/∂out``:
        ``g = pool_vjp(g_out)`` (= ``∂L/∂(mask ⊙ o)``) and, unless ``input_shape`` is ``None``
        (the first block), the gradient of the block's input
        ``Ŵᵀ((mask ⊙ g) ⊙ ψ)`` (:meth:`current_vjp`; the spike's derivative is ψ), unflattened
        to ``input_shape`` (the previous block's per-sample output shape)."""
        g = self.pool_vjp(bp, g_out, st.dropped, st.aux)
        if input_shape is None:
            return g, None
        m = g if mask is None else g * mask
        g_in = self.current_vjp(bp, m * st.psi, w_hat)
        return g, (self.unflatten(g_in, input_shape) if bp.flatten_input else g_in)

    # -- the neuron step (coarse; the equations of TESS_RULE.md §2-§3, one method each) -------------
    def lif(self, u: Array, o: Array, cur: Array, leak: float, reset: str, amount: float) -> Array:
        """``u[t] = γ(u[t-1] - r·o[t-1]) + I[t]`` (soft) or ``γ·u[t-1]·(1 - o[t-1]) + I[t]`` (hard)."""
        if reset == "soft":
            return leak * (u - amount * o) + cur
        return leak * u * (1 - o) + cur

    def spike(self, u: Array, theta: float, psi: str) -> Array:
        """``o[t] = 1 if u[t] > θ else 0`` (strict).  ``psi`` names the block's surrogate, for a
        method that differentiates through the spike (it takes ψ as ∂o/∂u)."""
        return self.cast(u > theta)

    def psi(self, name: str, u: Array, theta: float) -> Array:
        """ψ[t] by name: ``0.3·max(0, 1 - |u - θ|)`` (triangle) or ``1 / (100·|u - θ| + 1)²`` (fast_sigmoid)."""
        if name == "triangle":
            return 0.3 * self.relu(1 - self.abs(u - theta))
        if name == "fast_sigmoid":
            return 1 / (100 * self.abs(u - theta) + 1) ** 2
        raise ConfigError(f"psi={name!r} is invalid: expected 'triangle' or 'fast_sigmoid'")

    def presynaptic_trace(self, q: Array, x: Array, lambda_pre: float) -> Array:
        """``q[t] = λ_pre · q[t-1] + x[t]``."""
        return lambda_pre * q + x

    def postsynaptic_trace(self, h: Array, psi: Array, lambda_post: float) -> Array:
        """``h[t] = λ_post · h[t-1] + ψ[t]``."""
        return lambda_post * h + psi

    def noncausal_trace(self, h_prev: Array, h_new: Array, lambda_post: float, profile: str) -> Array:
        """h̃[t-1] from the trace before this step's update: ``λ_post·h[t-1]`` (paper) or
        ``h[t-1]`` (reference-code).  ``h_new`` (h[t]) is there for variants that need it."""
        return lambda_post * h_prev if profile == "paper" else h_prev

    def neuron_step(
        self, plan: NetworkPlan, bp: BlockPlan, s: BlockState, cur: Array, x: Array, mask: Array | None,
        *, traces: bool = True, noncausal: bool = False,
    ) -> BlockStep:
        """*Coarse.* One block's elementwise step: LIF, spike, dropout ``mask ⊙ o`` and — with
        ``traces`` — ψ, ``q[t]``, ``h[t]`` and (with ``noncausal``) h̃[t-1].

        ``s`` holds the previous step's state; ``x`` is the block input (for q).  A backend
        may update ``s``'s arrays in place (the engine never reads an old state again).
        Returns a :class:`~tess.engine.BlockStep` with the pooling fields left ``None``.
        """
        lif, tc = plan.lif, plan.traces
        u = self.lif(s.u, s.o, cur, lif.leak, lif.reset, bp.amount)
        o = self.spike(u, lif.theta, bp.psi)
        dropped = o if mask is None else o * mask
        if not traces:
            return BlockStep(u=u, o=o, dropped=dropped)
        psi = self.psi(bp.psi, u, lif.theta)
        q = self.presynaptic_trace(s.q, x, tc.lambda_pre)
        h = self.postsynaptic_trace(s.h, psi, tc.lambda_post)
        h_tilde = self.noncausal_trace(s.h, h, tc.lambda_post, plan.profile) if noncausal else None
        return BlockStep(u=u, o=o, q=q, h=h, psi=psi, h_tilde=h_tilde, dropped=dropped)

    # -- learning ---------------------------------------------------------------------------------
    def lsg_grad(
        self, bp: BlockPlan, M: Array, out: Array, onehot: Array, weights: Array | None, n: Any,
        temperature: float, want_loss: bool,
    ) -> tuple[Array, Array | None]:
        """*Coarse.* ``∂L_l/∂out`` of the block's local loss and (with ``want_loss``) ``L_l``.

        ``z = M·out`` (M = B̃ ∘ adaptive pool, in :attr:`layout` column order);
        ``L_l = -Σ_b w_b log softmax(z_b/τ)[y_b] / n``;
        ``∂L_l/∂out = ((softmax(z/τ) - onehot) · w / (τ·n)) · M``.
        """
        b = out.shape[0]
        z = (out.reshape(b, -1) @ M.T) / temperature
        loss = None
        if want_loss:
            per = self.sum(self.log_softmax(z) * onehot, 1)
            loss = -self.sum(per if weights is None else per * weights) / n
        err = self.softmax(z) - onehot
        err = err / (temperature * n) if weights is None else err * (weights / (temperature * n))[:, None]
        return (err @ M).reshape(out.shape), loss

    def modulate(self, g: Array, mask: Array | None, psi: Array, h_tilde: Array | None) -> tuple[Array, Array, Any]:
        """*Coarse.* The learning signal and the update's per-neuron factors from
        ``g = ∂L/∂(mask ⊙ o)``: ``m = mask ⊙ g``, ``m ⊙ ψ[t]`` and ``m ⊙ h̃[t-1]`` (``None``
        without h̃)."""
        m = g if mask is None else g * mask
        return m, m * psi, (None if h_tilde is None else m * h_tilde)

    def accumulate_corr(self, bp: BlockPlan, acc: Array, alpha: float, delta: Array, operand: Array) -> Array:
        """*Coarse.* A window sum after one more term of the update: ``acc + α · (δ ⊗ x)``
        (:meth:`weight_corr`).  A backend may add into ``acc`` in place and return it (the
        engine never reads an old sum again), e.g. as one GEMM with β = 1."""
        return acc + alpha * self.weight_corr(bp, delta, operand)

    def readout(self, rp: ReadoutParams, out: Array) -> tuple[Array, Array]:
        """*Coarse.* ``(logits[t], a_L[t])``: ``a_L`` the last block's output (globally averaged
        if spatial), ``logits = W_r a_L + b_r``."""
        feats = self.spatial_mean(out) if out.ndim == 4 else out
        logits = feats @ rp.weight.T
        return (logits if rp.bias is None else logits + rp.bias), feats

    def readout_grad(self, feats: Array, logits: Array, onehot: Array, weights: Array | None,
                     n: Any) -> tuple[Array, Array]:
        """*Coarse.* Gradient of the step's readout loss ``mean CE(logits[t], y)``:
        ``(errᵀ a_L, Σ_b err)`` with ``err = (softmax(logits) - onehot) · w / n``."""
        err = self.softmax(logits) - onehot
        err = err / n if weights is None else err * (weights / n)[:, None]
        return err.T @ feats, self.sum(err, 0)

    def readout_error(self, logits: Array, onehot: Array, weights: Array | None, n: Any) -> Array:
        """*Coarse.* ``∂ mean CE(logits[t], y)/∂logits[t] = (softmax(logits) - onehot) · w / n``."""
        err = self.softmax(logits) - onehot
        return err / n if weights is None else err * (weights / n)[:, None]

    def readout_input_vjp(self, rp: ReadoutParams, err: Array, out: Array) -> Array:
        """*Coarse.* ``∂(err · logits)/∂out_L``: ``err W_r`` through the readout's global
        average — ``(err W_r) / (H·W)`` at every position of a spatial ``out`` (in
        :attr:`layout`), ``err W_r`` itself for a flat one."""
        g = err @ rp.weight
        if out.ndim != 4:
            return g
        hw = out.shape[1] * out.shape[2] if self.layout == "NHWC" else out.shape[2] * out.shape[3]
        g = g / hw
        return self.zeros(tuple(out.shape)) + (g[:, None, None, :] if self.layout == "NHWC" else g[:, :, None, None])

    # -- weight standardisation (coarse) -----------------------------------------------------------
    def _ws_stats(self, weight: Array) -> tuple[Array, Array, int]:
        f = weight.shape[0]
        w = weight.reshape(f, -1)
        n = w.shape[1]
        d = w - self.mean(w, 1, keepdims=True)
        var = self.sum(d * d, 1, keepdims=True) / max(n - 1, 1)
        return d, self.sqrt(var * n + WS_EPS), n

    def standardize(self, weight: Array, gain: Array) -> Array:
        """*Coarse.* ``Ŵ_c = g_c · (W_c - mean(W_c)) / sqrt(var(W_c)·fan_in + ε)`` (unbiased var,
        ε = :data:`tess_spec.weight_std.WS_EPS`), per output row c."""
        d, s, _ = self._ws_stats(weight)
        return (gain[:, None] * d / s).reshape(weight.shape)

    def standardize_vjp(self, weight: Array, gain: Array, grad_hat: Array) -> tuple[Array, Array]:
        """*Coarse.* Pull ``G = ∂L/∂Ŵ`` back to ``(∂L/∂W, ∂L/∂g)`` (closed form of
        :func:`tess_spec.weight_std.standardize_vjp`)."""
        f = weight.shape[0]
        d, s, n = self._ws_stats(weight)
        G = grad_hat.reshape(f, -1)
        dgain = self.sum(G * d, 1) / s[:, 0]
        gx = gain[:, None] * G
        dot = self.sum(gx * d, 1, keepdims=True)
        dw = (gx - self.mean(gx, 1, keepdims=True)) / s - dot * n * d / (max(n - 1, 1) * s**3)
        return dw.reshape(weight.shape), dgain

    # -- the optimiser (coarse) ------------------------------------------------------------------------
    def optimizer_step(
        self, oc: OptimizerConfig, params: Params, moments: dict[str, Params], grads: Params, lr: Any,
        corrections: Any,
    ) -> tuple[Params, dict[str, Params]]:
        """*Coarse.* Every parameter's optimiser, once (:mod:`tess_spec.optim`): Adam
        ``p ← p - lr (m/c1) / (√(v/c2) + ε)`` with the bias corrections
        ``corrections = (c1, c2) = (1-β1^step, 1-β2^step)`` (computed by the caller in float64),
        or SGD with momentum; ``g ← g + wd·p`` first.  Returns new trees."""
        wd = oc.weight_decay
        g = tree_map(lambda g, p: g + wd * p, grads, params) if wd else grads
        if oc.name == "adam":
            b1, b2 = oc.betas
            c1, c2 = corrections[0], corrections[1]
            m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, moments["m"], g)
            v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, moments["v"], g)
            new = tree_map(lambda p, m, v: p - lr * (m / c1) / (self.sqrt(v / c2) + oc.eps), params, m, v)
            return new, {"m": m, "v": v}
        buf = tree_map(lambda b, g: oc.momentum * b + g, moments["buf"], g)
        return tree_map(lambda p, b: p - lr * b, params, buf), {"buf": buf}

    # -- the time loop ------------------------------------------------------------------------------------
    def scan(self, body: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, length: int) -> tuple[Any, Any]:
        """Run ``carry, row = body(carry, xs[t])`` for ``t < length`` (``xs`` ``None``: ``body(carry,
        None)``); return the last carry and the rows stacked along a new leading axis (as NumPy,
        each copied when produced: a kernel may update arrays in place), or ``None``.

        A Python loop here; JAX replaces it with ``jax.lax.scan`` over the same ``body``."""
        rows = []
        for t in range(length):
            carry, row = body(carry, None if xs is None else xs[t])
            if row is not None:
                rows.append(tree_map(self.to_numpy, row))
        return carry, (tree_map(lambda *a: np.stack(a), *rows) if rows else None)
