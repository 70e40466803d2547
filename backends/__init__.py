"""Built-in backends of tess, installed as ``tess.backends.<name>``.

Each subpackage exposes a :class:`tess.backend.Backend` subclass named
``Backend``; it imports its framework at import time, so importing a backend
whose framework is missing raises ``ModuleNotFoundError`` (turned into
:class:`tess.errors.BackendUnavailableError` by :func:`tess.get_backend`).
"""
