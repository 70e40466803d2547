"""The engine: TESS written once, over a small kernel protocol every backend implements.

Layers (see the "Design" page): the spec (:mod:`tess_spec`: equations, plans, the
oracle) → this engine (the algorithm: :func:`time_step`, :func:`train_batch`,
:func:`predict`) → a backend's :class:`Kernels` (its framework's arrays and
operators) → the user API (:class:`tess.Backend`, :class:`tess.Model`).

* :mod:`.types`: typed state and parameters (``NamedTuple``s, JAX pytrees as they are).
* :mod:`.kernels`: the protocol — primitives a backend must implement, coarser steps it may replace.
* :mod:`.step`: one time step (forward, readout, learning signal, accumulation).
* :mod:`.train`: a mini-batch (the loop over T, gradients, ``reduce``, optimiser) and prediction.
* :mod:`.record`: the record of a mini-batch in the oracle's layout.
* :mod:`.backend`: :class:`EngineBackend`, the :class:`tess.Backend` that drives all of it.
"""

from __future__ import annotations

from .backend import EngineBackend
from .kernels import Array, Kernels
from .record import STEP_KEYS, assemble_record
from .step import (
    SIGNALS,
    SignalFn,
    accumulate,
    forward,
    init_state,
    lsg_signals,
    readout_backprop_signals,
    record_row,
    time_step,
    zero_sums,
)
from .train import ReduceFn, TrainResult, adam_corrections, gradients, predict, prepare, totals, train_batch
from .types import (
    BlockParams,
    BlockState,
    BlockStep,
    BlockSums,
    Context,
    Params,
    ReadoutParams,
    Sums,
    Totals,
    params_from_flat,
    params_to_flat,
    tree_map,
)

__all__ = [
    "Array",
    "BlockParams",
    "BlockState",
    "BlockStep",
    "BlockSums",
    "Context",
    "EngineBackend",
    "Kernels",
    "Params",
    "ReadoutParams",
    "ReduceFn",
    "SIGNALS",
    "STEP_KEYS",
    "SignalFn",
    "Sums",
    "Totals",
    "TrainResult",
    "accumulate",
    "adam_corrections",
    "assemble_record",
    "forward",
    "gradients",
    "init_state",
    "lsg_signals",
    "params_from_flat",
    "params_to_flat",
    "predict",
    "prepare",
    "readout_backprop_signals",
    "record_row",
    "time_step",
    "totals",
    "train_batch",
    "tree_map",
    "zero_sums",
]
