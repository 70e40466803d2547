"""Group "equations": the backend's per-step quantities equal the spec's.

Every test runs one recorded ``train_batch`` on the backend and the reference
(:mod:`tess_spec.reference`, float64, same float-rounded inputs) and compares
u, o, ψ, q, h, m, logits, LSG losses, window-summed updates, gradients, loss,
accuracy, final state and the parameters after the optimiser step under the
tolerance policy (:mod:`tess.conformance.tolerances`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tess.conformance import strategies as S
from tess.conformance import tolerances as tol
from tess.conformance.harness import Target, compare_step, round_to, run_backend, run_reference
from tess_spec import BlockConfig, LIFConfig, LSGConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig
from tess_spec import init_opt_state
from tess_spec import reference as ref

__all__ = ["check_case", "named_configs", "NAMED", "SIGNALS", "TIES_THETA", "ties_case", "check_threshold_ties",
           "cancelling_cases"]


def check_case(target: Target, case: S.Case, note: Callable[[str], None] | None = None) -> None:
    """One step of ``case`` on the backend vs the reference; raises on a mismatch."""
    backend = target.backend()
    got = run_backend(backend, case.config, case.params, case.opt_state, case.x, case.y, case.masks, case.lr)
    want = run_reference(case.config, case.params, case.opt_state, case.x, case.y, case.masks, case.lr, target.dtype)
    cmp = compare_step(case.config, want, got, target.dtype, params_before=case.params, opt_before=case.opt_state,
                       lr=case.lr, x=case.x, masks=case.masks)
    if note is not None:
        for n in cmp.notes:
            note(n)
    cmp.raise_if_failed(repr(case))


def named_configs() -> dict[str, TessConfig]:
    """Fixed networks every backend is checked on, whatever Hypothesis draws."""
    conv = lambda f, **kw: BlockConfig("conv", f, **kw)  # noqa: E731
    lin = lambda f, **kw: BlockConfig("linear", f, **kw)  # noqa: E731
    factors = TraceConfig(factors=(0.3, 0.6, 1.0, 1.0))
    train = TrainConfig(T=5, n_learn=3, batch_size=3)
    out = {
        "conv_maxpool": TessConfig(NetworkConfig((2, 6, 6), 3, (conv(3), conv(4, pool="max"), lin(5))),
                                   traces=factors, train=train, lsg=LSGConfig(pool_sizes=(2, 1, 5))),
        "conv_avgpool_ws": TessConfig(NetworkConfig((1, 6, 6), 3, (conv(3, pool="avg", weight_std=True, bias=True),
                                                                    lin(4, weight_std=True))),
                                      traces=factors, train=train, profile="reference-code"),
        "conv_global_hard": TessConfig(NetworkConfig((2, 5, 5), 4, (conv(3, pool="global_avg", dropout=0.3),)),
                                       lif=LIFConfig(reset="hard", theta=0.4), traces=factors, train=train),
        "mlp_fast_sigmoid": TessConfig(NetworkConfig((7,), 3, (lin(6, psi="fast_sigmoid", bias=True), lin(5))),
                                       traces=factors, train=train, profile="reference-code"),
    }
    return out


NAMED = tuple(named_configs())


@pytest.mark.parametrize("name", NAMED)
@pytest.mark.parametrize("sequence", [False, True], ids=["direct", "events"])
def test_named_network_matches_spec(target: Target, note: Callable[[str], None], name: str, sequence: bool) -> None:
    """Fixed conv (max/avg/global pooling, weight std, dropout, hard reset) and MLP networks, both profiles."""
    config = named_configs()[name]
    for seed in range(2):
        case = S.make_case(config, 100 + seed, batch=3, sequence=sequence, binary=sequence,
                           input_scale=1.5 if not sequence else 1.0, weight_scale=2.0, warm_steps=3 * seed)
        check_case(target, case, note)


SIGNALS = ("readout-backprop", "released")
"""The learning signals beside the paper's LSG (TESS_RULE.md §11) the named networks are also run with."""


