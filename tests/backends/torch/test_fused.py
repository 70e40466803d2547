"""The torch backend's fused step (``fuse="eager" | "cpp" | "compile"``) against its unfused
composition (the engine's default kernels, ``fuse="none"``), piece by piece and for a whole
batch; the option's resolution and its fallback without a compiler.

The fused pieces compute the engine's expressions operation for operation (the C++ kernels
are compiled without contracted multiply-adds), so in float64 they agree bit for bit with
the unfused step; the max-pool VJP routes every window's gradient to its first maximum,
as torch's argmax indices do.  ``torch.compile`` itself takes about a minute to warm up on
a CPU, so it is exercised on its functional forms (what it compiles) here and end to end by
the conformance runner (``--backend tess.backends.torch:CompiledTorchBackend``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tess  # noqa: E402
from tess.backends.torch import fused, native  # noqa: E402
from tess.backends.torch.backend import resolve_fuse  # noqa: E402
from tess.backends.torch.kernels import FusedTorchKernels, TorchKernels  # noqa: E402
from tess.engine import BlockState  # noqa: E402
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
)
from tess_spec.plan import network_plan  # noqa: E402

CL = torch.channels_last


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _native_ops() -> fused.NativeOps:
    try:
        return fused.NativeOps()
    except BackendUnavailableError as exc:
        pytest.skip(f"the native kernels cannot be built here: {exc}")


def _ops(name: str) -> object:
    return _native_ops() if name == "cpp" else fused.EagerOps()


def _unfused_step(c: fused.StepConsts, u, o, cur, h, q, x, mask):
    """The engine's default composition (TorchKernels inherits it), on copies."""
    K = TorchKernels("float64" if u.dtype == torch.float64 else "float32")
    un = K.lif(u, o, cur, c.leak, "soft" if c.soft else "hard", c.amount)
    on = K.spike(un, c.theta, c.psi)
    dropped = on if mask is None else on * mask
    if not c.traces:
        return un, on, None, None, None, None, dropped
    psi = K.psi(c.psi, un, c.theta)
    hn = K.postsynaptic_trace(h, psi, c.lambda_post)
    ht = K.noncausal_trace(h, hn, c.lambda_post, "paper" if c.paper else "reference-code") if c.noncausal else None
    return un, on, hn, K.presynaptic_trace(q, x, c.lambda_pre), psi, ht, dropped


def _arrays(shape, fmt, dtype, seed):
    g = torch.Generator().manual_seed(seed)

    def r(scale=1.0):
        t = torch.rand(shape, generator=g, dtype=dtype) * scale
        return t.contiguous(memory_format=fmt) if len(shape) == 4 else t

    u, cur, h = r(2.0) - 0.5, r(1.2), r()
    o = (r() > 0.6).to(dtype)
    mask = (r() > 0.3).to(dtype) / 0.7
    flat = u.as_strided((u.numel(),), (1,))  # the storage, whatever the layout
    flat[:3] = torch.tensor([0.6, 0.6 + 1e-9, 0.6 - 1e-9], dtype=dtype)  # at and around θ
    return u, o, cur, h, mask


