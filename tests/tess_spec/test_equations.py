"""Each spec equation checked against an independent computation (loops, finite
differences, closed forms)."""

from __future__ import annotations

import numpy as np
import pytest

from tess_spec import lsg, neuron, ops, optim, readout, traces, update, weight_std

rng = np.random.default_rng(0)


def num_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def test_lif_soft_and_hard_reset() -> None:
    u, o, cur = np.array([1.0, 0.4]), np.array([1.0, 0.0]), np.array([0.1, 0.2])
    np.testing.assert_allclose(neuron.lif_step(u, o, cur, leak=0.5, reset="soft", amount=0.6), [0.3, 0.4])
    np.testing.assert_allclose(neuron.lif_step(u, o, cur, leak=0.5, reset="hard", amount=0.6), [0.1, 0.4])


def test_spike_is_strict_and_psi_shapes() -> None:
    u = np.array([0.6, 0.6000001, -1.0, 1.6])
    np.testing.assert_array_equal(neuron.spike(u, 0.6), [0, 1, 0, 1])
    np.testing.assert_allclose(neuron.psi_triangle(np.array([0.6, 1.1, 1.6, -0.4]), 0.6), [0.3, 0.15, 0.0, 0.0])
    np.testing.assert_allclose(neuron.psi_fast_sigmoid(np.array([0.6, 0.61]), 0.6), [1.0, 0.25])
    assert neuron.spike(u.astype(np.float32), 0.6).dtype == np.float32


def test_reset_amount_by_profile() -> None:
    from tess_spec.config import LIFConfig

    lif = LIFConfig(theta=0.6)
    assert neuron.reset_amount(lif, "paper", "conv") == 0.6
    assert neuron.reset_amount(lif, "reference-code", "conv") == 1.0
    assert neuron.reset_amount(lif, "reference-code", "linear") == 0.6
    assert neuron.reset_amount(LIFConfig(reset_amount=0.3), "reference-code", "conv") == 0.3


def test_traces_closed_form() -> None:
    xs = rng.random((7, 3))
    q = np.zeros(3)
    for t in range(7):
        q = traces.presynaptic_trace(q, xs[t], 0.7)
        closed = sum(0.7 ** (t - s) * xs[s] for s in range(t + 1))
        np.testing.assert_allclose(q, closed)
    h = np.array([2.0])
    assert traces.noncausal_trace(h, 0.2, "paper")[0] == pytest.approx(0.4)
    assert traces.noncausal_trace(h, 0.2, "reference-code")[0] == 2.0


def test_conv2d_and_weight_corr_against_loops() -> None:
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((4, 3, 3, 3))
    out = ops.conv2d(x, w)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 4, 5, 4))
    for i in range(5):
        for j in range(4):
            ref[:, :, i, j] = np.einsum("bcuv,fcuv->bf", xp[:, :, i : i + 3, j : j + 3], w)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    delta = rng.standard_normal(out.shape)
    # the correlation is the gradient of <delta, conv2d(x, w)> w.r.t. w
    g = ops.conv2d_weight_corr(delta, x, 3)
    np.testing.assert_allclose(g, num_grad(lambda: float((delta * ops.conv2d(x, w)).sum()), w), atol=1e-6)


@pytest.mark.parametrize("pool", ["max", "avg", "global_avg"])
def test_pool_backward_is_the_vjp(pool: str) -> None:
    x = rng.standard_normal((2, 3, 5, 6))  # 5 rows: floor cropping drops one
    g = rng.standard_normal(ops.pool_forward(x, pool, 2).shape)
    vjp = ops.pool_backward(g, x, pool, 2)
    np.testing.assert_allclose(vjp, num_grad(lambda: float((g * ops.pool_forward(x, pool, 2)).sum()), x), atol=1e-6)


def test_max_pool_routes_ties_to_the_first_element() -> None:
    x = np.ones((1, 1, 2, 2))
    vjp = ops.pool_backward(np.ones((1, 1, 1, 1)), x, "max", 2)
    np.testing.assert_array_equal(vjp[0, 0], [[1, 0], [0, 0]])


@pytest.mark.parametrize("shape,k", [((2, 3, 6, 6), 2), ((2, 3, 5, 7), 3), ((2, 10), 4), ((2, 10), 10), ((1, 2, 2, 2), 4)])
def test_adaptive_avg_pool_and_vjp(shape: tuple[int, ...], k: int) -> None:
    y = rng.standard_normal(shape)
    a = ops.adaptive_avg_pool(y, k)
    if len(shape) == 4 and shape[2] % k == 0 and shape[3] % k == 0:
        s = shape[2] // k
        ref = y.reshape(shape[0], shape[1], k, s, k, s).mean(axis=(3, 5)).reshape(shape[0], -1)
        np.testing.assert_allclose(a, ref)
    g = rng.standard_normal(a.shape)
    np.testing.assert_allclose(
        ops.adaptive_avg_pool_backward(g, y.shape, k),
        num_grad(lambda: float((g * ops.adaptive_avg_pool(y, k)).sum()), y), atol=1e-6,
    )


def test_basis_definition() -> None:
    B = lsg.basis(4, 9)
    omega = np.linspace(50, 512, 4)
    assert B.shape == (4, 9) and set(np.unique(B)) <= {-1.0, 0.0, 1.0}
    assert np.all(B[:, 0] == 0)
    np.testing.assert_array_equal(B[2, 5], np.sign(np.sin(omega[2] * 5)))


