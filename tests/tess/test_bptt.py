"""The BPTT baseline (the torch backend's ``method="bptt"``) and its gradients.

What each test proves:

* ``test_spike_function_*``: the custom spike is the exact Heaviside ``u > θ``
  forward and multiplies the incoming gradient by exactly ψ(u) backward.
* ``test_gradient_matches_finite_differences_*``: with the spike's forward
  replaced by a smooth C¹ function S whose derivative is ψ (S = ∫ψ) and the
  backward inherited unchanged from :class:`SpikeFunction` (a kernels subclass
  substitutes the spike kernel of the engine's forward pass), the autograd gradient
  equals central finite differences in float64 of the same relaxed model.  Since
  the relaxed and the real model differ only in the spike's forward value, this
  proves that the rest of the graph (weight standardisation, conv, pooling,
  dropout masks, soft/hard reset through time, readout, CE of time-summed logits,
  bias, gain) is differentiated correctly and that ψ enters where ∂o/∂u does.
  (Finite differences of the real spiking model would be zero almost
  everywhere: its loss is piecewise constant in the weights.)
* ``test_gradient_equals_explicit_adjoint``: on the real spiking model (a linear
  LIF block + readout) the autograd gradient equals a hand-written backward
  recursion through time with ∂o/∂u := ψ(u) — the definition of the surrogate
  BPTT gradient — for soft and hard reset.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tess  # noqa: E402
from tess.backends.torch import BPTTKernels, SpikeFunction  # noqa: E402
from tess.bptt import BPTTModel, fit_bptt, train_cli  # noqa: E402
from tess.datasets import load_digits  # noqa: E402
from tess.engine import params_from_flat, predict  # noqa: E402
from tess.errors import ConfigError  # noqa: E402
from tess_spec import (  # noqa: E402
    BlockConfig,
    LIFConfig,
    LSGConfig,
    NetworkConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
    draw_dropout_masks,
    init_params,
    make_rng,
    mlp_digits,
)
from tess_spec.neuron import psi as spec_psi  # noqa: E402
from tess_spec.plan import network_plan  # noqa: E402

K64 = BPTTKernels("float64")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _relaxed_value(u: torch.Tensor, theta: float, name: str) -> torch.Tensor:
    """S(u) = ∫_{-∞}^{u} ψ: smooth (C¹) stand-in for the spike with S' = ψ exactly."""
    v = u - theta
    if name == "triangle":  # ψ = 0.3 max(0, 1 - |v|)
        left = 0.15 * (v + 1) ** 2
        right = 0.3 - 0.15 * (1 - v) ** 2
        return torch.where(v < -1, torch.zeros_like(v), torch.where(v < 0, left, torch.where(v < 1, right, 0.3 + 0 * v)))
    # ψ = 1 / (100|v| + 1)²  →  S = sign(v) (1 - 1/(100|v| + 1)) / 100
    return torch.sign(v) * (1 - 1 / (100 * v.abs() + 1)) / 100


class RelaxedSpike(SpikeFunction):
    """Forward S(u) (smooth); backward inherited from SpikeFunction (grad · ψ(u))."""

    @staticmethod
    def forward(ctx, u, theta, psi_name, kernels):  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.theta, ctx.psi_name, ctx.kernels = theta, psi_name, kernels
        return _relaxed_value(u, theta, psi_name)


class RelaxedKernels(BPTTKernels):
    """The BPTT kernels with the spike kernel substituted by :class:`RelaxedSpike`."""

    def spike(self, u, theta, psi):
        return RelaxedSpike.apply(u, theta, psi, self)


def tiny_conv(reset: str, profile: str) -> TessConfig:
    blocks = (
        BlockConfig("conv", 3, pool="max", weight_std=True, bias=True, dropout=0.3),
        BlockConfig("conv", 4, pool="avg", weight_std=True),
        BlockConfig("linear", 5, psi="fast_sigmoid", bias=True),
    )
    return TessConfig(
        network=NetworkConfig((2, 5, 5), 3, blocks),
        lif=LIFConfig(reset=reset),
        lsg=LSGConfig(pool_sizes=(1, 1, 5)),
        traces=TraceConfig(factors=(0.2, 0.5, 0.0, 1.0)),
        train=TrainConfig(T=4, batch_size=3, dtype="float64"),
        profile=profile,
    )


def test_spike_function_forward_is_strict_heaviside() -> None:
    u = torch.tensor([0.5, 0.6, 0.6000001, 2.0], dtype=torch.float64)
    assert SpikeFunction.apply(u, 0.6, "triangle", K64).tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["triangle", "fast_sigmoid"])
