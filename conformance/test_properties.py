"""Group "properties": properties of the rule itself, independent of any golden file.

Checked on the backend's own records: the traces' closed forms; the update is the
bilinear form of m (so linear in m, and zero where m = 0); in the exact-gradient
special case the update equals the autodiff gradient through time; m is the
gradient of the local loss; state size does not depend on T; batch permutation
equivariance; determinism under a seed; the two profiles differ exactly where
TESS_RULE.md §9 says.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tess import Model
from tess.conformance import oracles
from tess.conformance import strategies as S
from tess.conformance import tolerances as tol
from tess.conformance.harness import (Comparison, StepResult, Target, compare_step, gradient_scales, lsg_scales,
                                     round_to, run_backend, update_term_scales)
from tess.datasets import Dataset
from tess_spec import BlockConfig, LIFConfig, LSGConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig
from tess_spec import state_shapes
from tess_spec.neuron import psi as spec_psi
from tess_spec.ops import conv2d_weight_corr
from tess_spec.signals import signal_schedule

__all__ = ["check_trace_closed_forms", "check_update_bilinear", "check_autodiff", "check_readout_autodiff",
           "readout_autodiff_cases",
           "check_lsg_gradient",
           "check_alpha_linearity", "check_profiles", "check_permutation", "property_configs"]


def _masks(case: S.Case, dtype: str) -> list:
    return [None if m is None else round_to(m, dtype) for m in case.masks]


def _run(target: Target, case: S.Case) -> StepResult:
    return run_backend(target.backend(), case.config, case.params, case.opt_state, case.x, case.y, case.masks,
                       case.lr)


def _corr(kind: str, delta: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    return conv2d_weight_corr(delta, x, k) if kind == "conv" else delta.T @ x


def check_trace_closed_forms(target: Target, case: S.Case) -> None:
    """``q[t] = Σ_s λ_pre^(t-s) x[s]``, ``h[t] = Σ_s λ_post^(t-s) ψ[s]``, ``ψ = ψ(u)``, ``o = [u > θ]``,
    and ``m = 0`` outside the window, on the backend's record."""
    cfg = case.config
    got = _run(target, case)
    rec = got.record
    T, start = cfg.train.T, cfg.train.window_start
    xs = oracles.block_inputs(cfg, round_to(case.x, target.dtype), rec, _masks(case, target.dtype))
    lp, lq = cfg.traces.lambda_post, cfg.traces.lambda_pre
    powers = lambda lam: np.array([[lam ** (t - s) if s <= t else 0.0 for s in range(T)] for t in range(T)])  # noqa: E731
    cmp = Comparison()
    band = tol.spike_band(cfg.lif.theta, target.dtype)
    for i in range(len(cfg.network.blocks)):
        u = np.asarray(rec["u"][i], np.float64)
        ps = np.asarray(rec["psi"][i], np.float64)
        q_exp = np.tensordot(powers(lq), xs[i], axes=(1, 0))
        h_exp = np.tensordot(powers(lp), ps, axes=(1, 0))
        cmp.check(f"q[block {i}] vs Σ λ_pre^(t-s) x[s]", rec["q"][i], q_exp, "q", target.dtype)
        cmp.check(f"h[block {i}] vs Σ λ_post^(t-s) ψ[s]", rec["h"][i], h_exp, "h", target.dtype)
        cmp.check(f"ψ[block {i}] vs ψ(u)", ps, spec_psi(cfg.psi_name(i), u, cfg.lif.theta), "psi", target.dtype)
        o = np.asarray(rec["o"][i], np.float64)
        wrong = (o != (u > cfg.lif.theta)) & (np.abs(u - cfg.lif.theta) > max(band, 1e-12))
        if wrong.any():
            cmp.fail(f"o[block {i}] != [u > θ] at {int(wrong.sum())} places")
        quiet = [t for t, sig in enumerate(signal_schedule(cfg)) if sig is None]  # no signal at these steps
        if np.any(np.asarray(rec["m"][i])[quiet] != 0):
            cmp.fail(f"m[block {i}] is non-zero at steps {quiet} without a learning signal "
                     f"({cfg.learning_signal}, window from t = {start})")
    cmp.raise_if_failed(repr(case))


