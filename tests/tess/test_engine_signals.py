"""The engine's learning signals: readout back-propagation and the released loop's schedule,
on the NumPy backend's kernels (every backend is checked against the spec by the
conformance suite)."""

from __future__ import annotations

import numpy as np

import tess
from tess.engine import SIGNALS, readout_backprop_signals
from tess_spec import BlockConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig, init_opt_state, init_params
from tess_spec import make_rng
from tess_spec.reference import train_batch as ref_train_batch

CFG = TessConfig(NetworkConfig((2, 5, 5), 3, (BlockConfig("conv", 3, pool="max"), BlockConfig("linear", 4))),
                 traces=TraceConfig(factors=(0.3, 0.6, 1.0, 1.0)), train=TrainConfig(T=5, n_learn=3, batch_size=3))


def _run(cfg: TessConfig) -> tuple[dict, dict]:
    rng = make_rng(2)
    params = {k: v * 2.0 if k.endswith("weight") else v for k, v in init_params(cfg, rng).items()}
    x = (rng.random((3, 5, 2, 5, 5)) < 0.4) * 1.0
    y = np.array([0, 1, 2])
    be = tess.get_backend("numpy", dtype="float64")
    out = be.train_batch(cfg, be.params_from_numpy(params), be.opt_state_from_numpy(init_opt_state(cfg, params)),
                         x, y, record=True)
    _, _, want = ref_train_batch(cfg, params, init_opt_state(cfg, params), x, y)
    return out.record, want


def test_signals_are_registered() -> None:
    assert SIGNALS["readout-backprop"] is readout_backprop_signals and set(SIGNALS) == {"lsg", "readout-backprop"}


def test_released_loop_learns_before_the_window_without_training_the_readout() -> None:
    rec, want = _run(CFG.replace(learning_signal="released"))
    lsg, _ = _run(CFG)
    for i in range(2):
        m = np.asarray(rec["m"][i])
        assert np.abs(m[:2]).max() > 0 and np.abs(m[2:]).max() > 0
        np.testing.assert_allclose(m, want["m"][i], rtol=1e-9, atol=1e-15)
        # the steps before the window carry the LSG signal: exactly the LSG's at those steps
        np.testing.assert_allclose(m[:2], _lsg_signal_everywhere(i)[:2], rtol=1e-9, atol=1e-15)
    # the readout learns in the window only: its gradient is the LSG run's (same forward pass)
    np.testing.assert_allclose(rec["grads"]["readout.weight"], lsg["grads"]["readout.weight"], rtol=1e-12)


def _lsg_signal_everywhere(i: int) -> np.ndarray:
    rec, _ = _run(CFG.replace(**{"train.n_learn": 5}))
    return np.asarray(rec["m"][i])


def test_readout_backprop_crosses_blocks() -> None:
    rec, want = _run(CFG.replace(learning_signal="readout-backprop"))
    lsg, _ = _run(CFG)
    for i in range(2):
        np.testing.assert_allclose(rec["m"][i], want["m"][i], rtol=1e-9, atol=1e-15)
        assert not np.allclose(rec["m"][i][2:], lsg["m"][i][2:])
        assert np.all(np.asarray(rec["m"][i])[:2] == 0)
    assert np.allclose(rec["lsg_loss"][2:, 0], rec["lsg_loss"][2:, 1])  # the step's readout CE, for every block
