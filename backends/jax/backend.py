"""The JAX backend: one jit-compiled pure function per mini-batch.

The train step is a pure function of ``(params, optimiser moments, Adam bias corrections, x, y,
sample weights, real batch size, dropout masks, lr, LSG matrices)``: a
``lax.scan`` over the T steps carries every block's state ``(u, o, q, h)`` and
the running window sums of the closed-form TESS updates (no autodiff on the
TESS path); the weight-standardisation chain rule and the Adam/SGD step follow
inside the same compiled program.  Prediction is a second compiled function.

Compilation.  Everything Python-level (block kinds, pooling, kernel sizes, ψ,
trace factors, profile, learning window, whether a record is produced, which
blocks have a dropout mask) is static: it is closed over when the function is
built, and compiled executables are cached (per process, shared by backend
instances) per ``(config, kind, record, padded batch, sequence input, mask
pattern, dtype, device)`` — where the config key ignores the fields the program
does not depend on (seed, epochs, batch size, default lr, schedule).  Shapes are static, so a short batch is
padded: a batch of ``n ≤ config.train.batch_size`` samples runs padded to
``batch_size`` rows with sample weights ``w`` (1 real, 0 padding), and every
batch mean divides by the real count ``n`` (an argument, not a constant) — so
the padded rows contribute exactly zero and the result equals the unpadded
computation.  A batch larger than ``batch_size`` and every prediction batch is
padded to the next power of two.  One training run therefore compiles the train
step once; :attr:`JaxBackend.compile_count` and
:attr:`JaxBackend.compile_seconds` (tracing + lowering + XLA compilation, kept
separate from steady-state time) make that observable.

float64.  JAX computes in float32 unless its ``jax_enable_x64`` flag is on.
Rather than flipping that flag for the whole process (which would change the
dtype of every other JAX computation of the user), a float64 backend enters
JAX's scoped ``jax.enable_x64(True)`` context around every conversion, tracing
and execution it performs, and a float32 backend enters
``jax.enable_x64(False)``.  The setting is thread-local and restored on exit,
so float32 and float64 backends coexist in one process in any order, and
neither sees nor changes the user's global setting.  One consequence to know:
float64 arrays a float64 backend hands out stay float64, but arithmetic the
user does on them *outside* such a context follows the user's own x64 setting.

Randomness.  None here: parameters, dropout masks and batch order come from the
spec's NumPy generator (:mod:`tess.model`); the backend never uses JAX's PRNG.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

from tess.backend import Backend, TrainOutput
from tess_spec import TessConfig, block_shapes, param_names
from tess_spec.errors import BackendUnavailableError, ConfigError
from tess_spec.neuron import reset_amount
from tess_spec.reference import lsg_matrices

from . import kernels as K

__all__ = [
    "JaxBackend",
    "BlockPlan",
    "padded_batch",
    "program_config",
    "make_plans",
    "build_train_step",
    "build_predict",
]

log = logging.getLogger(__name__)

_STACK_KEYS = ("u", "o", "psi", "q", "h", "m")

_EXECUTABLES: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
"""Compiled executables shared by every backend instance of this process, keyed by
(program config, kind, padded rows, record, sequence input, mask pattern, dtype, device);
least recently used first, at most :data:`MAX_EXECUTABLES` of them."""
MAX_EXECUTABLES = 64
"""Bound of the executable cache (a run needs 1-3; test suites drawing many configs need the bound)."""
_LOCK = threading.Lock()


def program_config(config: TessConfig) -> TessConfig:
    """``config`` with every field the compiled program does not depend on set to a
    fixed value (seed, epochs, batch size, dtype, the default learning rate, the
    schedule), so that runs differing only in those share executables."""
    return dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, seed=0, epochs=0, batch_size=1, dtype="float32"),
        optimizer=dataclasses.replace(config.optimizer, lr=1.0),
        schedule=type(config.schedule)(),
    )


@dataclass(frozen=True)
class BlockPlan:
    """Everything static a block's step needs (derived from the config only)."""

    kind: str
    kernel_size: int
    k: int  # LSG pool size
    pool: str | None
    pool_size: int
    amount: float
    psi: str
    bias: bool
    weight_std: bool
    inputs: tuple[int, ...]
    neurons: tuple[int, ...]


