"""How the suite drives a backend and compares it with the spec.

A :class:`Target` names the backend under test (a registered name, an entry-point
name or ``"module:attribute"``) plus its dtype and device; every check gets a
fresh backend from :func:`tess.get_backend`.  :func:`compare_step` compares one
``train_batch`` of the backend with the reference (:mod:`tess_spec.reference`
run in float64 on the same float-rounded inputs) under the tolerance policy of
:mod:`tess.conformance.tolerances`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tess import get_backend
from tess.backend import Backend
from tess_spec import TessConfig, block_shapes, init_opt_state
from tess_spec import reference as ref
from tess_spec.weight_std import standardize_vjp

from . import tolerances as tol

__all__ = ["Target", "StepResult", "Comparison", "run_backend", "run_reference", "compare_step",
           "round_to", "round_tree", "expect_optimizer_step", "membrane_scales", "lsg_scales", "update_term_scales", "gradient_scales",
           "standardize_magnitude",
           "standardize_grad_scales"]


@dataclass(frozen=True)
class Target:
    """The backend under test: ``name`` for :func:`tess.get_backend`, dtype, device."""

    name: str
    dtype: str = "float64"
    device: str | None = None

    def backend(self) -> Backend:
        """A fresh backend instance."""
        opts: dict[str, Any] = {"dtype": self.dtype}
        if self.device is not None:
            opts["device"] = self.device
        return get_backend(self.name, **opts)

    def with_dtype(self, dtype: str) -> "Target":
        """The same backend in another dtype."""
        return Target(self.name, dtype, self.device)


@dataclass
class StepResult:
    """One ``train_batch`` as NumPy: ``(params, opt_state, record)`` in the reference layout."""

    params: dict[str, np.ndarray]
    opt_state: dict[str, Any]
    record: dict[str, Any]
    state: list[dict[str, np.ndarray]] | None = None
    loss: float | None = None
    n_correct: int | None = None


@dataclass
class Comparison:
    """Outcome of a comparison: failures (the check fails) and notes (reported, e.g. flips)."""

    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, msg: str) -> None:
        """Record a failure."""
        self.failures.append(msg)

    def check(self, name: str, got: np.ndarray, want: np.ndarray, quantity: str, dtype: str,
              scale: float | None = None, floor_scale: float = 0.0) -> None:
        """Compare under the policy; record a failure naming ``name`` if out of tolerance."""
        ok, msg = tol.within(got, want, quantity, dtype, scale, floor_scale)
        if not ok:
            self.fail(f"{name}: {msg}")

    def raise_if_failed(self, context: str = "") -> None:
        """``AssertionError`` listing every failure (and the notes)."""
        if self.failures:
            head = f"{context}: " if context else ""
            lines = self.failures[:12] + ([f"... and {len(self.failures) - 12} more"] if len(self.failures) > 12 else [])
            notes = ("\nnotes: " + "; ".join(self.notes)) if self.notes else ""
            raise AssertionError(head + f"{len(self.failures)} mismatch(es):\n  " + "\n  ".join(lines) + notes)


def round_to(a: Any, dtype: str) -> Any:
    """``a`` rounded to ``dtype`` and held in float64 (what the reference computes on)."""
    if a is None:
        return None
    return np.asarray(a, dtype=dtype).astype(np.float64)


def round_tree(tree: Any, dtype: str) -> Any:
    """:func:`round_to` over nested dicts/lists (ints such as ``step`` are kept)."""
    if isinstance(tree, dict):
        return {k: round_tree(v, dtype) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [round_tree(v, dtype) for v in tree]
    if isinstance(tree, (int, np.integer)):
        return tree
    return round_to(tree, dtype)


def run_backend(
    backend: Backend, config: TessConfig, params: dict[str, np.ndarray], opt_state: dict[str, Any] | None,
    x: np.ndarray, y: np.ndarray, masks: list[np.ndarray | None] | None = None, lr: float | None = None,
) -> StepResult:
    """One recorded ``train_batch`` on ``backend`` from NumPy inputs; NumPy outputs."""
    p32 = {k: np.asarray(v, dtype=backend.dtype) for k, v in params.items()}
    opt = init_opt_state(config, p32) if opt_state is None else opt_state
    out = backend.train_batch(
        config, backend.params_from_numpy(p32), backend.opt_state_from_numpy(opt), x, y,
        masks=masks, lr=lr, record=True,
    )
    if out.record is None:
        raise AssertionError("train_batch(record=True) returned no record")
    state = [{k: backend.to_numpy(v) for k, v in s.items()} for s in out.state]
    return StepResult(backend.params_to_numpy(out.params), backend.opt_state_to_numpy(out.opt_state),
                      out.record, state, float(out.loss), int(out.n_correct))


def run_reference(
    config: TessConfig, params: dict[str, np.ndarray], opt_state: dict[str, Any] | None, x: np.ndarray,
    y: np.ndarray, masks: list[np.ndarray | None] | None, lr: float | None, dtype: str,
) -> StepResult:
    """The spec in float64 on inputs rounded to ``dtype`` (so only the arithmetic differs)."""
    p = round_tree(params, dtype)
    opt = init_opt_state(config, p) if opt_state is None else round_tree(opt_state, dtype)
    xm = round_to(x, dtype)
    mk = None if masks is None else [round_to(m, dtype) for m in masks]
    lr_eff = None if lr is None else float(lr)
    new_p, new_opt, rec = ref.train_batch(config, p, opt, xm, np.asarray(y), mk, lr_eff)
    return StepResult(new_p, new_opt, rec, rec["state"], float(rec["loss"]), int(rec["n_correct"]))


def expect_optimizer_step(
    config: TessConfig, params: dict[str, np.ndarray], opt_state: dict[str, Any], grads: dict[str, np.ndarray],
    lr: float | None, dtype: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The spec's optimiser step (float64) from the backend's own gradients."""
    return ref.optimizer_step(
        config, round_tree(params, dtype), round_tree(opt_state, dtype), round_tree(grads, dtype),
        config.optimizer.lr if lr is None else float(lr),
    )


