"""The CuPy kernels' channels-last, namespace-generic operators (run here with xp = numpy) against tess_spec."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tess.backends.cupy import kernels as O
from tess.backends.cupy.kernels import CupyKernels, NumpyRunner
from tess_spec.ops import im2col, pool_backward, pool_forward
from tess_spec.weight_std import standardize, standardize_vjp


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6),
       k=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2**31 - 1))
def test_im2col_nhwc_equals_spec(b, c, h, w, k, seed):
    x = np.random.default_rng(seed).normal(size=(b, c, h, w))
    np.testing.assert_array_equal(O.im2col_nhwc(np, _nhwc(x), k), im2col(x, k))


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       pool=st.sampled_from([None, "max", "avg", "global_avg"]), p=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1))
def test_pool_and_vjp_equal_spec(b, c, h, w, pool, p, seed):
    if pool in ("max", "avg") and (h < p or w < p):
        return
    rng = np.random.default_rng(seed)
    x = (rng.random((b, c, h, w)) < 0.5).astype(np.float64)  # binary spikes: max-pool ties everywhere
    out = pool_forward(x, pool, p)
    got = O.pool_nhwc(np, _nhwc(x), pool, p)
    np.testing.assert_array_equal(got, _nhwc(out))
    g = rng.normal(size=out.shape)
    want = pool_backward(g, x, pool, p)
    got_g = O.pool_vjp_nhwc(np, _nhwc(g), _nhwc(x), pool, p)
    assert got_g.flags.c_contiguous
    np.testing.assert_allclose(got_g, _nhwc(want), rtol=1e-15, atol=0)


def test_max_pool_vjp_routes_to_first_maximum():
    x = np.ones((1, 2, 2, 1))  # all four tie
    g = O.pool_vjp_nhwc(np, np.array([[[[5.0]]]]), x, "max", 2)
    np.testing.assert_array_equal(g[0, :, :, 0], [[5.0, 0.0], [0.0, 0.0]])


def test_layout_round_trip():
    K = CupyKernels(np, NumpyRunner(), "float64")
    x = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    assert K.to_layout(x).flags.c_contiguous and K.to_layout(x).shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(K.from_layout(K.to_layout(x)), x)
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(K.to_layout(v), v)


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (5, 7), (3, 1)])
def test_weight_standardisation_equals_spec(shape):
    K = CupyKernels(np, NumpyRunner(), "float64")
    rng = np.random.default_rng(0)
    w, gain, G = rng.normal(size=shape), rng.normal(size=shape[0]), rng.normal(size=shape)
    np.testing.assert_allclose(K.standardize(w, gain), standardize(w, gain), rtol=1e-14)
    for a, b in zip(K.standardize_vjp(w, gain, G), standardize_vjp(w, gain, G)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_softmax_is_stable():
    K = CupyKernels(np, NumpyRunner(), "float64")
    p = K.softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])