def padded_batch(n: int, batch_size: int) -> int:
    """Rows a batch of ``n`` samples is padded to: ``batch_size`` if ``n ≤ batch_size``,
    else the next power of two ≥ ``n`` (a bounded set of compiled shapes)."""
    if n <= batch_size:
        return batch_size
    return 1 << (n - 1).bit_length()


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def make_plans(config: TessConfig) -> list[BlockPlan]:
    """The static per-block plan of a config."""
    out = []
    for i, (b, bs) in enumerate(zip(config.network.blocks, block_shapes(config.network))):
        out.append(BlockPlan(
            kind=b.kind, kernel_size=b.kernel_size, k=config.lsg_pool(i), pool=b.pool, pool_size=b.pool_size,
            amount=reset_amount(config.lif, config.profile, b.kind), psi=config.psi_name(i), bias=b.bias,
            weight_std=b.weight_std, inputs=bs.input, neurons=bs.neurons,
        ))
    return out


def _effective_weights(plans: list[BlockPlan], params: dict[str, jnp.ndarray]) -> list[jnp.ndarray]:
    ws = []
    for i, pl in enumerate(plans):
        w = params[f"blocks.{i}.weight"]
        ws.append(K.standardize(w, params[f"blocks.{i}.gain"]) if pl.weight_std else w)
    return ws