@pytest.mark.parametrize("name", NAMED)
@pytest.mark.parametrize("sequence", [False, True], ids=["direct", "events"])
@pytest.mark.parametrize("signal", SIGNALS)
def test_named_network_signal_matches_spec(target: Target, note: Callable[[str], None], name: str, sequence: bool,
                                           signal: str) -> None:
    """The named networks under readout back-propagation and the public code's released loop
    (LSG before the window, readout back-propagation in it), from a warm optimiser state."""
    case = S.make_case(named_configs()[name].replace(learning_signal=signal), 101, batch=3, sequence=sequence,
                       binary=sequence, input_scale=1.5 if not sequence else 1.0, weight_scale=2.0, warm_steps=3)
    check_case(target, case, note)


def cancelling_cases() -> list[S.Case]:
    """Regression cases of the thorough profile's false failures (sums that cancel): one conv
    block of one feature, kernel 1, weight standardisation, fan-in 2, T = 1, factors
    (0, 0, 0, 1) — the weight gradient is a difference of chain-rule terms ~1e7 times larger,
    and with equal input channels (or nearly equal weights) the membranes cancel to ~0."""
    cfg = TessConfig(NetworkConfig((2, 2, 2), 2, (BlockConfig("conv", 1, kernel_size=1, weight_std=True),)),
                     traces=TraceConfig(factors=(0.0, 0.0, 0.0, 1.0)), lsg=LSGConfig(pool_sizes=(1,)),
                     train=TrainConfig(T=1, n_learn=1, batch_size=4))
    return [S.make_case(cfg, 78, batch=3, input_scale=0.2, weight_scale=0.5, binary=True),
            S.make_case(cfg, 104, batch=1, input_scale=0.2, weight_scale=0.5)]


def test_cancelling_sums_match_spec(target: Target, note: Callable[[str], None]) -> None:
    """Sums that cancel are compared at the size of their terms (the tolerance policy's S)."""
    for case in cancelling_cases():
        check_case(target, case, note)


@given(data=st.data())
def test_train_step_matches_spec(target: Target, note: Callable[[str], None], data: st.DataObject) -> None:
    """Hypothesis-drawn configs, parameters and inputs: one recorded step equals the spec's."""
    check_case(target, data.draw(S.cases(target.dtype), label="case"), note)


@given(data=st.data())
def test_predict_matches_spec(target: Target, note: Callable[[str], None], data: st.DataObject) -> None:
    """``predict`` (time-summed logits, no dropout) equals the spec's; float32 samples whose
    membrane comes within the spike band of θ are reported and left out."""
    case = data.draw(S.cases(target.dtype), label="case")
    cfg = case.config
    backend = target.backend()
    p = {k: np.asarray(v, dtype=target.dtype) for k, v in case.params.items()}
    got = backend.predict(cfg, backend.params_from_numpy(p), case.x)
    p64 = {k: round_to(v, target.dtype) for k, v in case.params.items()}
    x64 = round_to(case.x, target.dtype)
    want = ref.predict(cfg, p64, x64)
    keep = np.ones(len(case.y), bool)
    if target.dtype != "float64":
        _, _, rec = ref.train_batch(cfg, p64, init_opt_state(cfg, p64), x64, case.y, None, None)
        band = tol.spike_band(cfg.lif.theta, target.dtype)
        for u in rec["u"]:
            near = (np.abs(u - cfg.lif.theta) <= band).reshape(u.shape[0], u.shape[1], -1).any(axis=(0, 2))
            keep &= ~near
        if not keep.all():
            note(f"predict: {int((~keep).sum())} sample(s) within the float32 spike band left out")
    assert got.shape == want.shape, f"predict shape {got.shape} != {want.shape}"
    ok, msg = tol.within(got[keep], want[keep], "logits", target.dtype,
                         scale=float(np.abs(want).max()) if want.size else 0.0)
    assert ok, f"predict: {msg} ({case!r})"


