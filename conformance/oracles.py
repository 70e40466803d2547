"""Independent oracles for the rule's properties: the gradient of a block's local
loss (TESS_RULE.md §4) with respect to its spikes, and — in the exact-gradient
special case of §5 (α_post = 0, λ_pre = γ, reset treated as a constant) — with
respect to its weights through time; and, for readout back-propagation (§11,
:mod:`tess_spec.signals`), the gradient of the window's summed readout
cross-entropy w.r.t. a block's weights with every later block's previous step held
constant (:func:`readout_loss_weight_grad`).

Two oracles, chosen explicitly and named in every report (:func:`select`):

* ``autodiff``: PyTorch autograd in float64 (needs torch); the spike is a custom
  function with value = the recorded spike and slope = ψ(u).
* ``finite-differences``: central differences in float64, NumPy only.  The local
  loss is differentiated with max pooling routed to the first maximal element of
  each window *of the recorded spikes* (the spec's tie rule, held fixed, so the
  function is smooth); the weight gradient differentiates the window-summed loss
  of the linearised spike ``o + ψ(u₀)·(u(W) - u₀)`` — the same slope ψ at the
  recorded membrane as autodiff's custom spike, without the kinks and the steep
  third derivative of ψ's antiderivative.  Steps :data:`FD_STEP_SPIKES` and
  :data:`FD_STEP_WEIGHTS`; the accuracy they deliver, and the tolerance that
  follows, are in :mod:`tess.conformance.tolerances` (``finite_differences``).

``auto`` (the default) is ``autodiff`` when torch is importable, else
``finite-differences`` — never silently: the choice is in the report header, in
the runner's summary line and in every failure message, and each oracle is
compared under its own tolerance (:func:`tolerance_key`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from tess_spec import TessConfig
from tess_spec.errors import BackendUnavailableError, ConfigError
from tess_spec.lsg import basis
from tess_spec.neuron import psi as spec_psi
from tess_spec.neuron import reset_amount
from tess_spec.ops import adaptive_avg_pool, conv2d, pool_forward
from tess_spec.shapes import block_shapes
from tess_spec.weight_std import WS_EPS, standardize

__all__ = ["ORACLES", "FD_STEP_SPIKES", "FD_STEP_WEIGHTS", "have_torch", "select", "selected", "oracle_name",
           "tolerance_key", "BlockProblem", "lsg_grad", "local_loss_weight_grad", "window_loss", "block_inputs",
           "spec_psi", "ReadoutProblem", "readout_loss_weight_grad", "readout_window_loss"]

ORACLES: dict[str, str] = {
    "autodiff": "autodiff (torch autograd, float64)",
    "finite-differences": "finite differences (central, float64, NumPy)",
}
"""Oracle name → how it is described in reports."""

FD_STEP_SPIKES = 1e-5
"""Central-difference step for ∂L_l/∂o (spikes are 0/1; L_l is a cross-entropy of a linear map of o)."""
FD_STEP_WEIGHTS = 1e-6
"""Central-difference step for the weight (and gain) gradient of Σ_window L_l."""

_selected: str | None = None


def have_torch() -> bool:
    """Whether PyTorch is importable (then ``auto`` selects autodiff)."""
    return importlib.util.find_spec("torch") is not None


def select(name: str = "auto") -> str:
    """Choose the oracle of this process: ``auto``, ``autodiff`` or ``finite-differences``;
    returns the chosen name.  ``autodiff`` without torch raises BackendUnavailableError."""
    global _selected
    if name == "auto":
        name = "autodiff" if have_torch() else "finite-differences"
    if name not in ORACLES:
        raise ConfigError(f"oracle={name!r} is invalid: expected 'auto' or one of {list(ORACLES)}")
    if name == "autodiff" and not have_torch():
        raise BackendUnavailableError(
            "the autodiff oracle needs PyTorch, which is not installed: install it with pip install "
            "'tess[torch]', or choose --oracle finite-differences (or auto)")
    _selected = name
    return name


def selected() -> str:
    """The oracle in use (``auto``'s choice if none was selected yet)."""
    return _selected if _selected is not None else select("auto")


def oracle_name() -> str:
    """The description of the oracle in use, e.g. ``"finite differences (central, float64, NumPy)"``."""
    return ORACLES[selected()]


def tolerance_key() -> str:
    """The quantity of :mod:`tess.conformance.tolerances` the oracle in use is compared under."""
    return "autodiff" if selected() == "autodiff" else "finite_differences"


@dataclass
class BlockProblem:
    """One block of a recorded run, everything float64 NumPy.

    ``x``: the block's input per step ``(T, B, *input)``; ``o``: recorded spikes
    ``(T, B, *neurons)``; ``mask``: dropout mask or ``None``; ``y``: labels.
    """

    config: TessConfig
    index: int
    x: np.ndarray
    o: np.ndarray
    mask: np.ndarray | None
    y: np.ndarray

    @property
    def block(self):  # noqa: ANN201 - BlockConfig
        """The block's config."""
        return self.config.network.blocks[self.index]

    def basis_scaled(self) -> np.ndarray:
        """``B̃ = B / D`` of the block."""
        k = self.config.lsg_pool(self.index)
        out = block_shapes(self.config.network)[self.index].output
        dim = out[0] * k * k if len(out) == 3 else k
        B = basis(self.config.network.n_classes, dim, self.config.lsg.omega_min, self.config.lsg.omega_max)
        return B / dim


# ---------------------------------------------------------------- torch oracle
def _torch_local_loss(torch, prob: BlockProblem, o):  # noqa: ANN001, ANN202
    F = torch.nn.functional
    b = prob.block
    k = prob.config.lsg_pool(prob.index)
    y = torch.as_tensor(prob.y, dtype=torch.int64)
    dropped = o if prob.mask is None else o * torch.as_tensor(prob.mask, dtype=torch.float64)
    if dropped.ndim == 4:
        if b.pool == "max":
            pooled = F.max_pool2d(dropped, b.pool_size)
        elif b.pool == "avg":
            pooled = F.avg_pool2d(dropped, b.pool_size)
        elif b.pool == "global_avg":
            pooled = dropped.mean(dim=(2, 3), keepdim=True)
        else:
            pooled = dropped
        a = F.adaptive_avg_pool2d(pooled, k).flatten(1)
    else:
        a = F.adaptive_avg_pool1d(dropped[:, None, :], k)[:, 0, :]
    z = a @ torch.as_tensor(prob.basis_scaled(), dtype=torch.float64).T
    return F.cross_entropy(z / prob.config.lsg.temperature, y)


def _torch_lsg_grad(prob: BlockProblem, t: int) -> tuple[float, np.ndarray]:
    import torch

    o = torch.tensor(prob.o[t], dtype=torch.float64, requires_grad=True)
    loss = _torch_local_loss(torch, prob, o)
    loss.backward()
    return float(loss.detach()), o.grad.numpy().copy()


def _torch_w_hat(torch, W, gain):  # noqa: ANN001, ANN202
    """Ŵ of weight standardisation (``tess_spec.weight_std.standardize``) in torch, for autograd."""
    f = W.shape[0]
    d = W.reshape(f, -1) - W.reshape(f, -1).mean(dim=1, keepdim=True)
    n = d.shape[1]
    var = (d * d).sum(dim=1, keepdim=True) / max(n - 1, 1)
    return (gain[:, None] * d / torch.sqrt(var * n + WS_EPS)).reshape(W.shape)


def _torch_spike(torch, psi_name: str, theta: float):  # noqa: ANN001, ANN202
    """The oracle's spike: value = the recorded spike ``o_fixed``, slope = the spec's ψ(u)."""

    class _Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, o_fixed):  # noqa: ANN001, ANN205
            ctx.save_for_backward(u)
            return o_fixed.clone()

        @staticmethod
        def backward(ctx, g):  # noqa: ANN001, ANN205
            (u,) = ctx.saved_tensors
            slope = spec_psi(psi_name, u.detach().numpy(), theta)
            return g * torch.as_tensor(np.asarray(slope, np.float64), dtype=torch.float64), None

    return _Spike.apply


