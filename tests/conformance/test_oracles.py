"""The suite's oracles (``tess.conformance.oracles``) against closed forms, each oracle
under the accuracy the tolerance policy claims for it: autodiff to ~1e-12, central
finite differences within ``floor·max(1, |F|)`` (``finite_differences`` in
``tess.conformance.tolerances``); and the oracle is an explicit, validated choice."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

from tess.conformance import oracles
from tess.conformance import tolerances as tol
from tess_spec import BlockConfig, LIFConfig, LSGConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig
from tess_spec.errors import ConfigError
from tess_spec.neuron import psi as spec_psi



@pytest.fixture(params=["finite-differences", "autodiff"])
def oracle(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "autodiff" and not oracles.have_torch():
        pytest.skip("the autodiff oracle needs torch (pip install 'tess[torch]'); finite differences are tested")
    oracles.select(request.param)
    yield request.param
    oracles.select("auto")


def _allowed(oracle: str, F: float) -> float:
    """Absolute error the policy allows the oracle itself (float64), beyond rounding of the closed form."""
    return 1e-12 if oracle == "autodiff" else tol.tolerance("finite_differences", "float64").floor * max(1.0, abs(F))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _linear_problem(T: int = 3, n_learn: int = 2, psi: str = "fast_sigmoid", mask: bool = False,
                    temperature: float = 1.0) -> tuple[oracles.BlockProblem, dict[str, np.ndarray]]:
    N, F, C, batch = 4, 5, 3, 2
    cfg = TessConfig(NetworkConfig((N,), C, (BlockConfig("linear", F, bias=True, psi=psi, dropout=0.3 if mask else 0.0),)),
                     lif=LIFConfig(theta=0.6, leak=0.5), traces=TraceConfig(factors=(0.5, 0.5, 0.0, 1.0)),
                     lsg=LSGConfig(pool_sizes=(F,), temperature=temperature),
                     train=TrainConfig(T=T, n_learn=n_learn, batch_size=batch))
    rng = np.random.default_rng(7)
    x = rng.random((T, batch, N))
    o = (rng.random((T, batch, F)) < 0.5).astype(np.float64)
    m = (rng.random((batch, F)) < 0.7) / 0.7 if mask else None
    params = {"blocks.0.weight": rng.normal(0, 0.7, (F, N)), "blocks.0.bias": rng.normal(0, 0.1, F)}
    return oracles.BlockProblem(cfg, 0, x, o, m, rng.integers(0, C, batch)), params


def _closed_lsg(prob: oracles.BlockProblem, t: int) -> tuple[float, np.ndarray]:
    """Linear block, k = F (adaptive pool = identity): z = (mask⊙o)·B̃ᵀ/τ,
    L = mean CE, ∂L/∂o = mask ⊙ (softmax(z) - onehot(y))·B̃ / (τ·batch)."""
    Bt = prob.basis_scaled()
    tau = prob.config.lsg.temperature
    dropped = prob.o[t] if prob.mask is None else prob.o[t] * prob.mask
    p = _softmax(dropped @ Bt.T / tau)
    n = len(prob.y)
    loss = float(-np.mean(np.log(p[np.arange(n), prob.y])))
    err = p.copy()
    err[np.arange(n), prob.y] -= 1
    g = err @ Bt / (tau * n)
    return loss, g if prob.mask is None else g * prob.mask


@pytest.mark.parametrize("mask", [False, True], ids=["plain", "dropout"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_lsg_grad_closed_form_linear(oracle: str, mask: bool, temperature: float) -> None:
    prob, _ = _linear_problem(mask=mask, temperature=temperature)
    for t in range(prob.config.train.T):
        loss, g = oracles.lsg_grad(prob, t)
        want_loss, want = _closed_lsg(prob, t)
        assert abs(loss - want_loss) < 1e-12
        err = float(np.abs(g - want).max())
        assert err <= _allowed(oracle, loss), f"{oracle}: |∂L/∂o - closed form| = {err:.3g} at t={t}"


def test_lsg_grad_closed_form_max_pool_ties(oracle: str) -> None:
    """Conv block, 2×2 max pooling of binary spikes (ties everywhere), k = 1: the gradient goes
    to the FIRST maximal element of each window (the spec's routing) and is g_a / #windows."""
    C = 3
    cfg = TessConfig(NetworkConfig((1, 4, 4), C, (BlockConfig("conv", 2, pool="max"),)),
                     lsg=LSGConfig(pool_sizes=(1,)), train=TrainConfig(T=1, n_learn=1, batch_size=2))
    rng = np.random.default_rng(3)
    o = (rng.random((1, 2, 2, 4, 4)) < 0.5).astype(np.float64)
    prob = oracles.BlockProblem(cfg, 0, np.zeros(0), o, None, np.array([0, 2]))
    loss, g = oracles.lsg_grad(prob, 0)
    Bt = prob.basis_scaled()                      # (C, D) with D = 2 channels · 1²
    pooled = o[0].reshape(2, 2, 2, 2, 2, 2).max(axis=(3, 5))
    a = pooled.mean(axis=(2, 3))                  # (batch, channels)
    p = _softmax(a @ Bt.T)
    err = p.copy()
    err[np.arange(2), prob.y] -= 1
    g_a = err @ Bt / 2
    want = np.zeros_like(o[0])
    for b in range(2):
        for c in range(2):
            for i in range(2):
                for j in range(2):
                    win = o[0, b, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(-1)
                    r = int(np.argmax(win))       # first maximal element, row-major
                    want[b, c, 2 * i + r // 2, 2 * j + r % 2] = g_a[b, c] / 4
    assert abs(loss - float(-np.mean(np.log(p[np.arange(2), prob.y])))) < 1e-12
    assert float(np.abs(g - want).max()) <= _allowed(oracle, loss)


@pytest.mark.parametrize("psi", ["triangle", "fast_sigmoid"])
def test_weight_grad_closed_form_linear(oracle: str, psi: str) -> None:
    """Linear block, soft reset detached, slope ψ(u): ∂(Σ_window L)/∂W = Σ_t (g[t]⊙ψ[t])ᵀ Σ_s γ^(t-s) x[s],
    ∂/∂b = Σ_t Σ_s γ^(t-s) Σ_batch (g[t]⊙ψ[t])."""
    prob, params = _linear_problem(psi=psi)
    cfg = prob.config
    lif = cfg.lif
    W, b = params["blocks.0.weight"], params["blocks.0.bias"]
    T, start = cfg.train.T, cfg.train.window_start
    u = np.zeros(prob.o.shape[1:])
    gw, gb = np.zeros_like(W), np.zeros_like(b)
    xbar = np.zeros_like(prob.x[0])
    for t in range(T):
        u = lif.leak * (u - lif.theta * (prob.o[t - 1] if t else 0.0)) + prob.x[t] @ W.T + b
        xbar = lif.leak * xbar + prob.x[t]
        if t >= start:
            delta = _closed_lsg(prob, t)[1] * spec_psi(psi, u, lif.theta)
            gw += delta.T @ xbar
            gb += delta.sum(axis=0) * sum(lif.leak ** (t - s) for s in range(t + 1))
    got = oracles.local_loss_weight_grad(prob, params)
    F = oracles.window_loss(prob)
    assert abs(F - sum(_closed_lsg(prob, t)[0] for t in range(start, T))) < 1e-12
    for k, want in (("blocks.0.weight", gw), ("blocks.0.bias", gb)):
        err = float(np.abs(got[k] - want).max())
        assert err <= _allowed(oracle, F), f"{oracle}: |{k} - closed form| = {err:.3g} (F = {F:.3g})"


def test_select_is_explicit_and_validated() -> None:
    try:
        assert oracles.select("finite-differences") == "finite-differences"
        assert oracles.selected() == "finite-differences" and oracles.tolerance_key() == "finite_differences"
        assert "finite differences" in oracles.oracle_name()
        with pytest.raises(ConfigError, match="oracle='torch'"):
            oracles.select("torch")
        assert oracles.select("auto") == ("autodiff" if oracles.have_torch() else "finite-differences")
    finally:
        oracles.select("auto")


def test_fd_oracle_agrees_with_autodiff() -> None:
    """On a conv block with max pooling, weight standardisation and a spiking record, the two
    oracles agree within the finite-difference oracle's stated error."""
    pytest.importorskip("torch")
    from tess.conformance import strategies as S
    from tess_spec import reference as ref

    cfg = TessConfig(NetworkConfig((1, 4, 4), 3, (BlockConfig("conv", 2, pool="max", weight_std=True),)),
                     traces=TraceConfig(factors=(0.3, 0.5, 0.0, 1.0)), train=TrainConfig(T=4, n_learn=3))
    case = S.make_case(cfg, 3, batch=2, input_scale=1.5, weight_scale=2.0)
    _, _, rec = ref.train_batch(cfg, case.params, case.opt_state, case.x, case.y, case.masks)
    xs = oracles.block_inputs(cfg, case.x, rec, case.masks)
    prob = oracles.BlockProblem(cfg, 0, xs[0], rec["o"][0], case.masks[0], case.y)
    assert rec["o"][0].any()
    for t in range(1, 4):
        l1, g1 = oracles._torch_lsg_grad(prob, t)
        l2, g2 = oracles._fd_lsg_grad(prob, t)
        assert abs(l1 - l2) < 1e-12 and float(np.abs(g1 - g2).max()) <= 1e-8 * max(1.0, l1)
    w1 = oracles._torch_weight_grad(prob, case.params)
    w2 = oracles._fd_weight_grad(prob, case.params)
    F = oracles.window_loss(prob)
    for k in w1:
        assert float(np.abs(w1[k] - w2[k]).max()) <= 1e-8 * max(1.0, F), k
