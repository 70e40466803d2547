"""The CuPy backend on CPU: the engine on its kernels with xp = numpy and the NumPy
twin of the fused kernels (``tess.backends.cupy.twin``), against the spec's oracle
:func:`tess_spec.reference.train_batch` in float64 — every recorded quantity, the
updates, the new parameters and optimiser state."""

from __future__ import annotations

import numpy as np
import pytest

import tess
from tess.backends.cupy.twin import CpuTwinBackend
from tess_spec import (
    BlockConfig,
    LIFConfig,
    LSGConfig,
    NetworkConfig,
    OptimizerConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
    cnn_digits,
    draw_dropout_masks,
    init_params,
    make_rng,
    reference,
)


def _spatial_cfg() -> TessConfig:
    """avg pool + bias + dropout, a global-average block, SGD, hard reset, fast-sigmoid ψ."""
    return TessConfig(
        network=NetworkConfig((2, 6, 6), 4, (
            BlockConfig("conv", 5, pool="avg", bias=True, dropout=0.3, weight_std=True),
            BlockConfig("conv", 6, pool="global_avg", psi="triangle"),
        )),
        lif=LIFConfig(theta=0.4, reset="hard"),
        traces=TraceConfig(factors=(0.3, 0.7, 0.8, 1.2), psi="fast_sigmoid"),
        lsg=LSGConfig(pool_sizes=(2, 1)),
        optimizer=OptimizerConfig(name="sgd", lr=0.05, weight_decay=1e-3),
        train=TrainConfig(T=4, n_learn=2),
        profile="reference-code",
    )


def _mlp_cfg() -> TessConfig:
    return TessConfig(
        network=NetworkConfig((12,), 3, (BlockConfig("linear", 9, bias=True, dropout=0.2),
                                         BlockConfig("linear", 7, weight_std=True))),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        lsg=LSGConfig(pool_sizes=(3, 7)),
        optimizer=OptimizerConfig(weight_decay=0.01),
        train=TrainConfig(T=5, n_learn=3),
    )


CASES = {
    "cnn-paper-direct": (cnn_digits(T=4).replace(**{"train.n_learn": 3}), False),
    "cnn-refcode-seq-hard": (
        cnn_digits(T=3).replace(**{"profile": "reference-code", "lif.reset": "hard",
                                   "traces.factors": (0.3, 0.6, 0.7, 0.9)}), True),
    "cnn-causal-only": (cnn_digits(T=3).replace(**{"traces.factors": (0.2, 0.5, 0.0, 1.0)}), True),
    "spatial-avg-dropout-sgd": (_spatial_cfg(), True),
    "mlp-bias-dropout": (_mlp_cfg(), False),
    "linear-on-spatial-input": (TessConfig(
        network=NetworkConfig((2, 3, 3), 3, (BlockConfig("linear", 6, weight_std=True), BlockConfig("linear", 4))),
        train=TrainConfig(T=3)), True),
}


def _batch(cfg: TessConfig, sequence: bool, seed: int = 1, batch: int = 3):
    rng = make_rng(seed)
    params = init_params(cfg, rng)
    if cfg.optimizer.name == "adam":  # a non-zero optimiser state exercises the moment updates
        opt = {"step": 3, "m": {k: rng.normal(size=v.shape) * 1e-3 for k, v in params.items()},
               "v": {k: rng.random(v.shape) * 1e-5 for k, v in params.items()}}
    else:
        opt = {"step": 2, "buf": {k: rng.normal(size=v.shape) * 1e-3 for k, v in params.items()}}
    shape = (batch, cfg.train.T, *cfg.network.input_shape) if sequence else (batch, *cfg.network.input_shape)
    x = (rng.random(shape) < 0.4) * rng.uniform(0.5, 2.0, size=shape)
    y = rng.integers(0, cfg.network.n_classes, batch)
    masks = draw_dropout_masks(cfg, batch, rng)
    return params, opt, x, y, masks