def check_update_bilinear(target: Target, case: S.Case) -> None:
    """The window-summed update is the bilinear form of the recorded m:
    ``α_pre Σ (m⊙ψ) ⊗ q`` and ``α_post Σ (m⊙h̃[t-1]) ⊗ x`` (h̃ by profile); rows whose m
    is 0 over the whole window get an exactly-zero update."""
    cfg, tc = case.config, case.config.traces
    got = _run(target, case)
    rec = got.record
    learning = [t for t, sig in enumerate(signal_schedule(cfg)) if sig is not None]  # the window, or all (released)
    xs = oracles.block_inputs(cfg, round_to(case.x, target.dtype), rec, _masks(case, target.dtype))
    m_floor = lsg_scales(cfg, len(case.y), _masks(case, target.dtype))
    cmp = Comparison()
    for i, b in enumerate(cfg.network.blocks):
        m, ps, q, h = (np.asarray(rec[k][i], np.float64) for k in ("m", "psi", "q", "h"))
        causal = sum((_corr(b.kind, m[t] * ps[t], q[t], b.kernel_size) for t in learning), 0.0)
        nc = 0.0
        for t in learning:
            h_prev = h[t - 1] if t else np.zeros_like(h[0])
            h_tilde = tc.lambda_post * h_prev if cfg.profile == "paper" else h_prev
            nc = nc + _corr(b.kind, m[t] * h_tilde, xs[i][t], b.kernel_size)
        m_mag = max(float(np.abs(m).max()), m_floor[i])  # the terms of m, which may cancel to ~0
        scale_c = abs(tc.alpha_pre) * m_mag * np.abs(ps).max() * np.abs(q).max()
        scale_n = abs(tc.alpha_post) * m_mag * np.abs(h).max() * np.abs(q).max()
        exp_c, exp_n = tc.alpha_pre * causal, tc.alpha_post * nc
        cmp.check(f"dw_causal[block {i}] vs α_pre Σ (m⊙ψ)⊗q", rec["dw_causal"][i], exp_c, "dw", target.dtype,
                  max(float(np.abs(exp_c).max()), scale_c))
        cmp.check(f"dw_noncausal[block {i}] vs α_post Σ (m⊙h̃[t-1])⊗x", rec["dw_noncausal"][i], exp_n, "dw",
                  target.dtype, max(float(np.abs(np.asarray(exp_n)).max()), scale_n))
        silent = np.all(m[learning] == 0, axis=tuple(a for a in range(m.ndim) if a != 2))  # per output feature
        for key in ("dw_causal", "dw_noncausal"):
            rows = np.asarray(rec[key][i])[silent]
            if rows.size and np.any(rows != 0):
                cmp.fail(f"{key}[block {i}]: features {np.flatnonzero(silent).tolist()} have m = 0 in the whole "
                         f"window but a non-zero update (max {np.abs(rows).max():.3g})")
        if b.bias and silent.any():
            gb = np.asarray(rec["grads"][f"blocks.{i}.bias"])[silent]
            if np.any(gb != 0):
                cmp.fail(f"bias grad[block {i}] non-zero where m = 0")
    cmp.raise_if_failed(repr(case))


