"""tess.export: tess → NIR → tess round trips, the neuron mapping, import errors,
atomic files and the ``tess export`` command."""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="the 'nir' extra is not installed (pip install 'tess[nir]')")

import tess  # noqa: E402
from tess import export  # noqa: E402
from tess.errors import ConfigError, OutputError  # noqa: E402
from tess_spec import init_params, make_rng, presets  # noqa: E402
from tess_spec.config import BlockConfig, LIFConfig, NetworkConfig, ReadoutConfig, TessConfig  # noqa: E402
from tess_spec.neuron import lif_step, spike  # noqa: E402

BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("torch") is None, reason="torch is not installed"))]


def _configs() -> dict[str, TessConfig]:
    f64 = {"train.dtype": "float64"}
    return {
        "mlp_digits-soft-paper": presets.mlp_digits().replace(**f64),
        "cnn_digits-soft-reference": presets.cnn_digits().replace(profile="reference-code", **f64),
        "cnn_digits-hard": presets.cnn_digits().replace(**{"lif.reset": "hard", **f64}),
        "conv-avg-bias-k5": TessConfig(
            network=NetworkConfig((2, 8, 8), 3, (BlockConfig("conv", 4, pool="avg", bias=True),
                                                 BlockConfig("conv", 5, kernel_size=5, weight_std=True))),
            lif=LIFConfig(reset="hard", leak=0.8, theta=0.3)).replace(**f64),
        "global-avg-no-leak": TessConfig(
            network=NetworkConfig((1, 8, 8), 4, (BlockConfig("conv", 4, pool="global_avg"),
                                                 BlockConfig("linear", 6, bias=True)),
                                  ReadoutConfig(bias=False)),
            lif=LIFConfig(leak=1.0, reset="hard")).replace(**f64),
        "soft-explicit-amount": TessConfig(
            network=NetworkConfig((10,), 2, (BlockConfig("linear", 7, weight_std=True, bias=True),)),
            lif=LIFConfig(reset="soft", reset_amount=0.25, theta=0.4, leak=0.9)).replace(**f64),
    }


def _params(cfg: TessConfig, seed: int = 1) -> dict[str, np.ndarray]:
    rng = make_rng(seed)
    p = init_params(cfg, rng)
    for k in p:  # non-trivial gains and biases, so that their mapping is exercised
        if k.endswith(".bias"):
            p[k] = rng.normal(0.0, 0.3, size=p[k].shape)
        elif k.endswith(".gain"):
            p[k] = rng.uniform(0.5, 2.0, size=p[k].shape)
    return p


def _inputs(cfg: TessConfig, n: int = 24) -> np.ndarray:
    return np.random.default_rng(0).random((n, *cfg.network.input_shape)) * 1.5


def _export(cfg, params, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", export.NIRExportWarning)
        return export.to_nir(cfg, params, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(_configs()))
def test_round_trip_through_a_file_is_bit_identical(name, backend, tmp_path):
    cfg = _configs()[name]
    params = _params(cfg)
    path = export.write_nir(_export(cfg, params), tmp_path / "net.nir")
    cfg2, params2 = export.from_nir(export.read_nir(path))
    assert cfg2 == cfg
    assert set(params2) == set(params)
    for k in params:
        assert np.array_equal(params2[k], params[k]), k
    x = _inputs(cfg)
    a = tess.Model(cfg, backend, params=params, dtype="float64").predict(x)
    b = tess.Model(cfg2, backend, params=params2, dtype="float64").predict(x)
    assert a.dtype == b.dtype == np.float64
    assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["cnn_digits-hard", "conv-avg-bias-k5", "global-avg-no-leak"])
def test_plain_nir_round_trip_of_hard_reset_networks_is_bit_identical(name, backend, tmp_path):
    """Without tess's metadata the graph alone (folded weights, LIF parameters read
    back with dt) rebuilds a network with identical float64 predictions."""
    cfg = _configs()[name]
    params = _params(cfg)
    graph = export.read_nir(export.write_nir(export.to_nir(cfg, params, tess_metadata=False), tmp_path / "n.nir"))
    assert graph.metadata == {}
    cfg2, params2 = export.from_nir(graph)
    assert not any(b.weight_std for b in cfg2.network.blocks)
    assert (cfg2.lif.theta, cfg2.lif.leak, cfg2.lif.reset) == (cfg.lif.theta, cfg.lif.leak, "hard")
    assert [(b.kind, b.features, b.kernel_size) for b in cfg2.network.blocks] == \
        [(b.kind, b.features, b.kernel_size) for b in cfg.network.blocks]
    x = _inputs(cfg)
    a = tess.Model(cfg, backend, params=params, dtype="float64").predict(x)
    b = tess.Model(cfg2, backend, params=params2, dtype="float64").predict(x)
    assert np.array_equal(a, b)


