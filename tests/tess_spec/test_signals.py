"""The learning-signal setting (TESS_RULE.md §11, tess_spec.signals): the config field, its
schedule, and readout back-propagation as the gradient it claims to be."""

from __future__ import annotations

import numpy as np
import pytest

import tess_spec as ts
from tess_spec import BlockConfig, NetworkConfig, TessConfig, TrainConfig
from tess_spec.errors import ConfigError
from tess_spec.ops import conv2d
from tess_spec.signals import (Segment, current_input_grad, readout_backprop, readout_error, readout_input_grad,
                               signal_schedule, signal_segments, step_signal)

NET = NetworkConfig((2, 6, 6), 3, (BlockConfig("conv", 3, pool="max", weight_std=True, dropout=0.3),
                                   BlockConfig("conv", 2, pool="avg"), BlockConfig("linear", 5, bias=True)))


def _cfg(signal: str = "lsg", T: int = 5, n_learn: int = 3) -> TessConfig:
    return TessConfig(NET, train=TrainConfig(T=T, n_learn=n_learn), learning_signal=signal)


def test_the_setting_is_validated_and_defaults_to_the_paper() -> None:
    assert TessConfig(NET).learning_signal == "lsg" and ts.LEARNING_SIGNALS == ("lsg", "readout-backprop", "released")
    with pytest.raises(ConfigError, match="learning_signal='nope' is invalid"):
        TessConfig(NET, learning_signal="nope")
    with pytest.raises(ConfigError, match="learning_signal"):
        ts.from_dict({**ts.to_dict(TessConfig(NET)), "learning_signal": 3})


def test_to_dict_leaves_the_default_out_so_old_configs_are_unchanged() -> None:
    d = ts.to_dict(TessConfig(NET))
    assert "learning_signal" not in d and ts.from_dict(d).learning_signal == "lsg"
    for name in ("readout-backprop", "released"):
        cfg = _cfg(name)
        assert ts.to_dict(cfg)["learning_signal"] == name and ts.from_dict(ts.to_dict(cfg)) == cfg
        assert TessConfig(NET).replace(learning_signal=name).learning_signal == name
    assert _cfg("released").replace(learning_signal="lsg") == _cfg("lsg")
    assert _cfg("released").replace(**{"train.T": 8}).learning_signal == "released"


def test_schedules() -> None:
    assert signal_schedule(_cfg("lsg")) == (None, None, "lsg", "lsg", "lsg")
    assert signal_schedule(_cfg("readout-backprop")) == (None, None, "readout-backprop", "readout-backprop",
                                                         "readout-backprop")
    assert signal_schedule(_cfg("released")) == ("lsg", "lsg", "readout-backprop", "readout-backprop",
                                                 "readout-backprop")
    assert signal_segments(_cfg("released")) == (Segment(0, 2, "lsg", False), Segment(2, 5, "readout-backprop", True))
    assert signal_segments(_cfg("lsg", n_learn=5)) == (Segment(0, 5, "lsg", True),)
    assert signal_segments(_cfg("lsg"), window_start=4) == (Segment(0, 4, None, False), Segment(4, 5, "lsg", True))
    with pytest.raises(ValueError, match="outside the sequence"):
        step_signal(_cfg(), 5)


def test_current_input_grad_is_the_adjoint_of_the_current() -> None:
    rng = np.random.default_rng(0)
    x, w, g = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=(2, 4, 5, 4))
    assert np.vdot(conv2d(x, w), g) == pytest.approx(np.vdot(x, current_input_grad("conv", g, w)), rel=1e-12)
    xl, wl, gl = rng.normal(size=(2, 7)), rng.normal(size=(5, 7)), rng.normal(size=(2, 5))
    assert np.vdot(xl @ wl.T, gl) == pytest.approx(np.vdot(xl, current_input_grad("linear", gl, wl)), rel=1e-12)
    out, err, wr = rng.normal(size=(2, 4, 3, 3)), rng.normal(size=(2, 6)), rng.normal(size=(6, 4))
    assert np.vdot(out.mean(axis=(2, 3)) @ wr.T, err) == pytest.approx(
        np.vdot(out, readout_input_grad(err, wr, out.shape)), rel=1e-12)


def test_readout_backprop_is_the_gradient_of_the_step_loss() -> None:
    """m_l = ∂CE(logits[t], y)/∂o_l with ∂o/∂u := ψ of every later block (torch autograd)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cfg = _cfg("readout-backprop")
    rng = ts.make_rng(3)
    params = ts.init_params(cfg, rng)
    masks = ts.draw_dropout_masks(cfg, 4, rng)
    from tess_spec.reference import effective_weights

    w_hat = effective_weights(cfg, params)
    y = np.array([0, 1, 2, 1])
    o = [(rng.random((4, 3, 6, 6)) < 0.4) * 1.0, (rng.random((4, 2, 3, 3)) < 0.4) * 1.0, (rng.random((4, 5)) < 0.4) * 1.0]
    psi = [rng.random(a.shape) * 0.3 for a in o]
    leaves = [torch.tensor(a, requires_grad=True) for a in o]

    def spike_like(k: int, u_grad_from: "torch.Tensor") -> "torch.Tensor":
        # the later block's spikes as a function of its current: value o_k, slope ψ_k
        return torch.tensor(o[k]) + torch.tensor(psi[k]) * (u_grad_from - u_grad_from.detach())

    m0 = torch.tensor(masks[0])
    x1 = F.max_pool2d(leaves[0] * m0, 2)
    o1 = leaves[1] + spike_like(1, F.conv2d(x1, torch.tensor(w_hat[1]), padding=1))
    x2 = F.avg_pool2d(o1, 2).flatten(1)
    o2 = leaves[2] + spike_like(2, x2 @ torch.tensor(w_hat[2]).T)
    logits = o2 @ torch.tensor(params["readout.weight"]).T + torch.tensor(params["readout.bias"])
    F.cross_entropy(logits, torch.tensor(y)).backward()
    ms = readout_backprop(cfg, y, logits.detach().numpy(), params["readout.weight"], w_hat, o, psi, masks)
    for k in range(3):
        np.testing.assert_allclose(ms[k], leaves[k].grad.numpy(), rtol=1e-10, atol=1e-14)
    assert all(np.abs(m).max() > 0 for m in ms)
    assert np.allclose(readout_error(logits.detach().numpy(), y).sum(axis=1), 0)
