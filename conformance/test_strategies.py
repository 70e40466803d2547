"""Group "strategies": meta-tests of the Hypothesis strategies — they produce the
variety they claim (some draws spike, some do not; conv and linear blocks; max, avg
and global pooling; both profiles, resets and ψ; direct and event inputs; ...).
Backend-independent: the reference computes the spikes."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, given, settings

from tess.conformance import strategies as S
from tess_spec import reference as ref

N_DRAWS = 120


def _features(strategy) -> tuple[Counter, int]:  # noqa: ANN001
    counts: Counter = Counter()
    n = [0]

    @settings(max_examples=N_DRAWS, derandomize=True, database=None, deadline=None,
              phases=(Phase.generate,), suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def draw(case: S.Case) -> None:
        _, _, rec = ref.train_batch(case.config, case.params, case.opt_state, case.x, case.y, case.masks, case.lr)
        for k, v in S.case_features(case, rec).items():
            counts[k] += bool(v)
        n[0] += 1

    draw()
    return counts, n[0]


def test_cases_cover_what_they_claim() -> None:
    """Every feature appears in some draws, and spiking/silent both occur."""
    counts, n = _features(S.cases())
    assert n >= N_DRAWS // 2
    missing = [k for k in ("conv", "linear", "max_pool", "avg_pool", "global_avg", "dropout", "weight_std", "bias",
                           "fast_sigmoid", "triangle", "hard_reset", "soft_reset", "paper", "reference_code",
                           "sequence", "direct", "partial_window", "alpha_post_zero", "alpha_post_nonzero", "sgd",
                           "warm_optimizer", "multi_block", "spikes_everywhere", "silent_block", "signal_lsg",
                           "signal_readout_backprop", "signal_released") if counts[k] == 0]
    assert not missing, f"never drawn in {n} cases: {missing} (counts {dict(counts)})"
    assert counts["some_spikes"] >= n // 4, f"only {counts['some_spikes']}/{n} draws spike at all"
    assert counts["silent_block"] >= n // 20, f"only {counts['silent_block']}/{n} draws have a silent block"


def test_autodiff_cases_are_the_special_case() -> None:
    """The autodiff strategy draws α_post = 0, λ_pre = γ, soft reset — and still spikes."""

    seen = Counter()

    @settings(max_examples=40, derandomize=True, database=None, deadline=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(case=S.autodiff_cases())
    def draw(case: S.Case) -> None:
        c = case.config
        assert c.traces.alpha_post == 0 and c.traces.lambda_pre == c.lif.leak and c.lif.reset == "soft"
        _, _, rec = ref.train_batch(c, case.params, case.opt_state, case.x, case.y, case.masks, case.lr)
        seen["spikes"] += any(float(o.sum()) > 0 for o in rec["o"])
        seen["conv"] += any(b.kind == "conv" for b in c.network.blocks)

    draw()
    assert seen["spikes"] > 0 and seen["conv"] > 0, dict(seen)
