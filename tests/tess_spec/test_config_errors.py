"""Bad configuration and bad input raise tess errors naming the offending value (issue 2, item 7)."""

from __future__ import annotations

import numpy as np
import pytest

import tess
import tess_spec as ts
from tess.errors import ConfigError, DataError, ShapeError
from tess_spec.config import (
    BlockConfig,
    LIFConfig,
    NetworkConfig,
    OptimizerConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
)


@pytest.mark.parametrize("n_learn", [0, -1, 7])
def test_learning_window_outside_1_T(n_learn: int) -> None:
    with pytest.raises(ConfigError, match=rf"n_learn={n_learn}"):
        TrainConfig(T=6, n_learn=n_learn)


@pytest.mark.parametrize("index,value", [(0, -0.1), (0, 1.5), (1, 2.0), (1, -1e-3)])
def test_lambda_outside_unit_interval(index: int, value: float) -> None:
    factors = [0.2, 0.5, 0.0, 1.0]
    factors[index] = value
    with pytest.raises(ConfigError, match=rf"lambda_{'post' if index == 0 else 'pre'}={value!r}"):
        TraceConfig(factors=tuple(factors))


@pytest.mark.parametrize("theta", [0.0, -0.6])
def test_threshold_must_be_positive(theta: float) -> None:
    with pytest.raises(ConfigError, match=rf"theta={theta!r}"):
        LIFConfig(theta=theta)


@pytest.mark.parametrize("leak", [0.0, 1.01, -0.5])
def test_leak_outside_0_1(leak: float) -> None:
    with pytest.raises(ConfigError, match=rf"leak={leak!r}"):
        LIFConfig(leak=leak)


def test_leak_one_is_allowed() -> None:
    assert LIFConfig(leak=1.0).leak == 1.0


def test_unknown_names() -> None:
    with pytest.raises(ConfigError, match="'gaussian'"):
        TraceConfig(psi="gaussian")
    with pytest.raises(ConfigError, match="'gaussian'"):
        BlockConfig("linear", 4, psi="gaussian")
    net = NetworkConfig((4,), 2, (BlockConfig("linear", 3),))
    with pytest.raises(ConfigError, match="'thesis'"):
        TessConfig(net, profile="thesis")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'rmsprop'"):
        OptimizerConfig(name="rmsprop")  # type: ignore[arg-type]


def test_batch_size_zero() -> None:
    with pytest.raises(ConfigError, match="batch_size=0"):
        TrainConfig(batch_size=0)


def test_pooling_that_makes_the_map_vanish() -> None:
    blocks = (BlockConfig("conv", 4, pool="max", pool_size=4), BlockConfig("conv", 4, pool="max", pool_size=4))
    with pytest.raises(ConfigError, match=r"pool_size=4 on a 2x2"):
        NetworkConfig((1, 8, 8), 2, blocks)


def test_conv_after_linear_is_rejected() -> None:
    with pytest.raises(ConfigError, match="cannot follow a linear block"):
        NetworkConfig((1, 8, 8), 2, (BlockConfig("linear", 4), BlockConfig("conv", 4)))


def test_replace_validates_and_rejects_unknown_fields() -> None:
    cfg = ts.mlp_digits()
    assert cfg.replace(**{"train.T": 9}).train.n_learn == 9  # a full window follows T
    with pytest.raises(ConfigError, match="train.nope"):
        cfg.replace(**{"train.nope": 1})
    with pytest.raises(ConfigError, match="n_learn=12"):
        cfg.replace(**{"train.n_learn": 12})


def test_config_roundtrips_through_dict() -> None:
    for cfg in (ts.mlp_digits(), ts.cnn_digits(), ts.vgg9("cifar10")):
        assert ts.from_dict(ts.to_dict(cfg)) == cfg


# -- bad input through the backend ------------------------------------------------


@pytest.fixture(scope="module")
def mlp() -> tuple[TessConfig, tess.Backend, dict, dict]:
    cfg = TessConfig(NetworkConfig((5,), 3, (BlockConfig("linear", 4),)), train=TrainConfig(T=3))
    b = tess.get_backend("numpy")
    p = ts.init_params(cfg, ts.make_rng(0))
    return cfg, b, b.params_from_numpy(p), b.opt_state_from_numpy(ts.init_opt_state(cfg, p))


def test_input_shape_mismatch(mlp) -> None:
    cfg, b, p, o = mlp
    with pytest.raises(ShapeError, match=r"\(2, 6\)"):
        b.train_batch(cfg, p, o, np.zeros((2, 6)), np.zeros(2, int))
    with pytest.raises(ShapeError, match=r"\(2, 4, 5\)"):  # a sequence of the wrong length T
        b.train_batch(cfg, p, o, np.zeros((2, 4, 5)), np.zeros(2, int))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_input(mlp, bad: float) -> None:
    cfg, b, p, o = mlp
    x = np.zeros((2, 5))
    x[1, 3] = bad
    with pytest.raises(DataError, match=rf"NaN or Inf .*index 8: {bad}"):
        b.train_batch(cfg, p, o, x, np.zeros(2, int))


@pytest.mark.parametrize("label", [3, -1])
def test_labels_outside_range(mlp, label: int) -> None:
    cfg, b, p, o = mlp
    with pytest.raises(DataError, match=rf"label {label} is outside \[0, 3\)"):
        b.train_batch(cfg, p, o, np.zeros((2, 5)), np.array([0, label]))


def test_empty_batch_and_dataset(mlp) -> None:
    cfg, b, p, o = mlp
    with pytest.raises(DataError, match="0 samples"):
        b.train_batch(cfg, p, o, np.zeros((0, 5)), np.zeros(0, int))
    from tess.datasets import Dataset

    empty = Dataset(np.zeros((0, 5), np.float32), np.zeros(0, np.int64), 3, "empty")
    with pytest.raises(DataError, match="training set is empty"):
        tess.Model(cfg).fit(empty)
