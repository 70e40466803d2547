"""State shapes are a function of the network and the batch only."""

from __future__ import annotations

import numpy as np
import pytest

import tess
import tess_spec as ts
from tess.errors import ConfigError


def test_state_shapes_of_a_conv_net() -> None:
    cfg = ts.cnn_digits()
    shapes = ts.state_shapes(cfg.network, 5)
    assert shapes[0] == {"u": (5, 16, 8, 8), "o": (5, 16, 8, 8), "q": (5, 1, 8, 8), "h": (5, 16, 8, 8)}
    assert shapes[1]["q"] == (5, 16, 8, 8) and shapes[1]["u"] == (5, 32, 8, 8)
    assert shapes[2] == {"u": (5, 128), "o": (5, 128), "q": (5, 32 * 4 * 4), "h": (5, 128)}
    assert ts.state_nbytes(cfg.network, 5, 4) == 4 * sum(int(np.prod(s)) for d in shapes for s in d.values())


def test_state_shapes_takes_no_T_and_rejects_bad_batch() -> None:
    import inspect

    assert list(inspect.signature(ts.state_shapes).parameters) == ["network", "batch"]
    with pytest.raises(ConfigError, match="batch=0"):
        ts.state_shapes(ts.mlp_digits().network, 0)


def test_vgg9_shapes() -> None:
    cfg = ts.vgg9("dvs_gesture")
    out = [b.output for b in ts.block_shapes(cfg.network)]
    assert out[0] == (64, 32, 32) and out[1] == (128, 16, 16) and out[3] == (256, 8, 8)
    assert out[5] == (512, 4, 4) and out[7] == (512, 1, 1)
    assert cfg.train.T == 20 and cfg.train.n_learn == 20 and cfg.traces.factors == (0.2, 0.5, 0.0, 1.0)


@pytest.mark.parametrize("preset", ["mlp_digits", "cnn_digits"])
def test_backend_state_memory_does_not_depend_on_T(preset: str) -> None:
    """Train one batch at T=4 and T=64: every state array has the same size."""
    b = tess.get_backend("numpy")
    sizes = []
    for T in (4, 64):
        cfg = ts.get_preset(preset).replace(**{"train.T": T})
        p = ts.init_params(cfg, ts.make_rng(0))
        shape = (3, 64) if preset == "mlp_digits" else (3, 1, 8, 8)
        out = b.train_batch(cfg, b.params_from_numpy(p), b.opt_state_from_numpy(ts.init_opt_state(cfg, p)),
                            np.random.default_rng(1).random(shape), np.array([0, 1, 2]))
        sizes.append([{k: (v.shape, v.nbytes) for k, v in s.items()} for s in out.state])
        assert [{k: v.shape for k, v in s.items()} for s in out.state] == ts.state_shapes(cfg.network, 3)
    assert sizes[0] == sizes[1]
