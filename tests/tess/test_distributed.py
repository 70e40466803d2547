"""Data-parallel training (tess.distributed, tess train --nproc): the split, the bad input,
and torch.distributed (gloo) workers against one worker.

Cost on the shared 2-core machine: the split and bad-input tests < 2 s together; the
worker tests start processes (each imports torch, ~3 s): the equality test runs two
2-worker launches and two in-process runs, the killed-worker test one launch and one
in-process resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tess
from tess.checkpoint import CheckpointLock, load_checkpoint, read_checkpoint
from tess.cli import build_parser, main, train_command
from tess.distributed import parallel_run, shard_batch, shard_bounds, worker_env
from tess.engine import train_batch, tree_map
from tess_spec import draw_dropout_masks, init_opt_state, init_params, make_rng, mlp_digits

ROOT = Path(__file__).resolve().parents[2]

# A small digits MLP exercising every kind of parameter the all-reduce carries: weight
# standardisation (gain), a bias, dropout masks drawn per global batch.
NET = ["--set", "network.blocks.0.features=64", "--set", "network.blocks.1.features=64",
       "--set", "network.blocks.0.weight_std=true", "--set", "network.blocks.1.bias=true",
       "--set", "network.blocks.0.dropout=0.2", "--set", "network.blocks.1.dropout=0.1"]
BASE = ["train", "--backend", "torch", "--dataset", "digits", "--dtype", "float64", "--seed", "3", "--no-progress",
        "--batch-size", "31", *NET]  # 1438 samples: 46 batches of 31 (split 16/15 over 2 workers) and one of 12


# -- the split ------------------------------------------------------------------------
def test_shard_bounds_split_evenly_in_rank_order() -> None:
    for n in range(0, 40):
        for world in range(1, 9):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in rank order
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("world", [2, 3, 8])
def test_shard_sums_equal_the_global_batch(world: int, backend: str) -> None:
    """The engine on each shard (means over the global n; empty shards one zero-weight row),
    summed over the shards, gives the global batch's gradients and totals (7 samples: 3
    and 8 workers split unevenly, 8 leaves a worker without a sample) — on the kernels of
    the backend (torch: the default, fused ones) in this process."""
    if backend == "torch":
        pytest.importorskip("torch")
    from tess.engine import params_from_flat

    cfg = mlp_digits(T=3).replace(**{"network.blocks.0.features": 16, "network.blocks.1.features": 8,
                                     "network.blocks.0.dropout": 0.3, "network.blocks.0.weight_std": True,
                                     "network.blocks.1.bias": True, "train.dtype": "float64"})
    be = tess.get_backend(backend, dtype="float64")
    plan, K = be.plan(cfg), be.kernels
    rng = make_rng(1)
    params = init_params(cfg, rng)
    x = rng.random((7, 64))
    y = rng.integers(0, 10, 7)
    masks = draw_dropout_masks(cfg, 7, rng, "float64")
    P = params_from_flat(plan, be.params_from_numpy(params))
    M = be.moments(plan, be.opt_state_from_numpy(init_opt_state(cfg, params)))

    def run(xb, yb, mb, weights=None, n=None):
        seen = {}

        def capture(g, t):
            seen["g"], seen["t"] = g, t
            return g, t

        train_batch(K, plan, P, M, be.asarray(xb), K.labels(yb), [None if m is None else be.asarray(m) for m in mb],
                    lr=1e-3, corrections=(0.1, 0.001), lsg=be.lsg(cfg),
                    weights=None if weights is None else be.asarray(weights), n=n, reduce=capture)
        return tree_map(be.to_numpy, seen["g"]), tuple(float(be.to_numpy(v)) for v in seen["t"])

    g1, t1 = run(x, y, masks)
    shards = [shard_batch(x, y, masks, r, world) for r in range(world)]
    assert sum(s.rows for s in shards) == 7 and (world < 8 or shards[-1].weights is not None)
    parts = [run(s.x, s.y, s.masks, s.weights, s.n) for s in shards]
    g = tree_map(lambda *a: sum(a[1:], a[0]), *[p[0] for p in parts])
    tree_map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15 * np.abs(a).max()), g1, g)
    assert abs(sum(p[1][0] for p in parts) - t1[0]) < 1e-12 * abs(t1[0])
    assert sum(p[1][1] for p in parts) == t1[1]


# -- bad input: refused before any worker starts ---------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--nproc", "0"], "--nproc 0 is invalid: expected a positive number of workers"),
    (["--nproc", "-2"], "--nproc -2 is invalid"),
    (["--nproc", "2", "--backend", "numpy"], "the 'numpy' backend does not support data-parallel training. "
                                               "Backends that do: torch"),
    (["--nproc", "2", "--backend", "cupy"], "Backends that do: torch: N worker processes"),
    (["--nproc", "33"], "--nproc 33 is more workers than the batch size 32"),
    (["--nproc", "3", "--batch-size", "2"], "--nproc 3 is more workers than the batch size 2"),
    (["--nproc", "2", "--method", "bptt"], "data-parallel training runs --method tess, not 'bptt'"),
    (["--nproc", "2", "--device", "cuda:1"], "--device cuda:1 names one device, but 2 workers"),
])
def test_bad_nproc_is_a_clear_error(extra: list[str], message: str, capsys) -> None:
    assert main(["train", "--epochs", "1", "--no-progress", "--backend", "torch", *extra]) == 2  # the last --backend wins
    assert message in capsys.readouterr().err


def test_torchrun_environment_is_checked(monkeypatch, capsys) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--backend", "torch", "--epochs", "1", "--nproc", "2"]) == 2
    assert "torchrun already started 2 workers (WORLD_SIZE); drop --nproc 2" in capsys.readouterr().err
    assert main(["train", "--backend", "numpy", "--epochs", "1"]) == 2
    assert "torchrun's WORLD_SIZE=2: the 'numpy' backend does not support" in capsys.readouterr().err
    assert main(["train", "--backend", "jax", "--epochs", "1"]) == 2
    assert "do not start it with torchrun" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "2")
    assert main(["train", "--backend", "torch", "--epochs", "1"]) == 2
    assert "RANK=2, WORLD_SIZE=2, LOCAL_RANK=2 are invalid" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(tess.errors.ConfigError, match="expected integers"):
        worker_env()


def test_no_nproc_is_a_plain_run() -> None:
    args = build_parser().parse_args(["train", "--backend", "numpy"])
    assert parallel_run(args, mlp_digits()) is None


# -- torch.distributed workers ---------------------------------------------------------
def _run(argv: list[str]) -> dict:
    """``tess train`` in this process (a ``--nproc`` run launches its workers from here)."""
    args = build_parser().parse_args(argv)
    args.argv = argv
    return train_command(args)


def _state(folder: Path) -> dict:
    return read_checkpoint(folder / "last.npz").state


def _assert_same_model(a: dict, b: dict, tol: float = 1e-12) -> None:
    """Every parameter and Adam moment equal within ``tol`` relative to the tensor's largest
    magnitude; the optimiser step, epoch and generator state identical."""
    trees = [("params", a["params"], b["params"])] + [(f"opt {k}", a["opt_state"][k], b["opt_state"][k])
                                                       for k in ("m", "v")]
    for what, ta, tb in trees:
        for k in ta:
            scale = np.abs(ta[k]).max()
            err = np.abs(ta[k] - tb[k]).max()
            assert err <= tol * scale, f"{what} {k}: max |diff| {err:.3g} vs max |value| {scale:.3g}"
    assert a["opt_state"]["step"] == b["opt_state"]["step"] and a["epoch"] == b["epoch"]
    assert a["rng"] == b["rng"]


def _assert_same_history(ha: list[dict], hb: list[dict]) -> None:
    assert len(ha) == len(hb)
    for ea, eb in zip(ha, hb):
        assert ea["train_accuracy"] == eb["train_accuracy"] and ea["test_accuracy"] == eb["test_accuracy"]
        for k in ("train_loss", "test_loss"):
            assert abs(ea[k] - eb[k]) <= 1e-12 * abs(ea[k]), (k, ea[k], eb[k])


def test_two_gloo_workers_equal_one_worker(tmp_path: Path) -> None:
    """2 epochs, float64, every batch split unevenly (31 = 16 + 15): 2 workers equal one worker
    within 1e-12, accuracies identical; a 1-worker checkpoint resumed with 2 workers
    continues exactly; only rank 0 writes."""
    one, two, mixed = (tmp_path / d for d in ("one", "two", "mixed"))
    ref = _run([*BASE, "--epochs", "2", "--checkpoint-dir", str(one), "--json", str(tmp_path / "one.json")])
    par = _run([*BASE, "--epochs", "2", "--nproc", "2", "--checkpoint-dir", str(two),
                "--json", str(tmp_path / "two.json"), "--metrics", str(tmp_path / "two.jsonl")])
    assert par["replicas"] == "identical" and par["workers"] == 2
    _assert_same_model(_state(one), _state(two))
    _assert_same_history(ref["history"], par["history"])
    written = json.loads((tmp_path / "two.json").read_text())
    assert written["workers"] == 2 and written["replicas"] == "identical" and "workers" not in ref
    _assert_same_history(ref["history"], written["history"])
    lines = (tmp_path / "two.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2]  # rank 0 alone wrote them
    # --resume works with any N: 1 worker's epoch 1, then epoch 2 on 2 workers
    _run([*BASE, "--epochs", "1", "--checkpoint-dir", str(mixed)])
    _run([*BASE, "--epochs", "2", "--nproc", "2", "--checkpoint-dir", str(mixed), "--resume"])
    _assert_same_model(_state(one), _state(mixed))
    _assert_same_history(_state(one)["history"], _state(mixed)["history"])


def _workers(launcher: int) -> dict[int, int]:
    """rank → pid of the launcher's child processes (from their environment)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != launcher:
                continue
            env = Path(f"/proc/{d}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for e in env:
            if e.startswith(b"RANK="):
                out[int(e[5:])] = int(d)
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
def test_a_killed_worker_stops_the_run_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    argv = [sys.executable, "-m", "tess", *BASE, "--dtype", "float32", "--epochs", "100", "--nproc", "2",
            "--checkpoint-dir", str(ck)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        t0 = time.monotonic()
        while not (ck / "last.npz").exists():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() - t0 < 120, "no checkpoint after 120 s"
            time.sleep(0.05)
        workers = _workers(p.pid)
        assert sorted(workers) == [0, 1], workers
        time.sleep(0.2)  # into the next epoch
        os.kill(workers[1], signal.SIGKILL)
        killed = time.monotonic()
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 2, (out, err)
    assert took < 60
    assert f"worker rank 1 of 2 (pid {workers[1]}) failed: killed by signal SIGKILL" in err, err
    assert "is intact: continue with the same command plus --resume" in err
    for pid in workers.values():  # no worker left behind
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    model = load_checkpoint(ck / "last.npz", "numpy")
    epochs = [int(line.split()[1]) for line in out.splitlines() if line.startswith("epoch")]
    assert model.epoch >= 1 and model.epoch == epochs[-1], (model.epoch, out)
    with CheckpointLock(ck):  # the launcher released the folder
        pass
    # and the run continues from it with one worker
    assert main([*BASE, "--dtype", "float32", "--epochs", str(model.epoch + 1), "--checkpoint-dir", str(ck),
                 "--resume"]) == 0
    assert read_checkpoint(ck / "last.npz").epoch == model.epoch + 1