def _torch_weight_grad(prob: BlockProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    cfg, i, b = prob.config, prob.index, prob.block
    lif = cfg.lif
    r = reset_amount(lif, cfg.profile, b.kind)
    theta = lif.theta
    psi_name = cfg.psi_name(i)
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for k, v in params.items() if k.startswith(f"blocks.{i}.")}
    W = leaves[f"blocks.{i}.weight"]
    W_hat = _torch_w_hat(torch, W, leaves[f"blocks.{i}.gain"]) if b.weight_std else W
    bias = leaves.get(f"blocks.{i}.bias")
    spike = _torch_spike(torch, psi_name, theta)

    T = cfg.train.T
    start = cfg.train.window_start
    u = torch.zeros(prob.o.shape[1:], dtype=torch.float64)
    o_prev = torch.zeros_like(u)
    total = torch.zeros((), dtype=torch.float64)
    for t in range(T):
        x = torch.as_tensor(prob.x[t], dtype=torch.float64)
        if b.kind == "conv":
            cur = torch.nn.functional.conv2d(x, W_hat, bias, padding=b.kernel_size // 2)
        else:
            cur = x @ W_hat.T + (0 if bias is None else bias)
        u = lif.leak * (u - r * o_prev) + cur  # o_prev is a constant: the reset is detached
        o = spike(u, torch.as_tensor(prob.o[t], dtype=torch.float64))
        if t >= start:
            total = total + _torch_local_loss(torch, prob, o)
        o_prev = torch.as_tensor(prob.o[t], dtype=torch.float64)
    total.backward()
    return {k: v.grad.numpy().copy() if v.grad is not None else np.zeros(v.shape) for k, v in leaves.items()}


# ------------------------------------------------------ finite-difference oracle
def _max_route(dropped: np.ndarray, p: int) -> np.ndarray:
    """Per window, the index of its FIRST maximal element (row-major) — the spec's tie rule."""
    b, c, h, w = dropped.shape
    oh, ow = h // p, w // p
    win = dropped[:, :, : oh * p, : ow * p].reshape(b, c, oh, p, ow, p).transpose(0, 1, 2, 4, 3, 5)
    return np.argmax(win.reshape(b, c, oh, ow, p * p), axis=-1)


def _routed_max_pool(dropped: np.ndarray, p: int, route: np.ndarray) -> np.ndarray:
    b, c, h, w = dropped.shape
    oh, ow = h // p, w // p
    win = dropped[:, :, : oh * p, : ow * p].reshape(b, c, oh, p, ow, p).transpose(0, 1, 2, 4, 3, 5)
    return np.take_along_axis(win.reshape(b, c, oh, ow, p * p), route[..., None], axis=-1)[..., 0]


def _np_local_loss(prob: BlockProblem, o: np.ndarray, route: np.ndarray | None = None) -> float:
    """``L_l`` at spikes ``o``; with ``route``, max pooling picks the routed elements (smooth in o)."""
    b = prob.block
    k = prob.config.lsg_pool(prob.index)
    dropped = o if prob.mask is None else o * prob.mask
    if dropped.ndim == 4 and b.pool == "max":
        pooled = _routed_max_pool(dropped, b.pool_size, _max_route(dropped, b.pool_size) if route is None else route)
    else:
        pooled = pool_forward(dropped, b.pool, b.pool_size) if dropped.ndim == 4 else dropped
    a = adaptive_avg_pool(pooled, k)
    z = a @ prob.basis_scaled().T / prob.config.lsg.temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(prob.y)), prob.y].mean())


