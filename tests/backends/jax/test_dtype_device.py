"""float32 and float64 backends coexist in one process (in either order) without
touching JAX's global x64 flag; device selection and its errors."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import tess  # noqa: E402
from tess.errors import BackendUnavailableError, ConfigError  # noqa: E402
from tess_spec import init_opt_state, init_params, make_rng, reference  # noqa: E402
from tess_spec.config import BlockConfig, NetworkConfig, TessConfig, TrainConfig  # noqa: E402

CONFIG = TessConfig(
    network=NetworkConfig((5,), 3, (BlockConfig("linear", 8),)), train=TrainConfig(T=2, batch_size=4)
)


def _run(config: TessConfig, dtype: str) -> tuple[tess.TrainOutput, dict]:
    rng = make_rng(11)
    params = init_params(config, rng)
    x, y = rng.random((4, 5)) * 3, rng.integers(0, 3, 4)
    be = tess.get_backend("jax", dtype=dtype)
    p = {k: v.astype(dtype) for k, v in params.items()}
    out = be.train_batch(config, be.params_from_numpy(p), be.opt_state_from_numpy(init_opt_state(config, p)), x, y,
                         record=True)
    _, _, ref = reference.train_batch(config, params, init_opt_state(config, params), x, y)
    return out, ref


@pytest.mark.parametrize("order", [("float32", "float64", "float32"), ("float64", "float32", "float64")])
def test_float32_and_float64_coexist(order: tuple[str, ...]) -> None:
    # a T of its own per order: executables are cached per process, so each order traces afresh
    config = CONFIG.replace(**{"train.T": 3 if order[0] == "float32" else 4})
    flag = bool(jax.config.jax_enable_x64)
    for dtype in order:
        out, ref = _run(config, dtype)
        assert bool(jax.config.jax_enable_x64) == flag, "the backend leaked a global x64 setting"
        assert all(v.dtype == np.dtype(dtype) for v in out.params.values())
        assert out.state[0]["u"].dtype == np.dtype(dtype)
        assert out.record["u"][0].dtype == np.dtype(dtype)
        tol = 1e-12 if dtype == "float64" else 2e-5
        np.testing.assert_allclose(out.record["u"][0], ref["u"][0], rtol=0, atol=tol)
        assert out.loss == pytest.approx(ref["loss"], rel=tol)
    # ordinary JAX code of the user still follows the user's own setting
    assert jax.numpy.ones(2).dtype == (np.float64 if flag else np.float32)


def test_float64_params_survive_outside_the_scope() -> None:
    be = tess.get_backend("jax", dtype="float64")
    a = be.asarray(np.array([1 / 3]))
    assert a.dtype == np.float64
    assert be.to_numpy(a)[0] == 1 / 3


def test_cpu_device_and_info() -> None:
    be = tess.get_backend("jax", device="cpu")
    assert be.jax_device.platform == "cpu"
    assert be.info()["jax"] == jax.__version__
    with pytest.raises(ConfigError, match="device='tpu'"):
        tess.get_backend("jax", device="tpu")
    with pytest.raises(BackendUnavailableError, match="cpu:5"):
        tess.get_backend("jax", device="cpu:5")


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU; the missing-GPU error cannot be provoked")
@pytest.mark.parametrize("device", ["cuda", "gpu"])
def test_gpu_request_without_gpu_is_a_clear_error(device: str) -> None:
    with pytest.raises(BackendUnavailableError, match="no GPU.*device='cpu'"):
        tess.get_backend("jax", device=device)


@pytest.mark.skipif(not _has_gpu(), reason="no GPU visible to JAX (jax.devices('gpu') is empty)")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpu_matches_reference(dtype: str) -> None:
    rng = make_rng(11)
    params = init_params(CONFIG, rng)
    x, y = rng.random((4, 5)) * 3, rng.integers(0, 3, 4)
    be = tess.get_backend("jax", device="cuda", dtype=dtype)
    assert be.jax_device.platform == "gpu"
    p = {k: v.astype(dtype) for k, v in params.items()}
    out = be.train_batch(CONFIG, be.params_from_numpy(p), be.opt_state_from_numpy(init_opt_state(CONFIG, p)), x, y,
                         record=True)
    assert next(iter(out.params.values())).devices() == {be.jax_device}
    _, _, ref = reference.train_batch(CONFIG, params, init_opt_state(CONFIG, params), x, y)
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(out.record["u"][0], ref["u"][0], rtol=0, atol=tol)
