"""The example backend: TESS on NumPy, one equation function of the spec per line.

It is written to be read next to the rule reference, not to be fast: every step
calls the specification's own functions (:mod:`tess_spec.neuron`,
:mod:`tess_spec.traces`, :mod:`tess_spec.lsg`, :mod:`tess_spec.update`, ...), and the
only work left to the backend is the loop over time and blocks, the state it
carries, and the bookkeeping of the contract (:class:`tess.Backend`).  A real
backend replaces those calls by its framework's kernels; the conformance suite
checks that it still computes the same numbers.

The sections between ``--8<--`` markers are quoted by the documentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tess import Backend, TrainOutput
from tess_spec import TessConfig, block_shapes
from tess_spec.lsg import basis, block_output, learning_signal
from tess_spec.neuron import lif_step, psi, reset_amount, spike
from tess_spec.ops import conv2d, flatten_batch
from tess_spec.optim import adam_step, sgd_step
from tess_spec.readout import cross_entropy, readout_features, readout_forward, readout_grad
from tess_spec.traces import noncausal_trace, postsynaptic_trace, presynaptic_trace
from tess_spec.update import bias_update, block_update
from tess_spec.weight_std import standardize, standardize_vjp

__all__ = ["ExampleBackend"]


# --8<-- [start:class]
class ExampleBackend(Backend):
    """TESS in plain NumPy, composed from the specification's equation functions (CPU only)."""

    name = "example"
    devices = ("cpu",)

    def asarray(self, a: np.ndarray) -> np.ndarray:
        """A copy of ``a`` in this backend's dtype."""
        return np.array(a, dtype=self.dtype, copy=True)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy (the arrays already are NumPy)."""
        return np.array(a, copy=True)

    def info(self) -> dict[str, str]:
        """Name, dtype, device, and the NumPy version (shown in conformance reports)."""
        return {**super().info(), "numpy": np.__version__}
    # --8<-- [end:class]

    # --8<-- [start:helpers]
    def _w_hat(self, config: TessConfig, params: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Ŵ of every block: standardised where the block asks for it."""
        out = []
        for i, b in enumerate(config.network.blocks):
            w = params[f"blocks.{i}.weight"]
            out.append(standardize(w, params[f"blocks.{i}.gain"]) if b.weight_std else w)
        return out

    def _current(self, config: TessConfig, params: dict[str, np.ndarray], w_hat: np.ndarray,
                 i: int, x: np.ndarray) -> np.ndarray:
        """I[t] = Ŵ · x[t] (+ bias)."""
        kind = config.network.blocks[i].kind
        cur = conv2d(x, w_hat) if kind == "conv" else x @ w_hat.T
        bias = params.get(f"blocks.{i}.bias")
        if bias is None:
            return cur
        return cur + (bias[None, :, None, None] if kind == "conv" else bias)

    def _bases(self, config: TessConfig) -> list[np.ndarray]:
        """The fixed LSG basis B of every block, (n_classes, D)."""
        out = []
        for i, bs in enumerate(block_shapes(config.network)):
            k = config.lsg_pool(i)
            dim = bs.output[0] * k * k if len(bs.output) == 3 else k
            out.append(basis(config.network.n_classes, dim, config.lsg.omega_min, config.lsg.omega_max))
        return out
    # --8<-- [end:helpers]

    # --8<-- [start:train]
    def _train_batch(
        self, config: TessConfig, params: dict[str, np.ndarray], opt_state: dict[str, Any], x: np.ndarray,
        y: np.ndarray, masks: list[np.ndarray | None], lr: float, record: bool,
    ) -> TrainOutput:
        """T steps of TESS, then one optimiser step (inputs validated by :meth:`Backend.train_batch`)."""
        net, lif, tc = config.network, config.lif, config.traces
        T, start, n = config.train.T, config.train.window_start, x.shape[0]
        sequence = x.ndim == len(net.input_shape) + 2
        w_hat, bases = self._w_hat(config, params), self._bases(config)
        state = self.init_state(config, n)  # [{u, o, q, h}] per block, shapes independent of T
        dw_causal = [np.zeros_like(w) for w in w_hat]  # G's two terms summed over the window, w.r.t. Ŵ
        dw_noncausal = [np.zeros_like(w) for w in w_hat]
        dbias = [np.zeros((b.features,), self.dtype) for b in net.blocks]
        d_ro_w, d_ro_b = np.zeros_like(params["readout.weight"]), np.zeros((net.n_classes,), self.dtype)
        summed = np.zeros((n, net.n_classes), self.dtype)  # logits summed over all T steps
        rec = self._new_record(config, state, n) if record else None

        for t in range(T):
            learn = t >= start  # the learning window: the last n_learn steps
            inp = x[:, t] if sequence else x
            for i, b in enumerate(net.blocks):
                s = state[i]
                xi = flatten_batch(inp) if b.kind == "linear" else inp
                h_tilde = noncausal_trace(s["h"], tc.lambda_post, config.profile)  # h̃[t-1]
                u = lif_step(s["u"], s["o"], self._current(config, params, w_hat[i], i, xi), leak=lif.leak,
                             reset=lif.reset, amount=reset_amount(lif, config.profile, b.kind))
                o = spike(u, lif.theta)
                ps = psi(config.psi_name(i), u, lif.theta)
                q = presynaptic_trace(s["q"], xi, tc.lambda_pre)
                h = postsynaptic_trace(s["h"], ps, tc.lambda_post)
                state[i] = {"u": u, "o": o, "q": q, "h": h}
                if learn:
                    m, loss = learning_signal(o, y, bases[i], k=config.lsg_pool(i), mask=masks[i], pool=b.pool,
                                              pool_size=b.pool_size, temperature=config.lsg.temperature)
                    causal, noncausal = block_update(b.kind, m, ps, q, h_tilde, xi, tc.alpha_pre,
                                                     tc.alpha_post, b.kernel_size)
                    dw_causal[i] += causal
                    dw_noncausal[i] += noncausal
                    if b.bias:
                        dbias[i] += bias_update(m, ps)
                if rec is not None:
                    for key, val in (("u", u), ("o", o), ("psi", ps), ("q", q), ("h", h)):
                        rec[key][i][t] = val
                    if learn:
                        rec["m"][i][t], rec["lsg_loss"][t, i] = m, loss
                inp = block_output(o, masks[i], b.pool, b.pool_size)
            feats = readout_features(inp)
            logits = readout_forward(feats, params["readout.weight"], params.get("readout.bias"))
            if rec is not None:
                rec["logits"][t] = logits
            summed += logits
            if learn:
                gw, gb = readout_grad(feats, logits, y)
                d_ro_w += gw
                d_ro_b += gb

        dw = [c + nc for c, nc in zip(dw_causal, dw_noncausal)]
        grads = self._grads(config, params, dw, dbias, d_ro_w, d_ro_b)
        new_params, new_opt = self._optimise(config, params, opt_state, grads, lr)
        loss, n_correct = cross_entropy(summed, y), int((summed.argmax(axis=1) == y).sum())
        if rec is not None:
            rec.update(dw_causal=dw_causal, dw_noncausal=dw_noncausal, grads=grads, loss=loss,
                       n_correct=n_correct, state=[dict(s) for s in state])
        return TrainOutput(new_params, new_opt, loss, n_correct, state, rec)
    # --8<-- [end:train]

    # --8<-- [start:optimise]
    def _grads(self, config: TessConfig, params: dict[str, np.ndarray], dw: list[np.ndarray],
               dbias: list[np.ndarray], d_ro_w: np.ndarray, d_ro_b: np.ndarray) -> dict[str, np.ndarray]:
        """Chain G through weight standardisation; one gradient per parameter, in params' order."""
        grads: dict[str, np.ndarray] = {}
        for i, b in enumerate(config.network.blocks):
            w = f"blocks.{i}.weight"
            if b.weight_std:
                grads[w], grads[f"blocks.{i}.gain"] = standardize_vjp(params[w], params[f"blocks.{i}.gain"], dw[i])
            else:
                grads[w] = dw[i]
            if b.bias:
                grads[f"blocks.{i}.bias"] = dbias[i]
        grads["readout.weight"] = d_ro_w
        if "readout.bias" in params:
            grads["readout.bias"] = d_ro_b
        return {k: grads[k] for k in params}

    def _optimise(self, config: TessConfig, params: dict[str, np.ndarray], opt_state: dict[str, Any],
                  grads: dict[str, np.ndarray], lr: float) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Each parameter's own optimiser (Adam or SGD), with the shared step count."""
        oc, step = config.optimizer, int(opt_state["step"]) + 1
        new_p: dict[str, np.ndarray] = {}
        if oc.name == "adam":
            ms, vs = {}, {}
            for k, p in params.items():
                new_p[k], ms[k], vs[k] = adam_step(p, grads[k], opt_state["m"][k], opt_state["v"][k], step, lr=lr,
                                                   betas=oc.betas, eps=oc.eps, weight_decay=oc.weight_decay)
            return new_p, {"step": step, "m": ms, "v": vs}
        bufs = {}
        for k, p in params.items():
            new_p[k], bufs[k] = sgd_step(p, grads[k], opt_state["buf"][k], lr=lr, momentum=oc.momentum,
                                         weight_decay=oc.weight_decay)
        return new_p, {"step": step, "buf": bufs}
    # --8<-- [end:optimise]

    # --8<-- [start:predict]
    def _predict(self, config: TessConfig, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Time-summed logits; no learning, no dropout."""
        net, lif = config.network, config.lif
        sequence = x.ndim == len(net.input_shape) + 2
        w_hat = self._w_hat(config, params)
        state = self.init_state(config, x.shape[0])
        total = np.zeros((x.shape[0], net.n_classes), self.dtype)
        for t in range(config.train.T):
            inp = x[:, t] if sequence else x
            for i, b in enumerate(net.blocks):
                xi = flatten_batch(inp) if b.kind == "linear" else inp
                u = lif_step(state[i]["u"], state[i]["o"], self._current(config, params, w_hat[i], i, xi),
                             leak=lif.leak, reset=lif.reset, amount=reset_amount(lif, config.profile, b.kind))
                state[i]["u"], state[i]["o"] = u, spike(u, lif.theta)
                inp = block_output(state[i]["o"], None, b.pool, b.pool_size)
            total += readout_forward(readout_features(inp), params["readout.weight"], params.get("readout.bias"))
        return total
    # --8<-- [end:predict]

    def _new_record(self, config: TessConfig, state: list[dict[str, np.ndarray]], n: int) -> dict[str, Any]:
        """Zeroed record arrays laid out as :func:`tess_spec.reference.train_batch` records them."""
        T = config.train.T
        rec: dict[str, Any] = {
            key: [np.zeros((T, *s["q" if key == "q" else "u"].shape), self.dtype) for s in state]
            for key in ("u", "o", "psi", "q", "h", "m")
        }
        rec["logits"] = np.zeros((T, n, config.network.n_classes), self.dtype)
        rec["lsg_loss"] = np.zeros((T, len(config.network.blocks)))
        return rec
