"""The CPU compiler options of the JAX backend and the fallback when a jaxlib rejects them."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from tess.backends.jax import backend as jb  # noqa: E402


def _lowered():
    return jax.jit(lambda x: x * 2 + 1).lower(jnp.ones(3, jnp.float32))


def test_cpu_options_are_accepted_by_this_jaxlib():
    exe = jb._compile(_lowered(), "cpu")
    np.testing.assert_array_equal(np.asarray(exe(jnp.ones(3, jnp.float32))), [3.0, 3.0, 3.0])


def test_rejected_options_fall_back_to_the_defaults(monkeypatch):
    monkeypatch.setattr(jb, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option_for_tess": True})
    exe = jb._compile(_lowered(), "cpu")
    np.testing.assert_array_equal(np.asarray(exe(jnp.ones(3, jnp.float32))), [3.0, 3.0, 3.0])