def check_alpha_linearity(target: Target, case: S.Case) -> None:
    """Scaling (α_pre, α_post) scales the two terms exactly as much (linear in m ⊙ α);
    α = 0 gives an exactly-zero block update; duplicating the batch halves m per sample
    and leaves the summed update unchanged."""
    cfg = case.config
    lp, lq, ap, aq = cfg.traces.factors
    base = _run(target, case)
    scaled_cfg = cfg.replace(traces=TraceConfig(factors=(lp, lq, 2.0 * ap, -3.0 * aq), psi=cfg.traces.psi))
    scaled = _run(target, S.Case(scaled_cfg, case.params, case.opt_state, case.x, case.y, case.masks, case.lr))
    zero_cfg = cfg.replace(traces=TraceConfig(factors=(lp, lq, 0.0, 0.0), psi=cfg.traces.psi))
    zero = _run(target, S.Case(zero_cfg, case.params, case.opt_state, case.x, case.y, case.masks, case.lr))
    dup = _run(target, S.Case(cfg, case.params, case.opt_state, np.concatenate([case.x, case.x]),
                              np.concatenate([case.y, case.y]),
                              [None if m is None else np.concatenate([m, m]) for m in case.masks], case.lr))
    terms = update_term_scales(cfg, base.record, _masks(case, target.dtype))  # sums may cancel: S ≥ a term
    cmp = Comparison()
    for i in range(len(cfg.network.blocks)):
        for key, f in (("dw_causal", -3.0), ("dw_noncausal", 2.0)):
            b0 = np.asarray(base.record[key][i], np.float64)
            cmp.check(f"{key}[block {i}] with α scaled by {f}", scaled.record[key][i], f * b0, "dw", target.dtype,
                      max(float(np.abs(f * b0).max()), abs(f) * terms[key][i], 1e-30))
            if np.any(np.asarray(zero.record[key][i]) != 0):
                cmp.fail(f"{key}[block {i}] is non-zero with α_pre = α_post = 0")
            cmp.check(f"{key}[block {i}] on the duplicated batch", dup.record[key][i], b0, "dw", target.dtype,
                      max(float(np.abs(b0).max()), terms[key][i], 1e-30))
        for k, g in zero.record["grads"].items():
            # (a bias receives Σ m ⊙ ψ whatever α is — TESS_RULE.md §5)
            if k.startswith(f"blocks.{i}.") and not k.endswith(".bias") and np.any(np.asarray(g) != 0):
                cmp.fail(f"grads[{k}] non-zero with α_pre = α_post = 0")
    cmp.raise_if_failed(repr(case))


def check_lsg_gradient(target: Target, case: S.Case) -> None:
    """m[t] and L_l[t] equal the oracle's gradient and value of the local loss at the
    recorded spikes, for every block and window step."""
    cfg = case.config
    got = _run(target, case)
    rec = got.record
    masks = _masks(case, target.dtype)
    key = oracles.tolerance_key()
    m_floor = lsg_scales(cfg, len(case.y), masks)
    cmp = Comparison()
    for i in range(len(cfg.network.blocks)):
        prob = oracles.BlockProblem(cfg, i, np.zeros(0), np.asarray(rec["o"][i], np.float64), masks[i], case.y)
        for t in [t for t, sig in enumerate(signal_schedule(cfg)) if sig == "lsg"]:
            loss, grad = oracles.lsg_grad(prob, t)
            cmp.check(f"m[block {i}, t={t}] vs ∂L/∂o ({oracles.oracle_name()})", rec["m"][i][t], grad, key,
                      target.dtype, max(float(np.abs(grad).max()), m_floor[i]), max(1.0, abs(loss)))
            cmp.check(f"lsg_loss[t={t}, block {i}]", np.asarray(rec["lsg_loss"][t, i]), np.asarray(loss), key,
                      target.dtype, max(1.0, abs(loss)))
    cmp.raise_if_failed(repr(case))