def _route_of(prob: BlockProblem, o: np.ndarray) -> np.ndarray | None:
    b = prob.block
    if o.ndim == 4 and b.pool == "max":
        return _max_route(o if prob.mask is None else o * prob.mask, b.pool_size)
    return None


def _fd(f, x: np.ndarray, h: float) -> np.ndarray:  # noqa: ANN001
    """Central differences ``(f(x + h·e_j) - f(x - h·e_j)) / 2h`` for every element j of ``x`` (in place, restored)."""
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        old = flat[j]
        flat[j] = old + h
        fp = f()
        flat[j] = old - h
        fm = f()
        flat[j] = old
        gf[j] = (fp - fm) / (2 * h)
    return g


def _fd_lsg_grad(prob: BlockProblem, t: int) -> tuple[float, np.ndarray]:
    o = prob.o[t].astype(np.float64).copy()
    route = _route_of(prob, o)
    return _np_local_loss(prob, o), _fd(lambda: _np_local_loss(prob, o, route), o, FD_STEP_SPIKES)


def _membranes(prob: BlockProblem, own: dict[str, np.ndarray]) -> list[np.ndarray]:
    """u[t] of the block from its parameters ``own``, with the recorded spikes' reset held constant."""
    cfg, i, b = prob.config, prob.index, prob.block
    lif = cfg.lif
    r = reset_amount(lif, cfg.profile, b.kind)
    W = own[f"blocks.{i}.weight"]
    W_hat = standardize(W, own[f"blocks.{i}.gain"]) if b.weight_std else W
    bias = own.get(f"blocks.{i}.bias")
    u = np.zeros(prob.o.shape[1:])
    us = []
    for t in range(cfg.train.T):
        if b.kind == "conv":
            cur = conv2d(prob.x[t], W_hat)
            cur = cur if bias is None else cur + bias[None, :, None, None]
        else:
            cur = prob.x[t] @ W_hat.T + (0 if bias is None else bias)
        o_prev = prob.o[t - 1] if t else 0.0
        if lif.reset == "soft":
            u = lif.leak * (u - r * o_prev) + cur
        else:
            u = lif.leak * u * (1 - o_prev) + cur
        us.append(u)
    return us


