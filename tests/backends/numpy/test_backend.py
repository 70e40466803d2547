"""The NumPy backend's recorded per-step quantities equal the spec's (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import tess
import tess_spec as ts
from tess_spec import reference
from tess_spec.config import BlockConfig, LIFConfig, LSGConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig

CONV = NetworkConfig(
    (2, 8, 8), 5,
    (BlockConfig("conv", 6, weight_std=True, dropout=0.2, bias=True),
     BlockConfig("conv", 4, pool="max"),
     BlockConfig("conv", 4, pool="avg", kernel_size=1),
     BlockConfig("linear", 12, bias=True, psi="fast_sigmoid")),
)
MLP = NetworkConfig((10,), 4, (BlockConfig("linear", 16), BlockConfig("linear", 8, dropout=0.1)))


def _config(net: NetworkConfig, profile: str, reset: str) -> TessConfig:
    pools = (2, 3, 1, 5) if len(net.blocks) == 4 else None
    return TessConfig(
        net, lif=LIFConfig(theta=0.3, reset=reset), traces=TraceConfig(factors=(0.3, 0.6, 0.7, 1.0)),
        lsg=LSGConfig(pool_sizes=pools), train=TrainConfig(T=8, n_learn=5, dtype="float64"), profile=profile,
    )


@pytest.mark.parametrize("net", [CONV, MLP], ids=["conv", "mlp"])
@pytest.mark.parametrize("profile", ["paper", "reference-code"])
@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("sequence", [True, False], ids=["events", "direct"])
def test_records_equal_the_spec(net: NetworkConfig, profile: str, reset: str, sequence: bool) -> None:
    cfg = _config(net, profile, reset)
    rng = np.random.default_rng(3)
    inp = net.input_shape
    x = (rng.random((4, 8, *inp) if sequence else (4, *inp)) < 0.3).astype(float) * 1.5
    y = rng.integers(0, net.n_classes, 4)
    masks = ts.draw_dropout_masks(cfg, 4, rng)
    params = ts.init_params(cfg, ts.make_rng(0))
    opt = ts.init_opt_state(cfg, params)
    b = tess.get_backend("numpy", dtype="float64")
    bp, bo = b.params_from_numpy(params), b.opt_state_from_numpy(opt)
    for step in range(2):  # two optimiser steps: Adam moments carry over
        params, opt, ref = reference.train_batch(cfg, params, opt, x, y, masks=masks)
        out = b.train_batch(cfg, bp, bo, x, y, masks=masks, record=True)
        bp, bo = out.params, out.opt_state
        rec = out.record
        assert rec is not None
        for key in ("o",):
            for i in range(len(net.blocks)):
                np.testing.assert_array_equal(rec[key][i], ref[key][i])
        for key in ("u", "psi", "q", "h", "m"):
            for i in range(len(net.blocks)):
                np.testing.assert_allclose(rec[key][i], ref[key][i], rtol=1e-12, atol=1e-14, err_msg=f"{key}[{i}]")
        np.testing.assert_allclose(rec["logits"], ref["logits"], rtol=1e-12, atol=1e-14)
        for i in range(len(net.blocks)):
            np.testing.assert_allclose(rec["dw_causal"][i], ref["dw_causal"][i], rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(rec["dw_noncausal"][i], ref["dw_noncausal"][i], rtol=1e-10, atol=1e-15)
        for k in params:
            np.testing.assert_allclose(rec["grads"][k], ref["grads"][k], rtol=1e-10, atol=1e-15, err_msg=k)
            np.testing.assert_allclose(out.params[k], params[k], rtol=1e-12, atol=1e-14, err_msg=k)
        assert out.loss == pytest.approx(ref["loss"]) and out.n_correct == ref["n_correct"]
    # not vacuous: spikes, signals and both update terms are there
    assert all(r.any() for r in ref["o"]) and all(r.any() for r in ref["m"])
    assert all(np.abs(d).sum() > 0 for d in ref["dw_causal"])
    assert all(np.abs(d).sum() > 0 for d in ref["dw_noncausal"])
    np.testing.assert_allclose(b.predict(cfg, bp, x), reference.predict(cfg, params, x), rtol=1e-12, atol=1e-13)


def test_float32_by_default_and_float64_on_request() -> None:
    cfg = ts.mlp_digits()
    m32 = tess.Model(cfg)
    assert m32.backend.dtype == "float32" and m32.params["blocks.0.weight"].dtype == np.float32
    m64 = tess.Model(cfg.replace(**{"train.dtype": "float64"}))
    assert m64.params["blocks.0.weight"].dtype == np.float64
    x = np.random.default_rng(0).random((3, 64))
    out = m32.train_batch(x, np.array([1, 2, 3]), record=True)
    assert out.record["u"][0].dtype == np.float32 and out.params["readout.weight"].dtype == np.float32


def test_learning_only_in_the_window() -> None:
    cfg = _config(MLP, "paper", "soft")
    params = ts.init_params(cfg, ts.make_rng(0))
    b = tess.get_backend("numpy", dtype="float64")
    x = np.random.default_rng(1).random((4, 10)) * 2
    out = b.train_batch(cfg, b.params_from_numpy(params), b.opt_state_from_numpy(ts.init_opt_state(cfg, params)),
                        x, np.array([0, 1, 2, 3]), record=True)
    start = cfg.train.window_start
    for m in out.record["m"]:
        assert not m[:start].any() and all(m[t].any() for t in range(start, cfg.train.T))