def check_autodiff(target: Target, case: S.Case) -> None:
    """α_post = 0, λ_pre = γ, soft reset treated as a constant: the weight (and gain)
    gradients TESS hands to the optimiser, after weight standardisation, equal α_pre times the oracle's gradient of
    the block's summed local loss through time."""
    cfg = case.config
    got = _run(target, case)
    rec = got.record
    xs = oracles.block_inputs(cfg, round_to(case.x, target.dtype), rec, _masks(case, target.dtype))
    params = {k: round_to(v, target.dtype) for k, v in case.params.items()}
    masks = _masks(case, target.dtype)
    key = oracles.tolerance_key()
    # compared at the size of the terms the gradient is made of (it can cancel to ~0)
    terms = gradient_scales(cfg, rec, case.params, masks, target.dtype)
    cmp = Comparison()
    for i in range(len(cfg.network.blocks)):
        prob = oracles.BlockProblem(cfg, i, xs[i], np.asarray(rec["o"][i], np.float64), masks[i], case.y)
        want = oracles.local_loss_weight_grad(prob, params)
        floor = max(1.0, abs(oracles.window_loss(prob))) if key == "finite_differences" else 0.0
        for k, g in want.items():
            if k.endswith(".bias"):
                # the rule gives a bias Σ m ⊙ ψ (no trace: TESS_RULE.md §5), which is not the
                # through-time gradient Σ m[t] ψ[t] Σ_s γ^(t-s); the bias is checked elsewhere
                continue
            g = cfg.traces.alpha_pre * g  # the update carries the rule's factor α_pre
            cmp.check(f"grads[{k}] vs the gradient of Σ_window L_l ({oracles.oracle_name()})", rec["grads"][k], g,
                      key, target.dtype, max(float(np.abs(g).max()), terms.get(k, 0.0), 1e-300), floor)
    cmp.raise_if_failed(repr(case))


def check_readout_autodiff(target: Target, case: S.Case) -> None:
    """Readout back-propagation (TESS_RULE.md §11) with α_post = 0, λ_pre = γ, the reset a
    constant: the weight (and gain) gradients TESS hands to the optimiser equal α_pre times
    the oracle's gradient of Σ_window CE(logits[t], y) — block l's own membrane recursion
    through time, every later block's previous step a stop-gradient, spike slope ψ
    (:mod:`tess_spec.signals`)."""
    cfg = case.config
    assert cfg.learning_signal == "readout-backprop", "the property is stated for readout back-propagation"
    got = _run(target, case)
    rec = got.record
    masks = _masks(case, target.dtype)
    xs = oracles.block_inputs(cfg, round_to(case.x, target.dtype), rec, masks)
    params = {k: round_to(v, target.dtype) for k, v in case.params.items()}
    key = oracles.tolerance_key()
    terms = gradient_scales(cfg, rec, case.params, masks, target.dtype)
    o_all = [np.asarray(o, np.float64) for o in rec["o"]]
    cmp = Comparison()
    for i in range(len(cfg.network.blocks)):
        prob = oracles.ReadoutProblem(cfg, i, xs[i], o_all, masks, case.y)
        want = oracles.readout_loss_weight_grad(prob, params)
        floor = max(1.0, abs(oracles.readout_window_loss(prob, params))) if key == "finite_differences" else 0.0
        for k, g in want.items():
            if k.endswith(".bias"):
                continue  # the rule gives a bias Σ m ⊙ ψ, not its gradient through time (§5)
            g = cfg.traces.alpha_pre * g
            cmp.check(f"grads[{k}] vs the gradient of Σ_window CE(logits[t], y) ({oracles.oracle_name()})",
                      rec["grads"][k], g, key, target.dtype, max(float(np.abs(g).max()), terms.get(k, 0.0), 1e-300),
                      floor)
    cmp.raise_if_failed(repr(case))


@given(data=st.data())
def test_trace_closed_forms(target: Target, data: st.DataObject) -> None:
    """q and h equal their closed forms; ψ = ψ(u); o = [u > θ]; m = 0 outside the window."""
    check_trace_closed_forms(target, data.draw(S.cases(target.dtype), label="case"))


@given(data=st.data())
def test_update_is_bilinear_in_m(target: Target, data: st.DataObject) -> None:
    """The update is linear in m (the bilinear form of the record) and zero where m = 0."""
    check_update_bilinear(target, data.draw(S.cases(target.dtype), label="case"))


@given(data=st.data())
def test_update_scales_with_alpha_and_batch(target: Target, data: st.DataObject) -> None:
    """α scaling scales the update, α = 0 zeroes it, a duplicated batch leaves it unchanged."""
    check_alpha_linearity(target, data.draw(S.cases(target.dtype), label="case"))