def _flip_steps(config: TessConfig, want: dict, got: dict, dtype: str, cmp: Comparison) -> np.ndarray:
    """Per sample, the first ``(t, block)`` (as ``t·L + i``) where spikes differ; ``inf`` if none.

    Fails the comparison for a flip outside the band (any flip in float64)."""
    T = config.train.T
    L = len(config.network.blocks)
    batch = want["o"][0].shape[1]
    first = np.full(batch, np.inf)
    band = tol.spike_band(config.lif.theta, dtype)
    for i in range(L):
        o_r, o_g = np.asarray(want["o"][i]), np.asarray(got["o"][i])
        if o_g.shape != o_r.shape:
            cmp.fail(f"o[block {i}]: shape {o_g.shape} != expected {o_r.shape}")
            continue
        diff = (o_r != o_g).reshape(T, batch, -1)
        if not diff.any():
            continue
        u_r = np.asarray(want["u"][i], dtype=np.float64).reshape(T, batch, -1)
        for t in range(T):
            for b in range(batch):
                if not diff[t, b].any():
                    continue
                key = t * L + i
                if key >= first[b]:
                    continue  # already excluded after an earlier flip of this sample
                near = np.abs(u_r[t, b][diff[t, b]] - config.lif.theta)
                if np.all(near <= band) and band > 0:
                    first[b] = key
                    cmp.notes.append(
                        f"spike flip within the float32 band (|u-θ|<={band:g}) at t={t}, block {i}, sample {b}: "
                        f"sample compared only before it"
                    )
                else:
                    cmp.fail(
                        f"o[block {i}]: spikes differ at t={t}, sample {b} where the reference membrane is "
                        f"{float(near.max()):.3g} from θ (allowed band {band:g})"
                    )
                    first[b] = key
    return first


