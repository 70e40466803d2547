"""The CuPy backend's train loop, written once over an array namespace ``xp``.

:class:`XpBackend` runs TESS with ``xp`` arrays and a *kernel runner* that
executes the fused programs of :mod:`.kernels`.  The GPU backend
(:class:`tess.backends.cupy.backend.CupyBackend`) binds ``xp = cupy`` and a
runner that launches the generated CUDA source; the CPU twin
(:class:`tess.backends.cupy.twin.CpuTwinBackend`) binds ``xp = numpy`` and
:class:`NumpyRunner`, which evaluates the very same expression tables with
NumPy.  Everything but the kernel launch itself — the loop, layouts, LSG, GEMMs,
pooling, weight standardisation, optimiser, record — is therefore tested on
CPU against :func:`tess_spec.reference.train_batch`.

Per block and step: one GEMM for the current (im2col patches × Ŵᵀ), ONE fused
kernel for LIF + spike + ψ + h + h̃ + q (+ dropout), and on learning steps the
learning signal through the fused ``(n_classes × outputs)`` LSG matrix (two
GEMMs and a softmax, all on the device: the local loss is only brought to the
host for a record), one fused modulation kernel (m, m⊙ψ, m⊙h̃) and the
correlation GEMMs.  The only host transfers per batch are the labels in and
the loss / accuracy out.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import numpy as np

from tess.backend import Backend, TrainOutput
from tess_spec import TessConfig, block_shapes
from tess_spec.neuron import reset_amount
from tess_spec.reference import chain_grads, lsg_matrices
from tess_spec.reference import optimizer_step as spec_optimizer_step

from . import ops as O
from .kernels import ModulateSpec, Program, StepSpec, evaluate, modulate_program, neuron_step_program

__all__ = ["KernelRunner", "NumpyRunner", "BlockPlan", "XpBackend", "step_program", "mod_program"]

log = logging.getLogger(__name__)


class KernelRunner(Protocol):
    """Executes a fused :class:`~.kernels.Program` in place on ``xp`` arrays."""

    def __call__(
        self,
        program: Program,
        dtype: str,
        arrays: Mapping[str, Any],
        params: Mapping[str, float],
        lengths: Mapping[str, int],
    ) -> None:
        """Run ``program`` over ``lengths`` with the named arrays and scalar params."""


class NumpyRunner:
    """The CPU twin of the CUDA launcher: :func:`~.kernels.evaluate` on NumPy arrays.

    ``launches`` counts calls per program name (tests use it to check that each
    block step is exactly one fused launch).
    """

    def __init__(self) -> None:
        self.launches: dict[str, int] = {}

    def __call__(
        self,
        program: Program,
        dtype: str,
        arrays: Mapping[str, Any],
        params: Mapping[str, float],
        lengths: Mapping[str, int],
    ) -> None:
        self.launches[program.name] = self.launches.get(program.name, 0) + 1
        evaluate(program, dtype, arrays, params, lengths)


@functools.lru_cache(maxsize=None)
def step_program(spec: StepSpec) -> Program:
    """Cached :func:`~.kernels.neuron_step_program`."""
    return neuron_step_program(spec)


@functools.lru_cache(maxsize=None)
def _step_program_of(dtype: str, reset: str, psi: str, profile: str, traces: bool, noncausal: bool,
                     dropout: bool) -> Program:
    return step_program(StepSpec(dtype, reset, psi, profile, traces, noncausal, dropout))


@functools.lru_cache(maxsize=None)
def mod_program(spec: ModulateSpec) -> Program:
    """Cached :func:`~.kernels.modulate_program`."""
    return modulate_program(spec)


@dataclass(frozen=True)
class BlockPlan:
    """Per-block constants that depend only on the config (and dtype).

    Attributes:
        kind: ``"conv"`` or ``"linear"``.
        kernel_size: conv kernel size k.
        pool, pool_size: the block's pooling.
        amount: soft-reset amount r.
        psi: ψ name.
        lsg_matrix: ``(n_classes, D_out)`` = B̃ composed with the adaptive pool,
            columns in channels-last order of the block output (an ``xp`` array).
        neurons: per-sample neuron shape, channels-last (``(H, W, F)`` or ``(F,)``).
        inputs: per-sample input shape as the block sees it, channels-last.
        flatten_input: the block is linear and its input is spatial (flatten in
            the spec's ``(C, H, W)`` order).
    """

    kind: str
    kernel_size: int
    pool: str | None
    pool_size: int
    amount: float
    psi: str
    lsg_matrix: Any
    neurons: tuple[int, ...]
    inputs: tuple[int, ...]
    flatten_input: bool


def _nhwc_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class XpBackend(Backend):
    """TESS over an array namespace and a fused-kernel runner (see the module docstring).

    Args:
        xp: the array namespace (``numpy`` or ``cupy``).
        runner: a :class:`KernelRunner`.
        dtype: ``"float32"`` or ``"float64"``.
        device: one of :attr:`devices`.
    """

    name = "xp"
    devices = ("cpu",)

    def __init__(self, *, xp: Any, runner: KernelRunner, dtype: str = "float32", device: str | None = None) -> None:
        super().__init__(dtype=dtype, device=device)
        self.xp = xp
        self.runner = runner
        self._plans: dict[int, tuple[TessConfig, list[BlockPlan]]] = {}

    # -- conversions ---------------------------------------------------------------
    def asarray(self, a: np.ndarray) -> Any:
        return self.xp.array(np.asarray(a), dtype=self.dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, np.ndarray) or np.isscalar(a):
            return np.array(a, copy=True)
        return a.get()

    def _device_labels(self, y: np.ndarray) -> Any:
        return self.xp.asarray(np.asarray(y, dtype=np.int64))

    # -- planning -------------------------------------------------------------------
    def plan(self, config: TessConfig) -> list[BlockPlan]:
        """Per-block constants for ``config`` (cached; the LSG matrices live on the device)."""
        hit = self._plans.get(id(config))
        if hit is not None and hit[0] is config:
            return hit[1]
        plans = []
        shapes = block_shapes(config.network)
        for i, (b, bs, mat) in enumerate(zip(config.network.blocks, shapes, lsg_matrices(config))):
            prev_out = tuple(config.network.input_shape) if i == 0 else shapes[i - 1].output
            if mat.ndim == 4:  # (n_classes, C, H, W) -> channels-last columns
                mat = mat.transpose(0, 2, 3, 1)
            plans.append(
                BlockPlan(
                    kind=b.kind, kernel_size=b.kernel_size, pool=b.pool, pool_size=b.pool_size,
                    amount=reset_amount(config.lif, config.profile, b.kind), psi=config.psi_name(i),
                    lsg_matrix=self.asarray(np.ascontiguousarray(mat.reshape(mat.shape[0], -1))),
                    neurons=_nhwc_shape(bs.neurons), inputs=_nhwc_shape(bs.input),
                    flatten_input=b.kind == "linear" and len(prev_out) == 3,
                )
            )
        self._plans[id(config)] = (config, plans)
        return plans

    def effective_weights(self, config: TessConfig, params: Mapping[str, Any]) -> list[Any]:
        """Ŵ of every block (weight standardisation where the block asks for it)."""
        out = []
        for i, b in enumerate(config.network.blocks):
            w = params[f"blocks.{i}.weight"]
            out.append(O.standardize(self.xp, w, params[f"blocks.{i}.gain"]) if b.weight_std else w)
        return out

    # -- pieces -------------------------------------------------------------------------
    def _current(self, plan: BlockPlan, xi: Any, w2d: Any, bias: Any | None) -> tuple[Any, Any | None]:
        """``I[t] = Ŵ·x[t] (+ b)`` as a GEMM; returns (current, im2col patches or None)."""
        n = xi.shape[0]
        if plan.kind == "conv":
            cols = O.im2col_nhwc(self.xp, xi, plan.kernel_size)
            cur = (cols @ w2d.T).reshape((n, *plan.neurons))
        else:
            cols = None
            cur = xi @ w2d.T
        if bias is not None:
            cur = cur + bias  # channels-last: the bias broadcasts over the last axis
        return self.xp.ascontiguousarray(cur), cols

    def _block_input(self, plan: BlockPlan, inp: Any) -> Any:
        if plan.flatten_input:
            return O.nhwc_to_nchw(self.xp, inp).reshape(inp.shape[0], -1)
        return inp

    def _frames(self, config: TessConfig, x: Any) -> tuple[Any, bool]:
        """Input as contiguous channels-last frames: ``(T, B, ...)`` for sequences, else ``(B, ...)``."""
        xp = self.xp
        sequence = x.ndim == len(config.network.input_shape) + 2
        if sequence:
            perm = (1, 0, 3, 4, 2) if x.ndim == 5 else (1, 0, 2)
        else:
            perm = (0, 2, 3, 1) if x.ndim == 4 else (0, 1)
        return xp.ascontiguousarray(x.transpose(perm)), sequence

    def _neuron_step(
        self, config: TessConfig, plan: BlockPlan, s: dict[str, Any], cur: Any, xi: Any, mask: Any | None,
        noncausal: bool, buf: dict[str, Any],
    ) -> None:
        """ONE fused launch: LIF + spike + ψ + h + h̃ + q (+ dropout), in place on ``s`` and ``buf``."""
        lif, tc = config.lif, config.traces
        prog = _step_program_of(self.dtype, lif.reset, plan.psi, config.profile, True, noncausal, mask is not None)
        arrays = {"cur": cur, "u": s["u"], "o": s["o"], "h": s["h"], "psi": buf["psi"], "q": s["q"], "x": xi}
        if noncausal:
            arrays["htilde"] = buf["htilde"]
        if mask is not None:
            arrays["mask"] = mask
            arrays["dropped"] = buf["dropped"]
        params = {"leak": lif.leak, "theta": lif.theta, "amount": plan.amount,
                  "lambda_post": tc.lambda_post, "lambda_pre": tc.lambda_pre}
        self.runner(prog, self.dtype, arrays, {p: params[p] for p in prog.params},
                    {"n_neurons": s["u"].size, "n_inputs": s["q"].size})

    def _learning_signal(
        self, plan: BlockPlan, out: Any, dropped: Any, onehot: Any, temperature: float, want_loss: bool
    ) -> tuple[Any, Any | None]:
        """``g = ∂L_l/∂(mask ⊙ o)`` through pooling, the adaptive pool and B̃, on the device.

        ``z = out·Mᵀ``; ``∂L/∂out = (softmax(z/τ) - onehot)/(τ·B) · M``; then the pooling VJP.
        Returns g and, if asked, the local loss as a 0-d device array.
        """
        xp = self.xp
        n = out.shape[0]
        M = plan.lsg_matrix
        z = out.reshape(n, -1) @ M.T
        p = O.softmax(xp, z / temperature)
        loss = None
        if want_loss:
            tiny = np.finfo(self.dtype).tiny
            loss = -xp.log(xp.maximum((p * onehot).sum(axis=1), tiny)).mean()
        err = (p - onehot) / (temperature * n)
        g_out = (err @ M).reshape(out.shape)
        g = O.pool_vjp_nhwc(xp, g_out, dropped, plan.pool, plan.pool_size) if out.ndim == 4 else g_out
        return xp.ascontiguousarray(g), loss

    # -- the train step --------------------------------------------------------------------
    def _train_batch(
        self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: Any,
        y: np.ndarray, masks: list[Any], lr: float, record: bool,
    ) -> TrainOutput:
        xp, dt = self.xp, self.dtype
        net, tc = config.network, config.traces
        T, start = config.train.T, config.train.window_start
        n = x.shape[0]
        L = len(net.blocks)
        plans = self.plan(config)
        frames, sequence = self._frames(config, x)
        y_dev = self._device_labels(y)
        onehot = (xp.arange(net.n_classes)[None, :] == y_dev[:, None]).astype(dt)
        w2d = [w.reshape(w.shape[0], -1) for w in self.effective_weights(config, params)]
        masks_l = [None if m is None else O.nchw_to_nhwc(xp, m) for m in masks]
        state = [
            {"u": xp.zeros((n, *pl.neurons), dt), "o": xp.zeros((n, *pl.neurons), dt),
             "h": xp.zeros((n, *pl.neurons), dt), "q": xp.zeros((n, *pl.inputs), dt)}
            for pl in plans
        ]
        scratch = [{k: xp.empty((n, *pl.neurons), dt) for k in ("psi", "htilde", "dropped")} for pl in plans]
        causal = [xp.zeros(w.shape, dt) for w in w2d]
        noncausal = [xp.zeros(w.shape, dt) for w in w2d]
        dbias = [xp.zeros((b.features,), dt) for b in net.blocks]
        ro_w, ro_b = params["readout.weight"], params.get("readout.bias")
        d_ro_w = xp.zeros(ro_w.shape, dt)
        d_ro_b = xp.zeros((net.n_classes,), dt)
        summed = xp.zeros((n, net.n_classes), dt)
        rec: dict[str, Any] | None = (
            {key: [[] for _ in range(L)] for key in ("u", "o", "psi", "q", "h", "m")} if record else None
        )
        rec_logits: list[Any] = []
        rec_loss: list[list[Any]] = [[] for _ in range(T)]
        static: tuple[Any, Any] | None = None

        for t in range(T):
            learn = t >= start
            inp = frames[t] if sequence else frames
            for i, (b, pl) in enumerate(zip(net.blocks, plans)):
                s = state[i]
                buf = scratch[i] if not record else {k: xp.empty((n, *pl.neurons), dt) for k in scratch[i]}
                xi = self._block_input(pl, inp)
                if i == 0 and not sequence and static is not None:
                    cur, cols = static
                else:
                    cur, cols = self._current(pl, xi, w2d[i], params.get(f"blocks.{i}.bias"))
                    if i == 0 and not sequence:
                        static = (cur, cols)
                need_nc = learn and tc.alpha_post != 0
                mask = masks_l[i]
                self._neuron_step(config, pl, s, cur, xi, mask, need_nc, buf)
                dropped = s["o"] if mask is None else buf["dropped"]
                out = O.pool_nhwc(xp, dropped, b.pool, b.pool_size)
                if learn:
                    g, loss = self._learning_signal(pl, out, dropped, onehot, config.lsg.temperature, record)
                    mspec = ModulateSpec(dt, mask is not None, need_nc, record and mask is not None)
                    mprog = mod_program(mspec)
                    marr = {"g": g, "psi": buf["psi"], "mpsi": xp.empty_like(g)}
                    if mask is not None:
                        marr["mask"] = mask
                    if need_nc:
                        marr["htilde"], marr["mh"] = buf["htilde"], xp.empty_like(g)
                    if mspec.keep_m:
                        marr["m"] = xp.empty_like(g)
                    self.runner(mprog, dt, marr, {}, {"n_neurons": g.size})
                    mpsi = marr["mpsi"]
                    if b.kind == "conv":
                        f = mpsi.shape[-1]
                        if tc.alpha_pre != 0:
                            cq = O.im2col_nhwc(xp, s["q"], b.kernel_size)
                            causal[i] += tc.alpha_pre * (mpsi.reshape(-1, f).T @ cq)
                        if need_nc:
                            noncausal[i] += tc.alpha_post * (marr["mh"].reshape(-1, f).T @ cols)
                    else:
                        if tc.alpha_pre != 0:
                            causal[i] += tc.alpha_pre * (mpsi.T @ s["q"])
                        if need_nc:
                            noncausal[i] += tc.alpha_post * (marr["mh"].T @ xi)
                    if b.bias:
                        dbias[i] += mpsi.reshape(-1, mpsi.shape[-1]).sum(axis=0)
                    if rec is not None:
                        rec["m"][i].append(marr["m"] if mspec.keep_m else g)
                        rec_loss[t].append(loss)
                elif rec is not None:
                    rec["m"][i].append(xp.zeros((n, *pl.neurons), dt))
                    rec_loss[t].append(None)
                if rec is not None:
                    for key, val in (("u", s["u"]), ("o", s["o"]), ("q", s["q"]), ("h", s["h"])):
                        rec[key][i].append(val.copy())
                    rec["psi"][i].append(buf["psi"])
                inp = out
            feats = inp.mean(axis=(1, 2)) if inp.ndim == 4 else inp
            logits = feats @ ro_w.T
            if ro_b is not None:
                logits = logits + ro_b
            summed += logits
            if rec is not None:
                rec_logits.append(logits)
            if learn:
                err = (O.softmax(xp, logits) - onehot) / n
                d_ro_w += err.T @ feats
                d_ro_b += err.sum(axis=0)

        grads = chain_grads(config, params, causal, noncausal, dbias, d_ro_w, d_ro_b,
                            ws_vjp=lambda w, g, G: O.standardize_vjp(self.xp, w, g, G))
        new_params, new_opt = self.optimizer_step(config, params, opt_state, grads, lr)
        zs = summed - summed.max(axis=1, keepdims=True)
        logp = zs - xp.log(xp.exp(zs).sum(axis=1, keepdims=True))
        loss_dev = -(logp * onehot).sum(axis=1).mean()
        correct_dev = (summed.argmax(axis=1) == y_dev).sum().astype(dt)
        host = self.to_numpy(xp.stack([loss_dev.astype(dt), correct_dev]))  # the batch's one device->host sync
        loss, n_correct = float(host[0]), int(round(float(host[1])))
        final_state = [{k: O.nhwc_to_nchw(xp, s[k]) for k in ("u", "o", "q", "h")} for s in state]
        record_out = None
        if rec is not None:
            record_out = self._finish_record(
                config, rec, rec_logits, rec_loss, causal, noncausal, grads, loss, n_correct, final_state
            )
        return TrainOutput(new_params, new_opt, loss, n_correct, final_state, record_out)

    def _finish_record(
        self, config: TessConfig, rec: dict[str, Any], rec_logits: list[Any], rec_loss: list[list[Any]],
        causal: list[Any], noncausal: list[Any], grads: dict[str, Any], loss: float, n_correct: int,
        final_state: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Host copy of the record in the layout of :func:`tess_spec.reference.train_batch`."""
        xp = self.xp
        out: dict[str, Any] = {}
        for key in ("u", "o", "psi", "q", "h", "m"):
            out[key] = []
            for steps in rec[key]:
                a = xp.stack(steps, axis=0)  # (T, B, ...) channels-last
                if a.ndim == 5:
                    a = a.transpose(0, 1, 4, 2, 3)
                out[key].append(self.to_numpy(xp.ascontiguousarray(a)))
        out["logits"] = self.to_numpy(xp.stack(rec_logits, axis=0))
        lsg = np.zeros((config.train.T, len(config.network.blocks)))
        for t, row in enumerate(rec_loss):
            for i, v in enumerate(row):
                if v is not None:
                    lsg[t, i] = float(self.to_numpy(v))
        out["lsg_loss"] = lsg
        shapes = [bs.weight for bs in block_shapes(config.network)]
        out["dw_causal"] = [self.to_numpy(c).reshape(s) for c, s in zip(causal, shapes)]
        out["dw_noncausal"] = [self.to_numpy(c).reshape(s) for c, s in zip(noncausal, shapes)]
        out["grads"] = {k: self.to_numpy(v) for k, v in grads.items()}
        out["loss"] = loss
        out["n_correct"] = n_correct
        out["state"] = [{k: self.to_numpy(v) for k, v in s.items()} for s in final_state]
        return out

    def optimizer_step(
        self, config: TessConfig, params: Mapping[str, Any], opt_state: Mapping[str, Any],
        grads: Mapping[str, Any], lr: float,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Adam (bias-corrected) or SGD with momentum (:mod:`tess_spec.optim`), on new arrays."""
        return spec_optimizer_step(config, dict(params), dict(opt_state), dict(grads), lr)

    # -- prediction ---------------------------------------------------------------------------
    def _predict(self, config: TessConfig, params: dict[str, Any], x: Any) -> Any:
        xp, dt, lif = self.xp, self.dtype, config.lif
        net = config.network
        n = x.shape[0]
        plans = self.plan(config)
        frames, sequence = self._frames(config, x)
        w2d = [w.reshape(w.shape[0], -1) for w in self.effective_weights(config, params)]
        u = [xp.zeros((n, *pl.neurons), dt) for pl in plans]
        o = [xp.zeros((n, *pl.neurons), dt) for pl in plans]
        summed = xp.zeros((n, net.n_classes), dt)
        static = None
        for t in range(config.train.T):
            inp = frames[t] if sequence else frames
            for i, (b, pl) in enumerate(zip(net.blocks, plans)):
                xi = self._block_input(pl, inp)
                if i == 0 and not sequence and static is not None:
                    cur = static
                else:
                    cur, _ = self._current(pl, xi, w2d[i], params.get(f"blocks.{i}.bias"))
                    if i == 0 and not sequence:
                        static = cur
                prog = _step_program_of(dt, lif.reset, pl.psi, config.profile, False, False, False)
                vals = {"leak": lif.leak, "theta": lif.theta, "amount": pl.amount}
                self.runner(prog, dt, {"cur": cur, "u": u[i], "o": o[i]}, {p: vals[p] for p in prog.params},
                            {"n_neurons": u[i].size})
                inp = O.pool_nhwc(xp, o[i], b.pool, b.pool_size)
            feats = inp.mean(axis=(1, 2)) if inp.ndim == 4 else inp
            summed += feats @ params["readout.weight"].T
            if "readout.bias" in params:
                summed += params["readout.bias"]
        return summed