@given(data=st.data())
def test_lsg_signal_is_local_loss_gradient(target: Target, data: st.DataObject) -> None:
    """m = ∂L_l/∂o through dropout, max/avg pooling and the adaptive pool (the selected oracle)."""
    check_lsg_gradient(target, data.draw(S.cases(target.dtype), label="case"))


@given(data=st.data())
def test_update_equals_autodiff_in_special_case(target: Target, data: st.DataObject) -> None:
    """α_post = 0, λ_pre = γ, detached reset: TESS's gradient = BPTT gradient of the local loss."""
    check_autodiff(target, data.draw(S.autodiff_cases(target.dtype), label="case"))


@given(data=st.data())
def test_readout_backprop_equals_autodiff_in_special_case(target: Target, data: st.DataObject) -> None:
    """α_post = 0, λ_pre = γ, detached reset, readout back-propagation: TESS's gradient = the
    per-step spatial gradient of the readout loss (later blocks' previous step held constant)."""
    check_readout_autodiff(target, data.draw(S.autodiff_cases(target.dtype, signal="readout-backprop"),
                                             label="case"))


def readout_autodiff_cases() -> list[S.Case]:
    """Fixed cases of the readout-backprop special case: the named networks of the
    equations group (conv with max pooling and a flattening linear block; avg pooling and
    weight standardisation; a global-pooled conv block; an MLP) and two conv blocks whose
    last is spatial (the readout's own global average), with α_post = 0, λ_pre = γ, soft
    reset and dropout in every block, direct and event input."""
    from tess.conformance.test_equations import named_configs

    nets = dict(named_configs())
    nets["conv_spatial_last"] = TessConfig(
        NetworkConfig((2, 5, 5), 3, (BlockConfig("conv", 3, pool="max"), BlockConfig("conv", 4))),
        traces=TraceConfig(factors=(0.3, 0.6, 1.0, 1.0)), lsg=LSGConfig(pool_sizes=(1, 2)),
        train=TrainConfig(T=5, n_learn=3, batch_size=3))
    out = []
    for name, cfg in nets.items():
        blocks = tuple(dataclasses.replace(b, dropout=0.3) for b in cfg.network.blocks)
        cfg = cfg.replace(learning_signal="readout-backprop", network=dataclasses.replace(cfg.network, blocks=blocks),
                          lif=dataclasses.replace(cfg.lif, reset="soft"),
                          traces=TraceConfig(factors=(0.3, cfg.lif.leak, 0.0, 1.0), psi=cfg.traces.psi))
        for seq in (False, True):
            out.append(S.make_case(cfg, 7, batch=3, sequence=seq, binary=seq, input_scale=1.5 if not seq else 1.0,
                                   weight_scale=2.0))
    return out


def test_readout_backprop_equals_autodiff_on_fixed_networks(target: Target) -> None:
    """The readout-backprop special case on :func:`readout_autodiff_cases` (whatever Hypothesis
    draws): every pooling, weight standardisation, dropout and flattening crossed."""
    for case in readout_autodiff_cases():
        check_readout_autodiff(target, case)


def test_update_equals_autodiff_when_the_gradient_cancels(target: Target) -> None:
    """Regression of a thorough-profile false failure: a weight-standardised linear block of
    fan-in 2, whose gradient (~1e-22) is what is left of chain-rule terms of ~1e-8."""
    cfg = TessConfig(NetworkConfig((2,), 2, (BlockConfig("linear", 2), BlockConfig("linear", 4, weight_std=True))),
                     lif=LIFConfig(theta=0.6, leak=0.5), traces=TraceConfig(factors=(0.0, 0.5, 0.0, 1.0), psi="triangle"),
                     train=TrainConfig(T=2, n_learn=1, batch_size=3))
    for seed, scale in ((0, 3.0), (3, 2.0)):
        check_autodiff(target, S.make_case(cfg, seed, batch=3, input_scale=2.0, weight_scale=scale))