def membrane_scales(config: TessConfig, params: dict[str, np.ndarray], x: np.ndarray,
                    masks: list[np.ndarray | None] | None, record: dict[str, Any], dtype: str) -> list[float]:
    """Per block, the magnitude of what enters its membrane: ``max ū`` of the recurrence
    run on absolute values, ``ū[t] = γ(ū[t-1] + r·o[t-1]) + |Ŵ|⋆|x[t]| + |b|`` (hard reset:
    ``γ·ū[t-1]·(1 - o[t-1]) + …``), with the reference's spikes and the inputs rounded
    to ``dtype`` — the scale of the membrane's rounding, whatever the sum cancels to."""
    from tess_spec.neuron import reset_amount
    from tess_spec.ops import conv2d

    from .oracles import block_inputs

    p = round_tree(params, dtype)
    mk = None if masks is None else [round_to(m, dtype) for m in masks]
    xs = block_inputs(config, round_to(x, dtype), record, mk if mk is not None else [None] * len(config.network.blocks))
    lif = config.lif
    out = []
    for i, b in enumerate(config.network.blocks):
        W = p[f"blocks.{i}.weight"]
        W_hat = standardize_magnitude(W, p[f"blocks.{i}.gain"]) if b.weight_std else np.abs(W)
        bias = p.get(f"blocks.{i}.bias")
        absb = 0.0 if bias is None else np.abs(bias)
        o = np.asarray(record["o"][i], np.float64)
        r = reset_amount(lif, config.profile, b.kind)
        ubar = np.zeros(o.shape[1:])
        top = 0.0
        for t in range(config.train.T):
            xt = np.abs(xs[i][t])
            if b.kind == "conv":
                cur = conv2d(xt, W_hat) + (absb[None, :, None, None] if bias is not None else 0.0)
            else:
                cur = xt @ W_hat.T + absb
            o_prev = o[t - 1] if t else 0.0
            ubar = lif.leak * (ubar + r * o_prev) + cur if lif.reset == "soft" else lif.leak * ubar * (1 - o_prev) + cur
            top = max(top, float(np.max(ubar)) if ubar.size else 0.0)
        out.append(top)
    return out


