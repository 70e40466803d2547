"""Learning signals (TESS_RULE.md §4 and §11): where each block's m[t] comes from, and at
which steps — a setting of its own, orthogonal to the profile
(:attr:`tess_spec.config.TessConfig.learning_signal`).

Three settings, each a schedule of two per-step signals over the T steps
(:func:`step_signal`):

* ``"lsg"`` — the paper.  In the window ``t ≥ T - n_learn`` every block's
  ``m_l[t] = ∂L_l[t]/∂o_l[t]`` of its own fixed-basis local loss
  (:func:`tess_spec.lsg.learning_signal`): spatially local.  No signal before the window.
* ``"readout-backprop"`` — in the window, ``m_l[t] = ∂CE(logits[t], y)/∂o_l[t]``, the
  readout's cross-entropy of step t back-propagated *within step t* from the readout
  through blocks ``l+1 … L`` (:func:`readout_backprop`): temporally local (no
  back-propagation through time) but not spatially local.  No signal before the window.
* ``"released"`` — the public code's loop as it runs: the LSG signal at the steps
  *before* the window, readout back-propagation inside it.  Every step learns.

Whatever the signal, the traces, the update of §5 (the bilinear form of m), its chain
through weight standardisation and the optimiser step once per mini-batch are
unchanged, and the readout learns from its own per-step cross-entropy in the window
only (§6; :func:`readout_learns`).

Readout back-propagation is an exact gradient in a stated graph (the conformance
suite checks it against autodiff, :mod:`tess.conformance.oracles`): with
``α_post = 0``, ``λ_pre = γ`` and the reset treated as a constant, the window-summed
update of block l,

    Σ_{t ≥ T-n_learn} α_pre (m_l[t] ⊙ ψ_l[t]) ⊗ q_l[t],

equals ``α_pre · ∂/∂Ŵ_l Σ_{t ≥ T-n_learn} CE(logits[t], y)`` in the graph where block
l's input ``x_l[t]`` is a constant, block l keeps only its own membrane recursion
``u_l[t] = γ(u_l[t-1] - r·sg(o_l[t-1])) + I_l[t]`` with ``o_l[t] = H(u_l[t] - θ)`` and
``∂o/∂u := ψ``, and every later block k > l sees its previous step as constants,
``u_k[t] = γ(sg(u_k[t-1]) - r·sg(o_k[t-1])) + Ŵ_k x_k[t]`` (sg: stop-gradient) —
because then ``∂CE_t/∂o_l[s] = 0`` for ``s ≠ t`` and ``∂u_l[t]/∂I_l[s] = γ^(t-s)``,
whose sum against ``x_l[s]`` is ``q_l[t]`` when ``λ_pre = γ``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .config import LEARNING_SIGNALS, TessConfig
from .lsg import softmax
from .ops import conv2d, pool_backward, pool_forward
from .readout import cross_entropy

__all__ = [
    "LEARNING_SIGNALS",
    "STEP_SIGNALS",
    "step_signal",
    "readout_learns",
    "signal_schedule",
    "Segment",
    "signal_segments",
    "readout_error",
    "readout_input_grad",
    "current_input_grad",
    "readout_backprop",
    "readout_step_loss",
]

STEP_SIGNALS: tuple[str, ...] = ("lsg", "readout-backprop")
"""The per-step signals a schedule is made of (``None``: the step does not learn)."""


def _signal_at(mode: str, t: int, window_start: int) -> str | None:
    in_window = t >= window_start
    if mode == "lsg":
        return "lsg" if in_window else None
    if mode == "readout-backprop":
        return "readout-backprop" if in_window else None
    if mode == "released":
        return "readout-backprop" if in_window else "lsg"
    raise ValueError(f"learning_signal={mode!r} is not one of {LEARNING_SIGNALS}")


def step_signal(config: TessConfig, t: int) -> str | None:
    """The signal every block receives at step ``t`` (``None``: no learning signal).

    With ``s = T - n_learn`` (:attr:`~tess_spec.config.TrainConfig.window_start`):

    | ``learning_signal`` | ``t < s`` | ``t ≥ s`` |
    |---|---|---|
    | ``"lsg"`` | ``None`` | ``"lsg"`` |
    | ``"readout-backprop"`` | ``None`` | ``"readout-backprop"`` |
    | ``"released"`` | ``"lsg"`` | ``"readout-backprop"`` |
    """
    if not 0 <= t < config.train.T:
        raise ValueError(f"t={t} is outside the sequence 0..{config.train.T - 1}")
    return _signal_at(config.learning_signal, t, config.train.window_start)


def readout_learns(config: TessConfig, t: int) -> bool:
    """Whether the readout's per-step cross-entropy gradient is accumulated at step ``t``:
    in the learning window ``t ≥ T - n_learn``, for every learning signal (§6)."""
    return t >= config.train.window_start


def signal_schedule(config: TessConfig) -> tuple[str | None, ...]:
    """:func:`step_signal` of every step ``t = 0 … T-1``."""
    return tuple(step_signal(config, t) for t in range(config.train.T))


@dataclass(frozen=True)
class Segment:
    """A run of consecutive steps ``start ≤ t < stop`` with the same block signal
    (``None``: no learning) and the same readout setting (``readout``: its gradient is
    accumulated)."""

    start: int
    stop: int
    signal: str | None
    readout: bool


def signal_segments(config: TessConfig, window_start: int | None = None) -> tuple[Segment, ...]:
    """The schedule as maximal runs of equal ``(step_signal, readout_learns)``, in order
    (at most two: before the window and in it).  An implementation may loop over them.

    ``window_start``: the window's first step if not the config's (an implementation's
    plan holds its own; :func:`step_signal` and :func:`readout_learns` with that window)."""
    start = config.train.window_start if window_start is None else int(window_start)
    out: list[Segment] = []
    for t in range(config.train.T):
        key = (_signal_at(config.learning_signal, t, start), t >= start)
        if out and (out[-1].signal, out[-1].readout) == key:
            out[-1] = Segment(out[-1].start, t + 1, *key)
        else:
            out.append(Segment(t, t + 1, *key))
    return tuple(out)


def readout_error(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``e[t] = ∂ mean_b CE(logits[t], y)/∂logits[t] = (softmax(logits[t]) - onehot(y)) / B``."""
    n = logits.shape[0]
    err = softmax(logits)
    err[np.arange(n), y] -= 1
    return err / n