def test_graph_layout_and_folded_weights():
    cfg = _configs()["cnn_digits-hard"]
    params = _params(cfg)
    g = export.to_nir(cfg, params)
    assert list(g.nodes) == ["input", "block0_conv", "block0_lif", "block1_conv", "block1_lif", "block1_pool",
                             "block1_pool_spike", "block2_flatten", "block2_linear", "block2_lif", "readout",
                             "output"]
    assert g.edges == list(zip(list(g.nodes)[:-1], list(g.nodes)[1:]))
    from tess_spec.weight_std import standardize

    assert np.array_equal(g.nodes["block0_conv"].weight, standardize(params["blocks.0.weight"], params["blocks.0.gain"]))
    assert np.array_equal(g.nodes["block2_linear"].weight, params["blocks.2.weight"])
    assert isinstance(g.nodes["block2_linear"], nir.Linear) and isinstance(g.nodes["readout"], nir.Affine)
    assert isinstance(g.nodes["block1_pool"], nir.SumPool2d)
    assert g.nodes["block2_flatten"].start_dim == 0 and g.nodes["block2_flatten"].end_dim == -1
    assert list(g.nodes["output"].output_type["output"]) == [10]
    g_thr = export.to_nir(cfg, params, max_pool="threshold")
    assert isinstance(g_thr.nodes["block1_pool_spike"], nir.Threshold)
    assert export.from_nir(g_thr, use_tess_metadata=False)[0].network.blocks[1].pool == "max"


