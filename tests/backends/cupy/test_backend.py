"""The CuPy backend object: clear errors without CuPy or without a CUDA device (here),
and — on a machine with a CUDA device — equality with its CPU twin."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tess
from tess.backends.cupy.backend import cuda_unavailable_reason, parse_device
from tess.errors import BackendUnavailableError, ConfigError


def _cuda_available() -> bool:
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:
        return False


CUDA = _cuda_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device (cupy.cuda.is_available() is False)")


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA device; the no-device error cannot occur")
def test_get_backend_without_cuda_device_says_so():
    pytest.importorskip("cupy", reason="cupy not installed (the missing-cupy error is tested separately)")
    with pytest.raises(BackendUnavailableError, match="needs an NVIDIA CUDA device") as info:
        tess.get_backend("cupy")
    assert "cupy.cuda.is_available() is False" in str(info.value)
    assert "'numpy'" in str(info.value)  # says what to use instead


def test_cuda_unavailable_reason_on_fake_cupy():
    class _Runtime:
        @staticmethod
        def getDeviceCount():
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    class _Cuda:
        runtime = _Runtime()

        @staticmethod
        def is_available():
            return False

    class _FakeCupy:
        cuda = _Cuda()

    reason = cuda_unavailable_reason(_FakeCupy())
    assert reason is not None and "cudaErrorNoDevice" in reason

    class _Broken:
        class cuda:  # noqa: N801
            @staticmethod
            def is_available():
                raise OSError("libcuda.so: cannot open shared object file")

    assert "libcuda.so" in cuda_unavailable_reason(_Broken())


def test_missing_cupy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install 'tess\[cupy\]'"):
        tess.get_backend("cupy")


@pytest.mark.parametrize("device,idx", [("cuda", 0), ("cuda:0", 0), ("cuda:3", 3)])
def test_parse_device(device, idx):
    assert parse_device(device) == idx


@pytest.mark.parametrize("device", ["cpu", "cuda:x", "gpu:0", "cuda:-1"])
def test_bad_device_is_a_config_error(device):
    with pytest.raises(ConfigError, match="device="):
        parse_device(device)
    with pytest.raises(ConfigError, match="device="):
        tess.get_backend("cupy", device=device)


def test_cupy_is_listed():
    assert "cupy" in tess.list_backends()


# -- on a CUDA machine --------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cupy_equals_cpu_twin(dtype):
    from tess.backends.cupy.twin import CpuTwinBackend
    from tess_spec import cnn_digits, init_opt_state, init_params, make_rng

    cfg = cnn_digits(T=4).replace(**{"train.n_learn": 3})
    rng = make_rng(3)
    params = init_params(cfg, rng)
    opt = init_opt_state(cfg, params)
    x = (rng.random((4, 4, 1, 8, 8)) < 0.4) * 1.3
    y = rng.integers(0, 10, 4)
    gpu, cpu = tess.get_backend("cupy", dtype=dtype), CpuTwinBackend(dtype=dtype)
    assert gpu.info()["gpu"]
    a = gpu.train_batch(cfg, gpu.params_from_numpy(params), gpu.opt_state_from_numpy(opt), x, y, record=True)
    b = cpu.train_batch(cfg, cpu.params_from_numpy(params), cpu.opt_state_from_numpy(opt), x, y, record=True)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=2e-3, atol=1e-5)
    for i in range(len(cfg.network.blocks)):
        agree = (a.record["o"][i] == b.record["o"][i]).mean()
        assert agree == 1.0 if dtype == "float64" else agree >= 0.999
        if dtype == "float64":
            np.testing.assert_allclose(a.record["u"][i], b.record["u"][i], **tol)
    for k in params:
        np.testing.assert_allclose(gpu.to_numpy(a.params[k]), cpu.to_numpy(b.params[k]), **tol, err_msg=k)
    np.testing.assert_allclose(gpu.predict(cfg, a.params, x), cpu.predict(cfg, b.params, x), **tol)


def test_cpu_parts_never_import_cupy():
    import subprocess

    code = ("import sys; sys.modules['cupy'] = None\n"
            "import tess.backends.cupy, tess.backends.cupy.codegen, tess.backends.cupy.kernels, tess.backends.cupy.backend\n"
            "from tess.backends.cupy.twin import CpuTwinBackend\n"
            "from tess_spec import mlp_digits, init_params, init_opt_state, make_rng\n"
            "import numpy as np\n"
            "cfg = mlp_digits(T=2); p = init_params(cfg, make_rng(0)); be = CpuTwinBackend()\n"
            "out = be.train_batch(cfg, be.params_from_numpy(p), be.opt_state_from_numpy(init_opt_state(cfg, p)),"
            " np.ones((2, 64)), np.array([0, 1]))\n"
            "print('ok', np.isfinite(out.loss))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok True"