def test_spike_function_backward_is_psi(name: str) -> None:
    u = torch.linspace(-1.0, 2.5, 41, dtype=torch.float64, requires_grad=True)
    g = torch.randn(41, dtype=torch.float64)
    (grad,) = torch.autograd.grad(SpikeFunction.apply(u, 0.6, name, K64), u, g)
    np.testing.assert_allclose(grad.numpy(), g.numpy() * spec_psi(name, u.detach().numpy(), 0.6), rtol=1e-15, atol=0)


def _relaxed_loss(config: TessConfig, params: dict, x: torch.Tensor, y: torch.Tensor, masks: list) -> torch.Tensor:
    plan = network_plan(config)
    summed = predict(RelaxedKernels("float64"), plan, params_from_flat(plan, params), x, masks)
    return torch.nn.functional.cross_entropy(summed, y)


@pytest.mark.parametrize("reset,profile", [("soft", "paper"), ("soft", "reference-code"), ("hard", "paper")])
def test_gradient_matches_finite_differences_relaxed(reset: str, profile: str) -> None:
    config = tiny_conv(reset, profile)
    rng = make_rng(4)
    np_params = init_params(config, rng)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in np_params.items()}
    x = torch.tensor(rng.random((3, 4, 2, 5, 5)) * 3.0)  # sequence input
    y = torch.tensor(rng.integers(0, 3, 3))
    masks = [None if m is None else torch.tensor(m) for m in draw_dropout_masks(config, 3, rng)]
    loss = _relaxed_loss(config, params, x, y, masks)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    assert all(float(g.abs().sum()) > 0 for g in grads.values()), "a parameter got no gradient"

    eps = 1e-6

    def loss_at(delta: dict[str, np.ndarray]) -> float:
        p = {k: torch.tensor(np_params[k] + delta.get(k, 0.0)) for k in np_params}
        with torch.no_grad():
            return float(_relaxed_loss(config, p, x, y, masks))

    # random directional derivatives over all parameters at once ...
    for _ in range(3):
        v = {k: rng.standard_normal(a.shape) for k, a in np_params.items()}
        fd = (loss_at({k: eps * d for k, d in v.items()}) - loss_at({k: -eps * d for k, d in v.items()})) / (2 * eps)
        an = sum(float((grads[k] * torch.tensor(v[k])).sum()) for k in v)
        assert an == pytest.approx(fd, rel=1e-5, abs=1e-9)
    # ... and single coordinates of every parameter tensor
    for k, a in np_params.items():
        for flat in rng.choice(a.size, size=min(2, a.size), replace=False):
            d = np.zeros(a.size)
            d[flat] = eps
            d = d.reshape(a.shape)
            fd = (loss_at({k: d}) - loss_at({k: -d})) / (2 * eps)
            assert float(grads[k].reshape(-1)[flat]) == pytest.approx(fd, rel=1e-5, abs=1e-9), k