@pytest.mark.parametrize("ops_name", ["eager", "cpp"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape,fmt", [((3, 5, 4, 6), torch.contiguous_format), ((3, 5, 4, 6), CL), ((4, 17), None)],
                         ids=["nchw", "channels_last", "flat"])
def test_neuron_step_equals_the_unfused_composition(ops_name, dtype, shape, fmt) -> None:
    ops = _ops(ops_name)
    for i, (soft, psi, traces, noncausal, paper, with_mask) in enumerate(
            itertools.product([True, False], ["triangle", "fast_sigmoid"], [True, False], [True, False],
                              [True, False], [True, False])):
        if not traces and (noncausal or paper):
            continue
        c = fused.StepConsts(0.5, 0.6, 0.6, 0.3, 0.7, soft, psi, traces, noncausal, paper)
        u, o, cur, h, mask = _arrays(shape, fmt or torch.contiguous_format, dtype, i)
        x = torch.rand(shape, dtype=dtype)
        q = torch.rand(shape, dtype=dtype)
        m = mask if with_mask else None
        want = _unfused_step(c, u.clone(), o.clone(), cur, h.clone(), q.clone(), x, m)
        got = ops.neuron_step(c, u.clone(), o.clone(), cur, h.clone(), q.clone(), x, m)
        for name, a, b in zip(("u", "o", "h", "q", "psi", "h_tilde", "dropped"), want, got):
            assert (a is None) == (b is None), name
            if a is not None:
                assert b.shape == a.shape and b.dtype == a.dtype, name
                assert torch.equal(a, b), f"{name} differs (soft={soft}, psi={psi}, paper={paper}, mask={with_mask})"


def test_native_step_updates_the_state_in_place_and_keeps_the_current_layout() -> None:
    ops = _native_ops()
    c = fused.StepConsts(0.5, 0.6, 0.6, 0.2, 0.5, True, "triangle", True, True, True)
    cur = torch.rand(2, 3, 4, 4).contiguous(memory_format=CL)
    u, o, h = (torch.zeros(2, 3, 4, 4).contiguous(memory_format=CL) for _ in range(3))
    q, x = torch.zeros(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    un, on, hn, qn, psi, ht, dropped = ops.neuron_step(c, u, o, cur, h, q, x, None)
    assert un is u and on is o and hn is h and qn is q and dropped is o
    assert psi.stride() == cur.stride() and ht.stride() == cur.stride()
    nchw = torch.zeros(2, 3, 4, 4)  # a state in another layout takes the current's (once)
    un2 = ops.neuron_step(c, nchw, nchw.clone(), cur, nchw.clone(), q, x, None)[0]
    assert un2.stride() == cur.stride() and torch.equal(un2, cur)


def test_native_trace_reads_a_strided_frame() -> None:
    """Block 0's input is a frame of the time-major view of (B, T, C, H, W): rows apart by T·C·H·W."""
    ops = _native_ops()
    seq = torch.rand(3, 5, 2, 4, 4, dtype=torch.float64)
    x_t = seq.permute(1, 0, 2, 3, 4)[2]
    assert not x_t.is_contiguous()
    q = torch.rand(3, 2, 4, 4, dtype=torch.float64)
    want = 0.5 * q + x_t
    assert torch.equal(ops._trace(q.clone(), x_t, 0.5), want)
    q_cl = q.contiguous(memory_format=CL)  # another layout: the arithmetic is the same
    assert torch.equal(ops._trace(q_cl, x_t, 0.5), want)


@pytest.mark.parametrize("ops_name", ["eager", "cpp"])
def test_modulate_equals_the_unfused_products(ops_name) -> None:
    ops = _ops(ops_name)
    for fmt, with_mask, with_ht in itertools.product([torch.contiguous_format, CL], [True, False], [True, False]):
        g, psi, ht, mask = (torch.randn(2, 3, 5, 4, dtype=torch.float64).contiguous(memory_format=fmt) for _ in range(4))
        want = TorchKernels("float64").modulate(g, mask if with_mask else None, psi, ht if with_ht else None)
        got = ops.modulate(g, mask if with_mask else None, psi, ht if with_ht else None)
        for a, b in zip(want, got):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.equal(a, b)
    g_nchw, psi_cl = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4).contiguous(memory_format=CL)
    assert torch.equal(ops.modulate(g_nchw, None, psi_cl, None)[1], g_nchw * psi_cl)  # mixed layouts


def _pool_cases():
    g = torch.Generator().manual_seed(3)
    for (h, w), p, fmt in itertools.product([(4, 6), (5, 7), (6, 6)], [2, 3], [torch.contiguous_format, CL]):
        spikes = (torch.rand(2, 3, h, w, generator=g) > 0.7).double()  # binary: ties in every window
        spikes[0, 0] = 0  # all-zero windows: the first element wins
        scaled = spikes * torch.where(torch.rand(2, 3, h, w, generator=g) > 0.5, 1.0, 1 / 0.7)  # dropout-scaled
        for x in (spikes, scaled, torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)):
            yield x.contiguous(memory_format=fmt), p


