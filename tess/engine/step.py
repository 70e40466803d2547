"""One time step of TESS, written once over the kernel protocol.

A step is, in this order (TESS_RULE.md §2-§6):

1. :func:`forward`: every block in turn — current, neuron step, pooling — keeping
   each block's step quantities (:class:`~tess.engine.BlockStep`);
2. the readout's logits (:meth:`~tess.engine.Kernels.readout`);
3. at a learning step, the learning signal of every block from a *signal
   function* (:data:`SIGNALS`; the paper's local LSG is :func:`lsg_signals`, the
   readout error back-propagated within the step :func:`readout_backprop_signals`),
   which sees every block's step quantities and the logits;
4. :func:`accumulate`: the two terms of the update, the bias's and (in the window)
   the readout's gradient, added to the window sums.

Which steps learn, with which signal, is the spec's schedule
(:func:`tess_spec.signals.signal_segments`, by ``config.learning_signal``).

:func:`time_step` is that step as a pure function of ``(carry, x_t)``: the train loop
scans it over T, and a caller can drive it one step at a time, carrying the state and
the sums itself and deciding where the window is.
"""

from __future__ import annotations

from typing import Any, Protocol

from tess_spec.plan import NetworkPlan

from .kernels import Array, Kernels
from .types import BlockState, BlockStep, BlockSums, Context, ReadoutParams, Sums

__all__ = [
    "SignalFn",
    "SIGNALS",
    "init_state",
    "zero_sums",
    "forward",
    "lsg_signals",
    "readout_backprop_signals",
    "accumulate",
    "record_row",
    "time_step",
]

Carry = tuple[tuple[BlockState, ...], Sums, Any]
"""What the train loop carries: per-block state, window sums, time-summed logits."""


class SignalFn(Protocol):
    """A learning-signal function: ``∂L_l/∂(mask ⊙ o_l)`` of every block (before the mask),
    and, with ``want_loss``, the per-block losses it minimises (for the record).

    It sees every block's step quantities and the step's logits, so a signal that crosses
    blocks (the readout error back-propagated within the step) fits the same slot."""

    def __call__(self, K: Kernels, plan: NetworkPlan, ctx: Context, steps: tuple[BlockStep, ...], logits: Array,
                 *, want_loss: bool) -> tuple[tuple[Array, ...], tuple[Array, ...] | None]:
        """Return ``(grads, losses)``."""


def init_state(K: Kernels, plan: NetworkPlan, batch: int, *, traces: bool = True) -> tuple[BlockState, ...]:
    """Zero state of every block (u[-1] = o[-1] = q[-1] = h[-1] = 0), in the kernels' layout;
    shapes depend on the network and the batch only, never on T."""
    out = []
    for bp in plan.blocks:
        neurons = (batch, *K.layout_shape(bp.neurons))
        if traces:
            out.append(BlockState(K.zeros(neurons), K.zeros(neurons), K.zeros((batch, *K.layout_shape(bp.input))),
                                  K.zeros(neurons)))
        else:
            out.append(BlockState(K.zeros(neurons), K.zeros(neurons)))
    return tuple(out)


def zero_sums(K: Kernels, plan: NetworkPlan) -> Sums:
    """Zero window sums: per block the two update terms (shape of W) and the bias's, and the readout's."""
    blocks = tuple(BlockSums(K.zeros(bp.weight), K.zeros(bp.weight), K.zeros((bp.features,)) if bp.bias else None)
                   for bp in plan.blocks)
    ro = ReadoutParams(K.zeros((plan.n_classes, plan.blocks[-1].features)), K.zeros((plan.n_classes,)))
    return Sums(blocks, ro)