@pytest.mark.parametrize("case", sorted(CASES))
def test_twin_equals_reference_float64(case):
    cfg, sequence = CASES[case]
    params, opt, x, y, masks = _batch(cfg, sequence)
    want_p, want_opt, rec = reference.train_batch(cfg, params, opt, x, y, masks)
    be = CpuTwinBackend(dtype="float64")
    out = be.train_batch(cfg, be.params_from_numpy(params), be.opt_state_from_numpy(opt), x, y,
                         masks=masks, record=True)
    got = out.record
    assert got is not None
    for i in range(len(cfg.network.blocks)):
        np.testing.assert_array_equal(got["o"][i], rec["o"][i], err_msg=f"spikes of block {i}")
        for key in ("u", "psi", "q", "h", "m"):
            assert got[key][i].shape == rec[key][i].shape, (key, i)
            np.testing.assert_allclose(got[key][i], rec[key][i], rtol=1e-12, atol=1e-14, err_msg=f"{key}[{i}]")
        for key in ("dw_causal", "dw_noncausal"):
            np.testing.assert_allclose(got[key][i], rec[key][i], rtol=1e-10, atol=1e-14, err_msg=f"{key}[{i}]")
        for k in ("u", "o", "q", "h"):
            np.testing.assert_allclose(be.to_numpy(out.state[i][k]), rec["state"][i][k], rtol=1e-12, atol=1e-14)
    # the case must not be vacuous: spikes happen and both update terms are non-zero where configured
    assert all(o.any() for o in rec["o"])
    assert any(np.abs(c).max() > 0 for c in rec["dw_causal"])
    if cfg.traces.alpha_post:
        assert any(np.abs(c).max() > 0 for c in rec["dw_noncausal"])
    np.testing.assert_allclose(got["logits"], rec["logits"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["lsg_loss"], rec["lsg_loss"], rtol=1e-12)
    for k in params:
        np.testing.assert_allclose(got["grads"][k], rec["grads"][k], rtol=1e-10, atol=1e-14, err_msg=k)
        np.testing.assert_allclose(be.to_numpy(out.params[k]), want_p[k], rtol=1e-12, atol=1e-14, err_msg=k)
    got_opt = be.opt_state_to_numpy(out.opt_state)
    assert got_opt["step"] == want_opt["step"]
    for slot in [s for s in want_opt if s != "step"]:
        for k in params:
            np.testing.assert_allclose(got_opt[slot][k], want_opt[slot][k], rtol=1e-12, atol=1e-16)
    assert out.loss == pytest.approx(rec["loss"], rel=1e-12)
    assert out.n_correct == rec["n_correct"]


@pytest.mark.parametrize("case", ["cnn-paper-direct", "spatial-avg-dropout-sgd"])
def test_one_fused_launch_per_block_step(case):
    cfg, sequence = CASES[case]
    params, opt, x, y, masks = _batch(cfg, sequence)
    be = CpuTwinBackend(dtype="float64")
    be.train_batch(cfg, be.params_from_numpy(params), be.opt_state_from_numpy(opt), x, y, masks=masks)
    launches = be.runner.launches
    L, T, n_learn = len(cfg.network.blocks), cfg.train.T, cfg.train.n_learn
    steps = sum(v for k, v in launches.items() if k.startswith("tess_step_"))
    mods = sum(v for k, v in launches.items() if k.startswith("tess_modulate_"))
    assert steps == L * T  # LIF + spike + ψ + h + h̃ + q: one launch per block and step
    assert mods == L * n_learn  # m, m⊙ψ, m⊙h̃: one launch per block and learning step


def test_predict_equals_reference():
    cfg, _ = CASES["cnn-paper-direct"]
    params, _, x, _, _ = _batch(cfg, False, seed=4, batch=5)
    be = CpuTwinBackend(dtype="float64")
    np.testing.assert_allclose(be.predict(cfg, be.params_from_numpy(params), x),
                               reference.predict(cfg, params, x), rtol=1e-12, atol=1e-13)
    assert be.runner.launches and all(k.startswith("tess_step_") and "tr" not in k.split("_") for k in be.runner.launches)


def test_float32_twin_tracks_float32_reference():
    cfg, sequence = CASES["cnn-refcode-seq-hard"]
    params, opt, x, y, masks = _batch(cfg, sequence, batch=4)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    o32 = {"step": opt["step"], **{s: {k: v.astype(np.float32) for k, v in opt[s].items()} for s in ("m", "v")}}
    want_p, _, rec = reference.train_batch(cfg, p32, o32, x.astype(np.float32), y, masks)
    be = CpuTwinBackend(dtype="float32")
    out = be.train_batch(cfg, be.params_from_numpy(params), be.opt_state_from_numpy(opt), x, y, record=True)
    for i in range(len(cfg.network.blocks)):
        assert out.record["u"][i].dtype == np.float32
        agree = (out.record["o"][i] == rec["o"][i]).mean()
        assert agree >= 0.999, f"block {i}: spikes agree on only {agree:.4f}"
    for k in params:
        got = be.to_numpy(out.params[k])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want_p[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_twin_through_registry_and_model():
    be = tess.get_backend("tess.backends.cupy.twin:Backend", dtype="float64")
    assert be.name == "cupy-twin" and be.info()["kernels"].startswith("NumPy twin")
    cfg = CASES["mlp-bias-dropout"][0]
    model = tess.Model(cfg, be)
    rng = make_rng(0)
    x = rng.random((6, 12))
    y = rng.integers(0, 3, 6)
    out = model.train_batch(x, y)
    assert np.isfinite(out.loss)
