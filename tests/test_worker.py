"""The warm worker: jobs forked from it give the results, logs, exit codes and signal handling of
a fresh process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from recsae import worker


@pytest.fixture
def worker_env(tmp_path):
    """An environment whose ``recsae`` commands go to a worker of their own (a unique variable
    gives it its own socket); the worker is stopped afterwards."""
    env = {
        **os.environ,
        **worker.warm_worker_environment(str(tmp_path / "logs")),
        "RECSAE_TEST_WORKER": uuid.uuid4().hex,
    }
    yield env
    worker.stop_workers(env[worker.LOG_DIR_VARIABLE])


def _recsae(args, env, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsae.cli", *args],
        capture_output=True, text=True, env=env, **kwargs,
    )  # fmt: skip


def _pipeline_args(tiny, out: Path) -> list[list[str]]:
    common = ["--data-dir", str(tiny["data"]), "--split-dir", str(tiny["split"]),
              "--device", "cpu", "--threads", "1"]  # fmt: skip
    train = ["train-sae", "--model-path", str(tiny["model"]), "--point-id", "tiny/mf/x",
             "--out-dir", str(out), "--settings", '{"expansion": 2, "epochs": 3}',
             *common]  # fmt: skip
    metrics = {"ks": [5], "ms_top_k": 5, "align_top_k": 5, "agreement_k": 5, "overlap_ks": [5],
               "probe_folds": 2, "interventions": {"top_k": 5, "cost_k": 5, "audience_size": 5,
               "n_concepts": 1, "promotion_targets": 1}}  # fmt: skip
    evaluate = ["evaluate-sae", "--model-path", str(tiny["model"]), "--sae-path",
                str(out / "sae.pt"), "--settings", json.dumps(metrics),
                "--metrics-out", str(out / "metrics.json"),
                "--interventions-out", str(out / "interventions.json"), *common]  # fmt: skip
    return [train, evaluate]


def _without_timing(value):
    """A result file's content without its wall-clock and CPU-time fields."""
    if isinstance(value, dict):
        return {
            key: _without_timing(item)
            for key, item in value.items()
            if not any(word in key for word in ("seconds", "second", "time", "timing"))
        }
    if isinstance(value, list):
        return [_without_timing(item) for item in value]
    return value


def test_jobs_in_the_worker_give_the_results_of_fresh_processes(tiny, tmp_path, worker_env):
    fresh_env = {k: v for k, v in worker_env.items() if k != worker.ENABLE_VARIABLE}
    for name, env in (("fresh", fresh_env), ("warm", worker_env)):
        for args in _pipeline_args(tiny, tmp_path / name):
            out = _recsae(args, env)
            assert out.returncode == 0, out.stderr
    workers = list((tmp_path / "logs" / "workers").glob("worker-*.log"))
    assert len(workers) == 1  # the two warm jobs went to one worker
    fresh = torch.load(tmp_path / "fresh/sae.pt", weights_only=False)
    warm = torch.load(tmp_path / "warm/sae.pt", weights_only=False)
    for key, tensor in fresh["state_dict"].items():
        assert torch.equal(tensor, warm["state_dict"][key]), key
    for name in ("metrics.json", "interventions.json", "train_log.json"):
        fresh_file = json.loads((tmp_path / "fresh" / name).read_text())
        warm_file = json.loads((tmp_path / "warm" / name).read_text())
        assert _without_timing(fresh_file) == _without_timing(warm_file), name


def test_a_user_error_in_the_worker_is_one_line_and_exit_2(worker_env, tmp_path):
    missing = tmp_path / "missing.yaml"
    out = _recsae(["validate-config", str(missing)], worker_env)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"recsae validate-config: error: [Errno 2] No such file or directory: '{missing}'"
    ]


def _children(pid: int) -> list[int]:
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and _parent(int(entry)) == pid
    ]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _start_long_training(tiny, tmp_path, env) -> subprocess.Popen:
    args = _pipeline_args(tiny, tmp_path / "long")[0]
    args[args.index("--settings") + 1] = '{"expansion": 2, "epochs": 100000}'
    proc = subprocess.Popen(
        [sys.executable, "-m", "recsae.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    for line in proc.stdout:  # training has started
        if "epoch 1/" in line:
            return proc
    raise AssertionError("training did not start")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_ctrl_c_reaches_the_job_and_a_killed_job_takes_its_child(tiny, tmp_path, worker_env):
    proc = _start_long_training(tiny, tmp_path, worker_env)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert [line for line in err.splitlines() if " INFO " not in line] == [
        "recsae train-sae: interrupted (Ctrl-C)"
    ]

    proc = _start_long_training(tiny, tmp_path, worker_env)
    (log,) = (tmp_path / "logs" / "workers").glob("worker-*.log")
    server = int(log.stem.split("-")[1])
    (child,) = _children(server)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while _parent(child) == server and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _parent(child) != server  # the job's child is gone too


def test_the_worker_stops_when_asked_and_logs_its_cpu(worker_env, tmp_path):
    assert _recsae(["list"], worker_env).returncode == 0
    path = worker.socket_path({**worker_env, "_": "/bin/sh", "SHLVL": "3"})  # a shell's extras
    assert path.exists()
    (record,) = (tmp_path / "logs" / "workers").glob("worker-*.socket")
    assert record.read_text().strip() == str(path)
    worker.stop_workers(tmp_path / "logs" / "workers")
    deadline = time.monotonic() + 30
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not path.exists()
    (log,) = (tmp_path / "logs" / "workers").glob("worker-*.log")
    deadline = time.monotonic() + 30
    while "served" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "served 1 jobs; process CPU" in log.read_text()
    assert not record.exists()


def test_a_worker_that_cannot_start_leaves_the_command_to_run_itself(worker_env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**worker_env, worker.LOG_DIR_VARIABLE: str(blocker / "logs")}  # the worker fails
    out = _recsae(["list"], env)
    assert out.returncode == 0 and "models:" in out.stdout
    assert not worker.socket_path(env).exists()
