"""The fused-kernel generator: structure of the CUDA source, NVRTC compilation (when
the NVRTC library is installed; no GPU needed), and the semantics of the expression
tables — evaluated by the NumPy twin — against tess_spec, bit for bit."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tess.backends.cupy import codegen as K
from tess_spec.errors import ConfigError, ShapeError
from tess_spec.neuron import lif_step, psi, spike
from tess_spec.traces import noncausal_trace, postsynaptic_trace, presynaptic_trace

ALL_STEP_SPECS = [
    K.StepSpec(dt, reset, ps, prof, tr, nc, do)
    for dt, reset, ps, prof, tr, nc, do in itertools.product(
        ("float32", "float64"), ("soft", "hard"), ("triangle", "fast_sigmoid"), ("paper", "reference-code"),
        (True, False), (True, False), (True, False),
    )
    if tr or not nc
]
ALL_MOD_SPECS = [K.ModulateSpec(dt, do, nc, m) for dt, do, nc, m in itertools.product(
    ("float32", "float64"), (True, False), (True, False), (True, False))]


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception as exc:  # cupy or the NVRTC library missing
        return exc


NVRTC = _nvrtc()
needs_nvrtc = pytest.mark.skipif(
    isinstance(NVRTC, Exception),
    reason=f"NVRTC not available ({NVRTC!r}); install cupy-cuda13x and nvidia-cuda-nvrtc to compile on CPU",
)


# -- structure ----------------------------------------------------------------------


def test_step_program_signature_and_roles():
    prog = K.neuron_step_program(K.StepSpec("float32", "soft", "triangle", "paper", True, True, True))
    roles = dict(prog.arrays)
    assert roles == {
        "cur": "in", "u": "inout", "o": "inout", "h": "inout", "mask": "in", "psi": "out",
        "htilde": "out", "dropped": "out", "q": "inout", "x": "in",
    }
    assert prog.params == ("leak", "theta", "amount", "lambda_post", "lambda_pre")
    assert prog.lengths == ("n_neurons", "n_inputs")
    assert prog.signature() == prog.array_names + prog.params + prog.lengths


def test_hard_reset_has_no_amount_and_prediction_kernel_has_no_traces():
    hard = K.neuron_step_program(K.StepSpec(reset="hard"))
    assert "amount" not in hard.params
    pred = K.neuron_step_program(K.StepSpec(traces=False))
    assert dict(pred.arrays) == {"cur": "in", "u": "inout", "o": "inout"}
    assert pred.params == ("leak", "theta", "amount") and pred.lengths == ("n_neurons",)


@pytest.mark.parametrize("spec", ALL_STEP_SPECS, ids=lambda s: s.tag)
def test_rendered_source_matches_program(spec):
    prog = K.neuron_step_program(spec)
    src = K.render_cuda(prog, spec.dtype)
    t = K.ctype(spec.dtype)
    other = "double" if t == "float" else "float"
    assert re.search(rf"\b{other}\b", src) is None, "dtype substitution leaked the other float type"
    m = re.search(r'extern "C" __global__ void (\w+)\((.*?)\)\s*\{', src, re.S)
    assert m and m.group(1) == prog.name
    args = [a.strip() for a in m.group(2).split(",")]
    assert [a.split()[-1] for a in args] == list(prog.signature())
    for (arr, role), decl in zip(prog.arrays, args):
        assert decl == (f"const {t}* __restrict__ {arr}" if role == "in" else f"{t}* __restrict__ {arr}")
    for p, decl in zip(prog.params, args[len(prog.arrays):]):
        assert decl == f"const {t} {p}"
    assert src.count("{") == src.count("}")
    for seg in prog.segments:
        for arr, local in seg.stores:
            assert f"{arr}[k] = {local};" in src
    if spec.dtype == "float32":  # every literal typed float
        literals = re.findall(r"(?<![\w.])(\d+\.\d*(?:e[-+]?\d+)?)(f?)", src)
        assert all(suffix == "f" for _, suffix in literals)
        assert literals or not spec.traces
    assert prog.name.startswith("tess_step_") and spec.tag in prog.name


def test_kernel_names_are_unique_per_structure():
    names = [K.neuron_step_program(s).name for s in ALL_STEP_SPECS] + [K.modulate_program(s).name for s in ALL_MOD_SPECS]
    assert len(names) == len(set(names))


def test_program_validation_rejects_bad_tables():
    seg = K.Segment("n", (("a", "x"),), (("b", K.Var("zz")),), (("y", "b"),))
    with pytest.raises(ConfigError, match="before it is defined"):
        K.Program("bad", (seg,), ())
    seg = K.Segment("n", (("a", "x"),), (("b", K.Param("p")),), (("y", "b"),))
    with pytest.raises(ConfigError, match="parameter 'p'"):
        K.Program("bad", (seg,), ())
    seg = K.Segment("n", (("x", "x"),), (), (("y", "x"),))
    with pytest.raises(ConfigError, match="clash"):
        K.Program("bad", (seg,), ())
    with pytest.raises(ConfigError, match="Bin.op"):
        K.Bin("%", K.Const(1.0), K.Const(2.0))
    with pytest.raises(ConfigError, match="fmax takes 2"):
        K.Call("fmax", (K.Const(1.0),))
    with pytest.raises(ConfigError, match="StepSpec.psi"):
        K.StepSpec(psi="relu")
    with pytest.raises(ConfigError, match="noncausal"):
        K.StepSpec(traces=False, noncausal=True)
    with pytest.raises(ConfigError, match="dtype"):
        K.ctype("float16")


def test_float32_literals_are_exact():
    # 0.3 as float32 must be spelled so the compiler rounds to np.float32(0.3) itself.
    lit = K._literal(0.3, "float32")
    assert lit.endswith("f") and np.float32(float(lit[:-1])) == np.float32(0.3)
    assert K._literal(100.0, "float64") == "100.0"
    with pytest.raises(ConfigError):
        K._literal(float("nan"), "float32")


# -- NVRTC: the generated source really compiles (no GPU needed) ---------------------


@needs_nvrtc
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_variant_compiles_with_nvrtc(dtype):
    """All variants of one dtype in one translation unit (one NVRTC call keeps this fast)."""
    progs = [K.neuron_step_program(s) for s in ALL_STEP_SPECS if s.dtype == dtype]
    progs += [K.modulate_program(s) for s in ALL_MOD_SPECS if s.dtype == dtype]
    src = "\n".join(K.render_cuda(p, dtype) for p in progs)
    handle = NVRTC.createProgram(src, f"tess_{dtype}.cu", [], [])
    try:
        # the options CuPy's RawKernel compiles with: ours, plus its own -ftz=true
        NVRTC.compileProgram(handle, ["--gpu-architecture=sm_90", *K.NVRTC_OPTIONS, "-ftz=true"])
    except Exception:  # pragma: no cover - shows the compiler log
        pytest.fail(f"generated kernels do not compile:\n{NVRTC.getProgramLog(handle)}")
    ptx = NVRTC.getPTX(handle).decode()
    bodies = dict(re.findall(r"\.entry (\w+)\((.*?)(?=\.entry |\Z)", ptx, re.S))
    assert sorted(bodies) == sorted(p.name for p in progs)
    for name, body in bodies.items():
        assert "fma." not in body, f"{name}: FMA contraction must be off (rounding must match the NumPy twin)"
        if dtype == "float32":
            assert ".f64" not in body, f"{name}: float32 kernel computes in double"
        else:
            assert ".f64" in body


# -- semantics: the NumPy twin of the table equals tess_spec --------------------------

finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["float32", "float64"]),
    reset=st.sampled_from(["soft", "hard"]),
    psi_name=st.sampled_from(["triangle", "fast_sigmoid"]),
    profile=st.sampled_from(["paper", "reference-code"]),
    dropout=st.booleans(),
    leak=st.floats(0.01, 1.0),
    theta=st.floats(0.05, 2.0),
    amount=st.floats(0.0, 2.0),
    lam_post=st.floats(0.0, 1.0),
    lam_pre=st.floats(0.0, 1.0),
    n=st.integers(1, 40),
    n_in=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
)
def test_step_table_equals_spec_bit_for_bit(dtype, reset, psi_name, profile, dropout, leak, theta, amount,
                                            lam_post, lam_pre, n, n_in, seed):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    u0 = (rng.normal(size=n) * 1.5).astype(dt)
    u0[: n // 3] = dt.type(theta)  # values at the threshold exercise the strict inequality
    o0 = (rng.random(n) < 0.5).astype(dt)
    h0 = rng.random(n).astype(dt)
    cur = rng.normal(size=n).astype(dt)
    cur[: n // 4] = 0
    q0 = rng.random(n_in).astype(dt)
    x = (rng.random(n_in) < 0.3).astype(dt) * dt.type(1.7)
    mask = ((rng.random(n) > 0.25) / 0.75).astype(dt)
    spec = K.StepSpec(dtype, reset, psi_name, profile, True, True, dropout)
    prog = K.neuron_step_program(spec)
    arrays = {"cur": cur.copy(), "u": u0.copy(), "o": o0.copy(), "h": h0.copy(), "psi": np.empty_like(u0),
              "htilde": np.empty_like(u0), "q": q0.copy(), "x": x.copy()}
    if dropout:
        arrays["mask"], arrays["dropped"] = mask, np.empty_like(u0)
    params = {"leak": leak, "theta": theta, "amount": amount, "lambda_post": lam_post, "lambda_pre": lam_pre}
    K.evaluate(prog, dtype, arrays, {p: params[p] for p in prog.params}, {"n_neurons": n, "n_inputs": n_in})

    u = lif_step(u0, o0, cur, leak=leak, reset=reset, amount=amount)
    o = spike(u, theta)
    ps = psi(psi_name, u, theta)
    for name, want in (
        ("u", u), ("o", o), ("psi", ps), ("h", postsynaptic_trace(h0, ps, lam_post)),
        ("htilde", noncausal_trace(h0, lam_post, profile)), ("q", presynaptic_trace(q0, x, lam_pre)),
    ):
        assert want.dtype == dt, name
        np.testing.assert_array_equal(arrays[name], want, err_msg=name)
    if dropout:
        np.testing.assert_array_equal(arrays["dropped"], o * mask)


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from(["float32", "float64"]), dropout=st.booleans(), nc=st.booleans(),
       keep_m=st.booleans(), n=st.integers(1, 30), seed=st.integers(0, 2**31 - 1))
def test_modulate_table_equals_products(dtype, dropout, nc, keep_m, n, seed):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    g, ps, ht = (rng.normal(size=n).astype(dt) for _ in range(3))
    mask = ((rng.random(n) > 0.5) * 2.0).astype(dt)
    spec = K.ModulateSpec(dtype, dropout, nc, keep_m)
    prog = K.modulate_program(spec)
    arrays = {"g": g, "psi": ps, "mpsi": np.empty_like(g)}
    if dropout:
        arrays["mask"] = mask
    if nc:
        arrays["htilde"], arrays["mh"] = ht, np.empty_like(g)
    if keep_m:
        arrays["m"] = np.empty_like(g)
    K.evaluate(prog, dtype, arrays, {}, {"n_neurons": n})
    m = g * mask if dropout else g
    np.testing.assert_array_equal(arrays["mpsi"], m * ps)
    if nc:
        np.testing.assert_array_equal(arrays["mh"], m * ht)
    if keep_m:
        np.testing.assert_array_equal(arrays["m"], m)


def test_prediction_kernel_leaves_traces_alone():
    prog = K.neuron_step_program(K.StepSpec("float64", traces=False))
    u, o, cur = np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0.7, 0.1])
    K.evaluate(prog, "float64", {"cur": cur, "u": u, "o": o}, {"leak": 0.5, "theta": 0.6, "amount": 0.6},
               {"n_neurons": 2})
    np.testing.assert_allclose(u, [0.7, 0.5 * (1.0 - 0.6) + 0.1])
    np.testing.assert_array_equal(o, [1.0, 0.0])


# -- launch validation, launch shape, traffic ----------------------------------------


def _step_arrays(n, n_in, dt="float32"):
    z = lambda k: np.zeros(k, dt)  # noqa: E731
    return {"cur": z(n), "u": z(n), "o": z(n), "h": z(n), "psi": z(n), "q": z(n_in), "x": z(n_in)}


def test_check_kernel_args_catches_bad_launches():
    prog = K.neuron_step_program(K.StepSpec())
    params = {"leak": 0.5, "theta": 0.6, "amount": 0.6, "lambda_post": 0.2, "lambda_pre": 0.5}
    lengths = {"n_neurons": 6, "n_inputs": 4}
    K.check_kernel_args(prog, "float32", _step_arrays(6, 4), params, lengths)
    bad = _step_arrays(6, 4)
    bad["u"] = bad["u"].astype("float64")
    with pytest.raises(ShapeError, match="dtype float64"):
        K.check_kernel_args(prog, "float32", bad, params, lengths)
    bad = _step_arrays(6, 4)
    bad["q"] = np.zeros(8, "float32")[::2]
    with pytest.raises(ShapeError, match="C-contiguous"):
        K.check_kernel_args(prog, "float32", bad, params, lengths)
    with pytest.raises(ShapeError, match="has 6 elements, expected 5"):
        K.check_kernel_args(prog, "float32", _step_arrays(6, 4), params, {"n_neurons": 5, "n_inputs": 4})
    bad = _step_arrays(6, 4)
    del bad["x"]
    with pytest.raises(ShapeError, match="missing array argument 'x'"):
        K.check_kernel_args(prog, "float32", bad, params, lengths)
    with pytest.raises(ConfigError, match="theta"):
        K.check_kernel_args(prog, "float32", _step_arrays(6, 4), {**params, "theta": float("inf")}, lengths)
    alias = _step_arrays(6, 4)
    alias["psi"] = alias["h"]
    with pytest.raises(ShapeError, match="aliases"):
        K.check_kernel_args(prog, "float32", alias, params, lengths)
    with pytest.raises(ShapeError, match="length"):
        K.check_kernel_args(prog, "float32", _step_arrays(6, 4), params, {"n_neurons": -1, "n_inputs": 4})


@pytest.mark.parametrize("n,sm,expect", [
    (1, 132, (1, 256)), (256, 132, (1, 256)), (257, 132, (2, 256)),
    (16 * 64 * 32 * 32, 132, (132 * 8, 256)), (10**9, 132, (1056, 256)), (5000, 1, (8, 256)),
])
def test_launch_shape(n, sm, expect):
    grid, block = K.launch_shape(n, sm)
    assert (grid, block) == expect
    assert grid * block * (-(-n // (grid * block))) >= n  # the grid-stride loop covers every element


def test_launch_shape_edge_cases():
    assert K.launch_shape(0, 132) is None
    assert K.launch_shape(1000, 4, threads=128, blocks_per_sm=2) == (8, 128)
    for bad in (dict(n=-1, sm_count=1), dict(n=1, sm_count=0), dict(n=1.5, sm_count=1), dict(n=True, sm_count=1)):
        with pytest.raises(ConfigError):
            K.launch_shape(**bad)
    with pytest.raises(ConfigError, match="multiple of 32"):
        K.launch_shape(10, 1, threads=100)


def test_bytes_moved_counts_each_read_and_write_once():
    prog = K.neuron_step_program(K.StepSpec("float32", noncausal=True))
    # neurons: read cur,u,o,h (4) write u,o,psi,h,htilde (5); inputs: read q,x (2) write q (1)
    assert K.bytes_moved(prog, "float32", {"n_neurons": 10, "n_inputs": 3}) == 4 * (10 * 9 + 3 * 3)
    pred = K.neuron_step_program(K.StepSpec("float64", traces=False))
    assert K.bytes_moved(pred, "float64", {"n_neurons": 7}) == 8 * 7 * 5
