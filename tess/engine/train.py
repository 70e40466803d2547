"""A mini-batch of TESS and prediction, written once over the kernel protocol.

:func:`train_batch` = :func:`prepare` → :func:`~tess.engine.time_step` scanned over
the T steps, one scan per segment of the learning-signal schedule
(:func:`tess_spec.signals.signal_segments`: before the window, then in it) →
:func:`gradients` (the window sums chained through weight standardisation) → ``reduce`` (identity by default; a
data-parallel run sums gradients and :class:`~tess.engine.Totals` across workers
here, once) → the optimiser step.  The same function runs eagerly (NumPy, torch,
CuPy: :meth:`~tess.engine.Kernels.scan` is a Python loop) and under ``jax.jit``
(JAX: ``scan`` is ``jax.lax.scan``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

from tess_spec.config import OptimizerConfig
from tess_spec.plan import NetworkPlan
from tess_spec.signals import signal_segments

from .kernels import Array, Kernels
from .step import SIGNALS, SignalFn, forward, init_state, time_step, zero_sums
from .types import BlockParams, BlockState, Context, Params, ReadoutParams, Sums, Totals

__all__ = [
    "ReduceFn",
    "TrainResult",
    "adam_corrections",
    "prepare",
    "gradients",
    "totals",
    "train_batch",
    "predict",
]

ReduceFn = Callable[[Params, Totals], tuple[Params, Totals]]
"""``reduce(grads, totals) -> (grads, totals)``: where a data-parallel run sums across workers."""


class TrainResult(NamedTuple):
    """What :func:`train_batch` returns (framework arrays).

    Attributes:
        params, moments: after the optimiser step.
        totals: the batch's summed loss and correct count (before the update).
        state: every block's final state (the kernels' layout).
        sums: the window sums of the update (w.r.t. Ŵ) and of the readout's gradient.
        grads: what the optimiser received.
        rows: with ``record``, one stacked record part per scanned segment, else ``None``.
    """

    params: Params
    moments: dict[str, Params]
    totals: Totals
    state: tuple[BlockState, ...]
    sums: Sums
    grads: Params
    rows: list[Any] | None


def adam_corrections(oc: OptimizerConfig, step: int) -> tuple[float, float] | None:
    """Adam's bias corrections ``(1-β1^step, 1-β2^step)`` at the new (1-based) ``step``, in
    float64 on the host (in float32, ``1 - 0.999¹`` would lose five digits); ``None`` for SGD."""
    if oc.name != "adam":
        return None
    b1, b2 = oc.betas
    return 1 - b1**step, 1 - b2**step


def prepare(
    K: Kernels, plan: NetworkPlan, params: Params, x: Array, *, y: Array | None = None,
    masks: Sequence[Array | None] | None = None, lsg: Sequence[Array] | None = None,
    weights: Array | None = None, n: Any = None,
) -> tuple[Context, Array | None]:
    """The per-sequence :class:`~tess.engine.Context` and the time-major frames of ``x``.

    ``x``: ``(B, *input)`` (a direct input: the frames are ``None``, the context holds the
    input and block 0's current, computed once) or ``(B, T, *input)``, in the spec's
    layout; ``masks`` likewise (converted to the kernels' layout here); ``y``: labels on
    the device (training); ``n``: the batch size means divide by (default: ``B``).
    """
    L = len(plan.blocks)
    w_hat = tuple(K.standardize(p.weight, p.gain) if bp.weight_std else p.weight
                  for bp, p in zip(plan.blocks, params.blocks))
    masks_l = tuple(None if m is None else K.to_layout(m) for m in (masks or (None,) * L))
    sequence = x.ndim == len(plan.config.network.input_shape) + 2
    frames = static_x = static = None
    if sequence:
        frames = K.frames(x)
    else:
        static_x = K.to_layout(x)
        bp0 = plan.blocks[0]
        x0 = K.flatten(static_x) if bp0.flatten_input else static_x
        operand = K.operand(bp0, x0)
        static = (operand, K.current(bp0, operand, w_hat[0], params.blocks[0].bias))
    onehot = None if y is None else K.one_hot(y, plan.n_classes)
    ctx = Context(params, w_hat, masks_l, None if lsg is None else tuple(lsg), onehot, weights,
                  x.shape[0] if n is None else n, static_x, static)
    return ctx, frames


def gradients(K: Kernels, plan: NetworkPlan, params: Params, sums: Sums) -> Params:
    """The gradients the optimiser receives: per block ``G = Σ_window (causal + non-causal)``
    w.r.t. Ŵ chained through weight standardisation to W and the gain, the bias sum;
    the readout's sums."""
    blocks = []
    for bp, p, bs in zip(plan.blocks, params.blocks, sums.blocks):
        g_hat = bs.causal + bs.noncausal
        dw, dg = K.standardize_vjp(p.weight, p.gain, g_hat) if bp.weight_std else (g_hat, None)
        blocks.append(BlockParams(dw, dg, bs.bias if bp.bias else None))
    ro = ReadoutParams(sums.readout.weight, None if params.readout.bias is None else sums.readout.bias)
    return Params(tuple(blocks), ro)


def totals(K: Kernels, ctx: Context, summed: Array, y: Array) -> Totals:
    """Summed cross-entropy of the time-summed logits and the number of samples they
    predict correctly (each sample counted with its weight)."""
    per = K.sum(K.log_softmax(summed) * ctx.onehot, 1)
    correct = K.cast(K.argmax(summed) == y)
    if ctx.weights is not None:
        per, correct = per * ctx.weights, correct * ctx.weights
    return Totals(-K.sum(per), K.sum(correct))


def train_batch(
    K: Kernels, plan: NetworkPlan, params: Params, moments: dict[str, Params], x: Array, y: Array,
    masks: Sequence[Array | None] | None, *, lr: Any, corrections: Any, lsg: Sequence[Array],
    record: bool = False, weights: Array | None = None, n: Any = None,
    signal: SignalFn | None = None, reduce: ReduceFn | None = None,
) -> TrainResult:
    """T steps of TESS on a batch — each segment of the config's learning-signal schedule
    (:func:`tess_spec.signals.signal_segments`) scanned with its signal from
    :data:`~tess.engine.SIGNALS` (``"lsg"``: no learning before ``plan.window_start``, the
    LSG from it on) — then the gradients, ``reduce``, and one optimiser step.

    ``x``, ``masks`` in the spec's layout, ``y`` labels on the device, ``lr`` and
    ``corrections`` (:func:`adam_corrections`) numbers or 0-d arrays, ``lsg`` the per-block
    LSG matrices in the kernels' layout, ``weights``/``n`` as in :func:`prepare`;
    ``signal``: a signal function used at every learning step instead of the schedule's.
    """
    ctx, frames = prepare(K, plan, params, x, y=y, masks=masks, lsg=lsg, weights=weights, n=n)
    batch = x.shape[0]
    carry = (init_state(K, plan, batch), zero_sums(K, plan), K.zeros((batch, plan.n_classes)))
    parts = []
    for seg in signal_segments(plan.config, plan.window_start):
        lo, hi = seg.start, seg.stop
        fn = signal if signal is not None or seg.signal is None else SIGNALS[seg.signal]
        body = partial(time_step, K, plan, ctx, learn=seg.signal is not None, record=record,
                       signal=fn if fn is not None else SIGNALS["lsg"], readout=seg.readout)
        carry, rows = K.scan(body, carry, None if frames is None else frames[lo:hi], hi - lo)
        parts.append(rows)
    state, sums, summed = carry
    tot = totals(K, ctx, summed, y)
    grads = gradients(K, plan, params, sums)
    if reduce is not None:
        grads, tot = reduce(grads, tot)
    new_params, new_moments = K.optimizer_step(plan.config.optimizer, params, moments, grads, lr, corrections)
    return TrainResult(new_params, new_moments, tot, state, sums, grads, parts if record else None)


def predict(K: Kernels, plan: NetworkPlan, params: Params, x: Array,
            masks: Sequence[Array | None] | None = None) -> Array:
    """Time-summed logits ``Σ_t logits[t]`` ``(B, n_classes)``: the forward pass alone (no
    traces, no learning).  ``masks`` (none for prediction) let a method that differentiates
    through this function (BPTT) train with dropout."""
    ctx, frames = prepare(K, plan, params, x, masks=masks)
    batch = x.shape[0]

    def body(carry: Any, x_t: Any) -> tuple[Any, None]:
        state, summed = carry
        state, steps = forward(K, plan, ctx, state, x_t, traces=False)
        logits, _ = K.readout(params.readout, steps[-1].out)
        return (state, summed + logits), None

    (_, summed), _ = K.scan(body, (init_state(K, plan, batch, traces=False), K.zeros((batch, plan.n_classes))),
                            frames, plan.T)
    return summed