def _explicit_adjoint(
    W: np.ndarray, Wr: np.ndarray, br: np.ndarray, x: np.ndarray, y: np.ndarray, T: int, lif: LIFConfig, r: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand-written surrogate BPTT of one linear LIF block + readout, CE on Σ_t logits.

    Forward: u_t = γ(u_{t-1} - r o_{t-1}) + W x (soft) or γ u_{t-1}(1 - o_{t-1}) + W x (hard),
    o_t = 1[u_t > θ], logits_t = Wr o_t + br.  Backward with ∂o/∂u := ψ(u):
    e = (softmax(Σ logits) - onehot)/B; ∂L/∂o_t = e Wr + (∂u_{t+1}/∂o_t) δ_{t+1};
    δ_t = ∂L/∂u_t = ψ_t ⊙ ∂L/∂o_t + (∂u_{t+1}/∂u_t|_o) δ_{t+1}.
    """
    n = x.shape[0]
    g, th = lif.leak, lif.theta
    us, os_ = [], []
    u = np.zeros((n, W.shape[0]))
    o = np.zeros_like(u)
    for _ in range(T):
        u = (g * (u - r * o) if lif.reset == "soft" else g * u * (1 - o)) + x @ W.T
        o = (u > th).astype(float)
        us.append(u)
        os_.append(o)
    z = sum(os_) @ Wr.T + T * br
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    e = p.copy()
    e[np.arange(n), y] -= 1
    e /= n
    dW = np.zeros_like(W)
    delta_next = np.zeros_like(u)
    for t in reversed(range(T)):
        g_o = e @ Wr
        if t + 1 < T:
            g_o = g_o + (-g * r * delta_next if lif.reset == "soft" else -g * us[t] * delta_next)
        psi_t = spec_psi("triangle", us[t], th)
        carry = 0.0 if t + 1 == T else (g * delta_next if lif.reset == "soft" else g * (1 - os_[t]) * delta_next)
        delta = psi_t * g_o + carry
        dW += delta.T @ x
        delta_next = delta
    return dW, e.T @ sum(os_), T * e.sum(0)


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_gradient_equals_explicit_adjoint(reset: str) -> None:
    config = TessConfig(
        network=NetworkConfig((7,), 3, (BlockConfig("linear", 6),)),
        lif=LIFConfig(reset=reset),
        train=TrainConfig(T=6, batch_size=5, dtype="float64"),
    )
    rng = make_rng(9)
    model = BPTTModel(config, params=None)
    np_params = model.numpy_params()
    x = rng.random((5, 7)) * 1.5
    y = rng.integers(0, 3, 5)
    got = model.gradients(x, y)
    dW, dWr, dbr = _explicit_adjoint(np_params["blocks.0.weight"], np_params["readout.weight"],
                                     np_params["readout.bias"], x, y, 6, config.lif, config.lif.theta)
    assert np.abs(dW).sum() > 0 and any(np.abs(got["blocks.0.weight"]).sum(1) > 0)
    np.testing.assert_allclose(got["blocks.0.weight"], dW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["readout.weight"], dWr, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["readout.bias"], dbr, rtol=1e-10, atol=1e-14)


def test_same_initial_params_as_tess_model() -> None:
    import tess

    config = mlp_digits()
    a = BPTTModel(config).numpy_params()
    b = tess.Model(config, "numpy").numpy_params()
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-7)


def test_fit_learns_digits_quickly() -> None:
    train, test = load_digits()
    config = mlp_digits(epochs=1)
    model = fit_bptt(config, train, test)
    assert len(model.history) == 1
    assert model.history[0].test_accuracy > 0.5  # chance is 0.1


def test_train_cli_rejects_non_torch_backend() -> None:
    train, test = load_digits()
    with pytest.raises(ConfigError, match="--backend torch"):
        train_cli(mlp_digits(epochs=1), "numpy", {}, train, test, None)


def test_train_cli_runs_and_returns_epoch_dicts(capsys: pytest.CaptureFixture[str]) -> None:
    train, test = load_digits()
    small = type(train)(train.x[:64], train.y[:64], 10, "digits/small")
    hist = train_cli(mlp_digits(epochs=2), "torch", {"dtype": "float32"}, small, test, None)
    assert [h["epoch"] for h in hist] == [1, 2]
    assert {"train_loss", "train_accuracy", "test_accuracy", "lr", "seconds"} <= set(hist[0])
    assert "[bptt]" in capsys.readouterr().out


def test_bptt_is_a_method_of_the_torch_backend() -> None:
    config = mlp_digits(epochs=1)
    model = tess.Model(config, "torch", method="bptt")
    assert model.backend.method == "bptt" and "method" in model.backend.info()
    x, y = load_digits()[0].x[:16], load_digits()[0].y[:16]
    before = model.numpy_params()
    out = model.train_batch(x, y)
    assert np.isfinite(out.loss) and 0 <= out.n_correct <= 16 and out.record is None
    assert any(not np.array_equal(before[k], v) for k, v in model.numpy_params().items())
    with pytest.raises(ConfigError, match="record"):
        model.train_batch(x, y, record=True)


def test_bptt_on_a_backend_without_it_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="method='bptt'.*numpy.*'tess'"):
        tess.Model(mlp_digits(), "numpy", method="bptt")
    with pytest.raises(ConfigError, match="runs 'tess'"):
        tess.Model(mlp_digits(), tess.get_backend("torch"), method="bptt")


def test_bptt_model_equals_torch_method() -> None:
    """The compatibility class is the method: same numbers after a step."""
    config = mlp_digits(epochs=1).replace(**{"train.dtype": "float64"})
    x, y = load_digits()[0].x[:8], load_digits()[0].y[:8]
    a, b = BPTTModel(config), tess.Model(config, "torch", method="bptt")
    a.train_batch(x, y)
    b.train_batch(x, y)
    for k, v in a.numpy_params().items():
        np.testing.assert_array_equal(v, b.numpy_params()[k])


def test_tess_train_method_bptt_end_to_end(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """``tess train --method bptt --backend torch`` runs from the command line and records the method."""
    import json

    from tess.cli import main

    out = tmp_path / "run.json"
    assert main(["train", "--method", "bptt", "--backend", "torch", "--dataset", "digits", "--epochs", "1",
                 "--no-progress", "--set", "train.T=3", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["method"] == "bptt" and summary["backend"] == "torch"
    assert summary["history"][-1]["test_accuracy"] > 0.5  # chance is 0.1
    assert "[bptt]" in capsys.readouterr().out
