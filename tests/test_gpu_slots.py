"""The GPU slot pool, with fake device pools (RECSAE_GPUS) and concurrent processes."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsae import gpu_slots
from recsae.gpu_slots import acquire_gpu, gpu_pool, gpu_slot


def slot_command(lock_dir, code: str) -> list[str]:
    """The CLI that runs ``python -c code`` in a GPU slot locked under ``lock_dir``."""
    cmd = [sys.executable, "-c", code]
    return [sys.executable, "-m", "recsae.gpu_slots", "--lock-dir", str(lock_dir), "--", *cmd]


@pytest.fixture
def env(monkeypatch):
    for var in ("RECSAE_GPUS", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_pool_sources(env):
    env.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert gpu_pool() == ["3", "5"]
    assert gpu_pool(1) == ["3"]
    env.setenv("RECSAE_GPUS", "0, 1,2")
    assert gpu_pool() == ["0", "1", "2"]
    env.setenv("RECSAE_GPUS", "")
    assert gpu_pool() == []
    env.delenv("RECSAE_GPUS")
    env.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_pool(2) == ["0", "1"]


def test_zero_gpus_or_empty_pool_hide_devices(env, tmp_path):
    env.setenv("RECSAE_GPUS", "0,1")
    with gpu_slot(0, tmp_path) as value:
        assert value == "" and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    env.setenv("RECSAE_GPUS", "")
    with acquire_gpu(None, tmp_path) as value:
        assert value == ""


def test_respects_parent_restriction_and_restores_it(env, tmp_path):
    env.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    with acquire_gpu(None, tmp_path) as first:
        assert first == "4" and os.environ["CUDA_VISIBLE_DEVICES"] == "4"
        other = subprocess.run(
            slot_command(tmp_path, code),
            env={**os.environ, "CUDA_VISIBLE_DEVICES": "4,6"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert other.stdout.strip() == "6"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,6"


def test_timeout_and_oversized_request(env, tmp_path):
    env.setenv("RECSAE_GPUS", "0")
    with acquire_gpu(None, tmp_path):
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="free GPU"):
            with acquire_gpu(None, tmp_path, timeout=0.3):
                pass
        assert time.monotonic() - start >= 0.3
    with pytest.raises(ValueError, match="pool has 1"):
        with gpu_slot(2, tmp_path):
            pass


def test_slurm_allocations_do_not_share_locks(env, tmp_path):
    env.setenv("CUDA_VISIBLE_DEVICES", "0")
    env.setenv("SLURM_JOB_ID", "101")
    with acquire_gpu(None, tmp_path) as a:
        env.setenv("SLURM_JOB_ID", "102")
        with acquire_gpu(None, tmp_path, timeout=0.5) as b:
            assert a == b == "0"


def _job(lock_dir, log_path, hold):
    with gpu_slot(1, lock_dir) as gpu:
        start = time.monotonic()
        time.sleep(hold)
        end = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"{gpu} {start} {end}\n")


def test_concurrent_jobs_never_share_a_gpu(env, tmp_path):
    env.setenv("RECSAE_GPUS", "0,1")
    log_path = tmp_path / "log.txt"
    ctx = mp.get_context("fork")
    jobs = [ctx.Process(target=_job, args=(tmp_path / "locks", log_path, 0.15)) for _ in range(6)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=30)
    assert all(job.exitcode == 0 for job in jobs)
    rows = [line.split() for line in log_path.read_text().splitlines()]
    assert len(rows) == 6 and {gpu for gpu, _, _ in rows} == {"0", "1"}
    for gpu in ("0", "1"):
        spans = sorted((float(s), float(e)) for g, s, e in rows if g == gpu)
        assert all(
            prev_end <= start for (_, prev_end), (start, _) in zip(spans, spans[1:], strict=False)
        )


def test_cli_runs_command_with_slot(env, tmp_path):
    env.setenv("RECSAE_GPUS", "7")
    code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    out = subprocess.run(
        slot_command(tmp_path, code),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "7"
    assert (
        gpu_slots.main(["--gpus", "0", "--", sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    )


def _start_holding_child(lock_dir, tmp_path, trap_term: bool) -> tuple[subprocess.Popen, Path]:
    """The CLI wrapper running a child that writes its pid, then sleeps (optionally trapping
    SIGTERM: it then writes "stopped" 2 s later and exits)."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import os, signal, sys, time\n"
        f"pid_file = {str(pid_file)!r}\n"
        "def stop(*_):\n"
        "    time.sleep(2)\n"
        "    open(pid_file + '.stopped', 'w').close()\n"
        "    sys.exit(0)\n"
        + ("signal.signal(signal.SIGTERM, stop)\n" if trap_term else "")
        + "open(pid_file + '.tmp', 'w').write(str(os.getpid()))\n"
        "os.replace(pid_file + '.tmp', pid_file)\n"
        "time.sleep(60)\n"
    )
    wrapper = subprocess.Popen(slot_command(lock_dir, code))
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline and wrapper.poll() is None
        time.sleep(0.05)
    return wrapper, pid_file


def _gpu_is_free(lock_dir) -> bool:
    try:
        with acquire_gpu(None, lock_dir, timeout=0.2):
            return True
    except TimeoutError:
        return False


def test_killed_wrapper_leaves_the_gpu_locked_while_its_child_runs(env, tmp_path):
    """Issue 13 item 13: kill -9 of the wrapper does not free the GPU its child still uses."""
    env.setenv("RECSAE_GPUS", "0")
    lock_dir = tmp_path / "locks"
    wrapper, pid_file = _start_holding_child(lock_dir, tmp_path, trap_term=False)
    child = int(pid_file.read_text())
    wrapper.kill()
    wrapper.wait(timeout=10)
    try:
        assert not _gpu_is_free(lock_dir)
    finally:
        os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gpu_is_free(lock_dir):
        assert time.monotonic() < deadline


def test_sigterm_is_forwarded_and_the_wrapper_waits(env, tmp_path):
    """Issue 13 item 13: SIGTERM reaches the child; the lock is held until the child ends."""
    env.setenv("RECSAE_GPUS", "0")
    lock_dir = tmp_path / "locks"
    wrapper, pid_file = _start_holding_child(lock_dir, tmp_path, trap_term=True)
    wrapper.send_signal(signal.SIGTERM)
    assert not _gpu_is_free(lock_dir)
    assert wrapper.wait(timeout=20) == 0
    assert Path(f"{pid_file}.stopped").exists()
    assert _gpu_is_free(lock_dir)
