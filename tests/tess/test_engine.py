"""The engine's seams: one step at a time with caller-carried state equals a mini-batch,
``reduce`` is called once between the sums and the optimiser, the learning signal is a
replaceable function, and every backend's kernels agree on the protocol's operators."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import tess
from tess.engine import (
    SIGNALS,
    adam_corrections,
    gradients,
    init_state,
    lsg_signals,
    params_from_flat,
    params_to_flat,
    prepare,
    time_step,
    totals,
    zero_sums,
)
from tess_spec import draw_dropout_masks, init_opt_state, init_params, make_rng, reference
from tess_spec.config import BlockConfig, LSGConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig
from tess_spec.plan import network_plan

CONV = TessConfig(
    network=NetworkConfig((2, 6, 6), 4, (
        BlockConfig("conv", 5, pool="max", weight_std=True, bias=True, dropout=0.3),
        BlockConfig("conv", 6, pool="avg"),
        BlockConfig("linear", 7, bias=True, psi="fast_sigmoid"),
    )),
    traces=TraceConfig(factors=(0.3, 0.6, 0.7, 1.0)), lsg=LSGConfig(pool_sizes=(2, 1, 7)),
    train=TrainConfig(T=5, n_learn=3, dtype="float64"),
)


def _batch(config: TessConfig, seed: int = 0, n: int = 3):
    rng = make_rng(seed)
    params = init_params(config, rng)
    x = (rng.random((n, config.train.T, *config.network.input_shape)) < 0.4) * 1.5
    y = rng.integers(0, config.network.n_classes, n)
    return params, x, y, draw_dropout_masks(config, n, rng)


def test_one_step_at_a_time_equals_train_batch() -> None:
    """A caller that carries state and sums itself, decides the window and applies the
    optimiser at the end gets exactly the mini-batch's result (the streaming seam)."""
    params, x, y, masks = _batch(CONV)
    be = tess.get_backend("numpy", dtype="float64")
    K, plan = be.kernels, be.plan(CONV)
    opt = init_opt_state(CONV, params)
    want = be.train_batch(CONV, params, opt, x, y, masks=masks)

    p = params_from_flat(plan, params)
    ctx, _ = prepare(K, plan, p, x[:, 0], y=y, masks=masks, lsg=be.lsg(CONV))
    ctx = ctx._replace(static_x=None, static=None)  # frames are fed one by one below
    carry = (init_state(K, plan, 3), zero_sums(K, plan), K.zeros((3, 4)))
    for t in range(CONV.train.T):
        carry, _ = time_step(K, plan, ctx, carry, x[:, t], learn=t >= plan.window_start)
    state, sums, summed = carry
    grads = gradients(K, plan, p, sums)
    new, _ = K.optimizer_step(CONV.optimizer, p, be.moments(plan, opt), grads, CONV.optimizer.lr,
                              adam_corrections(CONV.optimizer, 1))
    for k, v in params_to_flat(plan, new).items():
        np.testing.assert_array_equal(v, want.params[k], err_msg=k)
    assert float(totals(K, ctx, summed, y).loss_sum) / 3 == pytest.approx(want.loss, rel=1e-15)
    np.testing.assert_array_equal(state[0].u, want.state[0]["u"])


def test_reduce_is_called_once_between_the_sums_and_the_optimiser() -> None:
    params, x, y, masks = _batch(CONV)
    calls = []

    class Counting(type(tess.get_backend("numpy"))):  # type: ignore[misc]
        def reduce(self, grads, tot):
            calls.append((grads, tot))
            return grads, tot

    be = Counting(dtype="float64")
    out = be.train_batch(CONV, params, init_opt_state(CONV, params), x, y, masks=masks, record=True)
    assert len(calls) == 1
    grads, tot = calls[0]
    np.testing.assert_array_equal(params_to_flat(be.plan(CONV), grads)["blocks.0.weight"],
                                  out.record["grads"]["blocks.0.weight"])
    assert float(tot.loss_sum) / 3 == pytest.approx(out.loss) and int(tot.n_correct) == out.n_correct


