"""The JAX backend equals the spec's oracle, tess_spec.reference, in float64.

Records (per-step u, o, ψ, q, h, m, logits, LSG losses, window sums of both
update terms, the gradients handed to the optimiser), the updated parameters
and optimiser state, over two consecutive optimiser steps (the second starting from the oracle's
parameters and optimiser state).  Spikes compare
exactly; continuous quantities to 1e-12 relative to their scale (parameters after
Adam to 1e-10 absolute: Adam divides by sqrt(v) + ε, which turns 1e-18 rounding in a
near-zero gradient into ~1e-13 in the step).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from tess_spec import draw_dropout_masks, init_opt_state, init_params, make_rng, reference  # noqa: E402
from tess_spec.config import (  # noqa: E402
    BlockConfig,
    LIFConfig,
    LSGConfig,
    NetworkConfig,
    OptimizerConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
)
from tess.backends.jax import Backend  # noqa: E402

RTOL = 1e-12


def conv_config(profile: str, reset: str, **train: object) -> TessConfig:
    """Conv (max pool, weight std, dropout, bias) → conv (avg pool, weight std) → linear (bias, fast sigmoid ψ)."""
    net = NetworkConfig((2, 7, 7), 4, (
        BlockConfig("conv", 4, pool="max", weight_std=True, bias=True, dropout=0.25),
        BlockConfig("conv", 6, pool="avg", weight_std=True),
        BlockConfig("linear", 8, bias=True, psi="fast_sigmoid"),
    ))
    return TessConfig(
        network=net, lif=LIFConfig(theta=0.3, reset=reset), traces=TraceConfig(factors=(0.2, 0.5, 0.7, 1.0)),
        lsg=LSGConfig(pool_sizes=(2, 1, 4)), train=TrainConfig(dtype="float64", **train), profile=profile,
    )


def mlp_config(profile: str, reset: str, factors: tuple, optimizer: str, **train: object) -> TessConfig:
    net = NetworkConfig((10,), 3, (
        BlockConfig("linear", 12, bias=True, dropout=0.3),
        BlockConfig("linear", 9, weight_std=True),
    ), )
    return TessConfig(
        network=net, lif=LIFConfig(theta=0.4, reset=reset), traces=TraceConfig(factors=factors),
        optimizer=OptimizerConfig(name=optimizer, lr=5e-3), train=TrainConfig(dtype="float64", **train),
        profile=profile,
    )


CASES = {
    # conv, paper, soft reset, event sequence, learning window shorter than T, ragged (padded) batch
    "conv-paper-soft-sequence": (conv_config("paper", "soft", T=5, n_learn=3, batch_size=4), 3, True),
    # conv, reference-code profile, hard reset, direct input
    "conv-refcode-hard-direct": (conv_config("reference-code", "hard", T=4, batch_size=3), 3, False),
    # MLP, paper, hard reset, direct input, α_post = 0 (the published event-data factors), Adam
    "mlp-paper-hard-direct": (mlp_config("paper", "hard", (0.2, 0.5, 0.0, 1.0), "adam", T=6, batch_size=5), 5, False),
    # MLP, reference-code, soft reset, sequence input, SGD with momentum, padded batch
    "mlp-refcode-soft-sequence": (
        mlp_config("reference-code", "soft", (0.3, 0.6, 1.0, 0.5), "sgd", T=5, n_learn=4, batch_size=8), 5, True),
}


def _inputs(config: TessConfig, n: int, sequence: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shape = (n, config.train.T, *config.network.input_shape) if sequence else (n, *config.network.input_shape)
    x = (rng.random(shape) < 0.5) * rng.uniform(0.5, 2.0, shape)
    y = rng.integers(0, config.network.n_classes, n)
    return x, y


def _close(actual: np.ndarray, expected: np.ndarray, what: str, rtol: float = RTOL) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    scale = max(float(np.max(np.abs(expected))), 1e-30) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale, err_msg=what)


def _compare_record(rec: dict, ref: dict) -> None:
    assert set(rec) == set(ref)
    for i in range(len(ref["o"])):
        np.testing.assert_array_equal(rec["o"][i], ref["o"][i], err_msg=f"spikes o[{i}]")
        for key in ("u", "psi", "q", "h", "m", "dw_causal", "dw_noncausal"):
            _close(rec[key][i], ref[key][i], f"{key}[{i}]")
        for key in ("u", "o", "q", "h"):
            _close(rec["state"][i][key], ref["state"][i][key], f"state[{i}].{key}")
    _close(rec["logits"], ref["logits"], "logits")
    _close(rec["lsg_loss"], ref["lsg_loss"], "lsg_loss")
    assert list(rec["grads"]) == list(ref["grads"])
    for k in ref["grads"]:
        _close(rec["grads"][k], ref["grads"][k], f"grads[{k}]")
    assert rec["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    assert rec["n_correct"] == ref["n_correct"]


@pytest.mark.parametrize("case", list(CASES))
def test_train_batch_matches_reference(case: str) -> None:
    config, n, sequence = CASES[case]
    rng = make_rng(7)
    params = init_params(config, rng)
    opt = init_opt_state(config, params)
    be = Backend(dtype="float64")
    p_be, o_be = be.params_from_numpy(params), be.opt_state_from_numpy(opt)
    spiked = [0.0] * len(config.network.blocks)
    for step in range(2):
        x, y = _inputs(config, n, sequence, rng)
        masks = draw_dropout_masks(config, n, rng)
        params, opt, ref = reference.train_batch(config, params, opt, x, y, masks, lr=2e-3)
        out = be.train_batch(config, p_be, o_be, x, y, masks=masks, lr=2e-3, record=True)
        _compare_record(out.record, ref)
        assert out.loss == pytest.approx(ref["loss"], rel=1e-12)
        assert out.n_correct == ref["n_correct"]
        for i, s in enumerate(out.state):
            assert be.to_numpy(s["u"]).shape == ref["state"][i]["u"].shape  # padding rows are cut off
        got = be.params_to_numpy(out.params)
        assert list(got) == list(params)
        for k in params:
            np.testing.assert_allclose(got[k], params[k], rtol=0, atol=1e-10, err_msg=f"step {step} param {k}")
        got_opt = be.opt_state_to_numpy(out.opt_state)
        assert got_opt["step"] == opt["step"] == step + 1
        for mk in set(opt) - {"step"}:
            for k in params:
                _close(got_opt[mk][k], opt[mk][k], f"opt {mk}[{k}]", rtol=1e-9)
        for i in range(len(spiked)):
            spiked[i] += float(ref["o"][i].sum())
        # continue from the oracle's numbers, so the next record compares from identical inputs
        p_be, o_be = be.params_from_numpy(params), be.opt_state_from_numpy(opt)
    # the comparison is not vacuous: every block spiked, both update terms are live where configured
    assert all(s > 0 for s in spiked), spiked
    assert any(np.abs(d).max() > 0 for d in ref["dw_causal"])
    if config.traces.alpha_post != 0:
        assert any(np.abs(d).max() > 0 for d in ref["dw_noncausal"])


@pytest.mark.parametrize("case", ["conv-paper-soft-sequence", "mlp-paper-hard-direct"])
def test_predict_matches_reference(case: str) -> None:
    config, n, sequence = CASES[case]
    rng = make_rng(3)
    params = init_params(config, rng)
    x, _ = _inputs(config, 6, sequence, rng)
    be = Backend(dtype="float64")
    got = be.predict(config, be.params_from_numpy(params), x)
    _close(got, reference.predict(config, params, x), "predict")
