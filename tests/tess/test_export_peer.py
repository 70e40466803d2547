"""NIR interoperability with a real peer framework: snnTorch (its NIR importer and
exporter, on CPU torch).

- tess → NIR → snnTorch: the digits MLP (``mlp_digits``) and CNN (``cnn_digits``),
  trained briefly by tess, run in snnTorch for T steps on the digits test set and
  agree with tess's own ``predict``.  They are trained with ``lif.reset = "hard"``:
  NIR's neurons (and snnTorch's importer, which builds ``Leaky(reset_mechanism="zero")``)
  cannot express tess's soft reset (docs/export-nir.md); max pooling is written as
  ``SumPool2d`` → memoryless ``LIF`` (snnTorch 1.0 has no ``Threshold``).
- snnTorch → NIR → tess: a small conv SNN built in snnTorch, exported with
  snnTorch's exporter, imported with :func:`tess.export.from_nir`, gives the same
  predictions in tess and trains for one epoch.

snnTorch 1.0.0's importer turns ``nir.Flatten(start_dim=0)`` (flatten one sample)
into ``torch.nn.Flatten(0)``, which also flattens the batch: graphs with a Flatten
run one unbatched sample at a time there.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

snn = pytest.importorskip("snntorch", reason="the peer framework snnTorch is not installed (make install-test)")
torch = pytest.importorskip("torch")
nir = pytest.importorskip("nir")

from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

import tess  # noqa: E402
from tess import export  # noqa: E402
from tess.datasets import load_digits  # noqa: E402
from tess_spec import presets  # noqa: E402
from tess_spec.neuron import lif_step, reset_amount, spike  # noqa: E402
from tess_spec.ops import flatten_batch  # noqa: E402
from tess_spec.reference import effective_weights, forward_current  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning")


def _tess_first_block_spikes(cfg, params, x):
    """Spikes ``(T, N, neurons)`` of block 0, from the spec's functions."""
    b, lif = cfg.network.blocks[0], cfg.lif
    w = effective_weights(cfg, params)[0]
    cur = forward_current(b.kind, flatten_batch(x) if b.kind == "linear" else x, w, params.get("blocks.0.bias"))
    u, o, out = np.zeros_like(cur), np.zeros_like(cur), []
    for _ in range(cfg.train.T):
        u = lif_step(u, o, cur, leak=lif.leak, reset=lif.reset, amount=reset_amount(lif, cfg.profile, b.kind))
        o = spike(u, lif.theta)
        out.append(o.reshape(len(x), -1))
    return np.stack(out)


def _run_peer(module, x, T, batched):
    """Time-summed outputs ``(N, classes)`` and first-LIF spikes ``(T, N, neurons)``."""
    neurons = [m for m in module.modules() if isinstance(m, snn.SpikingNeuron)]
    rec = []
    hook = neurons[0].register_forward_hook(lambda m, i, o: rec.append(o.detach().clone()))
    step = len(x) if batched else 1
    outs, spikes = [], []
    try:
        with torch.no_grad():
            for s in range(0, len(x), step):
                xb = torch.from_numpy(np.ascontiguousarray(x[s:s + step], dtype=np.float32))
                if not batched:
                    xb = xb[0]
                for m in neurons:
                    m.reset_mem()
                rec.clear()
                total = 0
                for _ in range(T):
                    y = module(xb)  # a nirtorch graph returns (output, state), a Sequential the output
                    total = total + (y[0] if isinstance(y, tuple) else y)
                outs.append(total.reshape(-1, total.shape[-1]).numpy())
                spikes.append(torch.stack(rec).reshape(T, step, -1).numpy())
    finally:
        hook.remove()
    return np.concatenate(outs), np.concatenate(spikes, axis=1)


@pytest.fixture(scope="module", params=[("mlp_digits", "flat", 3, True), ("cnn_digits", "image", 2, False)],
                ids=["mlp_digits", "cnn_digits"])
