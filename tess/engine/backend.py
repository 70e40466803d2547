"""The backend that drives the engine: a :class:`tess.Backend` whose train step and
prediction are the engine's, run on the backend's :class:`~tess.engine.Kernels`.

A backend built on it provides conversions (``asarray``, ``to_numpy``) and a kernels
class; everything between the user-facing :meth:`~tess.Backend.train_batch` and the
kernels — flat names ↔ typed parameters, the plan and the LSG matrices (cached per
config), Adam's bias corrections, the loss and accuracy, the final state in the
spec's layout, the record — is here, once.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from tess.backend import Backend, TrainOutput
from tess_spec import TessConfig
from tess_spec.plan import NetworkPlan, lsg_matrices, network_plan

from .kernels import Kernels
from .record import assemble_record
from .train import TrainResult, adam_corrections, predict, train_batch
from .types import Params, Totals, params_from_flat, params_to_flat

__all__ = ["EngineBackend"]


class EngineBackend(Backend):
    """A backend made of a :class:`~tess.engine.Kernels` implementation (see the
    "Write your own backend" page); subclasses set :attr:`kernels_class` (or override
    :meth:`make_kernels`) and implement :meth:`asarray` / :meth:`to_numpy`.

    Attributes:
        kernels: this backend's kernels (built by :meth:`make_kernels`).
    """

    kernels_class: ClassVar[type[Kernels]] = Kernels
    """The :class:`~tess.engine.Kernels` subclass :meth:`make_kernels` instantiates."""

    def __init__(self, *, dtype: str = "float32", device: str | None = None, method: str = "tess") -> None:
        super().__init__(dtype=dtype, device=device, method=method)
        self.kernels: Kernels = self.make_kernels()
        self._cache: dict[tuple[str, int], tuple[TessConfig, Any]] = {}

    def make_kernels(self) -> Kernels:
        """This backend's kernels: ``kernels_class(dtype)`` (override to pass a device)."""
        return self.kernels_class(self.dtype)

    # -- per-config constants (cached by config identity) -----------------------------
    def cached(self, config: TessConfig, what: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per config object and ``what`` (a config is immutable)."""
        key = (what, id(config))
        hit = self._cache.get(key)
        if hit is None or hit[0] is not config:
            hit = (config, build())
            self._cache[key] = hit
        return hit[1]

    def plan(self, config: TessConfig) -> NetworkPlan:
        """The config's :class:`~tess_spec.plan.NetworkPlan` (cached)."""
        return self.cached(config, "plan", lambda: network_plan(config))

    def lsg(self, config: TessConfig) -> tuple[Any, ...]:
        """Per block, the fused LSG matrix ``(n_classes, D)`` as this backend's array, columns
        in the kernels' layout (cached)."""
        def build() -> tuple[Any, ...]:
            out = []
            for M in lsg_matrices(config):
                if self.kernels.layout == "NHWC" and M.ndim == 4:
                    M = M.transpose(0, 2, 3, 1)
                out.append(self.asarray(np.ascontiguousarray(M.reshape(M.shape[0], -1))))
            return tuple(out)

        return self.cached(config, "lsg", build)

    # -- boundary conversions -------------------------------------------------------------
    def moments(self, plan: NetworkPlan, opt_state: dict[str, Any]) -> dict[str, Params]:
        """The optimiser moments of a flat optimiser state (``m``/``v`` or ``buf``), typed."""
        return {k: params_from_flat(plan, v) for k, v in opt_state.items() if k != "step"}

    def reduce(self, grads: Params, totals: Totals) -> tuple[Params, Totals]:
        """The engine's ``reduce`` hook: identity (one worker).  A data-parallel backend sums
        the gradients and the totals across workers here."""
        return grads, totals

    # -- the train step and prediction --------------------------------------------------------
    def _train_batch(
        self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: Any, y: np.ndarray,
        masks: list[Any], lr: float, record: bool,
    ) -> TrainOutput:
        plan = self.plan(config)
        step = int(opt_state["step"]) + 1
        res = train_batch(
            self.kernels, plan, params_from_flat(plan, params), self.moments(plan, opt_state), x,
            self.kernels.labels(y), masks, lr=lr, corrections=adam_corrections(config.optimizer, step),
            lsg=self.lsg(config), record=record, reduce=self.reduce,
        )
        return self.train_output(plan, res, step, int(x.shape[0]), record)

    def train_output(self, plan: NetworkPlan, res: TrainResult, step: int, n: int, record: bool) -> TrainOutput:
        """The :class:`~tess.TrainOutput` of an engine result: flat parameters and optimiser
        state, host loss (mean over the ``n`` real samples) and accuracy, the final state
        in the spec's layout (rows beyond ``n`` dropped), the assembled record."""
        K = self.kernels
        loss = float(K.to_numpy(res.totals.loss_sum)) / n
        n_correct = int(round(float(K.to_numpy(res.totals.n_correct))))
        state = []
        for s in res.state:
            d = {k: K.from_layout(v) for k, v in s._asdict().items() if v is not None}
            state.append({k: v[:n] for k, v in d.items()} if s.u.shape[0] != n else d)
        opt: dict[str, Any] = {"step": step, **{k: params_to_flat(plan, v) for k, v in res.moments.items()}}
        rec = assemble_record(K, plan, res, n, loss, n_correct, state) if record else None
        return TrainOutput(params_to_flat(plan, res.params), opt, loss, n_correct, state, rec)

    def _predict(self, config: TessConfig, params: dict[str, Any], x: Any) -> Any:
        plan = self.plan(config)
        return predict(self.kernels, plan, params_from_flat(plan, params), x)