def test_the_learning_signal_is_a_replaceable_function() -> None:
    """SIGNALS names the paper's LSG; a signal of zeros leaves every block's update zero
    (the readout still learns from its own loss)."""
    assert SIGNALS["lsg"] is lsg_signals
    from tess.engine import train_batch

    params, x, y, masks = _batch(CONV)
    be = tess.get_backend("numpy", dtype="float64")
    K, plan = be.kernels, be.plan(CONV)

    def silent(K, plan, ctx, steps, logits, *, want_loss):  # noqa: ANN001, ANN202
        return tuple(K.zeros(st.dropped.shape) for st in steps), None

    run = partial(train_batch, K, plan, params_from_flat(plan, params), be.moments(plan, init_opt_state(CONV, params)),
                  x, y, masks, lr=1e-3, corrections=adam_corrections(CONV.optimizer, 1), lsg=be.lsg(CONV))
    res = run(signal=silent)
    assert all(not np.any(bs.causal) and not np.any(bs.noncausal) for bs in res.sums.blocks)
    assert np.any(res.sums.readout.weight)
    assert any(np.any(bs.causal) for bs in run().sums.blocks)


def _kernels():
    out = [("numpy", tess.get_backend("numpy", dtype="float64").kernels),
           ("example", tess.get_backend("example", dtype="float64").kernels),
           ("cupy-twin", tess.get_backend("tess.backends.cupy.twin:Backend", dtype="float64").kernels)]
    for name in ("torch", "jax"):
        try:
            out.append((name, tess.get_backend(name, dtype="float64")))
        except tess.errors.BackendUnavailableError:
            continue
    return out


@pytest.mark.parametrize("name,kernels", _kernels(), ids=lambda v: v if isinstance(v, str) else "")
def test_current_and_its_input_vjp_are_adjoint(name, kernels) -> None:
    """⟨I(x), g⟩ = ⟨x, current_vjp(g)⟩ for conv and linear blocks, on every backend's kernels,
    and the current and weight correlation equal the spec's."""
    from tess_spec.ops import conv2d, conv2d_weight_corr

    be = kernels if isinstance(kernels, tess.Backend) else None
    K = be.kernels if be is not None else kernels
    conv, lin = network_plan(CONV).blocks[0], network_plan(CONV).blocks[2]
    rng = np.random.default_rng(1)
    run = be._x64 if name == "jax" else (lambda: __import__("contextlib").nullcontext())  # type: ignore[union-attr]
    with run():
        for bp in (conv, lin):
            xs, gs = (3, *bp.input), (3, *bp.neurons)
            x, g, w = rng.normal(size=xs), rng.normal(size=gs), rng.normal(size=bp.weight)
            to = (lambda a: be.asarray(a)) if be is not None else (lambda a: a)
            xk, gk, wk = K.to_layout(to(x)), K.to_layout(to(g)), to(w)
            cur = K.from_layout(K.current(bp, K.operand(bp, xk), wk, None))
            back = K.from_layout(K.current_vjp(bp, gk, wk))
            corr = K.weight_corr(bp, gk, K.operand(bp, xk))
            cur, back, corr = K.to_numpy(cur), K.to_numpy(back), K.to_numpy(corr)
            assert np.sum(cur * g) == pytest.approx(np.sum(x * back), rel=1e-12)
            if bp.kind == "conv":
                np.testing.assert_allclose(cur, conv2d(x, w), rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(corr, conv2d_weight_corr(g, x, 3), rtol=1e-12, atol=1e-12)
            else:
                np.testing.assert_allclose(corr, g.T @ x, rtol=1e-12, atol=1e-12)


def test_engine_record_equals_the_oracle_with_a_direct_input() -> None:
    """The static-input path (block 0's current computed once) records what the oracle does."""
    params, x, y, masks = _batch(CONV)
    be = tess.get_backend("numpy", dtype="float64")
    out = be.train_batch(CONV, params, init_opt_state(CONV, params), x[:, 0], y, masks=masks, record=True)
    _, _, ref = reference.train_batch(CONV, params, init_opt_state(CONV, params), x[:, 0], y, masks)
    for i in range(3):
        np.testing.assert_allclose(out.record["u"][i], ref["u"][i], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out.record["m"][i], ref["m"][i], rtol=1e-12, atol=1e-14)
