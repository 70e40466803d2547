"""Compilation is bounded: one training run compiles its train step once, a ragged
last batch is padded (not recompiled), and padding changes no number."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("jax")

from tess import Model  # noqa: E402
from tess_spec import init_opt_state, init_params, make_rng  # noqa: E402
from tess_spec.config import BlockConfig, LIFConfig, NetworkConfig, TessConfig, TrainConfig  # noqa: E402
from tess.backends.jax import Backend  # noqa: E402
from tess.backends.jax.backend import padded_batch, program_config  # noqa: E402


@dataclass
class _Data:
    x: np.ndarray
    y: np.ndarray


def _config(**train: object) -> TessConfig:
    net = NetworkConfig((6,), 3, (BlockConfig("linear", 10, dropout=0.2), BlockConfig("linear", 7, bias=True)))
    # T = 3 and theta = 0.37 make this program unique in the test process (the
    # executable cache is shared), so the counts below start from zero.
    train = {"T": 3, "dtype": "float64", **train}
    return TessConfig(network=net, lif=LIFConfig(theta=0.37), train=TrainConfig(**train))


def _data(n: int, seed: int) -> _Data:
    rng = np.random.default_rng(seed)
    return _Data(rng.random((n, 6)) * 2, rng.integers(0, 3, n))


def test_padded_batch_rule() -> None:
    assert [padded_batch(n, 4) for n in (1, 2, 4, 5, 8, 9)] == [4, 4, 4, 8, 8, 16]


def test_program_config_ignores_run_settings() -> None:
    a = _config(batch_size=4, seed=1, epochs=3)
    b = _config(batch_size=16, seed=9, epochs=1)
    assert program_config(a) == program_config(b)
    assert program_config(a) != program_config(_config(batch_size=4, T=4))


def test_epochs_with_ragged_last_batch_compile_once_and_match_numpy() -> None:
    config = _config(batch_size=4, epochs=3)
    train, test = _data(10, 0), _data(5, 1)  # batches of 4, 4, 2: the last one is ragged
    jx = Model(config, "jax")
    be = jx.backend
    assert isinstance(be, Backend) and be.compile_count == 0 and be.compile_seconds == 0.0
    jx.fit(train, test)
    # one train executable (4 rows, masks on block 0) + one predict executable (5 → 8 rows)
    assert be.compile_count == 2
    assert be.compile_seconds > 0
    jx.fit(train, test, epochs=2)
    assert be.compile_count == 2, "a second fit (same shapes) must not recompile"

    ref = Model(config, "numpy")
    ref.fit(train, test, epochs=5)
    got, want = jx.numpy_params(), ref.numpy_params()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-9, err_msg=k)
    for a, b in zip(jx.history, ref.history):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-10)
        assert a.test_accuracy == b.test_accuracy


def test_batch_larger_than_configured_pads_to_power_of_two() -> None:
    config = _config(batch_size=2)
    rng = make_rng(5)
    params = init_params(config, rng)
    opt = init_opt_state(config, params)
    jx = Backend(dtype="float64")
    import tess

    npb = tess.get_backend("numpy", dtype="float64")
    before = jx.compile_count
    for n in (6, 7, 8):  # all padded to 8 rows: one executable
        data = _data(n, n)
        masks = [np.ones((n, 10)) * 1.25, None]
        out = jx.train_batch(config, jx.params_from_numpy(params), jx.opt_state_from_numpy(opt), data.x, data.y,
                             masks=masks)
        want = npb.train_batch(config, params, opt, data.x, data.y, masks=masks)
        assert out.loss == pytest.approx(want.loss, rel=1e-12)
        assert out.n_correct == want.n_correct
        assert jx.to_numpy(out.state[0]["u"]).shape == (n, 10)
        for k, v in jx.params_to_numpy(out.params).items():
            np.testing.assert_allclose(v, want.params[k], rtol=0, atol=1e-10, err_msg=k)
    assert jx.compile_count - before == 1
