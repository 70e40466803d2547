"""User-facing error classes (re-exported from :mod:`tess_spec.errors`)."""

from tess_spec.errors import (
    BackendNotFoundError,
    BackendUnavailableError,
    CheckpointError,
    ConfigError,
    DataError,
    ShapeError,
    TessError,
)

__all__ = [
    "TessError",
    "ConfigError",
    "ShapeError",
    "DataError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "CheckpointError",
]