def _current(pl: BlockPlan, xi: jnp.ndarray, w_hat: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
    if pl.kind == "conv":
        cur = K.conv_current(xi, w_hat)
        return cur if bias is None else cur + bias[None, :, None, None]
    cur = K.linear_current(xi, w_hat)
    return cur if bias is None else cur + bias


def _block_input(pl: BlockPlan, inp: jnp.ndarray) -> jnp.ndarray:
    return inp.reshape(inp.shape[0], -1) if pl.kind == "linear" else inp


def build_train_step(config: TessConfig, sequence: bool, has_mask: tuple[bool, ...], record: bool) -> Callable:
    """The pure train-step function of a config (to be jit-compiled).

    ``fn(params, moments, corrections, x, y, w, n_real, masks, lr, mats) -> outputs`` where
    ``moments`` is ``{"m", "v"}`` (Adam) or ``{"buf"}`` (SGD), ``corrections`` Adam's
    ``(1-β1^step, 1-β2^step)`` at the new (1-based) step (from the host, in float64), ``x`` ``(B, ...)`` or ``(B, T, ...)``, ``w`` the
    sample weights, ``n_real`` the real batch size, ``masks`` per-block dropout
    masks (``None`` where a block has none), ``mats`` the LSG matrices.
    """
    net, tc, lif, oc = config.network, config.traces, config.lif, config.optimizer
    plans = make_plans(config)
    T, start = config.train.T, config.train.window_start
    C = net.n_classes
    temperature = config.lsg.temperature
    lam_pre, lam_post, a_post, a_pre = tc.lambda_pre, tc.lambda_post, tc.alpha_post, tc.alpha_pre
    paper = config.profile == "paper"
    L = len(plans)

    def fn(params, moments, corrections, x, y, w, n_real, masks, lr, mats):
        dt = x.dtype
        nb = x.shape[0]
        onehot = jax.nn.one_hot(y, C, dtype=dt)
        w_hat = _effective_weights(plans, params)
        biases = [params.get(f"blocks.{i}.bias") for i in range(L)]
        ro_w, ro_b = params["readout.weight"], params.get("readout.bias")
        static_cur = None if sequence else _current(plans[0], _block_input(plans[0], x), w_hat[0], biases[0])

        state0 = []
        for pl in plans:
            neu = jnp.zeros((nb, *pl.neurons), dt)
            state0.append({"u": neu, "o": neu, "q": jnp.zeros((nb, *pl.inputs), dt), "h": neu})
        acc0 = {
            "causal": [jnp.zeros_like(wh) if a_pre != 0 else None for wh in w_hat],
            "noncausal": [jnp.zeros_like(wh) if a_post != 0 else None for wh in w_hat],
            "dbias": [jnp.zeros((wh.shape[0],), dt) if pl.bias else None for pl, wh in zip(plans, w_hat)],
            "ro_w": jnp.zeros_like(ro_w),
            "ro_b": jnp.zeros((C,), dt),
        }

        def step_fn(learn: bool):
            def body(carry, x_t):
                states, acc, summed = carry
                inp = x_t if sequence else x
                new_states, recs = [], {k: [] for k in _STACK_KEYS}
                losses = []
                acc = dict(acc)
                acc_c, acc_n, acc_b = list(acc["causal"]), list(acc["noncausal"]), list(acc["dbias"])
                for i, pl in enumerate(plans):
                    s = states[i]
                    xi = _block_input(pl, inp)
                    cur = static_cur if (i == 0 and not sequence) else _current(pl, xi, w_hat[i], biases[i])
                    u = K.lif_step(s["u"], s["o"], cur, lif.leak, lif.reset, pl.amount)
                    o = K.spike(u, lif.theta)
                    ps = K.PSI[pl.psi](u, lif.theta)
                    q = K.decay_add(s["q"], xi, lam_pre)
                    h = K.decay_add(s["h"], ps, lam_post)
                    mask = masks[i]
                    dropped = o if mask is None else o * mask
                    out = K.pool(dropped, pl.pool, pl.pool_size)
                    if learn:
                        m, loss = K.lsg_signal(out, dropped, mask, mats[i], onehot, w, n_real, temperature,
                                               pl.pool, pl.pool_size)
                        mp = m * ps
                        if a_pre != 0:
                            acc_c[i] = acc_c[i] + a_pre * K.corr(mp, q, pl.kind, pl.kernel_size)
                        if a_post != 0:
                            h_t = lam_post * s["h"] if paper else s["h"]
                            acc_n[i] = acc_n[i] + a_post * K.corr(m * h_t, xi, pl.kind, pl.kernel_size)
                        if pl.bias:
                            acc_b[i] = acc_b[i] + (jnp.sum(mp, axis=(0, 2, 3)) if mp.ndim == 4 else jnp.sum(mp, axis=0))
                    else:
                        m, loss = jnp.zeros_like(u), jnp.zeros((), dt)
                    new_states.append({"u": u, "o": o, "q": q, "h": h})
                    if record:
                        for key, val in (("u", u), ("o", o), ("psi", ps), ("q", q), ("h", h), ("m", m)):
                            recs[key].append(val)
                        losses.append(loss)
                    inp = out
                feats = K.readout_features(inp)
                logits = jnp.matmul(feats, ro_w.T, precision=K.MATMUL_PRECISION)
                if ro_b is not None:
                    logits = logits + ro_b
                summed = summed + logits
                if learn:
                    e = jnp.exp(logits - jnp.max(logits, axis=1, keepdims=True))
                    err = (e / jnp.sum(e, axis=1, keepdims=True) - onehot) * (w / n_real)[:, None]
                    acc["ro_w"] = acc["ro_w"] + jnp.matmul(err.T, feats, precision=K.MATMUL_PRECISION)
                    acc["ro_b"] = acc["ro_b"] + jnp.sum(err, axis=0)
                acc["causal"], acc["noncausal"], acc["dbias"] = acc_c, acc_n, acc_b
                ys = None
                if record:
                    ys = {**recs, "logits": logits, "lsg_loss": jnp.stack(losses)}
                return (new_states, acc, summed), ys

            return body

        carry = (state0, acc0, jnp.zeros((nb, C), dt))
        xs_all = jnp.moveaxis(x, 1, 0) if sequence else None
        ys_parts = []
        for lo, hi, learn in ((0, start, False), (start, T, True)):
            if hi <= lo:
                continue
            xs = None if xs_all is None else xs_all[lo:hi]
            carry, ys = lax.scan(step_fn(learn), carry, xs, length=hi - lo)
            ys_parts.append(ys)
        states, acc, summed = carry

        grads: dict[str, jnp.ndarray] = {}
        g_hats = []
        for i, pl in enumerate(plans):
            c, n = acc["causal"][i], acc["noncausal"][i]
            g_hat = c + n if (c is not None and n is not None) else (c if c is not None else n)
            if g_hat is None:
                g_hat = jnp.zeros_like(w_hat[i])
            g_hats.append(g_hat)
            if pl.weight_std:
                grads[f"blocks.{i}.weight"], grads[f"blocks.{i}.gain"] = K.standardize_vjp(
                    params[f"blocks.{i}.weight"], params[f"blocks.{i}.gain"], g_hat)
            else:
                grads[f"blocks.{i}.weight"] = g_hat
            if pl.bias:
                grads[f"blocks.{i}.bias"] = acc["dbias"][i]
        grads["readout.weight"] = acc["ro_w"]
        if ro_b is not None:
            grads["readout.bias"] = acc["ro_b"]

        new_params, new_moments = {}, {}
        if oc.name == "adam":
            new_moments = {"m": {}, "v": {}}
            for key, p in params.items():
                new_params[key], new_moments["m"][key], new_moments["v"][key] = K.adam_update(
                    p, grads[key], moments["m"][key], moments["v"][key], corrections, lr, oc.betas, oc.eps,
                    oc.weight_decay)
        else:
            new_moments = {"buf": {}}
            for key, p in params.items():
                new_params[key], new_moments["buf"][key] = K.sgd_update(
                    p, grads[key], moments["buf"][key], lr, oc.momentum, oc.weight_decay)

        z = summed - jnp.max(summed, axis=1, keepdims=True)
        logp = z - jnp.log(jnp.sum(jnp.exp(z), axis=1, keepdims=True))
        loss = -jnp.sum(w * jnp.sum(logp * onehot, axis=1)) / n_real
        n_correct = jnp.sum(jnp.where((jnp.argmax(summed, axis=1) == y) & (w > 0), 1, 0))
        out = {"params": new_params, "moments": new_moments, "loss": loss, "n_correct": n_correct, "state": states}
        if record:
            stacks = {}
            for key in _STACK_KEYS:
                stacks[key] = [jnp.concatenate([part[key][i] for part in ys_parts], axis=0) for i in range(L)]
            stacks["logits"] = jnp.concatenate([part["logits"] for part in ys_parts], axis=0)
            stacks["lsg_loss"] = jnp.concatenate([part["lsg_loss"] for part in ys_parts], axis=0)
            out["record"] = {
                **stacks,
                "grads": grads,
                "dw_causal": [c if c is not None else jnp.zeros_like(wh) for c, wh in zip(acc["causal"], w_hat)],
                "dw_noncausal": [c if c is not None else jnp.zeros_like(wh) for c, wh in zip(acc["noncausal"], w_hat)],
            }
        return out

    return fn


def build_predict(config: TessConfig, sequence: bool) -> Callable:
    """The pure prediction function: ``fn(params, x) -> Σ_t logits[t]`` (no learning, no dropout)."""
    net, lif = config.network, config.lif
    plans = make_plans(config)
    L = len(plans)

    def fn(params, x):
        dt = x.dtype
        nb = x.shape[0]
        w_hat = _effective_weights(plans, params)
        biases = [params.get(f"blocks.{i}.bias") for i in range(L)]
        ro_w, ro_b = params["readout.weight"], params.get("readout.bias")
        static_cur = None if sequence else _current(plans[0], _block_input(plans[0], x), w_hat[0], biases[0])

        def body(carry, x_t):
            uo, summed = carry
            inp = x_t if sequence else x
            new = []
            for i, pl in enumerate(plans):
                u_prev, o_prev = uo[i]
                cur = static_cur if (i == 0 and not sequence) else _current(pl, _block_input(pl, inp), w_hat[i],
                                                                           biases[i])
                u = K.lif_step(u_prev, o_prev, cur, lif.leak, lif.reset, pl.amount)
                o = K.spike(u, lif.theta)
                new.append((u, o))
                inp = K.pool(o, pl.pool, pl.pool_size)
            logits = jnp.matmul(K.readout_features(inp), ro_w.T, precision=K.MATMUL_PRECISION)
            if ro_b is not None:
                logits = logits + ro_b
            return (new, summed + logits), None

        uo0 = [(jnp.zeros((nb, *pl.neurons), dt), jnp.zeros((nb, *pl.neurons), dt)) for pl in plans]
        xs = jnp.moveaxis(x, 1, 0) if sequence else None
        (_, summed), _ = lax.scan(body, (uo0, jnp.zeros((nb, net.n_classes), dt)), xs, length=config.train.T)
        return summed

    return fn


class JaxBackend(Backend):
    """TESS on JAX: jit-compiled train and predict steps, ``lax.scan`` over time.

    Options: ``dtype`` (``"float32"`` | ``"float64"``; float64 runs inside JAX's
    scoped x64 mode, see the module docstring) and ``device`` (``"cpu"`` or
    ``"cuda"``/``"gpu"``, optionally ``":index"``).

    Attributes:
        compile_count: executables compiled so far (train and predict, all configs).
        compile_seconds: total seconds spent tracing, lowering and compiling them.
    """

    name = "jax"
    devices = ("cpu", "cuda", "gpu")

    def __init__(self, *, dtype: str = "float32", device: str | None = None) -> None:
        super().__init__(dtype=dtype, device=device)
        kind, _, index = self.device.partition(":")
        platform = "cpu" if kind == "cpu" else "gpu"
        try:
            found = jax.devices(platform)
        except RuntimeError:
            found = []
        if not found:
            raise BackendUnavailableError(
                f"device={self.device!r} was requested but JAX sees no {platform.upper()} "
                f"(jax.devices() = {jax.devices()}); install a CUDA-enabled jax "
                "(pip install 'jax[cuda12]') or use device='cpu'"
            )
        try:
            i = int(index) if index else 0
        except ValueError:
            raise ConfigError(f"device={self.device!r} is invalid: the index after ':' must be an integer") from None
        if not 0 <= i < len(found):
            raise BackendUnavailableError(
                f"device={self.device!r} was requested but JAX sees {len(found)} {platform} device(s) {found}; "
                f"use an index in [0, {len(found)})"
            )
        self.jax_device = found[i]
        self.compile_count: int = 0
        self.compile_seconds: float = 0.0
        self._configs: dict[int, tuple[TessConfig, TessConfig, list[str], list[jnp.ndarray]]] = {}

    # -- x64 scoping -------------------------------------------------------
    @contextlib.contextmanager
    def _x64(self) -> Iterator[None]:
        """Scoped JAX dtype mode of this backend (thread-local; restored on exit)."""
        with jax.enable_x64(self.dtype == "float64"):
            yield

    # -- conversions -------------------------------------------------------
    def asarray(self, a: np.ndarray) -> jnp.ndarray:
        """A JAX array of this backend's dtype, on its device, holding ``a``."""
        with self._x64():
            return jax.device_put(np.asarray(a, dtype=self.dtype), self.jax_device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy of a JAX array (its dtype kept)."""
        with self._x64():
            return np.array(a, copy=True)

    def info(self) -> dict[str, str]:
        """Name, dtype, device, JAX version and the JAX device in use."""
        return {**super().info(), "jax": jax.__version__, "jax_device": str(self.jax_device)}

    # -- compilation cache -----------------------------------------------------
    def _per_config(self, config: TessConfig) -> tuple[TessConfig, list[str], list[jnp.ndarray]]:
        """(program config, parameter names, LSG matrices on the device) of ``config``, cached by identity."""
        hit = self._configs.get(id(config))
        if hit is None or hit[0] is not config:
            mats = [self.asarray(m.reshape(m.shape[0], -1)) for m in lsg_matrices(config)]
            hit = (config, program_config(config), param_names(config), mats)
            self._configs[id(config)] = hit
        return hit[1], hit[2], hit[3]

    def _compiled(self, key: tuple, build: Callable[[], Callable], args: tuple) -> Any:
        """The executable for ``key`` (shared by all instances); compiles on a miss and
        adds to this instance's :attr:`compile_count` / :attr:`compile_seconds`."""
        key = (*key, self.dtype, str(self.jax_device))
        exe = _EXECUTABLES.get(key)
        if exe is not None:
            with contextlib.suppress(KeyError):  # evicted by another thread meanwhile
                _EXECUTABLES.move_to_end(key)
        else:
            with _LOCK:
                exe = _EXECUTABLES.get(key)
                if exe is None:
                    t0 = time.perf_counter()
                    # lower with the inputs on this backend's device: that fixes where the executable runs
                    placed = jax.tree.map(lambda a: jax.device_put(a, self.jax_device), args)
                    exe = jax.jit(build()).lower(*placed).compile()
                    dt = time.perf_counter() - t0
                    self.compile_count += 1
                    self.compile_seconds += dt
                    log.info("jax backend: compiled %s (batch %s) in %.2fs", key[1], key[2], dt)
                    _EXECUTABLES[key] = exe
                    while len(_EXECUTABLES) > MAX_EXECUTABLES:
                        _EXECUTABLES.popitem(last=False)
        return exe

    # -- public entry points (pad on the host, then one device call) ------------
    def train_batch(
        self,
        config: TessConfig,
        params: dict[str, Any],
        opt_state: dict[str, Any],
        x: np.ndarray,
        y: np.ndarray,
        *,
        masks: list[np.ndarray | None] | None = None,
        lr: float | None = None,
        record: bool = False,
    ) -> TrainOutput:
        """T steps of TESS on a batch and one optimiser step (see :meth:`tess.Backend.train_batch`).

        The batch is padded on the host to a compiled shape (see :func:`padded_batch`)."""
        x, y, masks = self.validated_batch(config, x, y, masks)
        return self._run_train(config, params, opt_state, x, y, masks,
                               float(config.optimizer.lr if lr is None else lr), bool(record))

    def predict(self, config: TessConfig, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        """Time-summed logits ``(B, n_classes)`` as NumPy (no learning, no dropout)."""
        return self._run_predict(config, params, self.validated_input(config, x))

    def _train_batch(self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: Any,
                     y: np.ndarray, masks: list[Any], lr: float, record: bool) -> TrainOutput:
        # Only reached when a caller bypasses train_batch; bring the arrays back to the host.
        return self._run_train(config, params, opt_state, np.asarray(x), y,
                               [None if m is None else np.asarray(m) for m in masks], lr, record)

    def _predict(self, config: TessConfig, params: dict[str, Any], x: Any) -> Any:
        return self._run_predict(config, params, np.asarray(x))

    # -- the work ---------------------------------------------------------------
    def _pad(self, a: np.ndarray, rows: int, dtype: Any) -> np.ndarray:
        a = np.asarray(a, dtype=dtype)
        if a.shape[0] == rows:
            return a
        out = np.zeros((rows, *a.shape[1:]), dtype=dtype)
        out[: a.shape[0]] = a
        return out

    def _run_train(self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: np.ndarray,
                   y: np.ndarray, masks: list[np.ndarray | None], lr: float, record: bool) -> TrainOutput:
        n = x.shape[0]
        rows = padded_batch(n, config.train.batch_size)
        sequence = x.ndim == len(config.network.input_shape) + 2
        has_mask = tuple(m is not None for m in masks)
        program, names, mats = self._per_config(config)
        moment_keys = ("m", "v") if config.optimizer.name == "adam" else ("buf",)
        step = int(opt_state["step"]) + 1
        b1, b2 = config.optimizer.betas
        w = np.zeros(rows, dtype=self.dtype)
        w[:n] = 1
        # Host arrays go to the executable as NumPy: it transfers them to its device itself.
        args = (
            params,
            {k: opt_state[k] for k in moment_keys},
            np.asarray([1 - b1**step, 1 - b2**step], self.dtype),
            self._pad(x, rows, self.dtype),
            self._pad(y, rows, np.int32),
            w,
            np.asarray(n, self.dtype),
            [None if m is None else self._pad(m, rows, self.dtype) for m in masks],
            np.asarray(lr, self.dtype),
            mats,
        )
        with self._x64():
            key = (program, "train", rows, record, sequence, has_mask)
            exe = self._compiled(key, lambda: build_train_step(config, sequence, has_mask, record), args)
            res = exe(*args)
            loss = float(res["loss"])
            n_correct = int(res["n_correct"])
            new_params = {k: res["params"][k] for k in names}
            new_opt: dict[str, Any] = {"step": step}
            for mk in moment_keys:
                new_opt[mk] = {k: res["moments"][mk][k] for k in names}
            state = res["state"]
            if rows != n:
                state = [{k: v[:n] for k, v in s.items()} for s in state]
            rec = None
            if record:
                rec = self._record_to_numpy(config, res["record"], n, names)
                rec.update(loss=loss, n_correct=n_correct,
                           state=[{k: self.to_numpy(v) for k, v in s.items()} for s in state])
        return TrainOutput(new_params, new_opt, loss, n_correct, state, rec)

    def _record_to_numpy(self, config: TessConfig, r: dict[str, Any], n: int, names: list[str]) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        for key in _STACK_KEYS:
            rec[key] = [np.asarray(a)[:, :n].copy() for a in r[key]]
        rec["logits"] = np.asarray(r["logits"])[:, :n].copy()
        rec["lsg_loss"] = np.asarray(r["lsg_loss"], dtype=np.float64)
        rec["dw_causal"] = [np.asarray(a).copy() for a in r["dw_causal"]]
        rec["dw_noncausal"] = [np.asarray(a).copy() for a in r["dw_noncausal"]]
        rec["grads"] = {k: np.asarray(r["grads"][k]).copy() for k in names}
        return rec

    def _run_predict(self, config: TessConfig, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        rows = _next_pow2(n)
        sequence = x.ndim == len(config.network.input_shape) + 2
        args = (params, self._pad(x, rows, self.dtype))
        with self._x64():
            key = (self._per_config(config)[0], "predict", rows, False, sequence, ())
            exe = self._compiled(key, lambda: build_predict(config, sequence), args)
            return np.asarray(exe(*args))[:n].copy()