@pytest.mark.parametrize("impl", ["eager", "cpp", "functional"])
def test_max_pool_and_its_first_max_vjp_equal_torch_argmax_routing(impl) -> None:
    ref = TorchKernels("float64")
    ops = None if impl == "functional" else _ops(impl)
    for x, p in _pool_cases():
        bp = _pool_plan(x.shape, p)
        want_out, idx = ref.pool(bp, x)
        g = torch.randn(want_out.shape, dtype=torch.float64)
        want = ref.pool_vjp(bp, g, x, idx)
        if impl == "functional":
            out, got = torch.nn.functional.max_pool2d(x, p, p), fused.max_pool_vjp_functional(g, x, p)
        else:
            out, aux = ops.max_pool(x, p)
            got = ops.max_pool_vjp(g, x, p, aux)
            if impl == "cpp":
                assert aux is None and out.stride() == torch.empty_like(out, memory_format=_fmt(x)).stride()
                assert got.stride() == x.stride()
                g_t = g.transpose(2, 3).contiguous().transpose(2, 3)  # a strided gradient reads the same
                assert torch.equal(ops.max_pool_vjp(g_t, x, p, None), want)
        assert torch.equal(out, want_out), (tuple(x.shape), p)
        assert torch.equal(got, want), (tuple(x.shape), p)


def _fmt(x):
    return CL if (not x.is_contiguous() and x.is_contiguous(memory_format=CL)) else torch.contiguous_format


def _pool_plan(shape, p):
    blocks = (BlockConfig("conv", shape[1], pool="max", pool_size=p),)
    cfg = TessConfig(network=NetworkConfig((1, shape[2], shape[3]), 2, blocks), train=TrainConfig(T=1, batch_size=2))
    return network_plan(cfg).blocks[0]


def test_lsg_grad_on_a_channels_last_output_equals_the_nchw_one() -> None:
    K, ref = FusedTorchKernels("float64", fuse="eager"), TorchKernels("float64")
    bp = _pool_plan((2, 3, 4, 4), 2)
    gen = torch.Generator().manual_seed(0)
    out = (torch.rand(5, 3, 4, 4, dtype=torch.float64, generator=gen) > 0.5).double()
    M = torch.randn(4, 3 * 16, dtype=torch.float64, generator=gen)
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 1]), 4).double()
    want = ref.lsg_grad(bp, M, out, onehot, None, 5, 1.0, True)
    got = K.lsg_grad(bp, M, out.contiguous(memory_format=CL), onehot, None, 5, 1.0, True)
    # The channels-last basis sums the same products in another order: a few ulps, not bits.
    torch.testing.assert_close(got[0], want[0], rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(got[1], want[1], rtol=1e-14, atol=1e-15)
    assert got[0].is_contiguous(memory_format=CL)


def _net(profile: str, reset: str) -> TessConfig:
    blocks = (
        BlockConfig("conv", 6, pool="max", weight_std=True, bias=True, dropout=0.25),
        BlockConfig("conv", 8, pool="avg"),
        BlockConfig("conv", 8, pool="max", weight_std=True),
        BlockConfig("conv", 8, pool="global_avg"),
        BlockConfig("linear", 12, psi="fast_sigmoid", dropout=0.2, bias=True),
    )
    return TessConfig(
        network=NetworkConfig((2, 11, 11), 5, blocks), lif=LIFConfig(reset=reset),
        traces=TraceConfig(factors=(0.3, 0.6, 0.7, 1.0)), lsg=LSGConfig(pool_sizes=(2, 2, 1, 1, 4)),
        train=TrainConfig(T=5, n_learn=4, batch_size=4, dtype="float64"), profile=profile)


@pytest.mark.parametrize("fuse", ["eager", "cpp"])
@pytest.mark.parametrize("profile,reset", [("paper", "soft"), ("reference-code", "hard")])
def test_a_fused_batch_equals_the_unfused_one(fuse, profile, reset) -> None:
    if fuse == "cpp":
        _native_ops()
    config = _net(profile, reset)
    rng = make_rng(5)
    params = init_params(config, rng)
    opt = init_opt_state(config, params)
    x = (rng.random((4, config.train.T, 2, 11, 11)) > 0.6) * 1.5
    y = rng.integers(0, 5, 4)
    masks = draw_dropout_masks(config, 4, rng)
    outs = []
    for f in ("none", fuse):
        be = tess.get_backend("torch", dtype="float64", fuse=f)
        outs.append(be.train_batch(config, be.params_from_numpy(params), be.opt_state_from_numpy(opt), x, y,
                                   masks=masks, record=True))
    ref, got = outs
    for key in ("u", "o", "psi", "q", "h", "m"):
        for a, b in zip(ref.record[key], got.record[key]):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-12, err_msg=key)
    for k in ref.record["grads"]:
        np.testing.assert_allclose(got.record["grads"][k], ref.record["grads"][k], rtol=1e-12, atol=1e-13, err_msg=k)
    for k in ref.params:
        np.testing.assert_allclose(got.params[k].numpy(), ref.params[k].numpy(), rtol=0, atol=1e-10, err_msg=k)
    assert got.loss == pytest.approx(ref.loss, abs=1e-12) and got.n_correct == ref.n_correct
    assert all(np.any(o) for o in ref.record["o"])  # not vacuous: every block spiked


