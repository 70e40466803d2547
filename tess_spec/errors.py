"""Error classes for every user-facing failure of tess.

They live in the specification package so that configuration validation
(which belongs to the spec) can raise them without importing ``tess``;
``tess.errors`` re-exports the same classes.  Every class subclasses a builtin
(``ValueError`` or ``TypeError`` or ``ImportError``) so that generic handlers
keep working.
"""

from __future__ import annotations

__all__ = [
    "TessError",
    "ConfigError",
    "ShapeError",
    "DataError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "CheckpointError",
    "DivergenceError",
    "OutputError",
    "WorkerError",
]


class TessError(Exception):
    """Base class of every error raised by tess."""


class ConfigError(TessError, ValueError):
    """A configuration value is invalid (out of range, unknown name, inconsistent)."""


class ShapeError(TessError, ValueError):
    """An array's shape does not match what the network or the rule expects."""


class DataError(TessError, ValueError):
    """Input data is unusable: NaN/Inf values, labels out of range, empty datasets."""


class BackendNotFoundError(TessError, LookupError):
    """No backend is registered under the requested name."""


class BackendUnavailableError(TessError, ImportError):
    """A backend is registered but cannot run here (framework or device missing)."""


class CheckpointError(TessError, ValueError):
    """A checkpoint file is corrupt, truncated or does not match the model."""


class DivergenceError(DataError):
    """Training diverged: a parameter or optimiser moment became NaN or Inf after an
    optimiser step (or the epoch's loss did).  The message names the epoch, the batch
    and the first non-finite tensor; the model keeps its parameters from before that
    step.  A :class:`DataError` subclass, so handlers of the older diverging-loss
    error still catch it."""


class OutputError(TessError, OSError):
    """An output file cannot be written: its folder is missing or read-only, the path
    is a directory, a device, a symbolic link or another non-regular file, its
    extension is not the expected one, or the disk is full.  The message names the
    path; nothing is left half-written.  An :class:`OSError` subclass, so generic
    ``except OSError`` handlers keep working."""


class WorkerError(TessError, RuntimeError):
    """A worker of a data-parallel run failed, was killed or became unreachable (a
    collective operation failed or timed out).  The message names the rank; the other
    workers are stopped and the last checkpoint, written after a finished epoch, is
    intact.  A :class:`RuntimeError` subclass."""
