"""A warm worker: one process that imports the suite once and forks a child for every job.

A workflow job is a short ``recsae <stage> ...`` command, and on small data half of its CPU time
was starting Python and importing torch, scikit-learn and the stages. With ``RECSAE_WORKER`` set
(the Snakefile sets it when the config's ``warm_worker`` is true), ``recsae`` does not run the
command itself: it hands its arguments, working directory, environment and its stdin, stdout and
stderr to a worker process and waits. The worker, started by the first job that needs it and
listening on a Unix socket, has imported the stages once; for each job it forks a child that
takes over the job's three file descriptors, directory and environment, runs the command as
``recsae`` would, and exits with its code, which the waiting ``recsae`` process exits with.

So every job is still its own process with its own outputs, log, exit code and signals:
Snakemake's view (one job per output folder, resuming, ``--forcerun``, a failed job failing
only its own outputs) is unchanged, and a job's results are byte for byte those of a fresh
process (tests/test_worker.py). What differs:

* a job's ``process CPU`` log line counts only the job; the imports are counted once, in the
  worker's log (``worker-<pid>.log`` in ``RECSAE_WORKER_LOG_DIR``, read by
  benchmarks/run_time.py as the stage "warm worker");
* the worker serves only jobs with exactly its environment (the socket's name is a hash of the
  Python executable and the whole environment): CPU-kernel settings that torch reads at import
  (recsae.kernels) are therefore always those the job asked for;
* the worker never touches a GPU (CUDA cannot be forked), so GPU jobs still initialise CUDA
  themselves;
* Ctrl-C or SIGTERM to a waiting ``recsae`` process is passed on to its child, and a waiting
  process that is killed outright takes its child with it.

The worker exits after ``IDLE_SECONDS`` without a job, or when the workflow ends
(``stop_workers``, which finds the workers by the ``worker-<pid>.socket`` records in the log
folder). If it cannot be reached or started, ``recsae`` runs the command itself.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

ENABLE_VARIABLE = "RECSAE_WORKER"
LOG_DIR_VARIABLE = "RECSAE_WORKER_LOG_DIR"
IDLE_SECONDS = 60.0
START_TIMEOUT = 60.0
# Imported once by the worker: what the stages need (the stage modules themselves import torch,
# numpy, pandas, scikit-learn and the rest of the suite).
PRELOAD = (
    "recsae.cli",
    "recsae.stages.data",
    "recsae.stages.recommender",
    "recsae.stages.sae",
    "recsae.stages.sae_evaluation",
    "recsae.stages.report",
    "sklearn.decomposition",
    "sklearn.cluster",
    "sklearn.linear_model",
    "sklearn.model_selection",
)
SHELL_VARIABLES = ("_", "SHLVL", "PWD", "OLDPWD")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_HEADER = struct.Struct("!I")
_EXIT = struct.Struct("!i")


def enabled() -> bool:
    """Whether this process should hand its command to a warm worker (POSIX systems only)."""
    return os.environ.get(ENABLE_VARIABLE, "") not in ("", "0") and hasattr(os, "fork")


def worker_log_dir(logs: str) -> Path:
    """The workers' log folder inside a run's ``logs`` folder, absolute (jobs run elsewhere)."""
    return Path(logs).resolve() / "workers"


def warm_worker_environment(logs: str) -> dict[str, str]:
    """The variables that send ``recsae`` commands to a warm worker logging into the workers'
    folder of ``logs`` (``worker_log_dir``)."""
    return {ENABLE_VARIABLE: "1", LOG_DIR_VARIABLE: str(worker_log_dir(logs))}


def socket_path(environ: dict[str, str] | None = None) -> Path:
    """The worker socket for this Python and this environment (a hash of both; the variables a
    shell sets for every command it runs are left out, so that a command started through a shell
    and one started directly find the same worker)."""
    environ = dict(os.environ if environ is None else environ)
    for name in SHELL_VARIABLES:
        environ.pop(name, None)
    key = json.dumps([sys.executable, sorted(environ.items())]).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"recsae-worker-{os.getuid()}-{digest}.sock"


# --- the client: a `recsae` process that hands its command over -------------------------------


def run_in_worker(entry: str, argv: list[str]) -> int | None:
    """Run ``entry(argv)`` (``entry``: "module:function" returning an exit code, the command's
    own main function) in the warm worker and return its exit code; None where no worker could
    be reached or started (the caller then runs the command itself)."""
    path = socket_path()
    try:
        conn = _connect_or_start(path)
    except OSError:
        return None
    if conn is None:
        return None
    with conn:
        request = {"entry": entry, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
        request = json.dumps(request).encode()
        fds = array.array("i", [0, 1, 2])
        try:
            conn.sendmsg(
                [_HEADER.pack(len(request))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]
            )
            conn.sendall(request)
        except OSError:
            return None
        return _wait_for_exit(conn)


def _wait_for_exit(conn: socket.socket) -> int:
    """Pass signals on to the child until the worker sends its exit code."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def forward(signum, _frame):
        try:
            conn.send(bytes([signum]))
        except OSError:
            pass

    for sig in SIGNALS:
        signal.signal(sig, forward)
    try:
        data = b""
        while len(data) < _EXIT.size:
            try:
                chunk = conn.recv(_EXIT.size - len(data))
            except InterruptedError:
                continue
            if not chunk:
                print("recsae: the warm worker ended before the job did", file=sys.stderr)
                return 1
            data += chunk
        return _EXIT.unpack(data)[0]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _try_connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    return conn


