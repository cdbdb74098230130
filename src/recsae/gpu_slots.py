"""GPU slot pool: give each concurrent workflow job its own GPU.

Snakemake's ``resources: gpu=1`` only caps how many GPU jobs run at once; it assigns no device.
A job wraps its work in ``gpu_slot(n)``: it takes an exclusive ``fcntl.flock`` on
``<lock_dir>/<scope>/gpu<id>.lock`` for ``n`` free device ids, sets ``CUDA_VISIBLE_DEVICES`` to
them for the job, and releases the locks on exit (the kernel drops them if the job dies).

The pool of ids is, in order of precedence: ``RECSAE_GPUS`` (comma list; fake pools for tests),
an existing ``CUDA_VISIBLE_DEVICES`` (a parent's restriction, e.g. SLURM's allocation: the job
picks among those ids), else ``0..torch.cuda.device_count()-1`` (counted through NVML, which does
not initialise CUDA). ``scope`` is the host name plus ``SLURM_JOB_ID`` when set, so a lock
directory on a shared file system never makes jobs on different nodes or in different SLURM
allocations (which may all see their GPU as id 0) wait for each other.

Set the variable before CUDA is initialised: wrap a whole ``script:`` or ``shell:`` job (or use
the CLI, ``python -m recsae.gpu_slots --gpus N -- command ...``), never a ``run:`` block, which
executes inside the Snakemake process. The CLI's command inherits the lock file descriptors, so
the GPU stays locked while the command runs even if the wrapper is killed (``kill -9``); SIGTERM,
SIGINT and SIGHUP sent to the wrapper are forwarded to the command, and the wrapper waits for it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_POOL = "RECSAE_GPUS"
ENV_VISIBLE = "CUDA_VISIBLE_DEVICES"
ENV_LOCK_DIR = "RECSAE_GPU_LOCK_DIR"
POLL_INTERVAL = 0.1


def _parse_ids(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    return [] if ids in (["-1"], ["NoDevFiles"]) else ids


def gpu_pool(n_gpus_total: int | None = None) -> list[str]:
    """The device ids jobs share (strings, as ``CUDA_VISIBLE_DEVICES`` takes them).

    ``n_gpus_total`` caps the pool (its first ids); None counts the GPUs (see module docstring).
    """
    for var in (ENV_POOL, ENV_VISIBLE):
        if var in os.environ:
            ids = _parse_ids(os.environ[var])
            return ids if n_gpus_total is None else ids[:n_gpus_total]
    if n_gpus_total is None:
        import torch

        n_gpus_total = torch.cuda.device_count()
    return [str(i) for i in range(n_gpus_total)]


def default_lock_dir() -> Path:
    """``$RECSAE_GPU_LOCK_DIR`` or a per-user folder in the system temp dir."""
    if os.environ.get(ENV_LOCK_DIR):
        return Path(os.environ[ENV_LOCK_DIR])
    return Path(tempfile.gettempdir()) / f"recsae-gpu-locks-{os.getuid()}"


def _scope() -> str:
    job = os.environ.get("SLURM_JOB_ID")
    host = socket.gethostname() or "localhost"
    return f"{host}-slurm{job}" if job else host


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _release(fds: list[int]) -> None:
    """Close the lock descriptors; the kernel drops a flock once no process holds its descriptor
    (an explicit unlock would also drop it for a child that inherited it and still runs)."""
    for fd in fds:
        os.close(fd)


@contextmanager
def _visible(value: str) -> Iterator[str]:
    previous = os.environ.get(ENV_VISIBLE)
    os.environ[ENV_VISIBLE] = value
    try:
        yield value
    finally:
        if previous is None:
            os.environ.pop(ENV_VISIBLE, None)
        else:
            os.environ[ENV_VISIBLE] = previous


@contextmanager
def acquire_gpu(
    n_gpus_total: int | None = None,
    lock_dir: str | Path | None = None,
    timeout: float | None = None,
    count: int = 1,
) -> Iterator[str]:
    """Hold ``count`` free GPUs of the pool; yields (and sets) the ``CUDA_VISIBLE_DEVICES`` value.

    ``count == 0`` or an empty pool: yields "" (no GPU visible) without locking. Waits for free
    ids (polling), up to ``timeout`` seconds (None: forever), then raises TimeoutError. Restores
    the previous ``CUDA_VISIBLE_DEVICES`` on exit.
    """
    with _held_gpus(n_gpus_total, lock_dir, timeout, count) as (value, _):
        yield value


@contextmanager
def _held_gpus(
    n_gpus_total: int | None, lock_dir: str | Path | None, timeout: float | None, count: int
) -> Iterator[tuple[str, list[int]]]:
    """``acquire_gpu``, also yielding the lock file descriptors (for a child to inherit)."""
    if count < 0:
        raise ValueError(f"gpu count must be >= 0, got {count}")
    pool = gpu_pool(n_gpus_total) if count else []
    if not pool:
        with _visible("") as value:
            yield value, []
        return
    if count > len(pool):
        raise ValueError(f"job asks for {count} GPU(s) but the pool has {len(pool)}: {pool}")
    folder = Path(lock_dir or default_lock_dir()) / _scope()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        held: list[tuple[str, int]] = []
        for gpu in pool:
            fd = _try_lock(folder / f"gpu{gpu}.lock")
            if fd is not None:
                held.append((gpu, fd))
                if len(held) == count:
                    break
        if len(held) == count:
            break
        _release([fd for _, fd in held])
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"no {count} free GPU(s) of {pool} within {timeout} s (locks in {folder})"
            )
        time.sleep(POLL_INTERVAL)
    try:
        with _visible(",".join(gpu for gpu, _ in held)) as value:
            yield value, [fd for _, fd in held]
    finally:
        _release([fd for _, fd in held])


def gpu_slot(resources_gpu: int, lock_dir: str | Path | None = None, timeout: float | None = None):
    """``acquire_gpu`` for a Snakemake job: ``with gpu_slot(resources.gpu, lock_dir): ...``."""
    return acquire_gpu(None, lock_dir, timeout, count=int(resources_gpu))


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m recsae.gpu_slots [--gpus N] [--lock-dir D] [--timeout S] -- cmd ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m recsae.gpu_slots", description="Run a command on a free GPU slot."
    )
    parser.add_argument("--gpus", type=int, default=1, help="GPUs the job needs (0: none)")
    parser.add_argument("--lock-dir", default=None, help="lock folder (default: per-user tmp)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for a slot")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    with _held_gpus(None, args.lock_dir, args.timeout, args.gpus) as (_, fds):
        return run_holding(command, fds)


_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_holding(command: list[str], fds: list[int]) -> int:
    """Run ``command`` with the lock descriptors ``fds`` inherited (the kernel keeps a flock
    while any process holds its descriptor), forwarding SIGTERM/SIGINT/SIGHUP to it; return its
    exit status once it has ended."""
    child = subprocess.Popen(command, env=os.environ.copy(), pass_fds=fds)
    forward = lambda sig, _frame: child.send_signal(sig)  # noqa: E731
    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