def _fd_weight_grad(prob: BlockProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    cfg, i = prob.config, prob.index
    own = {k: v.astype(np.float64).copy() for k, v in params.items() if k.startswith(f"blocks.{i}.")}
    base = _membranes(prob, own)
    start = cfg.train.window_start
    slopes = [spec_psi(cfg.psi_name(i), base[t], cfg.lif.theta) for t in range(cfg.train.T)]
    routes = [_route_of(prob, prob.o[t]) for t in range(cfg.train.T)]

    def loss() -> float:
        us = _membranes(prob, own)
        return sum(_np_local_loss(prob, prob.o[t] + slopes[t] * (us[t] - base[t]), routes[t])
                   for t in range(start, cfg.train.T))

    return {k: _fd(loss, v, FD_STEP_WEIGHTS) for k, v in own.items()}


# ----------------------------------------------------------------------- API
def lsg_grad(prob: BlockProblem, t: int) -> tuple[float, np.ndarray]:
    """``(L_l[t], ∂L_l[t]/∂o[t])`` of block ``prob.index`` at its recorded spikes (oracle in use)."""
    return _torch_lsg_grad(prob, t) if selected() == "autodiff" else _fd_lsg_grad(prob, t)


def local_loss_weight_grad(prob: BlockProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradient of ``Σ_{t in window} L_l[t]`` w.r.t. the block's parameters through
    time (reset detached, spike slope ψ at the recorded membrane), keyed like ``params``."""
    return _torch_weight_grad(prob, params) if selected() == "autodiff" else _fd_weight_grad(prob, params)


def window_loss(prob: BlockProblem) -> float:
    """``Σ_{t in window} L_l[t]`` at the recorded spikes: the value whose rounding bounds a
    finite-difference gradient's error (the scale of its absolute tolerance)."""
    cfg = prob.config
    return float(sum(_np_local_loss(prob, prob.o[t].astype(np.float64)) for t in range(cfg.train.window_start,
                                                                                      cfg.train.T)))


def block_inputs(config: TessConfig, x: np.ndarray, record: dict, masks: list) -> list[np.ndarray]:
    """Every block's input per step ``(T, B, *input)`` rebuilt from the batch and the
    record's spikes (``pool(mask ⊙ o)`` of the previous block; flattened for linear)."""
    T = config.train.T
    seq = x.ndim == len(config.network.input_shape) + 2
    frames = np.stack([x[:, t] if seq else x for t in range(T)]).astype(np.float64)
    out = []
    cur = frames
    for i, b in enumerate(config.network.blocks):
        xi = cur.reshape(T, cur.shape[1], -1) if b.kind == "linear" else cur
        out.append(xi)
        o = np.asarray(record["o"][i], dtype=np.float64)
        m = masks[i] if masks is not None else None
        dropped = o if m is None else o * np.asarray(m, dtype=np.float64)[None]
        cur = np.stack([pool_forward(dropped[t], b.pool, b.pool_size) if dropped.ndim == 5 else dropped[t]
                        for t in range(T)])
    return out


# ------------------------------------------- readout back-propagation (TESS_RULE.md §11)
@dataclass
class ReadoutProblem:
    """Block ``index`` of a recorded run under readout back-propagation, float64 NumPy.

    ``x``: the block's input per step ``(T, B, *input)`` (a constant); ``o``: every block's
    recorded spikes (list over blocks of ``(T, B, *neurons)``); ``masks``: every block's
    dropout mask or ``None``; ``y``: labels.
    """

    config: TessConfig
    index: int
    x: np.ndarray
    o: list[np.ndarray]
    masks: list[np.ndarray | None]
    y: np.ndarray


def _np_w_hat(config: TessConfig, i: int, params: dict[str, np.ndarray]) -> np.ndarray:
    b = config.network.blocks[i]
    W = params[f"blocks.{i}.weight"]
    return standardize(W, params[f"blocks.{i}.gain"]) if b.weight_std else W


def _np_current(kind: str, x: np.ndarray, w_hat: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if kind == "conv":
        cur = conv2d(x, w_hat)
        return cur if bias is None else cur + bias[None, :, None, None]
    return x @ w_hat.T + (0 if bias is None else bias)


def _np_pool(b, dropped: np.ndarray, route: np.ndarray | None) -> np.ndarray:  # noqa: ANN001
    if dropped.ndim != 4:
        return dropped
    if b.pool == "max":
        return _routed_max_pool(dropped, b.pool_size, route)
    return pool_forward(dropped, b.pool, b.pool_size)


def _np_ce(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def _np_readout_loss(prob: ReadoutProblem, params: dict[str, np.ndarray], own: dict[str, np.ndarray] | None,
                     base: dict | None = None) -> tuple[float, dict]:
    """``Σ_window CE(logits[t], y)`` with block ``index``'s parameters ``own`` (``None``: as in
    ``params``), every spike linearised at ``base`` (``o_rec + ψ(u₀)·(u - u₀)``, max pooling
    routed as the recorded spikes route it) and every later block's previous state constant.
    Returns the loss and (when ``base`` is ``None``) the base point it defines."""
    from tess_spec.neuron import lif_step

    cfg, l = prob.config, prob.index
    blocks, lif = cfg.network.blocks, cfg.lif
    T, start = cfg.train.T, cfg.train.window_start
    merged = dict(params) if own is None else {**params, **own}
    w_hat = {k: _np_w_hat(cfg, k, merged) for k in range(l, len(blocks))}
    defining = base is None
    if defining:
        base = {"u": {}, "I": {}, "routes": {}}
    u_l = np.zeros(prob.o[l].shape[1:])
    u_prev = {k: np.zeros(prob.o[k].shape[1:]) for k in range(l + 1, len(blocks))}
    total = 0.0
    for t in range(T):
        b = blocks[l]
        cur = _np_current(b.kind, prob.x[t], w_hat[l], merged.get(f"blocks.{l}.bias"))
        o_prev = prob.o[l][t - 1] if t else np.zeros_like(u_l)
        u_l = lif_step(u_l, o_prev, cur, leak=lif.leak, reset=lif.reset,
                       amount=reset_amount(lif, cfg.profile, b.kind))  # the recorded reset: a constant
        if defining:
            base["u"][l, t] = u_l
        o = prob.o[l][t] + spec_psi(cfg.psi_name(l), base["u"][l, t], lif.theta) * (u_l - base["u"][l, t])
        for k in range(l, len(blocks)):
            bk = blocks[k]
            if k > l:
                xin = out.reshape(out.shape[0], -1) if bk.kind == "linear" else out  # noqa: F821
                cur_k = _np_current(bk.kind, xin, w_hat[k], merged.get(f"blocks.{k}.bias"))
                if defining:
                    o_kprev = prob.o[k][t - 1] if t else np.zeros_like(cur_k)
                    base["u"][k, t] = lif_step(u_prev[k], o_kprev, cur_k, leak=lif.leak, reset=lif.reset,
                                               amount=reset_amount(lif, cfg.profile, bk.kind))
                    u_prev[k] = base["u"][k, t]
                    base["I"][k, t] = cur_k
                # u_k[t] = const(u_k[t-1], o_k[t-1]) + I_k[t]: only the current moves
                o = prob.o[k][t] + spec_psi(cfg.psi_name(k), base["u"][k, t], lif.theta) * (cur_k - base["I"][k, t])
            mk = prob.masks[k]
            dropped = o if mk is None else o * mk
            if defining and dropped.ndim == 4 and bk.pool == "max":
                rec = prob.o[k][t] if mk is None else prob.o[k][t] * mk
                base["routes"][k, t] = _max_route(rec, bk.pool_size)
            out = _np_pool(bk, dropped, base["routes"].get((k, t)))
        if t >= start:
            feats = out.mean(axis=(2, 3)) if out.ndim == 4 else out
            logits = feats @ params["readout.weight"].T + (params["readout.bias"] if "readout.bias" in params else 0)
            total += _np_ce(logits, prob.y)
    return total, base


def _fd_readout_grad(prob: ReadoutProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    l = prob.index
    own = {k: v.astype(np.float64).copy() for k, v in params.items() if k.startswith(f"blocks.{l}.")}
    _, base = _np_readout_loss(prob, params, own)
    return {k: _fd(lambda: _np_readout_loss(prob, params, own, base)[0], v, FD_STEP_WEIGHTS) for k, v in own.items()}


def _torch_readout_grad(prob: ReadoutProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    F = torch.nn.functional
    cfg, l = prob.config, prob.index
    blocks, lif = cfg.network.blocks, cfg.lif
    T, start = cfg.train.T, cfg.train.window_start
    f64 = torch.float64
    tens = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=f64)  # noqa: E731
    leaves = {k: torch.tensor(v, dtype=f64, requires_grad=True) for k, v in params.items()
              if k.startswith(f"blocks.{l}.")}
    W = leaves[f"blocks.{l}.weight"]
    W_hat_l = _torch_w_hat(torch, W, leaves[f"blocks.{l}.gain"]) if blocks[l].weight_std else W
    w_hat = {k: tens(_np_w_hat(cfg, k, params)) for k in range(l + 1, len(blocks))}
    w_hat[l] = W_hat_l
    bias = {k: (leaves if k == l else {}).get(f"blocks.{k}.bias", None) for k in range(l, len(blocks))}
    for k in range(l + 1, len(blocks)):
        if f"blocks.{k}.bias" in params:
            bias[k] = tens(params[f"blocks.{k}.bias"])

    def current(k: int, x):  # noqa: ANN001, ANN202
        b = blocks[k]
        if b.kind == "conv":
            return F.conv2d(x, w_hat[k], bias[k], padding=b.kernel_size // 2)
        return x @ w_hat[k].T + (0 if bias[k] is None else bias[k])

    def pool(k: int, o):  # noqa: ANN001, ANN202
        b, mk = blocks[k], prob.masks[k]
        dropped = o if mk is None else o * tens(mk)
        if dropped.ndim != 4 or b.pool is None:
            return dropped
        if b.pool == "max":
            return F.max_pool2d(dropped, b.pool_size)
        if b.pool == "avg":
            return F.avg_pool2d(dropped, b.pool_size)
        return dropped.mean(dim=(2, 3), keepdim=True)

    def lif_u(k: int, u_prev, o_prev, cur):  # noqa: ANN001, ANN202
        r = reset_amount(lif, cfg.profile, blocks[k].kind)
        if lif.reset == "soft":
            return lif.leak * (u_prev - r * o_prev) + cur
        return lif.leak * u_prev * (1 - o_prev) + cur

    spikes = {k: _torch_spike(torch, cfg.psi_name(k), lif.theta) for k in range(l, len(blocks))}
    u = {k: torch.zeros(prob.o[k].shape[1:], dtype=f64) for k in range(l, len(blocks))}
    total = torch.zeros((), dtype=f64)
    W_r = tens(params["readout.weight"])
    b_r = tens(params["readout.bias"]) if "readout.bias" in params else None
    for t in range(T):
        out = None
        for k in range(l, len(blocks)):
            x = tens(prob.x[t]) if k == l else (out.flatten(1) if blocks[k].kind == "linear" else out)
            o_prev = tens(prob.o[k][t - 1]) if t else torch.zeros_like(u[k])  # the reset: a constant
            u_prev = u[k] if k == l else u[k].detach()  # later blocks: previous step a constant
            u[k] = lif_u(k, u_prev, o_prev, current(k, x))
            out = pool(k, spikes[k](u[k], tens(prob.o[k][t])))
        if t >= start:
            feats = out.mean(dim=(2, 3)) if out.ndim == 4 else out
            logits = feats @ W_r.T + (0 if b_r is None else b_r)
            total = total + F.cross_entropy(logits, torch.as_tensor(prob.y, dtype=torch.int64))
    total.backward()
    return {k: v.grad.numpy().copy() if v.grad is not None else np.zeros(v.shape) for k, v in leaves.items()}


def readout_loss_weight_grad(prob: ReadoutProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradient of ``Σ_{t in window} CE(logits[t], y)`` w.r.t. block ``prob.index``'s parameters
    in the graph of :mod:`tess_spec.signals` (the block's own membrane recursion with the reset
    a constant, its input a constant, every later block's previous step a constant, spike
    slope ψ), keyed like the block's entries of ``params`` (every parameter, float64)."""
    return _torch_readout_grad(prob, params) if selected() == "autodiff" else _fd_readout_grad(prob, params)


def readout_window_loss(prob: ReadoutProblem, params: dict[str, np.ndarray]) -> float:
    """``Σ_{t in window} CE(logits[t], y)`` at the recorded spikes: the scale of a
    finite-difference gradient's rounding (its absolute tolerance)."""
    return _np_readout_loss(prob, params, None)[0]
