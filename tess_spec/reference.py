"""The executable oracle: one mini-batch of TESS training composed from the spec's
pure functions, in whatever dtype it is given (float64 for golden traces).

It is written for clarity, not speed: every per-step quantity is recorded.
Backends are compared against it (conformance) — they never import it; the
constants they precompute (block plans, fused LSG matrices) live in
:mod:`tess_spec.plan`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .config import TessConfig
from .lsg import block_output, learning_signal
from .neuron import lif_step, psi, reset_amount, spike
from .ops import conv2d, flatten_batch
from .optim import adam_step, sgd_step
from .plan import lsg_bases  # the fixed LSG bases (the oracle composes them unfused)
from .readout import cross_entropy, readout_features, readout_forward, readout_grad
from .shapes import block_shapes, state_shapes
from .signals import readout_backprop, readout_learns, readout_step_loss, step_signal
from .traces import noncausal_trace, postsynaptic_trace, presynaptic_trace
from .update import bias_update, block_update
from .validate import is_sequence, validate_batch
from .weight_std import standardize, standardize_vjp

__all__ = [
    "effective_weights",
    "forward_current",
    "new_record",
    "chain_grads",
    "train_batch",
    "predict",
    "optimizer_step",
]


def effective_weights(config: TessConfig, params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Ŵ of every block: standardised when the block asks for it, else W."""
    ws = []
    for i, b in enumerate(config.network.blocks):
        w = params[f"blocks.{i}.weight"]
        ws.append(standardize(w, params[f"blocks.{i}.gain"]) if b.weight_std else w)
    return ws