def test_lsg_gradient_is_the_gradient_of_the_local_loss() -> None:
    o = (rng.random((3, 2, 4, 4)) < 0.4).astype(float) + 0.01 * rng.random((3, 2, 4, 4))
    mask = (rng.random(o.shape) > 0.3) / 0.7
    y = np.array([0, 2, 1])
    B = lsg.basis(3, 2 * 2 * 2)
    for pool in (None, "avg"):
        m, loss = lsg.learning_signal(o, y, B, k=2, mask=mask, pool=pool, pool_size=2, temperature=0.7)

        def f() -> float:
            out = lsg.block_output(o, mask, pool, 2)
            return lsg.lsg_loss_and_grad(ops.adaptive_avg_pool(out, 2), y, B, 0.7)[0]

        assert loss == pytest.approx(f())
        np.testing.assert_allclose(m, num_grad(f, o), atol=1e-7)


def test_linear_and_conv_update_terms() -> None:
    m, ps, h = rng.standard_normal((3, 4)), rng.random((3, 4)), rng.random((3, 4))
    q, x = rng.random((3, 5)), rng.random((3, 5))
    c, n = update.linear_update(m, ps, q, h, x, 0.5, 2.0)
    np.testing.assert_allclose(c, 0.5 * np.einsum("bf,bn->fn", m * ps, q))
    np.testing.assert_allclose(n, 2.0 * np.einsum("bf,bn->fn", m * h, x))
    mc, pc, hc = (rng.standard_normal((2, 3, 4, 4)) for _ in range(3))
    qc, xc = rng.random((2, 2, 4, 4)), rng.random((2, 2, 4, 4))
    c, n = update.conv_update(mc, pc, qc, hc, xc, 1.0, 0.0, 3)
    np.testing.assert_allclose(c, ops.conv2d_weight_corr(mc * pc, qc, 3))
    assert not n.any()
    np.testing.assert_allclose(update.bias_update(mc, pc), (mc * pc).sum(axis=(0, 2, 3)))


def test_weight_standardisation_and_vjp() -> None:
    w, g = rng.standard_normal((3, 2, 3, 3)), rng.random(3) + 0.5
    wh = weight_std.standardize(w, g)
    flat = wh.reshape(3, -1)
    np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-12)
    n = 18
    np.testing.assert_allclose((flat**2).sum(axis=1), g**2 * (n - 1) / n * (1 / (1 + 1e-4 / (np.var(w.reshape(3, -1), axis=1, ddof=1) * n))), rtol=1e-6)
    G = rng.standard_normal(w.shape)
    dw, dg = weight_std.standardize_vjp(w, g, G)
    np.testing.assert_allclose(dw, num_grad(lambda: float((G * weight_std.standardize(w, g)).sum()), w), atol=1e-6)
    np.testing.assert_allclose(dg, num_grad(lambda: float((G * weight_std.standardize(w, g)).sum()), g), atol=1e-6)


def test_readout_gradient() -> None:
    a, W, b = rng.random((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    y = np.array([0, 1, 2, 1])
    gw, gb = readout.readout_grad(a, readout.readout_forward(a, W, b), y)
    np.testing.assert_allclose(gw, num_grad(lambda: readout.cross_entropy(readout.readout_forward(a, W, b), y), W), atol=1e-7)
    np.testing.assert_allclose(gb, num_grad(lambda: readout.cross_entropy(readout.readout_forward(a, W, b), y), b), atol=1e-7)
    np.testing.assert_allclose(readout.readout_features(np.ones((2, 3, 4, 4))), np.ones((2, 3)))


def test_adam_and_sgd_steps() -> None:
    p, g = np.array([1.0]), np.array([0.5])
    p1, m, v = optim.adam_step(p, g, np.zeros(1), np.zeros(1), 1, lr=0.1)
    # first bias-corrected Adam step moves by lr * g / (|g| + eps) = lr
    np.testing.assert_allclose(p1, [0.9], rtol=1e-7)
    np.testing.assert_allclose((m, v), ([0.05], [0.00025]))
    p2, _, _ = optim.adam_step(p1, g, m, v, 2, lr=0.1)
    np.testing.assert_allclose(p2, [0.8], rtol=1e-6)
    s1, buf = optim.sgd_step(p, g, np.zeros(1), lr=0.1, momentum=0.9)
    s2, _ = optim.sgd_step(s1, g, buf, lr=0.1, momentum=0.9)
    np.testing.assert_allclose((s1, s2), ([0.95], [0.95 - 0.1 * 0.95]))


def test_plateau_schedule() -> None:
    s = optim.PlateauState(lr=1.0)
    s = optim.plateau_update(s, 1.0, patience=2)
    assert (s.best, s.bad_epochs, s.lr) == (1.0, 0, 1.0)
    for expected_bad in (1, 2):
        s = optim.plateau_update(s, 1.0, patience=2)
        assert s.bad_epochs == expected_bad and s.lr == 1.0
    s = optim.plateau_update(s, 1.0, patience=2, factor=0.5)
    assert s.lr == 0.5 and s.bad_epochs == 0
    assert optim.plateau_update(s, 0.5, patience=2).lr == 0.5