@pytest.mark.parametrize("leak", [0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("dt", [1e-4, 1e-3])
def test_forward_euler_of_the_exported_neuron_is_the_tess_hard_reset_lif(leak, dt):
    """The NIR equation τ·dv/dt = (v_leak - v) + R·I stepped by forward Euler with dt,
    spike v > v_threshold, reset to v_reset: tess's LIF with hard reset."""
    theta = 0.6
    cfg = TessConfig(network=NetworkConfig((5,), 2, (BlockConfig("linear", 50),)),
                     lif=LIFConfig(theta=theta, leak=leak, reset="hard"))
    node = export.to_nir(cfg, init_params(cfg, make_rng(0)), dt=dt).nodes["block0_lif"]
    cur = np.random.default_rng(3).normal(0.4, 0.5, size=(20, 50))
    v = np.zeros(50)
    u, o = np.zeros(50), np.zeros(50)
    for t in range(20):
        if leak == 1.0:
            assert isinstance(node, nir.IF)
            v = v + dt * node.r * cur[t]
        else:
            v = v + dt / node.tau * (node.v_leak - v + node.r * cur[t])
        z = (v > node.v_threshold).astype(float)
        u = lif_step(u, o, cur[t], leak=leak, reset="hard", amount=theta)
        o = spike(u, theta)
        np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-12)
        assert np.array_equal(z, o)
        v = np.where(z > 0, node.v_reset, v)
    if leak < 1.0:
        np.testing.assert_allclose(node.tau, dt / (1 - leak), rtol=1e-15)
        np.testing.assert_allclose(node.r * dt / node.tau, 1.0, rtol=1e-15)
        assert np.all(node.v_leak == 0) and np.all(node.v_reset == 0) and np.all(node.v_threshold == theta)


def test_soft_reset_warns_and_names_the_blocks_hard_reset_does_not():
    cfg = presets.mlp_digits()
    with pytest.warns(export.NIRExportWarning, match=r"blocks \[0, 1\]: tess's soft reset .*r = 0\.6"):
        export.to_nir(cfg, _params(cfg))
    hard = cfg.replace(**{"lif.reset": "hard"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", export.NIRExportWarning)
        export.to_nir(hard, _params(hard))
    g = _export(cfg, _params(cfg))
    meta = g.nodes["block0_lif"].metadata
    assert meta["tess_reset"] == "soft" and meta["tess_reset_amount"] == 0.6
    # The plain graph is the closest NIR form: a reset to 0.
    assert export.from_nir(g, use_tess_metadata=False)[0].lif.reset == "hard"


def test_a_graph_edited_outside_tess_is_imported_from_its_nodes(caplog):
    cfg = _configs()["cnn_digits-hard"]
    params = _params(cfg)
    g = export.to_nir(cfg, params)
    # A block without weight standardisation takes its weights from the node: an edit is kept.
    g.nodes["block2_linear"].weight = g.nodes["block2_linear"].weight * 2
    cfg2, params2 = export.from_nir(g)
    assert cfg2 == cfg and np.array_equal(params2["blocks.2.weight"], params["blocks.2.weight"] * 2)
    # A standardised block's folded weight no longer matches its raw W and gain: the
    # metadata is ignored and the graph is read from its nodes.
    g.nodes["block0_conv"].weight = g.nodes["block0_conv"].weight + 0.5
    with caplog.at_level(logging.WARNING, logger="tess.export"):
        cfg3, params3 = export.from_nir(g)
    assert "differs from what its tess metadata describes" in caplog.text
    assert not cfg3.network.blocks[0].weight_std
    assert np.array_equal(params3["blocks.0.weight"], g.nodes["block0_conv"].weight)


def test_base_supplies_the_training_settings():
    cfg = _configs()["cnn_digits-hard"]
    g = export.to_nir(cfg, _params(cfg), tess_metadata=False)
    base = presets.cnn_digits(epochs=3, T=4)
    cfg2, _ = export.from_nir(g, base=base)
    assert cfg2.train == base.train and cfg2.traces == base.traces and cfg2.lsg == base.lsg
    with pytest.raises(ConfigError, match="lsg.pool_sizes has 3 entries but the graph has 1"):
        export.from_nir(export.to_nir(*_mlp1()), base=base)


def _mlp1():
    cfg = TessConfig(network=NetworkConfig((4,), 3, (BlockConfig("linear", 5),)), lif=LIFConfig(reset="hard"))
    return cfg, init_params(cfg, make_rng(0))


def _plain_graph() -> nir.NIRGraph:
    return export.to_nir(*_mlp1(), tess_metadata=False)


def _rebuild(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_recurrent_graph_is_refused_naming_the_node():
    g = _plain_graph()
    nodes = dict(g.nodes)
    nodes["rec"] = nir.Linear(weight=np.eye(5))
    edges = [*g.edges, ("block0_lif", "rec"), ("rec", "block0_lif")]
    with pytest.raises(ConfigError, match=r"'block0_lif'.*feeds 2 nodes|'block0_lif'.*2 inputs|cycle"):
        export.from_nir(_rebuild(nodes, edges))
    self_loop = [*g.edges, ("block0_lif", "block0_lif")]
    with pytest.raises(ConfigError, match="block0_lif"):
        export.from_nir(_rebuild(dict(g.nodes), self_loop))
    sub = nir.NIRGraph(nodes={"i": nir.Input(np.array([5])), "l": nir.LIF(
        tau=np.ones(5), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5)), "o": nir.Output(np.array([5]))},
        edges=[("i", "l"), ("l", "o")])
    nodes = dict(g.nodes)
    nodes["block0_lif"] = sub
    with pytest.raises(ConfigError, match=r"'block0_lif' \(NIRGraph\) is a subgraph"):
        export.from_nir(_rebuild(nodes, g.edges))


@pytest.mark.parametrize("node, message", [
    (lambda: nir.CubaLIF(tau_syn=np.ones(5), tau_mem=np.ones(5), r=np.ones(5), v_leak=np.zeros(5),
                         v_threshold=np.ones(5)), r"'block0_lif' \(CubaLIF\)"),
    (lambda: nir.LIF(tau=np.full(5, 2e-4), r=np.full(5, 2.0), v_leak=np.full(5, 0.1), v_threshold=np.ones(5)),
     r"'block0_lif' \(LIF\): v_leak must be 0"),
    (lambda: nir.LIF(tau=np.full(5, 2e-4), r=np.full(5, 2.0), v_leak=np.zeros(5),
                     v_threshold=np.linspace(0.5, 1, 5)), r"'block0_lif' \(LIF\): v_threshold differs"),
    (lambda: nir.LIF(tau=np.full(5, 2e-4), r=np.full(5, 2.0), v_leak=np.zeros(5), v_threshold=np.ones(5),
                     v_reset=np.full(5, -0.1)), r"v_reset must be 0"),
    (lambda: nir.LIF(tau=np.full(5, 5e-5), r=np.full(5, 2.0), v_leak=np.zeros(5), v_threshold=np.ones(5)),
     r"leak γ = 1 - dt/τ = -1.*pass the dt"),
])
def test_unsupported_neurons_are_refused_naming_the_node(node, message):
    g = _plain_graph()
    nodes = dict(g.nodes)
    nodes["block0_lif"] = node()
    with pytest.raises(ConfigError, match=message):
        export.from_nir(_rebuild(nodes, g.edges))


def test_other_unsupported_graphs_are_refused():
    g = _plain_graph()
    # ends in spiking neurons: no readout
    nodes = {k: v for k, v in g.nodes.items() if k not in ("readout",)}
    edges = [e for e in g.edges if "readout" not in e] + [("block0_lif", "output")]
    with pytest.raises(ConfigError, match="non-spiking Linear/Affine readout"):
        export.from_nir(_rebuild(nodes, edges))
    # an unknown node type
    nodes = dict(g.nodes)
    nodes["block0_lif"] = nir.Delay(delay=np.ones(5))
    with pytest.raises(ConfigError, match=r"'block0_lif' \(Delay\)"):
        export.from_nir(_rebuild(nodes, g.edges))
    nodes = dict(g.nodes)
    nodes["scale"] = nir.Scale(scale=np.ones(5))
    edges = [e for e in g.edges if e != ("block0_lif", "readout")] + [("block0_lif", "scale"), ("scale", "readout")]
    with pytest.raises(ConfigError, match=r"'scale' \(Scale\) has no TESS equivalent"):
        export.from_nir(_rebuild(nodes, edges))
    # a strided conv
    cfg = _configs()["conv-avg-bias-k5"]
    gc = export.to_nir(cfg, _params(cfg), tess_metadata=False)
    c = gc.nodes["block0_conv"]
    gc.nodes["block0_conv"] = nir.Conv2d(input_shape=(8, 8), weight=c.weight, stride=2, padding=1, dilation=1,
                                         groups=1, bias=c.bias)
    with pytest.raises(ConfigError, match=r"'block0_conv' \(Conv2d\): stride"):
        export.from_nir(_rebuild(gc.nodes, gc.edges))
    # different thresholds in two blocks
    cfg = _configs()["global-avg-no-leak"].replace(**{"lif.leak": 0.5})
    g2 = export.to_nir(cfg, _params(cfg), tess_metadata=False)
    g2.nodes["block1_lif"].v_threshold = g2.nodes["block1_lif"].v_threshold * 2
    with pytest.raises(ConfigError, match=r"'block1_lif'.*v_threshold = 1.2 differs from 'block0_lif'"):
        export.from_nir(g2)
    with pytest.raises(ConfigError, match="expects a nir.NIRGraph"):
        export.from_nir({"nodes": {}})


def test_input_scale_is_folded_into_the_weights():
    """A LIF whose R·dt/τ ≠ 1 scales its input current; the import folds it into W and b."""
    cfg = _configs()["soft-explicit-amount"].replace(**{"lif.reset": "hard"})
    params = _params(cfg)
    g = export.to_nir(cfg, params, tess_metadata=False)
    lif = g.nodes["block0_lif"]
    lif.r = lif.r * 3.0
    cfg2, params2 = export.from_nir(g)
    np.testing.assert_allclose(params2["blocks.0.weight"], 3.0 * g.nodes["block0_linear"].weight, rtol=1e-14)
    np.testing.assert_allclose(params2["blocks.0.bias"], 3.0 * params["blocks.0.bias"], rtol=1e-14)
    assert cfg2.lif.leak == pytest.approx(0.9, rel=1e-14)


def test_write_nir_is_atomic_and_refuses_folders(tmp_path):
    cfg, params = _mlp1()
    g = export.to_nir(cfg, params)
    target = tmp_path / "net.nir"
    target.write_bytes(b"old")
    export.write_nir(g, target)
    assert export.from_nir(export.read_nir(target))[0] == cfg
    assert sorted(os.listdir(tmp_path)) == ["net.nir"]  # no temporary file left
    with pytest.raises(OutputError, match="directory"):
        export.write_nir(g, tmp_path)

    class Broken:
        def to_dict(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        export.write_nir(Broken(), target)
    assert export.from_nir(export.read_nir(target))[0] == cfg  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["net.nir"]
    with pytest.raises(ConfigError, match="does not exist"):
        export.read_nir(tmp_path / "missing.nir")
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match="cannot be read"):
        export.read_nir(tmp_path / "junk.nir")


def test_bad_arguments_are_config_errors():
    cfg, params = _mlp1()
    with pytest.raises(ConfigError, match="dt=0"):
        export.to_nir(cfg, params, dt=0)
    with pytest.raises(ConfigError, match="max_pool='mean'"):
        export.to_nir(cfg, params, max_pool="mean")
    with pytest.raises(tess.errors.ShapeError, match="missing"):
        export.to_nir(cfg, {k: v for k, v in params.items() if k != "readout.bias"})


def test_cli_export_writes_a_graph_that_restores_the_checkpoint(tmp_path, capsys):
    from tess.checkpoint import save_checkpoint
    from tess.cli import main

    cfg = presets.mlp_digits().replace(**{"train.dtype": "float64"})
    model = tess.Model(cfg, "numpy")
    ckpt = save_checkpoint(model, tmp_path / "last.npz")
    out = tmp_path / "net.nir"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "nir", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warning: blocks [0, 1]: tess's soft reset" in printed
    assert f"wrote {out}" in printed and "T=6 steps" in printed
    cfg2, params2 = export.from_nir(export.read_nir(out))
    assert cfg2 == cfg
    assert all(np.array_equal(params2[k], v) for k, v in model.numpy_params().items())
    assert main(["export", "--checkpoint", str(tmp_path / "nope.npz"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path)]) == 2