def readout_step_loss(logits: np.ndarray, y: np.ndarray) -> float:
    """The loss readout back-propagation differentiates at step t: ``mean_b CE(logits[t], y)``."""
    return cross_entropy(logits, y)


def readout_input_grad(err: np.ndarray, readout_weight: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """``∂(e · logits)/∂out_L``: through ``logits = W_r a_L + b_r`` and the readout's global
    average ``a_L = mean_{h,w} out_L`` (a spatial last block), i.e. ``e W_r`` spread as
    ``(e W_r) / (H·W)`` over every position; ``out_shape`` is the last block's output shape."""
    g = err @ readout_weight
    if len(out_shape) == 4:
        b, c, h, w = out_shape
        return np.broadcast_to((g / (h * w))[:, :, None, None], out_shape).copy()
    return g


def current_input_grad(kind: str, delta: np.ndarray, w_hat: np.ndarray) -> np.ndarray:
    """The input VJP of the synaptic current ``I = Ŵ · x``: ``∂(δ · I)/∂x``.

    Linear: ``δ Ŵ``.  Conv (same padding, stride 1): the same-padded convolution of δ
    with the kernel transposed in its channels and flipped in space,
    ``∂/∂x[n,c,i,j] = Σ_{f,a,b} δ[n,f,i-a+p,j-b+p] Ŵ[f,c,a,b]``
    (``Ŵ`` is the standardised weight when the block standardises: the signal crosses
    the block through the weights it computes with)."""
    if kind == "conv":
        flipped = np.ascontiguousarray(w_hat.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        return conv2d(delta, flipped)
    return delta @ w_hat


def readout_backprop(
    config: TessConfig,
    y: np.ndarray,
    logits: np.ndarray,
    readout_weight: np.ndarray,
    w_hat: Sequence[np.ndarray],
    o: Sequence[np.ndarray],
    psi: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None],
) -> list[np.ndarray]:
    """Readout back-propagation within one step: ``m_l[t] = ∂CE(logits[t], y)/∂o_l[t]`` of
    every block, from that step's spikes ``o``, surrogates ``psi``, dropout ``masks`` and
    effective weights ``w_hat`` (lists over blocks).

    With ``e = (softmax(logits[t]) - onehot(y)) / B`` (:func:`readout_error`), ``P_l^T``
    the VJP of block l's pooling at ``mask_l ⊙ o_l[t]`` (max: the first maximal element of
    each window) and ``A^T`` that of the readout's global average:

        m_L[t]   = mask_L ⊙ P_L^T( A^T (e W_r) )
        m_l[t]   = mask_l ⊙ P_l^T( Ŵ_{l+1}^T (m_{l+1}[t] ⊙ ψ_{l+1}[t]) ),   l < L

    where ``Ŵ^T`` is :func:`current_input_grad` (reshaped to the block's output shape
    where the next block is linear on a spatial input): the spike derivative of every
    later block is its ψ (``∂o/∂u := ψ``, ``∂u/∂I = 1``), and nothing is differentiated
    through time (u[t-1], o[t-1] of every block are constants).  The bias of a block does
    not enter (``∂I/∂x`` does not depend on it)."""
    blocks = config.network.blocks
    dropped = [oi if mi is None else oi * mi for oi, mi in zip(o, masks)]
    outs = [pool_forward(d, b.pool, b.pool_size) if d.ndim == 4 else d for d, b in zip(dropped, blocks)]
    g = readout_input_grad(readout_error(logits, y), readout_weight, outs[-1].shape)
    ms: list[np.ndarray] = [np.zeros(0)] * len(blocks)
    for i in reversed(range(len(blocks))):
        b = blocks[i]
        g_dropped = pool_backward(g, dropped[i], b.pool, b.pool_size) if dropped[i].ndim == 4 else g
        m = g_dropped if masks[i] is None else g_dropped * masks[i]
        ms[i] = m
        if i:
            g = current_input_grad(b.kind, m * psi[i], w_hat[i]).reshape(outs[i - 1].shape)
    return ms
