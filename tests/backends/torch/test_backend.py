"""The torch backend against the spec's oracle (tess_spec.reference.train_batch).

float64: spikes equal exactly, continuous values to ~1e-12; float32: a loose
agreement check on a short run.  The CUDA checks skip with a reason here.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tess  # noqa: E402
from tess.errors import BackendUnavailableError, ConfigError  # noqa: E402
from tess_spec import (  # noqa: E402
    BlockConfig,
    LIFConfig,
    LSGConfig,
    NetworkConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
    draw_dropout_masks,
    init_opt_state,
    init_params,
    make_rng,
    reference,
)

CONT_ATOL = 1e-12
# Adam divides by sqrt(v) + eps: where a gradient is tiny its update amplifies a rounding
# difference of the gradient by up to lr / eps = 1e5, so updated parameters get 1e-10.
PARAM_ATOL = 1e-10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def conv_net(profile: str, reset: str) -> TessConfig:
    """conv (bias, WS, dropout, max pool) → conv (avg pool) → conv (WS, max pool; every
    pooling crops an odd map) → linear (fast-sigmoid ψ, dropout) → readout; both trace terms on; n_learn < T."""
    blocks = (
        BlockConfig("conv", 6, pool="max", weight_std=True, bias=True, dropout=0.25),
        BlockConfig("conv", 8, pool="avg"),
        BlockConfig("conv", 8, pool="max", weight_std=True),
        BlockConfig("linear", 12, psi="fast_sigmoid", dropout=0.2, bias=True),
    )
    return TessConfig(
        network=NetworkConfig((2, 11, 11), 5, blocks),
        lif=LIFConfig(reset=reset),
        traces=TraceConfig(factors=(0.3, 0.6, 0.7, 1.0)),
        lsg=LSGConfig(pool_sizes=(2, 2, 1, 4)),
        train=TrainConfig(T=6, n_learn=4, batch_size=4, dtype="float64"),
        profile=profile,
    )


def mlp_net(profile: str, reset: str) -> TessConfig:
    """linear (WS) → linear (dropout, bias) → readout, direct input."""
    blocks = (BlockConfig("linear", 20, weight_std=True), BlockConfig("linear", 16, dropout=0.3, bias=True))
    return TessConfig(
        network=NetworkConfig((12,), 4, blocks),
        lif=LIFConfig(reset=reset),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        train=TrainConfig(T=5, batch_size=6, dtype="float64"),
        profile=profile,
    )


def _inputs(config: TessConfig, rng: np.random.Generator, sequence: bool) -> tuple[np.ndarray, np.ndarray]:
    n = config.train.batch_size
    shape = (n, config.train.T, *config.network.input_shape) if sequence else (n, *config.network.input_shape)
    x = rng.random(shape) * 2.0
    if sequence:
        x = (x > 1.2).astype(np.float64) * 1.5  # event-like frames
    return x, rng.integers(0, config.network.n_classes, n)


def _compare_records(ref: dict, got: dict) -> None:
    assert set(got) == set(ref)
    for key in ("u", "psi", "q", "h", "m"):
        assert len(got[key]) == len(ref[key])
        for i, (a, b) in enumerate(zip(ref[key], got[key])):
            assert b.shape == a.shape and b.dtype == a.dtype, (key, i)
            np.testing.assert_allclose(b, a, rtol=0, atol=CONT_ATOL, err_msg=f"{key}[{i}]")
    for i, (a, b) in enumerate(zip(ref["o"], got["o"])):
        np.testing.assert_array_equal(b, a, err_msg=f"spikes of block {i}")
    np.testing.assert_allclose(got["logits"], ref["logits"], rtol=0, atol=CONT_ATOL)
    np.testing.assert_allclose(got["lsg_loss"], ref["lsg_loss"], rtol=0, atol=CONT_ATOL)
    for key in ("dw_causal", "dw_noncausal"):
        for a, b in zip(ref[key], got[key]):
            np.testing.assert_allclose(b, a, rtol=0, atol=CONT_ATOL, err_msg=key)
    assert list(got["grads"]) == list(ref["grads"])
    for k in ref["grads"]:
        np.testing.assert_allclose(got["grads"][k], ref["grads"][k], rtol=0, atol=CONT_ATOL, err_msg=k)
    assert got["loss"] == pytest.approx(ref["loss"], abs=CONT_ATOL)
    assert got["n_correct"] == ref["n_correct"]
    for a, b in zip(ref["state"], got["state"]):
        for k in ("u", "q", "h"):
            np.testing.assert_allclose(b[k], a[k], rtol=0, atol=CONT_ATOL)
        np.testing.assert_array_equal(b["o"], a["o"])


def _fuse_backend(fuse: str, **options):
    """The torch backend with ``fuse`` (``"cpp"`` skips with the reason where no compiler builds it)."""
    try:
        return tess.get_backend("torch", fuse=fuse, **options)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("fuse", ["none", "eager", "cpp"])
@pytest.mark.parametrize("profile", ["paper", "reference-code"])
@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("net,sequence", [("conv", True), ("conv", False), ("mlp", False)])
def test_float64_record_equals_reference(profile: str, reset: str, net: str, sequence: bool, fuse: str) -> None:
    config = (conv_net if net == "conv" else mlp_net)(profile, reset)
    rng = make_rng(7)
    params = init_params(config, rng)
    opt = init_opt_state(config, params)
    backend = _fuse_backend(fuse, dtype="float64")
    for step in range(2):  # two optimiser steps: the second sees non-zero Adam moments
        x, y = _inputs(config, rng, sequence)
        masks = draw_dropout_masks(config, len(y), rng)
        # both start every step from the oracle's parameters, so differences do not compound
        p_t, o_t = backend.params_from_numpy(params), backend.opt_state_from_numpy(opt)
        params, opt, ref = reference.train_batch(config, params, opt, x, y, masks)
        out = backend.train_batch(config, p_t, o_t, x, y, masks=masks, record=True)
        _compare_records(ref, out.record)
        assert out.loss == pytest.approx(ref["loss"], abs=CONT_ATOL)
        new_opt = backend.opt_state_to_numpy(out.opt_state)
        assert new_opt["step"] == opt["step"]
        for k, v in params.items():
            np.testing.assert_allclose(backend.to_numpy(out.params[k]), v, rtol=0, atol=PARAM_ATOL, err_msg=k)
            np.testing.assert_allclose(new_opt["m"][k], opt["m"][k], rtol=0, atol=CONT_ATOL, err_msg=k)
            np.testing.assert_allclose(new_opt["v"][k], opt["v"][k], rtol=0, atol=CONT_ATOL, err_msg=k)
    # not vacuous: every block spiked, and both update terms are non-zero
    for i, o in enumerate(ref["o"]):
        assert o.sum() > 0, f"block {i} never spiked"
    assert all(np.abs(c).sum() > 0 for c in ref["dw_causal"])
    assert all(np.abs(c).sum() > 0 for c in ref["dw_noncausal"])


def test_predict_equals_reference() -> None:
    config = conv_net("paper", "soft")
    rng = make_rng(3)
    params = init_params(config, rng)
    x, _ = _inputs(config, rng, True)
    backend = tess.get_backend("torch", dtype="float64")
    got = backend.predict(config, backend.params_from_numpy(params), x)
    np.testing.assert_allclose(got, reference.predict(config, params, x), rtol=0, atol=CONT_ATOL)


@pytest.mark.parametrize("fuse", ["none", "eager", "cpp"])
def test_max_pool_routes_to_first_maximum(fuse: str) -> None:
    from tess_spec.ops import pool_backward
    from tess_spec.plan import network_plan

    cfg = TessConfig(network=NetworkConfig((4, 7, 7), 3, (BlockConfig("conv", 4, pool="max"),)))
    bp = network_plan(cfg).blocks[0]
    K = _fuse_backend(fuse, dtype="float64").kernels
    rng = np.random.default_rng(0)
    x = (rng.random((3, 4, 7, 7)) > 0.5).astype(np.float64)  # binary: ties everywhere
    g = rng.standard_normal((3, 4, 3, 3))
    xt = torch.from_numpy(x)
    out, idx = K.pool(bp, xt)
    got = K.pool_vjp(bp, torch.from_numpy(g), xt, idx).numpy()
    np.testing.assert_array_equal(got, pool_backward(g, x, "max", 2))


def test_float32_close_to_reference() -> None:
    config = conv_net("paper", "soft").replace(**{"train.dtype": "float32"})
    rng = make_rng(11)
    params = init_params(config, rng)
    opt = init_opt_state(config, params)
    x, y = _inputs(config, rng, True)
    _, _, ref = reference.train_batch(config, params, opt, x, y)
    backend = tess.get_backend("torch")
    assert backend.dtype == "float32"
    out = backend.train_batch(config, backend.params_from_numpy(params), backend.opt_state_from_numpy(
        {"step": 0, "m": {k: v.astype(np.float32) for k, v in opt["m"].items()},
         "v": {k: v.astype(np.float32) for k, v in opt["v"].items()}}), x, y, record=True)
    assert out.record["u"][0].dtype == np.float32
    # float32 rounding can flip a spike whose membrane sits within a rounding error of θ;
    # away from θ the spikes must agree.
    for a, b, u in zip(ref["o"], out.record["o"], ref["u"]):
        far = np.abs(u - config.lif.theta) > 1e-4
        np.testing.assert_array_equal(b[far], a[far])
    np.testing.assert_allclose(out.record["logits"], ref["logits"], atol=1e-3)


def test_state_is_T_independent_and_no_graph() -> None:
    config = mlp_net("paper", "soft")
    backend = tess.get_backend("torch", dtype="float64")
    rng = make_rng(1)
    params = backend.params_from_numpy(init_params(config, rng))
    opt = backend.opt_state_from_numpy(init_opt_state(config, backend.params_to_numpy(params)))
    x, y = _inputs(config, rng, False)
    shapes = None
    for T in (2, 9):
        cfg = config.replace(**{"train.T": T})
        out = backend.train_batch(cfg, params, opt, x, y)
        got = [{k: tuple(v.shape) for k, v in s.items()} for s in out.state]
        shapes = shapes or got
        assert got == shapes
        assert all(not v.requires_grad and v.grad_fn is None for v in out.params.values())


def test_inputs_and_parameters_not_modified() -> None:
    config = conv_net("paper", "soft")
    rng = make_rng(5)
    np_params = init_params(config, rng)
    backend = tess.get_backend("torch", dtype="float64")
    params = backend.params_from_numpy(np_params)
    before = {k: v.clone() for k, v in params.items()}
    x, y = _inputs(config, rng, True)
    x_copy = x.copy()
    backend.train_batch(config, params, backend.opt_state_from_numpy(init_opt_state(config, np_params)), x, y)
    np.testing.assert_array_equal(x, x_copy)
    for k in params:
        assert torch.equal(params[k], before[k]), k


def test_info_and_registry() -> None:
    b = tess.get_backend("torch")
    assert b.name == "torch" and b.device == "cpu"
    info = b.info()
    assert info["torch"] == torch.__version__ and info["dtype"] == "float32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
def test_cuda_unavailable_raises_clear_error() -> None:
    with pytest.raises(BackendUnavailableError, match="cuda.*device='cpu'"):
        tess.get_backend("torch", device="cuda")


def test_bad_device_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="mps"):
        tess.get_backend("torch", device="mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.is_available() is False: no CUDA device here")
def test_cuda_matches_cpu_float64() -> None:
    config = conv_net("paper", "soft")
    rng = make_rng(2)
    params = init_params(config, rng)
    opt = init_opt_state(config, params)
    x, y = _inputs(config, rng, True)
    _, _, ref = reference.train_batch(config, params, opt, x, y)
    b = tess.get_backend("torch", device="cuda", dtype="float64")
    out = b.train_batch(config, b.params_from_numpy(params), b.opt_state_from_numpy(opt), x, y, record=True)
    _compare_records(ref, out.record)
