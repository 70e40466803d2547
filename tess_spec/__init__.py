"""The TESS specification: configs, state shapes and the update equations as small
pure NumPy functions.  Run in float64 they are the oracle every backend is tested
against.  Imports no framework but NumPy."""

from __future__ import annotations

from . import errors, lsg, neuron, ops, optim, plan, readout, reference, signals, traces, update, weight_std
from .config import (
    LEARNING_SIGNALS,
    PROFILES,
    PSI_NAMES,
    BlockConfig,
    LIFConfig,
    LSGConfig,
    NetworkConfig,
    OptimizerConfig,
    ReadoutConfig,
    ScheduleConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from .init import draw_dropout_masks, init_opt_state, init_params, make_rng, param_names, param_shapes
from .presets import PRESETS, cnn_digits, get_preset, mlp_digits, mlp_events, vgg9
from .shapes import STATE_NAMES, BlockShapes, block_shapes, state_nbytes, state_shapes
from .validate import validate_batch

SPEC_VERSION = "1.0.0"
"""Version of the rule as specified here; recorded in golden traces and checkpoints."""

__all__ = [
    "SPEC_VERSION",
    "LEARNING_SIGNALS",
    "PROFILES",
    "PSI_NAMES",
    "STATE_NAMES",
    "BlockConfig",
    "BlockShapes",
    "LIFConfig",
    "LSGConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "ReadoutConfig",
    "ScheduleConfig",
    "TessConfig",
    "TraceConfig",
    "TrainConfig",
    "PRESETS",
    "block_shapes",
    "cnn_digits",
    "draw_dropout_masks",
    "errors",
    "from_dict",
    "get_preset",
    "init_opt_state",
    "init_params",
    "lsg",
    "make_rng",
    "mlp_digits",
    "mlp_events",
    "neuron",
    "ops",
    "optim",
    "param_names",
    "param_shapes",
    "plan",
    "readout",
    "reference",
    "signals",
    "state_nbytes",
    "state_shapes",
    "to_dict",
    "traces",
    "update",
    "validate_batch",
    "vgg9",
    "weight_std",
]