def test_prediction_is_the_same_fused_or_not() -> None:
    config = _net("paper", "soft")
    params = init_params(config, make_rng(1))
    x = (make_rng(2).random((3, config.train.T, 2, 11, 11)) > 0.6) * 1.0
    logits = []
    for f in ("none", "eager", "cpp" if native.available() else "eager"):
        be = tess.get_backend("torch", dtype="float64", fuse=f)
        logits.append(be.to_numpy(be.predict(config, be.params_from_numpy(params), x)))
    for other in logits[1:]:
        np.testing.assert_allclose(other, logits[0], rtol=0, atol=1e-12)


def test_the_functional_step_is_the_unfused_composition() -> None:
    """What torch.compile compiles (fuse="compile") computes what the engine does."""
    for soft, psi, paper in itertools.product([True, False], ["triangle", "fast_sigmoid"], [True, False]):
        c = fused.StepConsts(0.5, 0.6, 0.6, 0.3, 0.7, soft, psi, True, True, paper)
        u, o, cur, h, mask = _arrays((2, 3, 4, 4), CL, torch.float64, 1)
        q, x = torch.rand(2, 3, 4, 4, dtype=torch.float64), torch.rand(2, 3, 4, 4, dtype=torch.float64)
        for a, b in zip(_unfused_step(c, u, o, cur, h, q, x, mask), fused.step_functional(c, u, o, cur, h, q, x, mask)):
            assert torch.equal(a, b)


def test_fuse_is_resolved_and_validated() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_fuse("auto", cuda) == "eager"
    assert resolve_fuse("auto", cpu) == ("cpp" if native.available() else "eager")
    assert resolve_fuse("none", cpu) == "none" and resolve_fuse("compile", cuda) == "compile"
    with pytest.raises(BackendUnavailableError, match="CPU tensors"):
        resolve_fuse("cpp", cuda)
    with pytest.raises(ConfigError, match="fuse='fast'"):
        tess.get_backend("torch", fuse="fast")
    with pytest.raises(ConfigError, match="channels_last"):
        tess.get_backend("torch", channels_last="yes")
    be = tess.get_backend("torch", fuse="none")
    assert type(be.kernels) is TorchKernels and be.info()["fuse"] == "none" and be.compile_seconds is None
    bptt = tess.get_backend("torch", method="bptt")
    assert not isinstance(bptt.kernels, FusedTorchKernels) and bptt.info()["fuse"] == "none (bptt)"
    named = tess.get_backend("tess.backends.torch:EagerTorchBackend")
    assert named.fuse == "eager" and named.kernels.channels_last  # channels-last on the CPU by default


def test_without_a_compiler_auto_falls_back_and_cpp_says_why(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_ERROR", None)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("TESS_CACHE_DIR", str(tmp_path / "cache"))
    assert native.compiler() is None and not native.available()
    assert resolve_fuse("auto", torch.device("cpu")) == "eager"
    with pytest.raises(BackendUnavailableError, match="no C\\+\\+ compiler.*fuse='eager'"):
        tess.get_backend("torch", fuse="cpp")


def test_a_failed_build_is_reported(monkeypatch, tmp_path) -> None:
    fake = tmp_path / "cxx"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo fake 1.0 && exit 0\necho 'fake: error' >&2; exit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_ERROR", None)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("TESS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BackendUnavailableError, match="exited with 3.*fake: error"):
        native.load()
    assert not list((tmp_path / "cache").rglob("*.so"))  # nothing half-written is left to load