def forward(
    K: Kernels, plan: NetworkPlan, ctx: Context, state: tuple[BlockState, ...], x_t: Array | None,
    *, traces: bool = True, noncausal: bool = False,
) -> tuple[tuple[BlockState, ...], tuple[BlockStep, ...]]:
    """Step (1): every block in turn on the frame ``x_t`` (``None``: the context's direct input).

    Per block: ``x`` (flattened in ``(C, H, W)`` order for a linear block on a spatial input),
    ``I = Ŵ·x (+ b)`` (block 0 of a direct input: computed once, in :func:`tess.engine.prepare`),
    the neuron step, ``out = pool(mask ⊙ o)``.  Returns the new state and every block's
    :class:`~tess.engine.BlockStep`.
    """
    inp = ctx.static_x if x_t is None else x_t
    steps = []
    for i, (bp, s) in enumerate(zip(plan.blocks, state)):
        x = K.flatten(inp) if bp.flatten_input else inp
        if i == 0 and ctx.static is not None:
            operand, cur = ctx.static
        else:
            operand = K.operand(bp, x)
            cur = K.current(bp, operand, ctx.w_hat[i], ctx.params.blocks[i].bias)
        st = K.neuron_step(plan, bp, s, cur, x, ctx.masks[i], traces=traces, noncausal=noncausal)
        out, aux = K.pool(bp, st.dropped)
        steps.append(st._replace(x=x, operand=operand, out=out, aux=aux))
        inp = out
    return tuple(st.state for st in steps), tuple(steps)


def lsg_signals(K: Kernels, plan: NetworkPlan, ctx: Context, steps: tuple[BlockStep, ...], logits: Array,
                *, want_loss: bool) -> tuple[tuple[Array, ...], tuple[Array, ...] | None]:
    """The paper's learning signal (TESS_RULE.md §4), local to each block: its own output
    through the fixed LSG basis, ``∂L_l/∂(mask ⊙ o_l)`` pulled back through the block's
    pooling.  (The logits are not used: no error crosses blocks.)"""
    temperature = plan.config.lsg.temperature
    grads, losses = [], []
    for i, (bp, st) in enumerate(zip(plan.blocks, steps)):
        g_out, loss = K.lsg_grad(bp, ctx.lsg[i], st.out, ctx.onehot, ctx.weights, ctx.n, temperature, want_loss)
        grads.append(K.pool_vjp(bp, g_out, st.dropped, st.aux))
        losses.append(loss)
    return tuple(grads), (tuple(losses) if want_loss else None)


def readout_backprop_signals(K: Kernels, plan: NetworkPlan, ctx: Context, steps: tuple[BlockStep, ...],
                             logits: Array, *, want_loss: bool) -> tuple[tuple[Array, ...], tuple[Array, ...] | None]:
    """Readout back-propagation (TESS_RULE.md §11, :func:`tess_spec.signals.readout_backprop`):
    ``∂CE(logits[t], y)/∂(mask ⊙ o_l[t])`` of every block, back-propagated within the step
    from the readout (:meth:`~tess.engine.Kernels.readout_input_vjp`) through the later
    blocks (:meth:`~tess.engine.Kernels.block_vjp`: pooling, dropout mask, ψ as the
    spike's derivative, the current's input VJP through Ŵ).  Nothing crosses time.  The
    loss of every block (for the record) is the step's readout cross-entropy."""
    err = K.readout_error(logits, ctx.onehot, ctx.weights, ctx.n)
    g = K.readout_input_vjp(ctx.params.readout, err, steps[-1].out)
    grads: list[Array] = [None] * len(steps)
    for i in reversed(range(len(steps))):
        bp = plan.blocks[i]
        grads[i], g = K.block_vjp(bp, g, steps[i], ctx.masks[i], ctx.w_hat[i],
                                  plan.blocks[i - 1].output if i else None)
    losses = None
    if want_loss:
        per = K.sum(K.log_softmax(logits) * ctx.onehot, 1)
        loss = -K.sum(per if ctx.weights is None else per * ctx.weights) / ctx.n
        losses = tuple(loss for _ in steps)
    return tuple(grads), losses


SIGNALS: dict[str, SignalFn] = {"lsg": lsg_signals, "readout-backprop": readout_backprop_signals}
"""Learning-signal functions by name — the per-step signals of
:data:`tess_spec.signals.STEP_SIGNALS` (``"released"`` is a schedule of the two:
:func:`tess_spec.signals.signal_segments`)."""


