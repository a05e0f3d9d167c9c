"""Background work the app starts and keeps: a model retrain per lake (a thread) and the MLflow UI per lake (a
child process), owned by one process-wide registry (:data:`REGISTRY`).

Why a registry and not ``st.session_state``: the work outlives the script run that started it and is shared by
every session on the same lake (one retrain at a time per lake; the MLflow UI started once, then reused). The
thread writes its progress, result or error only to its :class:`Job`; pages poll the registry (``st.fragment``
with ``run_every``) and apply the outcome to their own session (``models_stamp``). No Streamlit here, so the
registry is tested directly.

The MLflow UI is ``mlflow server`` bound to 127.0.0.1 only (never 0.0.0.0) on a free port, over the lake's
sqlite store and artifact folder (``analytics.tracking``), with telemetry and its job runner off, in its own
process group so stopping it stops its workers too.
"""

from __future__ import annotations

import atexit
import datetime as dt
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 1.0  # how often a page's fragment looks at a running job


@dataclass
class Job:
    """One background run. ``state``: running | done | failed; ``progress`` in [0, 1] with ``message``;
    ``result`` (the function's return value) or ``error`` (its exception as text). ``seq`` numbers the jobs of
    the process (1, 2, ...): a page uses it as its ``models_stamp`` so every session means the same thing by it."""

    seq: int
    key: str
    label: str
    state: str = "running"
    progress: float = 0.0
    message: str = "starting"
    result: Any = None
    error: str | None = None
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished: dt.datetime | None = None
    thread: threading.Thread | None = field(default=None, repr=False, compare=False)

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass
class Server:
    """A child process serving HTTP on loopback (the MLflow UI)."""

    key: str
    url: str
    port: int
    command: list[str]
    proc: subprocess.Popen = field(repr=False, compare=False)
    log: Path | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self, timeout: float = 0.5) -> bool:
        """The server answers ``GET /health`` (MLflow's health endpoint)."""
        if not self.alive():
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)


class Registry:
    """Jobs and servers keyed by lake root: at most one running job and one server per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._servers: dict[str, Server] = {}
        self._seq = itertools.count(1)

    # --- jobs ---------------------------------------------------------------------------------------
    def start(self, key: str, label: str, fn: Callable[[Callable[[float, str], None]], Any]) -> tuple[Job, bool]:
        """Run ``fn(progress)`` on a daemon thread as the job of ``key``; ``progress(frac, message)`` records its
        advance. If ``key`` already has a running job, that job is returned and nothing starts. Returns
        (job, started)."""
        with self._lock:
            cur = self._jobs.get(key)
            if cur is not None and cur.running:
                return replace(cur), False
            job = Job(next(self._seq), key, label)
            job.thread = threading.Thread(target=self._run, args=(job, fn), daemon=True, name=f"job-{job.seq}")
            self._jobs[key] = job
        job.thread.start()
        return self.get(key), True

    def _run(self, job: Job, fn) -> None:
        def progress(frac: float, message: str = "") -> None:
            with self._lock:
                job.progress, job.message = min(max(float(frac), 0.0), 1.0), message

        try:
            result = fn(progress)
        except Exception as e:  # the job's outcome, shown on the page; never lost in the thread
            with self._lock:
                job.state, job.error, job.finished = "failed", f"{type(e).__name__}: {e}", dt.datetime.now(dt.UTC)
            return
        with self._lock:
            job.state, job.result, job.progress, job.finished = "done", result, 1.0, dt.datetime.now(dt.UTC)

    def get(self, key: str) -> Job | None:
        """A snapshot of the latest job of ``key`` (a copy: the thread keeps writing the original)."""
        with self._lock:
            j = self._jobs.get(key)
            return replace(j) if j is not None else None

    def wait(self, key: str, timeout: float | None = None) -> Job | None:
        """Block until the job of ``key`` has finished (or ``timeout`` s passed); returns its snapshot."""
        with self._lock:
            j = self._jobs.get(key)
        if j is not None and j.thread is not None:
            j.thread.join(timeout)
        return self.get(key)

    # --- servers ------------------------------------------------------------------------------------
    def server(self, key: str) -> Server | None:
        with self._lock:
            s = self._servers.get(key)
        return s if s is not None and s.alive() else None

    def serve(self, key: str, command: Callable[[int], list[str]], env: dict, log: Path | None = None) -> Server:
        """The running server of ``key``, else a new one: ``command(port)`` on a free loopback port, in its own
        process group (stdout and stderr to ``log``)."""
        with self._lock:
            cur = self._servers.get(key)
            if cur is not None and cur.alive():
                return cur
            port = free_port()
            cmd = command(port)
            out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
            try:
                proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)  # fmt: skip
            finally:
                if log:
                    out.close()
            srv = Server(key, f"http://{LOOPBACK}:{port}", port, cmd, proc, log)
            self._servers[key] = srv
            return srv

    def stop_servers(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for s in servers:
            s.stop()


def free_port() -> int:
    """A port free on loopback now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


REGISTRY = Registry()
atexit.register(REGISTRY.stop_servers)


# ---------------------------------------------------------------------------------------------------
# What the Cost models page starts
# ---------------------------------------------------------------------------------------------------
def start_training(lake, model: str, start=None, end=None, registry: Registry = REGISTRY) -> tuple[Job, bool]:
    """Retrain ``model`` on the lake in the background (``analytics.tracking.train``, the CLI's code): one job at
    a time per lake. Returns (job, started)."""
    from analytics import tracking

    def run(progress):
        return tracking.train(lake, model, start, end, progress=progress)

    return registry.start(str(lake.root), f"{model}", run)


def mlflow_ui(lake, registry: Registry = REGISTRY) -> Server | None:
    """The lake's MLflow UI server if it is running."""
    return registry.server(str(lake.root))


def mlflow_command(lake, port: int, python: str = sys.executable) -> list[str]:
    """``mlflow server`` over the lake's sqlite store (tracking and registry) and artifact folder, bound to
    127.0.0.1:``port`` with one worker; artifacts are read from their file locations (no artifact proxy)."""
    from analytics import tracking

    artifacts = (tracking.mlflow_dir(lake) / "artifacts").resolve().as_uri()
    return [
        python, "-m", "mlflow", "server",
        "--backend-store-uri", tracking.tracking_uri(lake),
        "--default-artifact-root", artifacts, "--no-serve-artifacts",
        "--host", LOOPBACK, "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def mlflow_env(base: dict | None = None) -> dict:
    """The environment of the MLflow UI: telemetry off, no job runner (its workers would outlive the server)."""
    env = dict(os.environ if base is None else base)
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "DO_NOT_TRACK": "1"})  # fmt: skip
    return env


def start_mlflow_ui(lake, registry: Registry = REGISTRY) -> Server:
    """The lake's MLflow UI server, started on first use (the store is created first so it opens on our
    schema), then reused."""
    from analytics import tracking

    tracking.client(lake)  # creates <lake>/mlflow/{mlflow.db,artifacts}
    log = tracking.mlflow_dir(lake) / "ui.log"
    return registry.serve(str(lake.root), lambda port: mlflow_command(lake, port), mlflow_env(), log)