def _connect_or_start(path: Path) -> socket.socket | None:
    """A connection to the worker at ``path``, starting it first where none is listening (one
    starter at a time: the others wait on the lock file and then connect)."""
    conn = _try_connect(path)
    if conn is not None:
        return conn
    import fcntl  # POSIX only, as fork: the workflow enables workers where os.fork exists

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = _try_connect(path)
        if conn is not None:
            return conn
        path.unlink(missing_ok=True)
        return _start(path)


def _start(path: Path) -> socket.socket | None:
    """Start a worker for ``path``, detached (a grandchild of this process, in its own session,
    so that no job's process tree and CPU account holds it), and connect to it once it listens;
    None if it ended before (it reports readiness through a pipe)."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.close(ready_read)
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.set_inheritable(ready_write, True)
                command = [sys.executable, "-m", "recsae.worker", str(path), str(ready_write)]
                os.execv(sys.executable, command)
        finally:
            os._exit(0)
    os.close(ready_write)
    os.waitpid(pid, 0)
    with os.fdopen(ready_read, "rb") as ready:
        readable, _, _ = select.select([ready], [], [], START_TIMEOUT)
        if not readable or ready.read(1) != b"1":
            return None
    return _try_connect(path)


def stop_workers(log_dir: str | Path) -> None:
    """Ask every worker that logs into ``log_dir`` to exit once its jobs have ended. A worker
    names its socket in ``worker-<pid>.socket`` there while it runs: the workflow's own process
    cannot find it by its environment, which Snakemake changes for every job (threads, TMPDIR)."""
    for record in Path(log_dir).glob("worker-*.socket"):
        try:
            conn = _try_connect(Path(record.read_text().strip()))
        except OSError:
            continue
        if conn is None:
            continue
        with conn:
            try:
                conn.sendall(_HEADER.pack(0))  # a request of length 0
            except OSError:
                pass


# --- the worker ---------------------------------------------------------------------------------


class Worker:
    """Listens on ``path`` and forks one child per request. Single-threaded (a selector loop),
    so that forking is safe."""

    def __init__(self, path: Path, ready_fd: int | None = None):
        self.path = path
        self.ready_fd = ready_fd  # written to, then closed, once the socket listens
        self.jobs: dict[int, socket.socket] = {}  # child pid -> its client's connection
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.idle_since = time.monotonic()
        self.served = 0

    def serve(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp")
        staging.unlink(missing_ok=True)
        listener.bind(str(staging))
        listener.listen(64)
        os.replace(staging, self.path)  # clients see the socket only once it listens
        own_socket = self.path.stat().st_ino
        if self.ready_fd is not None:
            os.write(self.ready_fd, b"1")
            os.close(self.ready_fd)
        self.selector.register(listener, selectors.EVENT_READ, None)
        try:
            while not self._done():
                for key, _ in self.selector.select(timeout=0.05):
                    if key.data is None:
                        self._accept(listener)
                    else:
                        self._client_event(key.fileobj, key.data)
                self._reap()
        finally:
            try:
                if self.path.stat().st_ino == own_socket:  # not a successor's
                    self.path.unlink()
            except FileNotFoundError:
                pass
            listener.close()

    def _done(self) -> bool:
        if self.jobs:
            return False
        return self.stopping or time.monotonic() - self.idle_since > IDLE_SECONDS

    def _accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            request, fds = _receive_request(conn)
        except (OSError, ValueError):
            conn.close()
            return
        if request is None:
            self.stopping = True
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            for inherited in (listener, *self.jobs.values()):
                inherited.close()
            self.selector.close()
            os._exit(_run_child(request, fds, conn))
        for fd in fds:
            os.close(fd)
        conn.setblocking(False)
        self.jobs[pid] = conn
        self.served += 1
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def _client_event(self, conn: socket.socket, pid: int) -> None:
        """A signal number to pass on, or the client's end: kill its child."""
        try:
            data = conn.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            for signum in data:
                _kill(pid, signum)
        else:
            _kill(pid, signal.SIGKILL)
            self.selector.unregister(conn)

    def _reap(self) -> None:
        while self.jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.jobs.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            try:
                self.selector.unregister(conn)
            except (KeyError, ValueError):
                pass
            try:
                conn.setblocking(True)
                conn.sendall(_EXIT.pack(128 - code if code < 0 else code))
            except OSError:
                pass
            conn.close()
            self.idle_since = time.monotonic()


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _receive_request(conn: socket.socket) -> tuple[dict | None, list[int]]:
    """(request, its three file descriptors); (None, []) for a shutdown message."""
    fd_bytes = array.array("i").itemsize * 3
    header, ancillary, _, _ = conn.recvmsg(_HEADER.size, socket.CMSG_SPACE(fd_bytes))
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if len(header) != _HEADER.size:
        raise ValueError("short request header")
    (size,) = _HEADER.unpack(header)
    if size == 0:
        return None, []
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("short request")
        body += chunk
    if len(fds) != 3:
        raise ValueError("a job request carries its stdin, stdout and stderr")
    return json.loads(body), list(fds)


