"""The temporal-order task (tess.datasets.synthetic): the class is the order and spacing of
two pulses, the generator is seeded, and the time-collapsed input is at chance."""

from __future__ import annotations

import numpy as np
import pytest

from tess.datasets import DATASETS, load_dataset
from tess.datasets.synthetic import ORDER_CLASSES, ORDER_GAPS, generate_temporal_order, order_patterns
from tess_spec import get_preset
from tess_spec.errors import ConfigError


def test_registered_with_a_preset_and_seeded() -> None:
    assert "order" in DATASETS
    train, test = load_dataset("order")
    assert train.x.shape == (1200, 12, 32) and test.x.shape == (400, 12, 32) and train.n_classes == 4
    cfg = get_preset("mlp_order")
    assert cfg.network.input_shape == (32,) and cfg.network.n_classes == 4 and cfg.train.T == 12
    again, _ = load_dataset("order")
    assert np.array_equal(train.x, again.x) and np.array_equal(train.y, again.y)
    other, _ = load_dataset("order", seed=1)
    assert not np.array_equal(train.x, other.x)
    img, _ = load_dataset("order", shape="image", n_train=8, n_test=4)
    assert img.x.shape == (8, 12, 2, 4, 4)


def test_the_class_is_the_order_and_spacing_of_the_two_pulses() -> None:
    x, y = generate_temporal_order(300, np.random.default_rng(5), noise=0.0, keep=1.0)
    pats = order_patterns().reshape(2, -1)
    flat = x.reshape(len(x), x.shape[1], -1)
    for xi, yi in zip(flat, y):
        first, g = ORDER_CLASSES[yi]
        when = [np.flatnonzero((xi[:, pats[k]] > 0).any(axis=1)) for k in (first, 1 - first)]
        assert len(when[0]) == 1 and len(when[1]) == 1, "each pattern fires in exactly one frame"
        assert when[1][0] - when[0][0] == ORDER_GAPS[g]
    assert set(np.unique(y)) == set(range(4))


def test_the_time_collapsed_input_is_at_chance() -> None:
    """A least-squares classifier and nearest class means on Σ_t x[t] stay within 3σ of 1/4 on
    held-out data, while the same classifier on the time-resolved input does not."""
    train, test = load_dataset("order")
    n = len(test.y)
    band = 3 * np.sqrt(0.25 * 0.75 / n)

    def lstsq_acc(a: np.ndarray, b: np.ndarray) -> float:
        A = np.c_[a, np.ones(len(a))]
        W = np.linalg.lstsq(A, np.eye(4)[train.y], rcond=None)[0]
        return float(((np.c_[b, np.ones(len(b))] @ W).argmax(1) == test.y).mean())

    s_tr, s_te = train.x.sum(axis=1), test.x.sum(axis=1)
    assert abs(lstsq_acc(s_tr, s_te) - 0.25) <= band
    means = np.stack([s_tr[train.y == c].mean(axis=0) for c in range(4)])
    nearest = np.argmin(((s_te[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert abs(float((nearest == test.y).mean()) - 0.25) <= band
    resolved = lstsq_acc(train.x.reshape(len(train.y), -1), test.x.reshape(n, -1))
    assert resolved > 0.25 + 2 * band, f"the time-resolved input should carry the class ({resolved:.3f})"


def test_bad_settings_are_config_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="T=4 is too short"):
        generate_temporal_order(2, rng, T=4)
    with pytest.raises(ConfigError, match="gaps"):
        generate_temporal_order(2, rng, gaps=(3, 3))
    with pytest.raises(ConfigError, match="shape"):
        load_dataset("order", shape="cube")
