"""Fused per-step kernels of the CuPy backend, generated from one expression table.

A block's whole per-step elementwise work — LIF update with reset, spike, ψ,
postsynaptic trace h, non-causal trace h̃ and presynaptic trace q — is ONE
kernel launch.  Its CUDA source is not written by hand: a small expression IR
(:class:`Const`, :class:`Param`, :class:`Var`, :class:`Bin`, :class:`Call`,
:class:`Step`) describes each output as a function of the loaded values, and
two interpreters read the same table:

* :func:`render_cuda` prints it as a grid-stride ``RawKernel`` in ``float`` or
  ``double`` (every literal typed, every parameter a kernel argument, FMA
  contraction disabled so the rounding is that of the table, operation by
  operation);
* :func:`evaluate` runs it with NumPy in the same dtype, in place, on CPU.

Because both read one table, testing :func:`evaluate` against ``tess_spec``
tests the arithmetic the GPU runs; the CPU tests also compile the rendered
source with NVRTC when it is installed.  Structure (reset mode, ψ, profile,
which outputs exist, dtype) is baked into the source; numbers (γ, θ, r, λ)
are kernel arguments, so drawing new factors never recompiles.

Glossary: u membrane, o spikes, ψ surrogate, q presynaptic trace, h
postsynaptic trace, h̃ non-causal trace, m learning signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Union

import numpy as np

from tess_spec.errors import ConfigError, ShapeError

__all__ = [
    "Const",
    "Param",
    "Var",
    "Bin",
    "Call",
    "Step",
    "Expr",
    "Segment",
    "Program",
    "StepSpec",
    "ModulateSpec",
    "neuron_step_program",
    "modulate_program",
    "render_cuda",
    "evaluate",
    "launch_shape",
    "bytes_moved",
    "check_kernel_args",
    "ctype",
    "NVRTC_OPTIONS",
    "THREADS_PER_BLOCK",
    "BLOCKS_PER_SM",
]

NVRTC_OPTIONS: tuple[str, ...] = ("--fmad=false",)
"""Compiler options: no FMA contraction, so every ``a*b + c`` rounds twice, as NumPy does.

CuPy adds ``-ftz=true`` to every RawKernel: float32 subnormals (below 1.2e-38 in
magnitude) flush to zero on the GPU, where NumPy keeps them — the only place the
kernel and its NumPy twin can differ, by less than 1.2e-38 absolute."""

THREADS_PER_BLOCK = 256
"""Threads per block of every fused kernel launch."""

BLOCKS_PER_SM = 8
"""Resident blocks per SM the grid is sized for (8 × 256 = 2048 threads = full occupancy)."""

_DTYPES = {"float32": "float", "float64": "double"}


# -- the expression IR -------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    """A literal number, typed as the kernel's float type (``0.3f`` / ``0.3``)."""

    value: float


@dataclass(frozen=True)
class Param:
    """A scalar kernel argument (γ, θ, r, λ …), passed in the kernel's float type."""

    name: str


@dataclass(frozen=True)
class Var:
    """A local value: a loaded array element or an earlier statement's result."""

    name: str


@dataclass(frozen=True)
class Bin:
    """``a op b`` for ``op`` in ``+ - * /`` (one rounding, no contraction)."""

    op: str
    a: "Expr"
    b: "Expr"

    def __post_init__(self) -> None:
        if self.op not in ("+", "-", "*", "/"):
            raise ConfigError(f"Bin.op={self.op!r} is invalid: expected one of '+', '-', '*', '/'")


@dataclass(frozen=True)
class Call:
    """``fabs(a)`` or ``fmax(a, b)`` (C semantics; NumPy: ``abs`` / ``fmax``)."""

    fn: str
    args: tuple["Expr", ...]

    def __post_init__(self) -> None:
        arity = {"fabs": 1, "fmax": 2}
        if self.fn not in arity:
            raise ConfigError(f"Call.fn={self.fn!r} is invalid: expected one of {sorted(arity)}")
        if len(self.args) != arity[self.fn]:
            raise ConfigError(f"{self.fn} takes {arity[self.fn]} argument(s), got {len(self.args)}")