def test_the_library_is_built_once_and_cached(monkeypatch, tmp_path) -> None:
    if native.compiler() is None:
        pytest.skip("no C++ compiler here")
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_ERROR", None)
    monkeypatch.setenv("TESS_CACHE_DIR", str(tmp_path))
    lib = native.load()
    assert lib.path.is_file() and lib.path.is_relative_to(tmp_path)
    assert native.load() is lib
    monkeypatch.setattr(native, "_LIB", None)
    assert native.load().path == lib.path  # a new process finds the cached build by its hash


def test_compiled_ops_compile_once_per_structure_and_rank(monkeypatch) -> None:
    """The bookkeeping of CompiledOps, with torch.compile replaced by the identity (the real
    compiler takes about a minute to warm up on a CPU: the conformance runner exercises it)."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    ops = fused.CompiledOps()
    c = fused.StepConsts(0.5, 0.6, 0.6, 0.2, 0.5, True, "triangle", True, False, True)
    t = torch.rand(2, 3, 4, 4)
    ops.neuron_step(c, t, t, t, t, t, t, None)
    n = len(ops._seen)
    ops.neuron_step(c, *(torch.rand(2, 3, 2, 2) for _ in range(6)), None)  # another shape: dynamic, no new graph
    ops.neuron_step(fused.StepConsts(0.7, 1.1, 1.0, 0.3, 0.4, True, "triangle", True, False, True),
                    t, t, t, t, t, t, None)  # other constants: graph inputs, no new graph
    assert len(ops._seen) == n and ops.compile_seconds >= 0 and len(ops._fns) == 1
    ops.neuron_step(c, *(torch.rand(5, 7) for _ in range(6)), None)  # another rank: a new signature
    assert len(ops._seen) == n + 1
    g, x = torch.rand(2, 3, 2, 2), (torch.rand(2, 3, 4, 4) > 0.5).float()
    assert torch.equal(ops.max_pool_vjp(g, x, 2, None), fused.max_pool_vjp_functional(g, x, 2))


def test_a_failed_compile_runs_the_same_function_eagerly(monkeypatch, caplog) -> None:
    def broken(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("inductor: no compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    ops = fused.CompiledOps()
    c = fused.StepConsts(0.5, 0.6, 0.6, 0.2, 0.5, False, "fast_sigmoid", True, True, False)
    u, o, cur, h, mask = _arrays((2, 3, 4, 4), torch.contiguous_format, torch.float64, 4)
    q, x = torch.rand(2, 3, 4, 4, dtype=torch.float64), torch.rand(2, 3, 4, 4, dtype=torch.float64)
    with caplog.at_level("WARNING"):
        got = ops.neuron_step(c, u, o, cur, h, q, x, mask)
    assert "running it eagerly" in caplog.text and any("no compiler" in v for v in ops.failed.values())
    for a, b in zip(fused.step_functional(c, u, o, cur, h, q, x, mask), got):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(fused.step_functional(c, u, o, cur, h, q, x, mask),
                                                 ops.neuron_step(c, u, o, cur, h, q, x, mask)))


def test_block_state_fields_survive_the_fused_step() -> None:
    """The engine reads the new state from the BlockStep: the fused kernels return every field."""
    config = _net("paper", "soft")
    plan = network_plan(config)
    K = FusedTorchKernels("float64", fuse="eager")
    bp = plan.blocks[0]
    shape = (2, *bp.neurons)
    s = BlockState(torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64),
                   torch.zeros((2, *bp.input), dtype=torch.float64), torch.zeros(shape, dtype=torch.float64))
    st = K.neuron_step(plan, bp, s, torch.rand(shape, dtype=torch.float64), torch.rand((2, *bp.input),
                       dtype=torch.float64), None, noncausal=True)
    assert all(v is not None for v in (st.u, st.o, st.q, st.h, st.psi, st.h_tilde, st.dropped))