def accumulate(
    K: Kernels, plan: NetworkPlan, ctx: Context, sums: Sums, steps: tuple[BlockStep, ...],
    factors: tuple[tuple[Array, Array, Array | None], ...], feats: Array, logits: Array, *, readout: bool = True,
) -> Sums:
    """Step (4): add this step's update to the window sums (TESS_RULE.md §5-§6).

    Per block, from :meth:`~tess.engine.Kernels.modulate`'s ``(m, m⊙ψ, m⊙h̃)``:
    causal ``+= α_pre (m⊙ψ[t]) ⊗ q[t]``, non-causal ``+= α_post (m⊙h̃[t-1]) ⊗ x[t]``,
    bias ``+= Σ m⊙ψ``; with ``readout`` (a step of the window), the readout's ``+=`` its
    per-step cross-entropy gradient."""
    tc = plan.traces
    blocks = []
    for bp, st, (_, mpsi, mh), bs in zip(plan.blocks, steps, factors, sums.blocks):
        causal, noncausal, bias = bs
        if tc.alpha_pre != 0:
            causal = K.accumulate_corr(bp, causal, tc.alpha_pre, mpsi, K.operand(bp, st.q))
        if tc.alpha_post != 0:
            noncausal = K.accumulate_corr(bp, noncausal, tc.alpha_post, mh, st.operand)
        if bp.bias:
            bias = bias + K.channel_sum(mpsi)
        blocks.append(BlockSums(causal, noncausal, bias))
    if not readout:
        return Sums(tuple(blocks), sums.readout)
    gw, gb = K.readout_grad(feats, logits, ctx.onehot, ctx.weights, ctx.n)
    return Sums(tuple(blocks), ReadoutParams(sums.readout.weight + gw, sums.readout.bias + gb))


def record_row(K: Kernels, steps: tuple[BlockStep, ...], ms: tuple[Array, ...] | None,
               losses: tuple[Array, ...] | None, logits: Array) -> dict[str, Any]:
    """One step of the record: per block ``u, o, psi, q, h, m`` (m and the LSG loss zero
    outside the window), the logits and the per-block LSG losses."""
    row: dict[str, Any] = {key: tuple(getattr(st, key) for st in steps) for key in ("u", "o", "psi", "q", "h")}
    row["m"] = ms if ms is not None else tuple(K.zeros(tuple(st.u.shape)) for st in steps)
    row["logits"] = logits
    row["lsg_loss"] = losses if losses is not None else tuple(K.zeros(()) for _ in steps)
    return row


def time_step(
    K: Kernels, plan: NetworkPlan, ctx: Context, carry: Carry, x_t: Array | None,
    *, learn: bool, record: bool = False, signal: SignalFn = lsg_signals, readout: bool = True,
) -> tuple[Carry, dict[str, Any] | None]:
    """One time step on ``carry = (state, sums, summed_logits)`` and frame ``x_t``.

    ``learn``: the step receives a learning signal, from ``signal`` (the caller decides
    which steps learn and with which signal: :func:`tess_spec.signals.step_signal`);
    ``readout``: a learning step also accumulates the readout's gradient (a step of the
    window; ``False`` for the released loop's LSG steps before it); ``record``: also
    return the step's record row.  The state and the sums are carried by the caller, so
    this can be driven one step at a time (a stream).
    """
    state, sums, summed = carry
    state, steps = forward(K, plan, ctx, state, x_t, noncausal=learn and plan.traces.alpha_post != 0)
    logits, feats = K.readout(ctx.params.readout, steps[-1].out)
    ms = losses = None
    if learn:
        grads, losses = signal(K, plan, ctx, steps, logits, want_loss=record)
        factors = tuple(K.modulate(g, mask, st.psi, st.h_tilde) for g, mask, st in zip(grads, ctx.masks, steps))
        sums = accumulate(K, plan, ctx, sums, steps, factors, feats, logits, readout=readout)
        ms = tuple(f[0] for f in factors)
    row = record_row(K, steps, ms, losses, logits) if record else None
    return (state, sums, summed + logits), row

