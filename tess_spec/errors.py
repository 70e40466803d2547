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