def trained(request, tmp_path_factory):
    name, shape, epochs, batched = request.param
    torch.set_num_threads(1)
    cfg = presets.get_preset(name, epochs=epochs).replace(**{"lif.reset": "hard"})
    train, test = load_digits(shape=shape)
    model = tess.Model(cfg, "numpy")
    model.fit(train, test)
    path = tmp_path_factory.mktemp(name) / f"{name}.nir"
    with warnings.catch_warnings():
        warnings.simplefilter("error", export.NIRExportWarning)  # a hard-reset network exports exactly
        export.write_nir(export.to_nir(cfg, model.numpy_params()), path)
    return name, cfg, model, test, path, batched


def test_tess_network_runs_in_snntorch_and_agrees(trained, record_property):
    name, cfg, model, test, path, batched = trained
    peer = import_from_nir(export.read_nir(path))
    logits_peer, spikes_peer = _run_peer(peer, test.x, cfg.train.T, batched)
    logits = model.predict(test.x)
    agree = float(np.mean(logits.argmax(1) == logits_peer.argmax(1)))
    spikes = _tess_first_block_spikes(cfg, model.numpy_params(), test.x.astype(np.float32))
    per_step = [float(np.mean(spikes[t] == spikes_peer[t])) for t in range(cfg.train.T)]
    record_property("prediction_agreement", agree)
    record_property("first_block_spike_agreement_per_step", per_step)
    print(f"\n{name}: tess accuracy {np.mean(logits.argmax(1) == test.y):.4f}, snnTorch accuracy "
          f"{np.mean(logits_peer.argmax(1) == test.y):.4f}, prediction agreement {agree:.4f} on {len(test.y)}; "
          f"first-block spike agreement per step {per_step}; max |Δ logits| {np.abs(logits - logits_peer).max():.2e}")
    assert spikes.shape == spikes_peer.shape
    assert agree >= 0.99
    assert min(per_step) >= 0.999
    np.testing.assert_allclose(logits_peer, logits, rtol=0, atol=1e-3)


def _leaky(shape):
    return snn.Leaky(beta=torch.full(shape, 0.5), threshold=torch.full(shape, 0.6), init_hidden=True,
                     reset_mechanism="zero", reset_delay=False)


def test_graph_written_by_snntorch_imports_and_trains_with_tess(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1, bias=False), _leaky((8, 8, 8)),
        torch.nn.AvgPool2d((2, 2), stride=(2, 2)), torch.nn.Flatten(start_dim=0),
        torch.nn.Linear(128, 64), _leaky((64,)), torch.nn.Linear(64, 10))
    with torch.no_grad():  # torch's default init is too small to make digits spike
        net[0].weight.mul_(3)
        net[4].weight.mul_(3)
    path = tmp_path / "snntorch.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 8, 8)))  # the peer's own exporter and writer

    cfg, params = export.from_nir(export.read_nir(path))
    blocks = cfg.network.blocks
    assert [(b.kind, b.features, b.pool) for b in blocks] == [("conv", 8, "avg"), ("linear", 64, None)]
    assert (cfg.lif.theta, cfg.lif.leak, cfg.lif.reset) == (0.6, 0.5, "hard")
    assert blocks[1].bias and cfg.network.readout.bias and not blocks[0].bias

    train, test = load_digits(shape="image")
    model = tess.Model(cfg, "numpy", params=params)
    logits = model.predict(test.x)
    logits_peer, _ = _run_peer(net, test.x, cfg.train.T, batched=False)
    assert np.mean(logits.argmax(1) == logits_peer.argmax(1)) >= 0.99
    np.testing.assert_allclose(logits, logits_peer, rtol=0, atol=1e-4)

    before = model.numpy_params()
    history = model.fit(train, test, epochs=1)
    after = model.numpy_params()
    assert not np.array_equal(before["blocks.0.weight"], after["blocks.0.weight"])
    assert history[-1].test_accuracy > 0.3  # chance is 0.1; measured 0.44 after one epoch