def property_configs() -> dict[str, TessConfig]:
    """Small fixed networks for the non-Hypothesis properties."""
    return {
        "conv": TessConfig(
            NetworkConfig((1, 6, 6), 3, (BlockConfig("conv", 3, pool="max", dropout=0.2), BlockConfig("linear", 5))),
            traces=TraceConfig(factors=(0.5, 0.5, 1.0, 1.0)), lsg=LSGConfig(pool_sizes=(2, 5)),
            train=TrainConfig(T=6, n_learn=4, batch_size=8)),
        "mlp": TessConfig(
            NetworkConfig((10,), 3, (BlockConfig("linear", 8, bias=True), BlockConfig("linear", 6))),
            traces=TraceConfig(factors=(0.5, 0.5, 1.0, 1.0)), train=TrainConfig(T=6, n_learn=4, batch_size=8)),
    }


@pytest.mark.parametrize("T", [4, 64])
def test_state_size_independent_of_T(target: Target, T: int) -> None:
    """The final state of T = 4 and T = 64 has exactly the shapes of ``tess_spec.state_shapes``."""
    for name, cfg in property_configs().items():
        cfg = cfg.replace(**{"train.T": T, "train.n_learn": 2})
        case = S.make_case(cfg, 5, batch=3)
        backend = target.backend()
        p = {k: np.asarray(v, target.dtype) for k, v in case.params.items()}
        out = backend.train_batch(cfg, backend.params_from_numpy(p),
                                  backend.opt_state_from_numpy({"step": 0, "m": {k: 0 * v for k, v in p.items()},
                                                                "v": {k: 0 * v for k, v in p.items()}}),
                                  case.x, case.y, masks=case.masks)
        want = state_shapes(cfg.network, 3)
        got = [{k: tuple(np.shape(backend.to_numpy(v))) for k, v in s.items()} for s in out.state]
        assert got == want, f"{name}, T={T}: state shapes {got} != state_shapes {want}"


def check_permutation(target: Target, case: S.Case) -> None:
    """Permuting the batch permutes every per-sample record entry and leaves the summed
    updates, gradients, loss and accuracy unchanged."""
    n = len(case.y)
    perm = np.roll(np.arange(n), 1)[::-1].copy()
    base = _run(target, case)
    pc = S.Case(case.config, case.params, case.opt_state, case.x[perm], case.y[perm],
                [None if m is None else m[perm] for m in case.masks], case.lr)
    got = _run(target, pc)
    rec = dict(base.record)
    for key in ("u", "o", "psi", "q", "h", "m"):
        rec[key] = [np.asarray(a)[:, perm] for a in base.record[key]]
    rec["logits"] = np.asarray(base.record["logits"])[:, perm]
    want = StepResult(base.params, base.opt_state, rec,
                      [{k: np.asarray(v)[perm] for k, v in s.items()} for s in base.state], base.loss, base.n_correct)
    cmp = compare_step(case.config, want, got, target.dtype)
    cmp.raise_if_failed(f"batch permuted by {perm.tolist()}")


@pytest.mark.parametrize("name", ["conv", "mlp"])
def test_batch_permutation_equivariance(target: Target, name: str) -> None:
    """Permuting the batch permutes every output."""
    cfg = property_configs()[name]
    for seed in range(2):
        check_permutation(target, S.make_case(cfg, seed, batch=5, sequence=bool(seed), binary=bool(seed),
                                              input_scale=1.5, weight_scale=2.0))


def test_determinism_under_seed(target: Target) -> None:
    """Two models with the same seed (shuffling and dropout masks from the spec RNG) end
    with bit-identical parameters and identical metrics after an epoch."""
    cfg = property_configs()["conv"].replace(**{"train.seed": 11, "train.batch_size": 16})
    rng = np.random.default_rng(3)
    data = Dataset(rng.random((48, 1, 6, 6)).astype(np.float32) * 1.5, rng.integers(0, 3, 48), 3, "random")
    runs = []
    for _ in range(2):
        model = Model(cfg, target.backend())
        hist = model.fit(data, epochs=1)
        runs.append((model.numpy_params(), hist[-1].train_loss, hist[-1].train_accuracy))
    (p1, l1, a1), (p2, l2, a2) = runs
    for k in p1:
        assert np.array_equal(p1[k], p2[k]), f"{k} differs between two runs with the same seed"
    assert (l1, a1) == (l2, a2)


