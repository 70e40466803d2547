"""Group "errors": bad input raises the spec's errors (``tess.errors``), with a message
naming the offending value — through the configs, the backend API and ``tess.Model``."""

from __future__ import annotations

import numpy as np
import pytest

from tess import Model
from tess.conformance.harness import Target
from tess.datasets import Dataset
from tess.errors import ConfigError, DataError, ShapeError
from tess_spec import BlockConfig, NetworkConfig, TessConfig, TrainConfig, init_opt_state, init_params, make_rng

CONFIG_CASES = [
    ("n_learn=0", {"train.n_learn": 0}, "0"),
    ("n_learn>T", {"train.n_learn": 9}, "9"),
    ("lambda_post>1", {"traces.factors": [1.5, 0.5, 0.0, 1.0]}, "1.5"),
    ("lambda_pre<0", {"traces.factors": [0.2, -0.1, 0.0, 1.0]}, "-0.1"),
    ("theta=0", {"lif.theta": 0.0}, "0.0"),
    ("theta<0", {"lif.theta": -0.6}, "-0.6"),
    ("leak=0", {"lif.leak": 0.0}, "0.0"),
    ("leak>1", {"lif.leak": 1.5}, "1.5"),
    ("unknown psi", {"traces.psi": "relu"}, "relu"),
    ("unknown profile", {"profile": "papr"}, "papr"),
    ("unknown optimiser", {"optimizer.name": "adamw"}, "adamw"),
    ("batch size 0", {"train.batch_size": 0}, "0"),
]


def _config() -> TessConfig:
    return TessConfig(NetworkConfig((1, 4, 4), 3, (BlockConfig("conv", 2, pool="max"), BlockConfig("linear", 4))),
                      train=TrainConfig(T=4, batch_size=2))


def _setup(target: Target):  # noqa: ANN202
    cfg = _config()
    backend = target.backend()
    p = {k: v.astype(target.dtype) for k, v in init_params(cfg, make_rng(0)).items()}
    return cfg, backend, backend.params_from_numpy(p), backend.opt_state_from_numpy(init_opt_state(cfg, p))


@pytest.mark.parametrize("label,change,value", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_rejected(target: Target, label: str, change: dict, value: str) -> None:
    """Config values out of range or unknown names raise ConfigError naming the value."""
    with pytest.raises(ConfigError) as exc:
        cfg = _config().replace(**change)
        Model(cfg, target.backend())
    assert value in str(exc.value), f"{label}: message {str(exc.value)!r} does not name {value!r}"


def test_vanishing_feature_map_is_rejected() -> None:
    """A network whose pooling makes a feature map vanish raises ConfigError naming the size."""
    with pytest.raises(ConfigError) as exc:
        NetworkConfig((1, 4, 4), 2, (BlockConfig("conv", 2, pool="max", pool_size=3),
                                     BlockConfig("conv", 2, pool="max", pool_size=2)))
    assert "pool_size=2" in str(exc.value) or "1x1" in str(exc.value)


BATCH_CASES = {
    "wrong frame shape": (lambda: np.zeros((2, 1, 5, 4)), lambda: np.array([0, 1]), ShapeError, "(2, 1, 5, 4)"),
    "wrong T": (lambda: np.zeros((2, 3, 1, 4, 4)), lambda: np.array([0, 1]), ShapeError, "(2, 3, 1, 4, 4)"),
    "NaN input": (lambda: np.where(np.eye(4)[None, None] > 0, np.nan, 0.0).repeat(2, 0), lambda: np.array([0, 1]),
                  DataError, "nan"),
    "Inf input": (lambda: np.full((2, 1, 4, 4), np.inf), lambda: np.array([0, 1]), DataError, "inf"),
    "label too large": (lambda: np.zeros((2, 1, 4, 4)), lambda: np.array([0, 3]), DataError, "3"),
    "negative label": (lambda: np.zeros((2, 1, 4, 4)), lambda: np.array([-1, 0]), DataError, "-1"),
    "label shape": (lambda: np.zeros((2, 1, 4, 4)), lambda: np.array([0, 1, 2]), ShapeError, "(3,)"),
    "empty batch": (lambda: np.zeros((0, 1, 4, 4)), lambda: np.zeros(0, np.int64), DataError, "0"),
}


@pytest.mark.parametrize("label", list(BATCH_CASES))
def test_bad_batch_is_rejected_by_train_batch(target: Target, label: str) -> None:
    """``train_batch`` raises the spec's error, naming the offending value, for bad batches."""
    make_x, make_y, err, value = BATCH_CASES[label]
    cfg, backend, params, opt = _setup(target)
    with pytest.raises(err) as exc:
        backend.train_batch(cfg, params, opt, make_x(), make_y())
    assert value.lower() in str(exc.value).lower(), f"{label}: {str(exc.value)!r} does not name {value!r}"


@pytest.mark.parametrize("label", ["wrong frame shape", "NaN input", "Inf input", "empty batch"])
def test_bad_batch_is_rejected_by_predict(target: Target, label: str) -> None:
    """``predict`` raises the same errors."""
    make_x, _, err, value = BATCH_CASES[label]
    cfg, backend, params, _ = _setup(target)
    with pytest.raises(err) as exc:
        backend.predict(cfg, params, make_x())
    assert value.lower() in str(exc.value).lower()


def test_empty_dataset_is_rejected(target: Target) -> None:
    """Training on an empty dataset raises DataError."""
    model = Model(_config(), target.backend())
    with pytest.raises(DataError) as exc:
        model.fit(Dataset(np.zeros((0, 1, 4, 4), np.float32), np.zeros(0, np.int64), 3, "empty"), epochs=1)
    assert "empty" in str(exc.value)


def test_bad_dtype_and_masks_are_rejected(target: Target) -> None:
    """An unsupported dtype and a wrong number of dropout masks raise ConfigError."""
    with pytest.raises(ConfigError) as exc:
        Target(target.name, "float16", target.device).backend()
    assert "float16" in str(exc.value)
    cfg, backend, params, opt = _setup(target)
    with pytest.raises(ConfigError) as exc2:
        backend.train_batch(cfg, params, opt, np.zeros((2, 1, 4, 4)), np.array([0, 1]), masks=[None])
    assert "1" in str(exc2.value)
