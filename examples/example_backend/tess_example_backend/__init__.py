"""A minimal third-party tess backend: ``tess.get_backend("example")``.

Installed from ``examples/example_backend`` it registers itself through the
``tess.backends`` entry-point group (see its ``pyproject.toml``).
"""

from .backend import ExampleBackend

__all__ = ["ExampleBackend"]
