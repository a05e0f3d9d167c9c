"""ui.jobs: background jobs keyed per lake (one at a time, progress/result/error in the registry) and the MLflow
UI's command line (loopback only, the lake's store) and child-process handling."""

from __future__ import annotations

import sys
import threading
import urllib.request
from pathlib import Path

from analytics import tracking
from analytics.store import Lake
from ui import jobs


def test_job_runs_in_the_background_with_progress_and_result():
    reg = jobs.Registry()
    gate, seen = threading.Event(), threading.Event()

    def work(progress):
        progress(0.4, "fitting")
        seen.set()
        gate.wait(10)
        return {"answer": 42}

    job, started = reg.start("lakeA", "istar", work)
    assert started and job.running and job.seq == 1
    assert seen.wait(10)
    snap = reg.get("lakeA")
    assert (snap.state, snap.progress, snap.message) == ("running", 0.4, "fitting")
    # one job at a time per lake: a second start returns the running job and starts nothing
    again, started2 = reg.start("lakeA", "almgren", lambda p: 1)
    assert not started2 and again.seq == 1 and again.label == "istar"
    # another lake is independent
    other, started3 = reg.start("lakeB", "istar", lambda p: "b")
    assert started3 and other.seq == 2
    gate.set()
    done = reg.wait("lakeA", 10)
    assert (done.state, done.progress, done.result, done.error) == ("done", 1.0, {"answer": 42}, None)
    assert done.finished is not None and reg.wait("lakeB", 10).result == "b"
    # once finished, the lake can start its next job
    nxt, started4 = reg.start("lakeA", "almgren", lambda p: 2)
    assert started4 and nxt.seq == 3 and reg.wait("lakeA", 10).result == 2


def test_a_failing_job_keeps_its_error():
    reg = jobs.Registry()

    def boom(progress):
        progress(0.2, "TCA")
        raise ValueError("only 3 usable orders: need at least 50 to fit")

    reg.start("k", "istar", boom)
    j = reg.wait("k", 10)
    assert j.state == "failed" and j.result is None
    assert j.error == "ValueError: only 3 usable orders: need at least 50 to fit"
    assert j.progress == 0.2  # where it stopped


def test_snapshots_do_not_change_under_the_reader():
    reg = jobs.Registry()
    gate = threading.Event()

    def work(progress):
        gate.wait(10)
        progress(0.9, "late")

    reg.start("k", "x", work)
    snap = reg.get("k")
    gate.set()
    reg.wait("k", 10)
    assert snap.progress == 0.0 and snap.state == "running"  # a copy, not the live job


def test_mlflow_command_binds_loopback_and_the_lakes_store(tmp_path):
    lake = Lake(tmp_path / "lake")
    cmd = jobs.mlflow_command(lake, 5123, python="/usr/bin/python3")
    assert cmd[:4] == ["/usr/bin/python3", "-m", "mlflow", "server"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "0.0.0.0" not in cmd
    assert cmd[cmd.index("--port") + 1] == "5123"
    store = cmd[cmd.index("--backend-store-uri") + 1]
    assert store == tracking.tracking_uri(lake)
    assert store == f"sqlite:///{(tmp_path / 'lake' / 'mlflow' / 'mlflow.db').resolve()}"
    assert (
        cmd[cmd.index("--default-artifact-root") + 1] == (tmp_path / "lake" / "mlflow" / "artifacts").resolve().as_uri()
    )
    env = jobs.mlflow_env({"PATH": "/bin"})
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["PATH"] == "/bin"


def test_a_server_is_started_once_on_loopback_reused_and_stopped(tmp_path):
    """The process handling with a fast stand-in for mlflow (python's http.server: ready in well under a second;
    the real MLflow UI takes 10-25 s here)."""
    reg = jobs.Registry()
    (tmp_path / "health").write_text("ok")
    calls = []

    def command(port: int) -> list[str]:
        calls.append(port)
        return [sys.executable, "-m", "http.server", str(port), "--bind", jobs.LOOPBACK, "--directory", str(tmp_path)]

    srv = reg.serve("lakeA", command, env={}, log=tmp_path / "ui.log")
    try:
        assert srv.url == f"http://127.0.0.1:{srv.port}" and srv.alive()
        for _ in range(100):
            if srv.ready(timeout=0.2):
                break
            threading.Event().wait(0.1)
        assert srv.ready()
        with urllib.request.urlopen(f"{srv.url}/health", timeout=2) as r:
            assert r.read() == b"ok"
        assert reg.serve("lakeA", command, env={}) is srv and calls == [srv.port]  # reused, not restarted
        assert reg.server("lakeA") is srv and reg.server("lakeB") is None
    finally:
        reg.stop_servers()
    assert not srv.alive() and reg.server("lakeA") is None
    assert Path(tmp_path / "ui.log").exists()
