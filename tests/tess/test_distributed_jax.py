"""Data-parallel JAX (tess.backends.jax.parallel): the batch sharded over 2 host devices
against one device, in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (the flag must be set before JAX
is imported; this test process has imported JAX with one CPU device).

Cost: one subprocess, ~20 s on the shared 2-core machine, mostly XLA compilation (a
one-device and a 2-device train program, their predict programs, and the CLI's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(r'''
    import json, sys
    import numpy as np
    import jax
    import tess
    from tess.backends.jax.parallel import DataParallelJaxBackend
    from tess.cli import main
    from tess.datasets import load_digits

    assert len(jax.devices("cpu")) == 2, jax.devices()

    class Split:
        def __init__(self, x, y):
            self.x, self.y = x, y

    train, test = load_digits()
    tr, te = Split(train.x[:300], train.y[:300]), Split(test.x[:100], test.y[:100])
    # batch 31: every batch is padded to 32 rows (16 per device); the last batch of 21 real
    # samples leaves device 1 with 5 real rows and 11 padded ones; dropout, a gain, a bias
    cfg = tess.presets.mlp_digits(epochs=2).replace(**{
        "train.dtype": "float64", "train.batch_size": 31, "train.seed": 3,
        "network.blocks.0.features": 64, "network.blocks.1.features": 64,
        "network.blocks.0.weight_std": True, "network.blocks.1.bias": True,
        "network.blocks.0.dropout": 0.2, "network.blocks.1.dropout": 0.1})
    one = tess.Model(cfg, "jax")
    one.fit(tr, te)
    two = tess.Model(cfg, DataParallelJaxBackend(dtype="float64", devices=2))
    two.fit(tr, te)
    worst = {}
    for name, a, b in [("params", one.state_dict()["params"], two.state_dict()["params"])] + [
            (f"opt {k}", one.state_dict()["opt_state"][k], two.state_dict()["opt_state"][k]) for k in ("m", "v")]:
        for k in a:
            worst[f"{name} {k}"] = float(np.abs(a[k] - b[k]).max() / np.abs(a[k]).max())
    x = te.x[:37]
    logits_err = float(np.abs(one.predict(x) - two.predict(x)).max() / np.abs(one.predict(x)).max())
    out = {"worst": worst, "logits": logits_err,
           "one": [h.to_dict() for h in one.history], "two": [h.to_dict() for h in two.history],
           "mesh": [str(d) for d in two.backend.mesh.devices.flat], "info": two.backend.info()}
    # the CLI: tess train --backend jax --nproc 2 (one process, two devices)
    out["cli"] = main(["train", "--backend", "jax", "--nproc", "2", "--epochs", "1", "--no-progress",
                       "--dtype", "float64", "--json", sys.argv[2]])
    with open(sys.argv[1], "w") as fh:
        json.dump(out, fh)
''')


def test_two_host_devices_equal_one_device(tmp_path: Path) -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result, summary = tmp_path / "result.json", tmp_path / "cli.json"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(result), str(summary)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(result.read_text())
    assert len(out["mesh"]) == 2, out["mesh"]
    assert out["info"]["workers"] == "2"
    for name, err in out["worst"].items():
        assert err <= 1e-12, (name, err)
    assert out["logits"] <= 1e-12
    assert len(out["one"]) == len(out["two"]) == 2
    for a, b in zip(out["one"], out["two"]):
        assert a["train_accuracy"] == b["train_accuracy"] and a["test_accuracy"] == b["test_accuracy"]
        for k in ("train_loss", "test_loss"):
            assert abs(a[k] - b[k]) <= 1e-12 * abs(a[k])
    written = json.loads(summary.read_text())
    assert out["cli"] == 0 and written["epochs"] == 1 and written["workers"] == 2


def test_more_devices_than_jax_sees_is_a_clear_error() -> None:
    import jax

    from tess.backends.jax.parallel import DataParallelJaxBackend
    from tess.errors import BackendUnavailableError, ConfigError

    n = len(jax.devices("cpu")) + 1
    with pytest.raises(BackendUnavailableError, match=f"XLA_FLAGS=--xla_force_host_platform_device_count={n}"):
        DataParallelJaxBackend(devices=n)
    with pytest.raises(ConfigError, match="devices=0 is invalid"):
        DataParallelJaxBackend(devices=0)
    with pytest.raises(ConfigError, match="names one device"):
        DataParallelJaxBackend(device="cpu:0")
