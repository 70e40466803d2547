"""The BPTT baseline (TESS_RULE.md §10): the same network and LIF dynamics as TESS,
trained end to end by backpropagation through time with PyTorch autograd.

* The spike ``o = H(u - θ)`` (strict) is a custom :class:`torch.autograd.Function`
  whose derivative is the block's surrogate ψ (:data:`tess_spec.PSI_NAMES`).
* The loss is the cross-entropy of the time-summed readout logits
  ``L = CE(Σ_t logits[t], y)``; every block's weights, gains and biases and the
  readout are trained from it by one optimiser (Adam by default, the config's
  settings; the plateau schedule as in :class:`tess.Model`).
* Weight standardisation is part of the graph; dropout masks, initial parameters
  and shuffling come from the spec's single generator in the same order as
  :class:`tess.Model`, so a TESS run and a BPTT run with the same seed see the same
  initial weights and batches.
* The soft reset is differentiated through (``detach_reset=False``); pass
  ``detach_reset=True`` to treat the reset as a constant.

Its memory grows linearly with T (autograd keeps every step's activations);
that is the point of comparison.

    >>> from tess.bptt import BPTTModel
    >>> from tess_spec import mlp_digits
    >>> model = BPTTModel(mlp_digits(epochs=1))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from tess_spec import TessConfig, draw_dropout_masks, init_params, make_rng
from tess_spec.errors import BackendUnavailableError, ConfigError, DataError
from tess_spec.neuron import reset_amount
from tess_spec.optim import PlateauState
from tess_spec.validate import validate_batch

from .model import ArrayDataset, EpochLoop, EpochMetrics

try:  # torch is an optional dependency: fail on use, with the extra to install
    import torch
    import torch.nn.functional as F
except ModuleNotFoundError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]
    F = None  # type: ignore[assignment]

__all__ = ["SpikeFunction", "unroll", "BPTTOutput", "BPTTModel", "fit_bptt", "train_cli"]

log = logging.getLogger(__name__)


def _require_torch() -> None:
    if torch is None:
        raise BackendUnavailableError(
            "the BPTT baseline needs PyTorch, which is not installed; install it with: pip install 'tess[torch]'"
        )


def _psi(name: str, u: "torch.Tensor", theta: float) -> "torch.Tensor":
    """Surrogate derivative ψ(u) by name (the spec's formulas, on tensors)."""
    r = (u - theta).abs()
    if name == "triangle":
        return 0.3 * torch.clamp(1 - r, min=0)
    if name == "fast_sigmoid":
        return 1 / (100 * r + 1) ** 2
    raise ConfigError(f"psi={name!r} is invalid: expected 'triangle' or 'fast_sigmoid'")


if torch is not None:

    class SpikeFunction(torch.autograd.Function):
        """``o = 1[u > θ]`` forward; ``∂o/∂u := ψ(u)`` backward (the surrogate gradient).

        Call as ``SpikeFunction.apply(u, theta, psi_name)``.
        """

        @staticmethod
        def forward(ctx: Any, u: "torch.Tensor", theta: float, psi_name: str) -> "torch.Tensor":  # noqa: D102
            ctx.save_for_backward(u)
            ctx.theta, ctx.psi_name = theta, psi_name
            return (u > theta).to(u.dtype)

        @staticmethod
        def backward(ctx: Any, grad: "torch.Tensor") -> tuple[Any, None, None]:  # noqa: D102
            (u,) = ctx.saved_tensors
            return grad * _psi(ctx.psi_name, u, ctx.theta), None, None

else:  # pragma: no cover

    class SpikeFunction:  # type: ignore[no-redef]
        """Placeholder when torch is missing (using it raises)."""

        @staticmethod
        def apply(*args: Any) -> Any:
            """Raise :class:`~tess.errors.BackendUnavailableError`."""
            _require_torch()


def _standardize(weight: "torch.Tensor", gain: "torch.Tensor") -> "torch.Tensor":
    """Weight standardisation, differentiable: ``g_c (W_c - mean) / sqrt(var_unbiased · n + 1e-4)``."""
    f = weight.shape[0]
    w = weight.reshape(f, -1)
    n = w.shape[1]
    d = w - w.mean(dim=1, keepdim=True)
    var = (d * d).sum(dim=1, keepdim=True) / max(n - 1, 1)
    return (gain[:, None] * d / torch.sqrt(var * n + 1e-4)).reshape(weight.shape)


def _pool(x: "torch.Tensor", kind: str | None, p: int) -> "torch.Tensor":
    if kind is None:
        return x
    if kind == "global_avg":
        return x.mean(dim=(2, 3), keepdim=True)
    if kind == "max":  # autograd routes to torch's argmax: the first maximum, row-major
        return F.max_pool2d(x, p, p)
    return F.avg_pool2d(x, p, p)


def unroll(
    config: TessConfig,
    params: dict[str, "torch.Tensor"],
    x: "torch.Tensor",
    masks: Sequence["torch.Tensor | None"] | None = None,
    *,
    spike: Callable[..., "torch.Tensor"] | None = None,
    detach_reset: bool = False,
) -> "torch.Tensor":
    """Run the network for T steps and return the per-step logits ``(T, B, n_classes)``.

    Differentiable end to end (autograd records every step).  Per block and step:
    ``I = Ŵ·x (+ b)``; ``u = γ(u - r·o) + I`` (soft) or ``γ·u·(1 - o) + I`` (hard);
    ``o = spike(u, θ, ψ-name)``; the block passes ``pool(mask ⊙ o)`` on.  Readout:
    ``logits[t] = W_r · globalavg(out_L[t]) + b_r``.  ``spike`` defaults to
    :class:`SpikeFunction` (``.apply``); ``detach_reset`` stops the gradient through
    the reset term.
    """
    _require_torch()
    net, lif = config.network, config.lif
    spike_fn = spike or SpikeFunction.apply
    masks = list(masks) if masks is not None else [None] * len(net.blocks)
    sequence = x.dim() == len(net.input_shape) + 2
    n = x.shape[0]
    w_hat = []
    for i, b in enumerate(net.blocks):
        w = params[f"blocks.{i}.weight"]
        w_hat.append(_standardize(w, params[f"blocks.{i}.gain"]) if b.weight_std else w)
    u: list[Any] = [None] * len(net.blocks)
    o: list[Any] = [None] * len(net.blocks)
    steps = []
    for t in range(config.train.T):
        inp = x[:, t] if sequence else x
        for i, b in enumerate(net.blocks):
            bias = params.get(f"blocks.{i}.bias")
            if b.kind == "conv":
                cur = F.conv2d(inp, w_hat[i], bias, padding=b.kernel_size // 2)
            else:
                cur = F.linear(inp.reshape(n, -1), w_hat[i], bias)
            if u[i] is None:  # u[-1] = 0, o[-1] = 0
                ui = cur
            else:
                o_prev = o[i].detach() if detach_reset else o[i]
                if lif.reset == "soft":
                    ui = lif.leak * (u[i] - reset_amount(lif, config.profile, b.kind) * o_prev) + cur
                else:
                    ui = lif.leak * u[i] * (1 - o_prev) + cur
            u[i] = ui
            o[i] = spike_fn(ui, lif.theta, config.psi_name(i))
            dropped = o[i] if masks[i] is None else o[i] * masks[i]
            inp = _pool(dropped, b.pool, b.pool_size)
        feats = inp.mean(dim=(2, 3)) if inp.dim() == 4 else inp
        steps.append(F.linear(feats, params["readout.weight"], params.get("readout.bias")))
    return torch.stack(steps)


@dataclass(frozen=True)
class BPTTOutput:
    """Result of :meth:`BPTTModel.train_batch`: the loss (before the update) and the
    number of samples whose time-summed logits predict the label."""

    loss: float
    n_correct: int


class BPTTModel(EpochLoop):
    """A network trained by BPTT with surrogate gradients (the TESS comparison baseline).

    Args:
        config: the same :class:`tess_spec.TessConfig` a TESS run uses (network, LIF,
            ψ per block, T, optimiser, schedule, seed, dtype).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: ``"float32"`` / ``"float64"``; default ``config.train.dtype``.
        params: NumPy initial parameters; default: drawn from ``config.train.seed``
            exactly as :class:`tess.Model` draws them.
        detach_reset: treat the reset term as a constant in the backward pass.
    """

    def __init__(
        self,
        config: TessConfig,
        *,
        device: str | None = None,
        dtype: str | None = None,
        params: dict[str, np.ndarray] | None = None,
        detach_reset: bool = False,
    ) -> None:
        _require_torch()
        from tess.backends.torch import torch_device, torch_dtype

        if not isinstance(config, TessConfig):
            raise ConfigError(f"config must be a tess_spec.TessConfig, got {type(config).__name__}")
        self.config = config
        self.dtype = dtype or config.train.dtype
        self.torch_dtype = torch_dtype(self.dtype)
        self.device = torch_device(device)
        self.detach_reset = bool(detach_reset)
        self.rng = make_rng(config.train.seed)
        np_params = init_params(config, self.rng) if params is None else params
        self.params: dict[str, torch.Tensor] = {
            k: torch.tensor(np.asarray(v), dtype=self.torch_dtype, device=self.device).requires_grad_(True)
            for k, v in np_params.items()
        }
        oc = config.optimizer
        if oc.name == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                list(self.params.values()), lr=oc.lr, betas=oc.betas, eps=oc.eps, weight_decay=oc.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                list(self.params.values()), lr=oc.lr, momentum=oc.momentum, weight_decay=oc.weight_decay
            )
        self.schedule = PlateauState(lr=oc.lr)
        self.epoch = 0
        self.history: list[EpochMetrics] = []

    def _tensor(self, a: np.ndarray) -> "torch.Tensor":
        a = np.asarray(a)
        if self.device.type == "cpu" and a.dtype == np.dtype(self.dtype) and a.flags.c_contiguous and a.flags.writeable:
            return torch.from_numpy(a)  # shared: an input sequence is O(T) data, do not copy it
        return torch.as_tensor(np.ascontiguousarray(a, dtype=self.dtype), device=self.device)

    def loss(
        self, x: np.ndarray, y: np.ndarray, masks: Sequence[np.ndarray | None] | None = None
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """``(L, summed_logits)`` with ``L = CE(Σ_t logits[t], y)`` as a differentiable tensor."""
        validate_batch(self.config, x, y)
        xt = self._tensor(x)
        mt = None if masks is None else [None if m is None else self._tensor(m) for m in masks]
        summed = unroll(self.config, self.params, xt, mt, detach_reset=self.detach_reset).sum(dim=0)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=self.device)
        return F.cross_entropy(summed, yt), summed

    def gradients(
        self, x: np.ndarray, y: np.ndarray, masks: Sequence[np.ndarray | None] | None = None
    ) -> dict[str, np.ndarray]:
        """The BPTT gradient ``∂L/∂θ`` of every parameter as NumPy (no optimiser step)."""
        loss, _ = self.loss(x, y, masks)
        grads = torch.autograd.grad(loss, list(self.params.values()))
        return {k: g.detach().cpu().numpy() for k, g in zip(self.params, grads)}

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> BPTTOutput:
        """One mini-batch: draw dropout masks from the model's generator, backpropagate
        through time, take one optimiser step."""
        masks = draw_dropout_masks(self.config, int(np.shape(x)[0]), self.rng, self.dtype)
        loss, summed = self.loss(x, y, masks)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        yt = torch.as_tensor(np.asarray(y), device=self.device)
        return BPTTOutput(float(loss.detach()), int((summed.detach().argmax(dim=1) == yt).sum()))

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Time-summed logits ``(N, n_classes)`` (no dropout), computed in batches."""
        x = np.asarray(x)
        if x.shape[:1] == (0,):
            raise DataError("cannot predict on an empty array")
        parts = []
        with torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                xb = x[s : s + batch_size]
                validate_batch(self.config, xb)
                parts.append(unroll(self.config, self.params, self._tensor(xb)).sum(dim=0).cpu().numpy())
        return np.concatenate(parts, axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tuple[float, float]:
        """``(loss, accuracy)`` of the time-summed logits on ``(x, y)``."""
        y = np.asarray(y)
        logits = self.predict(x, batch_size).astype(np.float64)
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean()), float((logits.argmax(axis=1) == y).mean())

    def numpy_params(self) -> dict[str, np.ndarray]:
        """Current parameters as NumPy arrays."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.params.items()}


def fit_bptt(
    config: TessConfig,
    train: ArrayDataset,
    test: ArrayDataset | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    detach_reset: bool = False,
    on_batch: Callable[[int, int, BPTTOutput], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> BPTTModel:
    """Build a :class:`BPTTModel` and train it for ``config.train.epochs`` epochs."""
    model = BPTTModel(config, device=device, dtype=dtype, detach_reset=detach_reset)
    model.fit(train, test, on_batch=on_batch, on_epoch=on_epoch)
    return model


def train_cli(
    config: TessConfig,
    backend_name: str,
    backend_options: dict[str, Any],
    train: ArrayDataset,
    test: ArrayDataset | None,
    on_batch: Callable[[int, int, Any], None] | None,
) -> list[dict[str, Any]]:
    """``tess train --method bptt``: train the baseline and return the epoch metric dicts.

    BPTT needs autograd, so it runs on PyTorch only: ``--backend torch`` (with
    ``--device``/``--dtype`` as usual).  This is the CLI's hook, so it prints one
    line per epoch like the TESS path of the CLI does.
    """
    if backend_name != "torch":
        raise ConfigError(
            f"--method bptt runs on PyTorch autograd, not on backend {backend_name!r}; pass --backend torch"
        )
    opts = dict(backend_options)
    unknown = set(opts) - {"dtype", "device"}
    if unknown:
        raise ConfigError(f"--method bptt does not accept backend options {sorted(unknown)}")

    def on_epoch(m: EpochMetrics) -> None:
        print(f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  train {100 * m.train_accuracy:6.2f}%  "
              f"test {100 * (m.test_accuracy or 0):6.2f}%  lr {m.lr:.2e}  {m.seconds:.1f}s  [bptt]", flush=True)

    model = BPTTModel(config, device=opts.get("device"), dtype=opts.get("dtype"))
    return [m.to_dict() for m in model.fit(train, test, on_batch=on_batch, on_epoch=on_epoch)]
