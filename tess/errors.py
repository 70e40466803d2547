"""User-facing error classes (re-exported from :mod:`tess_spec.errors`)."""

from tess_spec.errors import (
    BackendNotFoundError,
    BackendUnavailableError,
    CheckpointError,
    ConfigError,
    DataError,
    DivergenceError,
    OutputError,
    ShapeError,
    TessError,
    WorkerError,
)

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
