"""Backend registry: built-in backends by name, third-party ones through the
``tess.backends`` entry-point group, or any ``"module:attribute"`` path.

Backends are imported lazily, on first :func:`get_backend`, so ``import tess``
imports no framework beyond NumPy.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from tess_spec.errors import BackendNotFoundError, BackendUnavailableError, ConfigError, TessError

from .backend import Backend

__all__ = ["get_backend", "list_backends", "backend_class", "BUILTINS", "ENTRY_POINT_GROUP"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tess.backends"
"""Entry-point group under which third-party packages register backend classes by name."""


@dataclass(frozen=True)
class _Builtin:
    target: str  # "module:attribute"
    extra: str | None  # pip extra that installs the framework
    frameworks: tuple[str, ...]  # top-level modules whose absence means "install the extra"


BUILTINS: dict[str, _Builtin] = {
    "numpy": _Builtin("tess.backends.numpy:Backend", None, ("numpy",)),
    "torch": _Builtin("tess.backends.torch:Backend", "torch", ("torch",)),
    "jax": _Builtin("tess.backends.jax:Backend", "jax", ("jax", "jaxlib")),
    "cupy": _Builtin("tess.backends.cupy:Backend", "cupy", ("cupy", "cupy_backends", "fastrlock")),
}
"""Backends shipped with tess (found without entry-point metadata, e.g. from a source tree)."""


def _entry_points() -> dict[str, str]:
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata should not break tess
        log.warning("could not read entry points of group %s", ENTRY_POINT_GROUP, exc_info=True)
        return {}
    return {ep.name: ep.value for ep in eps}


def list_backends() -> list[str]:
    """Names of every known backend (built-in and registered), whether or not its
    framework is installed here."""
    return sorted(set(BUILTINS) | set(_entry_points()))


def _load(target: str, name: str, builtin: _Builtin | None) -> type[Backend]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if builtin is not None and missing in builtin.frameworks and builtin.extra:
            raise BackendUnavailableError(
                f"backend {name!r} needs {missing!r}, which is not installed; "
                f"install it with: pip install 'tess[{builtin.extra}]'"
            ) from exc
        if builtin is None and missing == module_name.split(".")[0]:
            raise BackendNotFoundError(f"backend module {module_name!r} (from {target!r}) cannot be imported") from exc
        raise BackendUnavailableError(
            f"backend {name!r} could not be imported: module {exc.name!r} is missing"
        ) from exc
    obj = module
    for part in (attr or "Backend").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BackendNotFoundError(f"{module_name!r} has no attribute {attr!r} (from {target!r})") from None
    if not (isinstance(obj, type) and issubclass(obj, Backend)):
        raise BackendNotFoundError(f"{target!r} is not a tess.backend.Backend subclass (got {obj!r})")
    return obj


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (or at ``"module:attribute"``)."""
    if not isinstance(name, str) or not name:
        raise BackendNotFoundError(f"backend name must be a non-empty string, got {name!r}")
    if ":" in name:
        return _load(name, name, None)
    builtin = BUILTINS.get(name)
    eps = _entry_points()
    if builtin is not None:
        return _load(builtin.target, name, builtin)
    if name in eps:
        return _load(eps[name], name, None)
    raise BackendNotFoundError(
        f"unknown backend {name!r}; available backends: {', '.join(list_backends())} "
        "(or pass 'module:attribute' of a tess.backend.Backend subclass)"
    )


def get_backend(name: str = "numpy", **options: Any) -> Backend:
    """Instantiate a backend by name, e.g. ``get_backend("torch", device="cuda", dtype="float64")``.

    Raises :class:`~tess.errors.BackendNotFoundError` for an unknown name (the
    message lists the available ones) and :class:`~tess.errors.BackendUnavailableError`
    when the backend's framework or device is missing (the message names the
    extra to install).
    """
    cls = backend_class(name)
    try:
        return cls(**options)
    except TessError:
        raise
    except TypeError as exc:
        raise ConfigError(f"backend {name!r} does not accept options {sorted(options)}: {exc}") from exc