def _run_child(request: dict, fds: list[int], conn: socket.socket) -> int:
    """In the forked child: become the job (descriptors, directory, environment) and run it."""
    conn.close()
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(ENABLE_VARIABLE, None)
    import importlib

    module, function = request["entry"].split(":")
    try:
        code = getattr(importlib.import_module(module), function)(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001  (the job's traceback goes to its log, as without a worker)
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _usage() -> str:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return (
        f"process CPU {own.ru_utime + own.ru_stime:.2f} s (user {own.ru_utime:.2f} s, "
        f"system {own.ru_stime:.2f} s), peak RSS {own.ru_maxrss / 2**20:.3f} GiB"
    )


def main(path: str, ready_fd: int | None = None) -> None:
    """The worker process: import the stages, then serve until idle or told to stop. Its output
    (the import time, and its CPU when it ends) goes to ``worker-<pid>.log`` in
    ``RECSAE_WORKER_LOG_DIR`` where that is set, and ``worker-<pid>.socket`` there names its
    socket while it runs."""
    import importlib

    log_dir = os.environ.get(LOG_DIR_VARIABLE)
    record = None
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        log = os.open(
            Path(log_dir) / f"worker-{os.getpid()}.log",
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
            0o644,
        )
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        record = Path(log_dir) / f"worker-{os.getpid()}.socket"
        record.write_text(f"{path}\n")
    started = time.monotonic()
    for module in PRELOAD:
        importlib.import_module(module)
    print(
        f"recsae worker {os.getpid()}: imports took {time.monotonic() - started:.2f} s", flush=True
    )
    worker = Worker(Path(path), ready_fd)
    try:
        worker.serve()
    finally:
        print(f"recsae worker {os.getpid()}: served {worker.served} jobs; {_usage()}", flush=True)
        if record is not None:  # last: its absence says the log is complete
            record.unlink(missing_ok=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