def forward_current(kind: str, x: np.ndarray, w_hat: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Synaptic current ``I[t] = Ŵ · x[t] (+ b)`` of a conv or linear block."""
    if kind == "conv":
        cur = conv2d(x, w_hat)
        return cur if bias is None else cur + bias[None, :, None, None]
    cur = x @ w_hat.T
    return cur if bias is None else cur + bias


def new_record(config: TessConfig, batch: int, dtype: Any) -> dict[str, Any]:
    """Zeroed per-step record buffers: ``u, o, psi, q, h, m`` (lists over blocks of
    ``(T, batch, ...)``), ``logits`` ``(T, batch, n_classes)``, ``lsg_loss`` ``(T, L)``."""
    T = config.train.T
    shapes = state_shapes(config.network, batch)
    rec: dict[str, Any] = {
        name: [np.zeros((T, *d["q" if name == "q" else "u"]), dtype) for d in shapes]
        for name in ("u", "o", "psi", "q", "h", "m")
    }
    rec["logits"] = np.zeros((T, batch, config.network.n_classes), dtype)
    rec["lsg_loss"] = np.zeros((T, len(shapes)))
    return rec


def chain_grads(
    config: TessConfig,
    params: dict[str, np.ndarray],
    causal: list[np.ndarray],
    noncausal: list[np.ndarray],
    dbias: list[np.ndarray],
    d_ro_w: np.ndarray,
    d_ro_b: np.ndarray,
    ws_vjp: Callable[[Any, Any, Any], tuple[Any, Any]] = standardize_vjp,
) -> dict[str, np.ndarray]:
    """The gradients handed to the optimiser, in parameter order: per block
    ``G = Σ_window (causal + non-causal)`` w.r.t. Ŵ, chained through weight
    standardisation to W and the gain (``ws_vjp``: the spec's
    :func:`~tess_spec.weight_std.standardize_vjp`, or a backend's own on its arrays);
    the bias sums; the readout's sums."""
    grads: dict[str, np.ndarray] = {}
    for i, b in enumerate(config.network.blocks):
        w = params[f"blocks.{i}.weight"]
        g_hat = (causal[i] + noncausal[i]).reshape(w.shape)
        if b.weight_std:
            grads[f"blocks.{i}.weight"], grads[f"blocks.{i}.gain"] = ws_vjp(w, params[f"blocks.{i}.gain"], g_hat)
        else:
            grads[f"blocks.{i}.weight"] = g_hat
        if b.bias:
            grads[f"blocks.{i}.bias"] = dbias[i]
    grads["readout.weight"] = d_ro_w
    if "readout.bias" in params:
        grads["readout.bias"] = d_ro_b
    return {k: grads[k] for k in params}


def _frame(config: TessConfig, x: np.ndarray, t: int) -> np.ndarray:
    return x[:, t] if is_sequence(config, x) else x


def optimizer_step(
    config: TessConfig, params: dict[str, np.ndarray], opt_state: dict, grads: dict[str, np.ndarray], lr: float
) -> tuple[dict[str, np.ndarray], dict]:
    """Apply every parameter's optimiser once (shared step count), returning new dicts.

    Works on any arrays with arithmetic operators (NumPy, torch, CuPy): backends
    call it on their own arrays instead of restating Adam and SGD."""
    oc = config.optimizer
    step = opt_state["step"] + 1
    new_p: dict[str, np.ndarray] = {}
    if oc.name == "adam":
        new_m, new_v = {}, {}
        for k, p in params.items():
            new_p[k], new_m[k], new_v[k] = adam_step(
                p, grads[k], opt_state["m"][k], opt_state["v"][k], step,
                lr=lr, betas=oc.betas, eps=oc.eps, weight_decay=oc.weight_decay,
            )
        return new_p, {"step": step, "m": new_m, "v": new_v}
    new_b = {}
    for k, p in params.items():
        new_p[k], new_b[k] = sgd_step(
            p, grads[k], opt_state["buf"][k], lr=lr, momentum=oc.momentum, weight_decay=oc.weight_decay
        )
    return new_p, {"step": step, "buf": new_b}


def train_batch(
    config: TessConfig,
    params: dict[str, np.ndarray],
    opt_state: dict,
    x: np.ndarray,
    y: np.ndarray,
    masks: list[np.ndarray | None] | None = None,
    lr: float | None = None,
) -> tuple[dict[str, np.ndarray], dict, dict[str, Any]]:
    """Run T steps on a batch, learn where the config's learning signal says, take one
    optimiser step.

    At each step the blocks run forward, then the readout; then, by
    :func:`tess_spec.signals.step_signal`, every block's m is its LSG signal
    (:func:`tess_spec.lsg.learning_signal`), the readout error back-propagated within
    the step (:func:`tess_spec.signals.readout_backprop`), or none; the update terms
    of a step with a signal are added to the sums, and the readout's gradient in the
    window (:func:`tess_spec.signals.readout_learns`).

    Returns ``(new_params, new_opt_state, record)``; record holds per step
    ``u, o, psi, q, h, m`` (lists over blocks of ``(T, B, ...)`` arrays; m is 0
    at steps without a signal: outside the learning window unless the signal is
    ``"released"``), ``lsg_loss`` ``(T, L)`` (the loss each block's m is the gradient
    of: its local loss, or the step's readout cross-entropy), ``logits`` ``(T, B, n_classes)``, per block the
    window sums ``dw_causal`` / ``dw_noncausal`` (w.r.t. Ŵ), the gradients
    ``grads`` handed to the optimiser, ``loss`` (CE of time-summed logits),
    ``n_correct``, and the final ``state``.
    """
    validate_batch(config, x, y)
    net, tc, lif = config.network, config.traces, config.lif
    T = config.train.T
    dtype = params["readout.weight"].dtype
    x = np.asarray(x, dtype=dtype)
    y = np.asarray(y)
    batch = x.shape[0]
    bshapes = block_shapes(net)
    bases = lsg_bases(config)
    w_hat = effective_weights(config, params)
    masks = masks if masks is not None else [None] * len(net.blocks)

    state = [{k: np.zeros(s, dtype) for k, s in d.items()} for d in state_shapes(net, batch)]
    rec = new_record(config, batch, dtype)
    causal = [np.zeros(bs.weight, dtype) for bs in bshapes]
    noncausal = [np.zeros(bs.weight, dtype) for bs in bshapes]
    dbias = [np.zeros((b.features,), dtype) for b in net.blocks]
    d_ro_w = np.zeros_like(params["readout.weight"])
    d_ro_b = np.zeros((net.n_classes,), dtype)

    for t in range(T):
        signal = step_signal(config, t)  # "lsg", "readout-backprop" or None (TESS_RULE.md §11)
        inp = _frame(config, x, t)
        seen = []  # per block: (xi, o, ψ, q, h̃[t-1]) of this step
        for i, b in enumerate(net.blocks):
            s = state[i]
            xi = flatten_batch(inp) if b.kind == "linear" else inp
            h_tilde = noncausal_trace(s["h"], tc.lambda_post, config.profile)
            cur = forward_current(b.kind, xi, w_hat[i], params.get(f"blocks.{i}.bias"))
            u = lif_step(s["u"], s["o"], cur, leak=lif.leak, reset=lif.reset,
                         amount=reset_amount(lif, config.profile, b.kind))
            o = spike(u, lif.theta)
            ps = psi(config.psi_name(i), u, lif.theta)
            q = presynaptic_trace(s["q"], xi, tc.lambda_pre)
            h = postsynaptic_trace(s["h"], ps, tc.lambda_post)
            state[i] = {"u": u, "o": o, "q": q, "h": h}
            for name, val in (("u", u), ("o", o), ("psi", ps), ("q", q), ("h", h)):
                rec[name][i][t] = val
            seen.append((xi, o, ps, q, h_tilde))
            inp = block_output(o, masks[i], b.pool, b.pool_size)
        feats = readout_features(inp)
        logits = readout_forward(feats, params["readout.weight"], params.get("readout.bias"))
        rec["logits"][t] = logits
        if signal == "lsg":
            signals = [learning_signal(o, y, bases[i], k=config.lsg_pool(i), mask=masks[i], pool=b.pool,
                                       pool_size=b.pool_size, temperature=config.lsg.temperature)
                       for i, (b, (_, o, _, _, _)) in enumerate(zip(net.blocks, seen))]
        elif signal == "readout-backprop":
            ms = readout_backprop(config, y, logits, params["readout.weight"], w_hat, [v[1] for v in seen],
                                  [v[2] for v in seen], masks)
            loss = readout_step_loss(logits, y)
            signals = [(m, loss) for m in ms]
        else:
            signals = []
        for i, (b, (m, loss)) in enumerate(zip(net.blocks, signals)):
            xi, _, ps, q, h_tilde = seen[i]
            rec["m"][i][t] = m
            rec["lsg_loss"][t, i] = loss
            c, n = block_update(b.kind, m, ps, q, h_tilde, xi, tc.alpha_pre, tc.alpha_post, b.kernel_size)
            causal[i] += c
            noncausal[i] += n
            if b.bias:
                dbias[i] += bias_update(m, ps)
        if readout_learns(config, t):
            gw, gb = readout_grad(feats, logits, y)
            d_ro_w += gw
            d_ro_b += gb

    grads = chain_grads(config, params, causal, noncausal, dbias, d_ro_w, d_ro_b)

    new_params, new_opt = optimizer_step(config, params, opt_state, grads, config.optimizer.lr if lr is None else lr)
    summed = rec["logits"].sum(axis=0)
    rec.update(
        dw_causal=causal,
        dw_noncausal=noncausal,
        grads=grads,
        loss=cross_entropy(summed, y),
        n_correct=int((summed.argmax(axis=1) == y).sum()),
        state=state,
    )
    return new_params, new_opt, rec


def predict(config: TessConfig, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Time-summed logits ``Σ_t logits[t]`` ``(B, n_classes)`` (no learning, no dropout)."""
    validate_batch(config, x)
    net, lif = config.network, config.lif
    dtype = params["readout.weight"].dtype
    x = np.asarray(x, dtype=dtype)
    w_hat = effective_weights(config, params)
    state = [{k: np.zeros(s, dtype) for k, s in d.items()} for d in state_shapes(net, x.shape[0])]
    total = np.zeros((x.shape[0], net.n_classes), dtype)
    for t in range(config.train.T):
        inp = _frame(config, x, t)
        for i, b in enumerate(net.blocks):
            xi = flatten_batch(inp) if b.kind == "linear" else inp
            cur = forward_current(b.kind, xi, w_hat[i], params.get(f"blocks.{i}.bias"))
            u = lif_step(state[i]["u"], state[i]["o"], cur, leak=lif.leak, reset=lif.reset,
                         amount=reset_amount(lif, config.profile, b.kind))
            o = spike(u, lif.theta)
            state[i] = {"u": u, "o": o}
            inp = block_output(o, None, b.pool, b.pool_size)
        total += readout_forward(readout_features(inp), params["readout.weight"], params.get("readout.bias"))
    return total