@dataclass(frozen=True)
class Step:
    """Heaviside with strict inequality: ``1 if a > b else 0`` in the float type."""

    a: "Expr"
    b: "Expr"


Expr = Union[Const, Param, Var, Bin, Call, Step]
"""Any node of the expression IR."""


def _add(a: Expr, b: Expr) -> Bin:
    return Bin("+", a, b)


def _sub(a: Expr, b: Expr) -> Bin:
    return Bin("-", a, b)


def _mul(a: Expr, b: Expr) -> Bin:
    return Bin("*", a, b)


@dataclass(frozen=True)
class Segment:
    """One index range of a kernel: load arrays, compute locals, store arrays.

    Attributes:
        length: name of the ``long long`` kernel argument holding the range's size.
        loads: ``(local, array)`` pairs read at the top (element ``k`` of ``array``).
        lets: ``(local, expr)`` statements, in order, each local assigned once.
        stores: ``(array, local)`` pairs written at the end.
    """

    length: str
    loads: tuple[tuple[str, str], ...]
    lets: tuple[tuple[str, Expr], ...]
    stores: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Program:
    """A fused elementwise kernel: named, over one or more segments.

    The kernel's flat index runs over the concatenation of the segments' ranges
    (a grid-stride loop); element ``i`` belongs to the first segment whose
    cumulative length exceeds ``i``.

    Attributes:
        name: the ``extern "C"`` symbol (unique per structural variant).
        segments: the index ranges.
        params: scalar parameter names, in signature order.
        doc: one line on what the kernel computes (printed as a comment).
    """

    name: str
    segments: tuple[Segment, ...]
    params: tuple[str, ...]
    doc: str = ""
    _arrays: tuple[tuple[str, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        roles: dict[str, str] = {}
        for seg in self.segments:
            defined: set[str] = set()
            for local, arr in seg.loads:
                if local in defined:
                    raise ConfigError(f"{self.name}: local {local!r} is defined twice")
                defined.add(local)
                roles[arr] = "inout" if roles.get(arr) in ("out", "inout") else "in"
            for local, expr in seg.lets:
                for v in _vars(expr):
                    if v not in defined:
                        raise ConfigError(f"{self.name}: {local!r} uses {v!r} before it is defined")
                for p in _params(expr):
                    if p not in self.params:
                        raise ConfigError(f"{self.name}: parameter {p!r} is not in {self.params}")
                if local in defined:
                    raise ConfigError(f"{self.name}: local {local!r} is defined twice")
                defined.add(local)
            for arr, local in seg.stores:
                if local not in defined:
                    raise ConfigError(f"{self.name}: store of undefined local {local!r} to {arr!r}")
                roles[arr] = "inout" if roles.get(arr) in ("in", "inout") else "out"
        clash = {local for seg in self.segments for local, _ in (*seg.loads, *seg.lets)} & (
            set(roles) | set(self.params) | set(self.lengths) | {"i", "k", "total", "stride"}
        )
        if clash:
            raise ConfigError(f"{self.name}: local name(s) {sorted(clash)} clash with argument or loop names")
        object.__setattr__(self, "_arrays", tuple(roles.items()))

    @property
    def arrays(self) -> tuple[tuple[str, str], ...]:
        """``(array, role)`` in signature order; role is ``"in"``, ``"out"`` or ``"inout"``."""
        return self._arrays

    @property
    def array_names(self) -> tuple[str, ...]:
        """Array arguments in signature order."""
        return tuple(a for a, _ in self._arrays)

    @property
    def lengths(self) -> tuple[str, ...]:
        """Segment length arguments in signature order."""
        return tuple(s.length for s in self.segments)

    def signature(self) -> tuple[str, ...]:
        """All kernel argument names: arrays, then parameters, then segment lengths."""
        return self.array_names + self.params + self.lengths


def _vars(e: Expr) -> set[str]:
    if isinstance(e, Var):
        return {e.name}
    if isinstance(e, Bin):
        return _vars(e.a) | _vars(e.b)
    if isinstance(e, Step):
        return _vars(e.a) | _vars(e.b)
    if isinstance(e, Call):
        return set().union(*(_vars(a) for a in e.args))
    return set()


def _params(e: Expr) -> set[str]:
    if isinstance(e, Param):
        return {e.name}
    if isinstance(e, (Bin, Step)):
        return _params(e.a) | _params(e.b)
    if isinstance(e, Call):
        return set().union(*(_params(a) for a in e.args))
    return set()


# -- the programs of the rule ------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    """Structure of a block's fused neuron-step kernel.

    Attributes:
        dtype: ``"float32"`` or ``"float64"``.
        reset: ``"soft"`` or ``"hard"``.
        psi: ``"triangle"`` or ``"fast_sigmoid"``.
        profile: ``"paper"`` (h̃ = λ_post·h[t-1]) or ``"reference-code"`` (h̃ = h[t-1]).
        traces: update ψ, h and q (training); ``False`` is the prediction kernel (u, o only).
        noncausal: also write h̃[t-1] (learning step with α_post ≠ 0).
        dropout: also write the dropped-out spikes ``d = mask ⊙ o``.
    """

    dtype: str = "float32"
    reset: str = "soft"
    psi: str = "triangle"
    profile: str = "paper"
    traces: bool = True
    noncausal: bool = False
    dropout: bool = False

    def __post_init__(self) -> None:
        from tess_spec.config import PROFILES, PSI_NAMES

        checks = (
            ("dtype", self.dtype, tuple(_DTYPES)),
            ("reset", self.reset, ("soft", "hard")),
            ("psi", self.psi, PSI_NAMES),
            ("profile", self.profile, PROFILES),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise ConfigError(f"StepSpec.{name}={value!r} is invalid: expected one of {list(allowed)}")
        if self.noncausal and not self.traces:
            raise ConfigError("StepSpec.noncausal=True needs traces=True (h̃ is a trace)")

    @property
    def tag(self) -> str:
        """Short unique suffix of the kernel name."""
        bits = [
            "f32" if self.dtype == "float32" else "f64",
            self.reset,
            {"triangle": "tri", "fast_sigmoid": "fsig"}[self.psi],
            {"paper": "pap", "reference-code": "ref"}[self.profile],
        ]
        bits += [flag for flag, on in (("tr", self.traces), ("nc", self.noncausal), ("do", self.dropout)) if on]
        return "_".join(bits)


def _psi_lets(name: str, u: Expr) -> tuple[tuple[str, Expr], ...]:
    """ψ as statements on the new membrane ``u`` (tess_spec.neuron.psi_triangle / psi_fast_sigmoid)."""
    dist = Call("fabs", (_sub(u, Param("theta")),))
    if name == "triangle":
        # 0.3 · max(0, 1 - |u - θ|)
        return (("psi_t", _mul(Const(0.3), Call("fmax", (Const(0.0), _sub(Const(1.0), dist))))),)
    # 1 / (100·|u - θ| + 1)²
    return (
        ("psi_a", _add(_mul(Const(100.0), dist), Const(1.0))),
        ("psi_t", Bin("/", Const(1.0), _mul(Var("psi_a"), Var("psi_a")))),
    )


def neuron_step_program(spec: StepSpec) -> Program:
    """The fused per-step kernel of a block, from its structure.

    Segment ``neurons`` (``n_neurons`` elements), with u, o, h holding the
    previous step's values on entry::

        u[t]   = γ·(u[t-1] - r·o[t-1]) + I[t]          (soft)   |  γ·u[t-1]·(1 - o[t-1]) + I[t]  (hard)
        o[t]   = 1 if u[t] > θ else 0
        ψ[t]   = 0.3·max(0, 1 - |u[t] - θ|)            (triangle) | 1/(100·|u[t] - θ| + 1)²  (fast_sigmoid)
        h[t]   = λ_post·h[t-1] + ψ[t]
        h̃[t-1] = λ_post·h[t-1]  (paper)  |  h[t-1]  (reference-code)
        d[t]   = mask ⊙ o[t]                                (dropout)

    Segment ``inputs`` (``n_inputs`` elements): ``q[t] = λ_pre·q[t-1] + x[t]``.
    """
    u, o, h = Var("u_prev"), Var("o_prev"), Var("h_prev")
    loads: list[tuple[str, str]] = [("cur_t", "cur"), ("u_prev", "u"), ("o_prev", "o")]
    params: list[str] = ["leak", "theta"]
    if spec.reset == "soft":
        params.append("amount")
        u_new: Expr = _add(_mul(Param("leak"), _sub(u, _mul(Param("amount"), o))), Var("cur_t"))
    else:
        u_new = _add(_mul(_mul(Param("leak"), u), _sub(Const(1.0), o)), Var("cur_t"))
    lets: list[tuple[str, Expr]] = [("u_t", u_new), ("o_t", Step(Var("u_t"), Param("theta")))]
    stores: list[tuple[str, str]] = [("u", "u_t"), ("o", "o_t")]
    if spec.traces:
        params += ["lambda_post", "lambda_pre"]
        loads.append(("h_prev", "h"))
        lets += list(_psi_lets(spec.psi, Var("u_t")))
        lets.append(("h_t", _add(_mul(Param("lambda_post"), h), Var("psi_t"))))
        stores += [("psi", "psi_t"), ("h", "h_t")]
        if spec.noncausal:
            lets.append(("htilde_t", _mul(Param("lambda_post"), h) if spec.profile == "paper" else h))
            stores.append(("htilde", "htilde_t"))
    if spec.dropout:
        loads.append(("mask_k", "mask"))
        lets.append(("d_t", _mul(Var("mask_k"), Var("o_t"))))
        stores.append(("dropped", "d_t"))
    segments = [Segment("n_neurons", tuple(loads), tuple(lets), tuple(stores))]
    if spec.traces:
        segments.append(
            Segment(
                "n_inputs",
                (("q_prev", "q"), ("x_t", "x")),
                (("q_t", _add(_mul(Param("lambda_pre"), Var("q_prev")), Var("x_t"))),),
                (("q", "q_t"),),
            )
        )
    return Program(
        name=f"tess_step_{spec.tag}",
        segments=tuple(segments),
        params=tuple(params),
        doc=(
            "LIF + spike + psi + h" + (" + htilde" if spec.noncausal else "") + (" + dropout" if spec.dropout else "")
            + " over neurons; q over inputs"
            if spec.traces
            else "LIF + spike over neurons (prediction)"
        ),
    )


@dataclass(frozen=True)
class ModulateSpec:
    """Structure of the learning-step kernel that forms the update's per-neuron factors.

    Attributes:
        dtype: ``"float32"`` or ``"float64"``.
        dropout: multiply the pulled-back gradient by the dropout mask.
        noncausal: also form ``m ⊙ h̃``.
        keep_m: also store m itself (for the record).
    """

    dtype: str = "float32"
    dropout: bool = False
    noncausal: bool = False
    keep_m: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ConfigError(f"ModulateSpec.dtype={self.dtype!r} is invalid: expected one of {list(_DTYPES)}")

    @property
    def tag(self) -> str:
        """Short unique suffix of the kernel name."""
        bits = ["f32" if self.dtype == "float32" else "f64"]
        bits += [flag for flag, on in (("do", self.dropout), ("nc", self.noncausal), ("m", self.keep_m)) if on]
        return "_".join(bits)


def modulate_program(spec: ModulateSpec) -> Program:
    """The learning-step kernel (one segment, ``n_neurons`` elements)::

        m   = g ⊙ mask   (dropout)  |  g
        mψ  = m ⊙ ψ[t]              (causal factor)
        mh  = m ⊙ h̃[t-1]            (non-causal factor, when α_post ≠ 0)

    ``g`` is ∂L_l/∂(dropped spikes), already pulled back through the LSG and pooling.
    """
    loads: list[tuple[str, str]] = [("g_k", "g"), ("psi_k", "psi")]
    lets: list[tuple[str, Expr]] = []
    m: Expr = Var("g_k")
    if spec.dropout:
        loads.append(("mask_k", "mask"))
        lets.append(("m_k", _mul(Var("g_k"), Var("mask_k"))))
        m = Var("m_k")
    m_name = m.name  # type: ignore[union-attr]
    lets.append(("mpsi_k", _mul(m, Var("psi_k"))))
    stores: list[tuple[str, str]] = [("mpsi", "mpsi_k")]
    if spec.noncausal:
        loads.append(("ht_k", "htilde"))
        lets.append(("mh_k", _mul(m, Var("ht_k"))))
        stores.append(("mh", "mh_k"))
    if spec.keep_m:
        stores.append(("m", m_name))
    return Program(
        name=f"tess_modulate_{spec.tag}",
        segments=(Segment("n_neurons", tuple(loads), tuple(lets), tuple(stores)),),
        params=(),
        doc="learning signal m (mask), m*psi and m*htilde",
    )


# -- CUDA rendering ----------------------------------------------------------------


def ctype(dtype: str) -> str:
    """The C type of a float dtype: ``float32`` → ``float``, ``float64`` → ``double``."""
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ConfigError(f"dtype={dtype!r} is invalid: expected one of {list(_DTYPES)}") from None


def _literal(value: float, dtype: str) -> str:
    """An exactly typed C literal: float32 gets the shortest decimal of the float32 value + ``f``."""
    if not math.isfinite(value):
        raise ConfigError(f"constant {value!r} is not finite")
    if dtype == "float32":
        s = str(np.float32(value))
        if "e" not in s and "." not in s:
            s += ".0"
        return f"{s}f"
    s = repr(float(value))
    return s if ("." in s or "e" in s) else s + ".0"


def _render(e: Expr, dtype: str) -> str:
    t = ctype(dtype)
    if isinstance(e, Const):
        return _literal(e.value, dtype)
    if isinstance(e, Param):
        return e.name
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Bin):
        return f"({_render(e.a, dtype)} {e.op} {_render(e.b, dtype)})"
    if isinstance(e, Call):
        args = ", ".join(_render(a, dtype) for a in e.args)
        return f"{e.fn}({args})"  # C++ overloads fabs/fmax for float and double
    if isinstance(e, Step):
        return f"(({_render(e.a, dtype)} > {_render(e.b, dtype)}) ? ({t})1 : ({t})0)"
    raise ConfigError(f"unknown expression node {e!r}")


def render_cuda(program: Program, dtype: str) -> str:
    """CUDA C++ source of ``program`` for ``dtype`` (one ``extern "C" __global__`` kernel).

    Arguments, in :meth:`Program.signature` order: arrays (``const T* __restrict__``
    when only read, ``T* __restrict__`` otherwise), scalar parameters ``const T``,
    segment lengths ``const long long``.  A grid-stride loop covers the segments
    back to back.
    """
    t = ctype(dtype)
    args = []
    for arr, role in program.arrays:
        args.append(f"const {t}* __restrict__ {arr}" if role == "in" else f"{t}* __restrict__ {arr}")
    args += [f"const {t} {p}" for p in program.params]
    args += [f"const long long {n}" for n in program.lengths]
    lines = [
        f"// {program.name}: {program.doc}",
        f"// generated by tess.backends.cupy.codegen for {t}; do not edit",
        f'extern "C" __global__ void {program.name}(',
        "    " + ",\n    ".join(args) + ")",
        "{",
        "    const long long total = " + " + ".join(program.lengths) + ";",
        "    const long long stride = (long long)blockDim.x * (long long)gridDim.x;",
        "    for (long long i = (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x;",
        "         i < total; i += stride) {",
    ]
    offset = "0LL"
    for s_i, seg in enumerate(program.segments):
        end = seg.length if s_i == 0 else f"{offset} + {seg.length}"
        head = "if" if s_i == 0 else "} else if"
        if s_i == len(program.segments) - 1 and s_i > 0:
            lines.append("        } else {")
        else:
            lines.append(f"        {head} (i < {end}) {{")
        lines.append(f"            const long long k = i - {offset};" if s_i else "            const long long k = i;")
        for local, arr in seg.loads:
            lines.append(f"            const {t} {local} = {arr}[k];")
        for local, expr in seg.lets:
            lines.append(f"            const {t} {local} = {_render(expr, dtype)};")
        for arr, local in seg.stores:
            lines.append(f"            {arr}[k] = {local};")
        offset = seg.length if s_i == 0 else f"{offset} + {seg.length}"
    lines += ["        }", "    }", "}", ""]
    return "\n".join(lines)


# -- the NumPy twin ----------------------------------------------------------------


def _eval(e: Expr, env: Mapping[str, np.ndarray], params: Mapping[str, np.generic], dt: np.dtype) -> np.ndarray:
    if isinstance(e, Const):
        return dt.type(e.value)
    if isinstance(e, Param):
        return params[e.name]
    if isinstance(e, Var):
        return env[e.name]
    if isinstance(e, Bin):
        a, b = _eval(e.a, env, params, dt), _eval(e.b, env, params, dt)
        if e.op == "+":
            return np.add(a, b, dtype=dt)
        if e.op == "-":
            return np.subtract(a, b, dtype=dt)
        if e.op == "*":
            return np.multiply(a, b, dtype=dt)
        return np.divide(a, b, dtype=dt)
    if isinstance(e, Call):
        args = [_eval(a, env, params, dt) for a in e.args]
        return np.abs(args[0]) if e.fn == "fabs" else np.fmax(args[0], args[1], dtype=dt)
    if isinstance(e, Step):
        return np.greater(_eval(e.a, env, params, dt), _eval(e.b, env, params, dt)).astype(dt)
    raise ConfigError(f"unknown expression node {e!r}")


def evaluate(
    program: Program,
    dtype: str,
    arrays: Mapping[str, np.ndarray],
    params: Mapping[str, float],
    lengths: Mapping[str, int],
) -> None:
    """Run ``program`` with NumPy, in place, exactly as the CUDA kernel would.

    ``arrays`` maps every array of :attr:`Program.arrays` to a C-contiguous
    NumPy array of ``dtype`` with at least the segment's length in elements;
    stored arrays are written in place.  Each operation rounds once in
    ``dtype`` (no FMA), matching :data:`NVRTC_OPTIONS`.
    """
    dt = np.dtype(dtype)
    check_kernel_args(program, dtype, arrays, params, lengths)
    for arr, _ in program.arrays:
        if not isinstance(arrays[arr], np.ndarray):
            raise ShapeError(f"array {arr!r} must be a NumPy array, got {type(arrays[arr]).__name__}")
    p = {name: dt.type(params[name]) for name in program.params}
    flat = {arr: arrays[arr].reshape(-1) for arr, _ in program.arrays}
    for seg in program.segments:
        n = int(lengths[seg.length])
        env: dict[str, np.ndarray] = {local: flat[arr][:n].copy() for local, arr in seg.loads}
        for local, expr in seg.lets:
            env[local] = np.asarray(_eval(expr, env, p, dt), dtype=dt)
        for arr, local in seg.stores:
            flat[arr][:n] = np.broadcast_to(env[local], (n,))


def check_kernel_args(
    program: Program,
    dtype: str,
    arrays: Mapping[str, object],
    params: Mapping[str, float],
    lengths: Mapping[str, int],
) -> None:
    """Validate a launch before it happens (a raw kernel would read garbage silently).

    Every array of the program must be present, of ``dtype``, C-contiguous and
    hold exactly the elements of every segment that touches it; every parameter
    must be a finite number; every length a non-negative integer; stored arrays
    must not be the same array object as another argument (the kernel declares them ``__restrict__``).
    Works on any array with ``dtype``, ``size``, ``flags.c_contiguous`` (NumPy, CuPy).
    """
    ctype(dtype)
    dt = np.dtype(dtype)
    for name in program.lengths:
        v = lengths.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ShapeError(f"{program.name}: length {name}={v!r} is invalid: expected an integer >= 0")
    for name in program.params:
        v = params.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise ConfigError(f"{program.name}: parameter {name}={v!r} is invalid: expected a finite number")
    need: dict[str, int] = {}
    for seg in program.segments:
        for arr in {a for _, a in seg.loads} | {a for a, _ in seg.stores}:
            n = int(lengths[seg.length])
            if need.get(arr, n) != n:
                raise ShapeError(f"{program.name}: array {arr!r} is used by segments of different lengths")
            need[arr] = n
    for arr, role in program.arrays:
        if arr not in arrays:
            raise ShapeError(f"{program.name}: missing array argument {arr!r}; expected {list(program.array_names)}")
        a = arrays[arr]
        a_dt = getattr(a, "dtype", None)
        if a_dt != dt:
            raise ShapeError(f"{program.name}: array {arr!r} has dtype {a_dt}, expected {dt}")
        if not a.flags.c_contiguous:  # type: ignore[attr-defined]
            raise ShapeError(f"{program.name}: array {arr!r} must be C-contiguous (make a contiguous copy first)")
        if int(a.size) != need[arr]:  # type: ignore[attr-defined]
            raise ShapeError(f"{program.name}: array {arr!r} has {int(a.size)} elements, expected {need[arr]}")  # type: ignore[attr-defined]
    for arr, role in program.arrays:
        if role == "in":
            continue
        for other in program.array_names:
            if other != arr and arrays[other] is arrays[arr]:
                raise ShapeError(f"{program.name}: output {arr!r} aliases argument {other!r} (declared __restrict__)")


# -- launch shape and traffic --------------------------------------------------------


def launch_shape(
    n: int, sm_count: int, threads: int = THREADS_PER_BLOCK, blocks_per_sm: int = BLOCKS_PER_SM
) -> tuple[int, int] | None:
    """``(grid, block)`` of a grid-stride launch over ``n`` elements; ``None`` when n = 0.

    ``grid = min(ceil(n / threads), sm_count · blocks_per_sm)``: enough blocks to
    fill every SM, never more than there are elements to cover.
    """
    for name, v, lo in (("n", n, 0), ("sm_count", sm_count, 1), ("threads", threads, 1), ("blocks_per_sm", blocks_per_sm, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ConfigError(f"{name}={v!r} is invalid: expected an integer >= {lo}")
    if threads > 1024 or threads % 32:
        raise ConfigError(f"threads={threads} is invalid: expected a multiple of 32 up to 1024")
    if n == 0:
        return None
    grid = min(-(-int(n) // threads), int(sm_count) * int(blocks_per_sm))
    return grid, int(threads)


def bytes_moved(program: Program, dtype: str, lengths: Mapping[str, int]) -> int:
    """DRAM bytes one launch must move at minimum: every loaded element read once,
    every stored element written once (an array both loaded and stored counts twice)."""
    item = np.dtype(dtype).itemsize
    total = 0
    for seg in program.segments:
        n = int(lengths[seg.length])
        total += n * item * (len({a for _, a in seg.loads}) + len({a for a, _ in seg.stores}))
    return total