# --------------------------------------------------------------------- exact threshold ties
TIES_THETA = 0.5
"""θ of the threshold-tie case; every number of the case is a multiple of 2⁻⁸."""


def ties_case(reset: str) -> S.Case:
    """A two-block MLP built from exactly representable numbers (θ = 0.5, γ = 0.5, inputs
    1.0 / 0.5, weights multiples of 0.25, soft reset r = 0.75 or the hard reset) whose
    membranes land exactly on θ — at t = 0 (0.5·1.0 = θ: no spike, the inequality is
    strict) and again after every spike (0.75 spikes; soft: 0.5·(0.75 - 0.75) + 0.5 = θ;
    hard: 0 + 0.5 = θ).  Every value is computed without rounding in float32 and float64."""
    cfg = TessConfig(
        NetworkConfig((2,), 3, (BlockConfig("linear", 6), BlockConfig("linear", 3, bias=True))),
        lif=LIFConfig(theta=TIES_THETA, leak=0.5, reset=reset, reset_amount=0.75 if reset == "soft" else None),
        traces=TraceConfig(factors=(0.5, 0.5, 1.0, 1.0)),
        train=TrainConfig(T=6, n_learn=4, batch_size=3),
    )
    q = 0.25
    params = {
        "blocks.0.weight": np.array([[2, 0], [0, 4], [1, 2], [3, 0], [2, 2], [1, 0]], np.float64) * q,
        "blocks.1.weight": np.array([[2, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 0, 2, -1, 1]], np.float64) * q,
        "blocks.1.bias": np.array([0, 0, 1], np.float64) * q,
        "readout.weight": np.array([[1, -1, 0], [0, 1, -1], [-1, 0, 1]], np.float64) * q,
        "readout.bias": np.zeros(3),
    }
    x = np.array([[1.0, 0.5], [1.0, 1.0], [0.5, 1.0]])
    return S.Case(cfg, params, init_opt_state(cfg, params), x, np.array([0, 1, 2]), [None, None], None)


def check_threshold_ties(target: Target, reset: str) -> None:
    """The backend's u and o equal the spec's bit for bit on :func:`ties_case` (in any
    dtype: no spike band, no tolerance); everything else under the policy."""
    from tess.conformance.harness import Comparison
    from tess.conformance.test_golden import check_exact

    case = ties_case(reset)
    cfg = case.config
    want = run_reference(cfg, case.params, case.opt_state, case.x, case.y, case.masks, None, target.dtype)
    rec = want.record
    for i in range(len(cfg.network.blocks)):  # the case itself: ties happen, also right after a spike
        u, o = rec["u"][i], rec["o"][i]
        prev = np.concatenate([np.zeros_like(o[:1]), o[:-1]])
        assert (u == TIES_THETA).any() and not o[u == TIES_THETA].any(), f"ties case ({reset}): no tie in block {i}"
        assert i > 0 or ((u == TIES_THETA) & (prev == 1)).any(), f"ties case ({reset}): reset never lands on θ"
    got = run_backend(target.backend(), cfg, case.params, case.opt_state, case.x, case.y, case.masks, None)
    cmp = Comparison()
    check_exact(cfg, rec, got.record, ("u", "o"), cmp, f"threshold ties ({reset} reset)")
    if not cmp.failures:
        cmp = compare_step(cfg, want, got, target.dtype, params_before=case.params, opt_before=case.opt_state,
                           x=case.x, masks=case.masks)
    cmp.raise_if_failed(f"threshold ties, {reset} reset")


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_threshold_ties_are_exact(target: Target, reset: str) -> None:
    """Membranes exactly at θ do not spike (u > θ, strict) and both resets land exactly on θ:
    u and o bit for bit, in float32 too (every number is exactly representable)."""
    check_threshold_ties(target, reset)
