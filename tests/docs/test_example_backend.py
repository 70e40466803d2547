"""The example backend of "Write your own backend": installed, registered through the
entry point, and computing what the oracle computes. (``make test`` also runs the full
conformance suite on it.)"""

from __future__ import annotations

import numpy as np
import pytest

import tess
from tess_spec import get_preset, init_opt_state, init_params, make_rng, reference


def test_registered_through_the_entry_point():
    assert "example" in tess.list_backends()
    backend = tess.get_backend("example", dtype="float64")
    assert type(backend).__module__ == "tess_example_backend.backend"
    assert backend.info()["backend"] == "example"


@pytest.mark.parametrize("preset", ["mlp_digits", "cnn_digits"])
@pytest.mark.parametrize("profile", ["paper", "reference-code"])
def test_one_batch_equals_the_oracle(preset, profile):
    cfg = get_preset(preset).replace(profile=profile, **{"train.T": 3})
    rng = make_rng(1)
    params = {k: v.astype(np.float64) for k, v in init_params(cfg, rng).items()}
    opt = init_opt_state(cfg, params)
    x = rng.random((4, *cfg.network.input_shape))
    y = rng.integers(0, cfg.network.n_classes, 4)
    b = tess.get_backend("example", dtype="float64")
    out = b.train_batch(cfg, b.params_from_numpy(params), b.opt_state_from_numpy(opt), x, y, record=True)
    want_params, _, want = reference.train_batch(cfg, params, opt, x, y)
    assert out.record["o"][0].any(), "vacuous: no spikes"
    for k in params:
        np.testing.assert_allclose(out.params[k], want_params[k], rtol=1e-12, atol=1e-12)
    for key in ("u", "q", "h", "m", "dw_causal", "dw_noncausal"):
        for got, exp in zip(out.record[key], want[key]):
            np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-12)
    assert set(out.record) == set(want)
    np.testing.assert_allclose(b.predict(cfg, out.params, x), reference.predict(cfg, want_params, x), rtol=1e-12)