def _ws_stats(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Rows of W, ``|d|``'s entering magnitude ``|W| + |mean W|``, ``s`` and the fan-in."""
    from tess_spec.weight_std import WS_EPS

    f = weight.shape[0]
    w = np.asarray(weight, np.float64).reshape(f, -1)
    n = w.shape[1]
    mean = w.mean(axis=1, keepdims=True)
    d = w - mean
    s = np.sqrt((d * d).sum(axis=1, keepdims=True) / max(n - 1, 1) * n + WS_EPS)
    return w, np.abs(w) + np.abs(mean), s, n


def standardize_magnitude(weight: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``|g|·(|W| + |mean W|)/s``: the magnitude entering ``Ŵ = g·(W - mean)/s``.  Where a
    row of W is nearly constant, ``W - mean`` cancels and Ŵ's rounding is relative to
    this, not to |Ŵ| (fan-in 2 with equal weights: ``|Ŵ| ≈ 0.08`` from weights ≈ 0.4)."""
    _, dmag, s, _ = _ws_stats(weight)
    return (np.abs(np.asarray(gain, np.float64))[:, None] * dmag / s).reshape(np.shape(weight))


def standardize_grad_scales(weight: np.ndarray, gain: np.ndarray, grad_hat: np.ndarray) -> tuple[float, float]:
    """Magnitudes of the terms of the weight-standardisation chain rule
    (:func:`tess_spec.weight_std.standardize_vjp`,
    ``∂L/∂W = (g·G - mean(g·G))/s - (Σ g·G·d)·n·d/((n-1)s³)``, ``∂L/∂g = Σ G·d/s``), with
    ``|d|`` taken at its entering magnitude ``|W| + |mean W|``: for ∂L/∂W the larger, over
    rows, of ``|g|·max|G|/s`` and ``(Σ |g·G|·|d|)·n·max|d|/((n-1)s³)``; for ∂L/∂g
    ``max Σ|G|·|d|/s``."""
    f = np.shape(weight)[0]
    _, dmag, s, n = _ws_stats(weight)
    G = np.abs(np.asarray(grad_hat, np.float64).reshape(f, -1))
    g = np.abs(np.asarray(gain, np.float64))[:, None]
    t1 = g * G.max(axis=1, keepdims=True) / s
    t2 = (g * G * dmag).sum(axis=1, keepdims=True) * n * dmag.max(axis=1, keepdims=True) / (max(n - 1, 1) * s**3)
    tg = (G * dmag).sum(axis=1, keepdims=True) / s
    return float(max(t1.max(), t2.max())), float(tg.max())


def compare_step(
    config: TessConfig, want: StepResult, got: StepResult, dtype: str, *,
    params_before: dict[str, np.ndarray] | None = None, opt_before: dict[str, Any] | None = None,
    lr: float | None = None, compare_params: bool = True, x: np.ndarray | None = None,
    masks: list[np.ndarray | None] | None = None,
) -> Comparison:
    """Compare a backend step with the reference: per-step u, o, ψ, q, h, m, logits,
    LSG losses; then (unless a float32 flip excused a sample) the window-summed
    updates, gradients, loss, accuracy, final state and parameters after the step.

    With ``params_before``/``opt_before`` the backend's new parameters are also
    checked against the spec's optimiser applied to the backend's own gradients.
    With ``params_before`` and the batch ``x`` (and ``masks``) the membranes are
    compared at the scale of what enters them (:func:`membrane_scales`).
    """
    cmp = Comparison()
    T = config.train.T
    L = len(config.network.blocks)
    wr, gr = want.record, got.record
    u_floor = (membrane_scales(config, params_before, x, masks, wr, dtype)
               if params_before is not None and x is not None else [0.0] * L)
    first = _flip_steps(config, wr, gr, dtype, cmp)
    batch = wr["o"][0].shape[1]
    m_floor = lsg_scales(config, batch, masks)
    rec_scale: dict[tuple[str, int], float] = {}  # the record's scale, for the final state
    t_idx = np.arange(T)[:, None]
    for i in range(L):
        # comparable[t, b]: before the sample's first flip (block order within a step)
        comparable = (t_idx * L + i) < first[None, :]
        for key in ("u", "o", "psi", "q", "h", "m"):
            w = np.asarray(wr[key][i], dtype=np.float64)
            g = np.asarray(gr[key][i])
            if g.shape != w.shape:
                cmp.fail(f"{key}[block {i}]: shape {g.shape} != expected {w.shape}")
                continue
            g = g.astype(np.float64)
            sel = comparable.reshape(T, batch, *([1] * (w.ndim - 2)))
            sel = np.broadcast_to(sel, w.shape)
            scale = float(np.max(np.abs(w))) if w.size else 0.0
            if key == "u":
                scale = max(scale, u_floor[i])
            if key == "m":
                scale = max(scale, m_floor[i])
            rec_scale[key, i] = scale
            if key == "o":
                if not np.array_equal(np.where(sel, g, 0), np.where(sel, w, 0)):
                    cmp.fail(f"o[block {i}]: spikes differ outside the excused flips")
                continue
            cmp.check(f"{key}[block {i}]", np.where(sel, g, 0.0), np.where(sel, w, 0.0), key, dtype, scale)
    comparable_last = (t_idx * L + (L - 1)) < first[None, :]
    w = np.asarray(wr["logits"], np.float64)
    g = np.asarray(gr["logits"], np.float64)
    if g.shape != w.shape:
        cmp.fail(f"logits: shape {g.shape} != expected {w.shape}")
    else:
        sel = np.broadcast_to(comparable_last[:, :, None], w.shape)
        cmp.check("logits", np.where(sel, g, 0.0), np.where(sel, w, 0.0), "logits", dtype, float(np.abs(w).max()))
    flipped = np.isfinite(first)
    lw, lg = np.asarray(wr["lsg_loss"], np.float64), np.asarray(gr["lsg_loss"], np.float64)
    if lg.shape != lw.shape:
        cmp.fail(f"lsg_loss: shape {lg.shape} != expected {lw.shape}")
    else:
        ok_rows = np.array([[not np.any(flipped & (first <= t * L + i)) for i in range(L)] for t in range(T)])
        cmp.check("lsg_loss", np.where(ok_rows, lg, 0.0), np.where(ok_rows, lw, 0.0), "lsg_loss", dtype,
                  max(1.0, float(np.abs(lw).max()) if lw.size else 0.0))
    if flipped.any():
        cmp.notes.append(
            f"{int(flipped.sum())}/{batch} sample(s) flipped a spike within the band: batch-summed updates, "
            "gradients, loss and parameters of this case were not compared"
        )
        return cmp
    scales = _term_scales(config, wr, batch, m_floor)
    for i in range(L):
        for key in ("dw_causal", "dw_noncausal"):
            w = np.asarray(wr[key][i], np.float64)
            sc = max(float(np.abs(w).max()) if w.size else 0.0, scales[key][i])
            cmp.check(f"{key}[block {i}]", np.asarray(gr[key][i]), w, "dw", dtype, sc)
    wg, gg = wr["grads"], gr["grads"]
    if set(wg) != set(gg):
        cmp.fail(f"grads: keys {sorted(gg)} != expected {sorted(wg)}")
    else:
        for i, b in enumerate(config.network.blocks):
            wk = f"blocks.{i}.weight"
            if b.weight_std and params_before is not None:
                # chained from the backend's own Ŵ-gradient, so rounding noise in near-zero
                # updates is not mistaken for an error of the chain rule
                g_hat = np.asarray(gr["dw_causal"][i], np.float64) + np.asarray(gr["dw_noncausal"][i], np.float64)
                w_b, g_b = round_to(params_before[wk], dtype), round_to(params_before[f"blocks.{i}.gain"], dtype)
                ew, eg = standardize_vjp(w_b, g_b, g_hat)
                term = max(scales["dw_causal"][i], scales["dw_noncausal"][i])
                sw, sg = standardize_grad_scales(w_b, g_b, np.maximum(np.abs(g_hat), term))
                cmp.check(f"grads[{wk}]", np.asarray(gg[wk]), ew, "grads", dtype, max(float(np.abs(ew).max()), sw))
                cmp.check(f"grads[blocks.{i}.gain]", np.asarray(gg[f"blocks.{i}.gain"]), eg, "grads", dtype,
                          max(float(np.abs(eg).max()), sg))
            elif not b.weight_std:
                w = np.asarray(wg[wk], np.float64)
                sc = max(float(np.abs(w).max()) if w.size else 0.0, scales["dw_causal"][i], scales["dw_noncausal"][i])
                cmp.check(f"grads[{wk}]", np.asarray(gg[wk]), w, "grads", dtype, sc)
            else:
                cmp.check(f"grads[{wk}]", np.asarray(gg[wk]), np.asarray(wg[wk]), "grads", dtype)
                cmp.check(f"grads[blocks.{i}.gain]", np.asarray(gg[f"blocks.{i}.gain"]),
                          np.asarray(wg[f"blocks.{i}.gain"]), "grads", dtype)
            if b.bias:
                w = np.asarray(wg[f"blocks.{i}.bias"], np.float64)
                cmp.check(f"grads[blocks.{i}.bias]", np.asarray(gg[f"blocks.{i}.bias"]), w, "grads", dtype,
                          max(float(np.abs(w).max()), scales["bias"][i]))
        for k in ("readout.weight", "readout.bias"):
            if k in wg:
                w = np.asarray(wg[k], np.float64)
                cmp.check(f"grads[{k}]", np.asarray(gg[k]), w, "grads", dtype, max(float(np.abs(w).max()), scales[k]))
    summed = np.asarray(wr["logits"], np.float64).sum(axis=0)
    # CE of confident logits is a difference of logits: compare at the logits' scale
    cmp.check("loss", np.asarray(float(gr["loss"])), np.asarray(float(wr["loss"])), "loss", dtype,
              max(1.0, float(np.abs(summed).max()) if summed.size else 0.0, abs(float(wr["loss"]))))
    top2 = np.sort(summed, axis=1)[:, -2:]
    ambiguous = int(np.sum(top2[:, 1] - top2[:, 0] <= tol.tolerance("logits", dtype).bound(summed).max() * T))
    if abs(int(gr["n_correct"]) - int(wr["n_correct"])) > ambiguous:
        cmp.fail(f"n_correct: got {gr['n_correct']}, expected {wr['n_correct']}")
    if got.state is not None and want.state is not None:
        for i in range(L):
            for key in ("u", "o", "q", "h"):
                gs, ws = np.asarray(got.state[i][key]), np.asarray(want.state[i][key])
                if key == "o":
                    if gs.shape != ws.shape or not np.array_equal(gs.astype(np.float64), ws):
                        cmp.fail(f"state[block {i}].o differs")
                else:
                    # the final state is the record's last step: compared at the record's scale
                    sc = max(float(np.abs(ws).max()) if ws.size else 0.0, rec_scale.get((key, i), 0.0))
                    cmp.check(f"state[block {i}].{key}", gs, ws, key, dtype, sc)
    if compare_params:
        if dtype == "float64":
            # In float32, Adam turns gradient rounding noise near 0 into steps of size lr, so
            # parameters are compared through the backend's own gradients only (below).
            _compare_params(cmp, "params after the step", got.params, want.params, dtype)
        if params_before is not None and opt_before is not None:
            exp_p, exp_opt = expect_optimizer_step(config, params_before, opt_before, got.record["grads"], lr, dtype)
            _compare_params(cmp, "params from the backend's own gradients", got.params, exp_p, dtype)
            for mom in ("m", "v", "buf"):
                if mom in exp_opt:
                    if mom not in got.opt_state:
                        cmp.fail(f"optimiser state lacks {mom!r}")
                        continue
                    _compare_params(cmp, f"optimiser {mom}", got.opt_state[mom], exp_opt[mom], dtype)
            if int(got.opt_state.get("step", -1)) != int(exp_opt["step"]):
                cmp.fail(f"optimiser step count {got.opt_state.get('step')} != expected {exp_opt['step']}")
    return cmp


def lsg_scales(config: TessConfig, batch: int, masks: list[np.ndarray | None] | None = None) -> list[float]:
    """Per block, the magnitude of the terms of the learning signal
    ``m = mask ⊙ P^T[(softmax(z/τ) - onehot(y)) B̃ / (τ·batch)]``: ``2·max|B̃|·max(mask)/(τ·batch)``
    (``Σ_c |p_c - y_c| <= 2``; the pooling adjoints P^T do not enlarge it).  The signal can
    cancel to 0 exactly (one neuron: B̃ has equal rows, ``Σ_c (p_c - y_c) = 0``) while
    float32 leaves a residue of this size times ε."""
    from tess_spec.lsg import basis

    out = []
    for i, bs in enumerate(block_shapes(config.network)):
        k = config.lsg_pool(i)
        dim = bs.output[0] * k * k if len(bs.output) == 3 else k
        B = basis(config.network.n_classes, dim, config.lsg.omega_min, config.lsg.omega_max) / dim
        mk = None if masks is None else masks[i]
        mmax = 1.0 if mk is None or np.size(mk) == 0 else max(1.0, float(np.max(np.abs(mk))))
        out.append(2.0 * float(np.max(np.abs(B))) * mmax / (config.lsg.temperature * batch))
    return out


def update_term_scales(config: TessConfig, record: dict[str, Any],
                       masks: list[np.ndarray | None] | None = None) -> dict[str, Any]:
    """Per block, the magnitude of ONE term of each window-summed update
    (``dw_causal``: ``|α_pre|·max|m|·max|ψ|·max|q|``, ``dw_noncausal``, ``bias``), with
    ``max|m|`` at least :func:`lsg_scales` — the scale ``S`` of an update's comparison."""
    batch = np.asarray(record["o"][0]).shape[1]
    return _term_scales(config, record, batch, lsg_scales(config, batch, masks))


def gradient_scales(config: TessConfig, record: dict[str, Any], params: dict[str, np.ndarray],
                    masks: list[np.ndarray | None] | None, dtype: str) -> dict[str, float]:
    """Per parameter of the blocks, the magnitude of the terms its gradient is made of (the
    scale ``S`` of its comparison): one term of the window sum for ``blocks.i.weight``
    (after weight standardisation: the chain rule's terms, :func:`standardize_grad_scales`,
    on ``max(|Ĝ|, term)``), ``Σ|G||d|/s`` for a gain, ``max|m|·max|ψ|`` for a bias."""
    batch = np.asarray(record["o"][0]).shape[1]
    scales = _term_scales(config, record, batch, lsg_scales(config, batch, masks))
    out: dict[str, float] = {}
    for i, b in enumerate(config.network.blocks):
        term = max(scales["dw_causal"][i], scales["dw_noncausal"][i])
        wk = f"blocks.{i}.weight"
        if b.weight_std:
            g_hat = np.asarray(record["dw_causal"][i], np.float64) + np.asarray(record["dw_noncausal"][i], np.float64)
            sw, sg = standardize_grad_scales(round_to(params[wk], dtype), round_to(params[f"blocks.{i}.gain"], dtype),
                                             np.maximum(np.abs(g_hat), term))
            out[wk], out[f"blocks.{i}.gain"] = sw, sg
        else:
            out[wk] = term
        if b.bias:
            out[f"blocks.{i}.bias"] = scales["bias"][i]
    return out


def _term_scales(config: TessConfig, rec: dict, batch: int, m_floor: list[float] | None = None) -> dict[str, Any]:
    """Magnitude of ONE term of each window sum (e.g. ``|α_pre|·max|m|·max|ψ|·max|q|``):
    the floor of the scale that ``atol`` multiplies, so that a sum which cancels to
    ~0 is compared at the size of its terms, not at the size of its rounding noise."""
    tc = config.traces
    L = len(config.network.blocks)
    mx = lambda a: float(np.max(np.abs(a))) if np.size(a) else 0.0  # noqa: E731
    out: dict[str, Any] = {"dw_causal": [], "dw_noncausal": [], "bias": []}
    for i in range(L):
        m, ps, q, h = (mx(rec[k][i]) for k in ("m", "psi", "q", "h"))
        m = max(m, m_floor[i] if m_floor is not None else 0.0)
        out["dw_causal"].append(abs(tc.alpha_pre) * m * ps * q)
        out["dw_noncausal"].append(abs(tc.alpha_post) * m * h * q)
        out["bias"].append(m * ps)
    feats = 1.0  # spikes, pooled: at most 1 per feature (times a dropout scale)
    out["readout.weight"] = feats / batch
    out["readout.bias"] = 1.0 / batch
    return out


def _compare_params(cmp: Comparison, what: str, got: dict, want: dict, dtype: str) -> None:
    if set(got) != set(want):
        cmp.fail(f"{what}: keys {sorted(got)} != expected {sorted(want)}")
        return
    for k in want:
        cmp.check(f"{what}[{k}]", np.asarray(got[k]), np.asarray(want[k]), "params", dtype)