def check_profiles(target: Target) -> None:
    """§9: the profiles differ only in h̃ (λ_post·h vs h) and in the conv blocks' default
    reset amount (θ vs 1.0)."""
    conv_net = NetworkConfig((1, 6, 6), 3, (BlockConfig("conv", 3), BlockConfig("linear", 5)))
    lif = LIFConfig(theta=0.6)
    cmp = Comparison()
    base = TessConfig(conv_net, lif=lif, traces=TraceConfig(factors=(0.5, 0.5, 1.0, 1.0)),
                      train=TrainConfig(T=6, n_learn=4, batch_size=4))
    case = S.make_case(base, 21, batch=4, input_scale=1.5, weight_scale=2.0)

    def run(cfg: TessConfig) -> StepResult:
        return _run(target, S.Case(cfg, case.params, case.opt_state, case.x, case.y, case.masks, case.lr))

    # 1) same explicit reset amount: everything equal except the non-causal term (÷ λ_post)
    fixed = base.replace(lif=LIFConfig(theta=0.6, reset_amount=0.6))
    a, b = run(fixed.replace(profile="paper")), run(fixed.replace(profile="reference-code"))
    for key in ("u", "o", "psi", "q", "h", "m", "dw_causal"):
        for i in range(2):
            cmp.check(f"{key}[block {i}] paper vs reference-code (same r)", b.record[key][i], a.record[key][i],
                      "dw" if key.startswith("dw") else ("psi" if key == "o" else key), target.dtype)
    for i in range(2):
        cmp.check(f"dw_noncausal[block {i}]: reference-code = paper / λ_post", b.record["dw_noncausal"][i],
                  np.asarray(a.record["dw_noncausal"][i]) / 0.5, "dw", target.dtype)
    cmp.check("readout grads paper vs reference-code", b.record["grads"]["readout.weight"],
              a.record["grads"]["readout.weight"], "grads", target.dtype)
    # 2) default reset amounts: paper r = θ everywhere; reference-code r = 1.0 in conv, θ in linear
    paper, refc = run(base.replace(profile="paper")), run(base.replace(profile="reference-code"))
    cmp.check("u[block 0] paper = explicit r=θ", paper.record["u"][0], a.record["u"][0], "u", target.dtype)
    r1 = run(base.replace(profile="reference-code", lif=LIFConfig(theta=0.6, reset_amount=1.0)))
    cmp.check("u[block 0] reference-code = explicit r=1.0", refc.record["u"][0], r1.record["u"][0], "u", target.dtype)
    if np.allclose(np.asarray(paper.record["u"][0]), np.asarray(refc.record["u"][0])):
        cmp.fail("the conv block's membrane does not depend on the profile's reset amount (θ vs 1.0)")
    mlp = base.replace(network=NetworkConfig((36,), 3, (BlockConfig("linear", 6),)))
    mcase = S.make_case(mlp, 22, batch=4, input_scale=1.5, weight_scale=2.0)
    rp = _run(target, S.Case(mlp, mcase.params, mcase.opt_state, mcase.x, mcase.y, mcase.masks, None))
    rr = _run(target, S.Case(mlp.replace(profile="reference-code"), mcase.params, mcase.opt_state, mcase.x, mcase.y,
                             mcase.masks, None))
    cmp.check("linear block u: paper = reference-code (r = θ in both)", rr.record["u"][0], rp.record["u"][0], "u",
              target.dtype)
    cmp.raise_if_failed("profiles")


def test_profiles_differ_where_spec_says(target: Target) -> None:
    """The two profiles differ exactly where TESS_RULE.md §9 says."""
    check_profiles(target)
