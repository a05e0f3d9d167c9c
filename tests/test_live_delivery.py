"""Alert delivery: a local HTTP server on 127.0.0.1 receives each raised alert as JSON (a failed attempt is retried),
a real nats-server (loopback) carries it to a subscriber; non-loopback hosts are refused unless allowed; a dead or
hanging sink never blocks the caller; the engine's AlertBook hands raised alerts (only) to the sinks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import json
import logging
import threading
import time
from typing import ClassVar

import pytest

from analytics.live import alerts as al
from analytics.live import natsd
from analytics.live.config import load
from analytics.live.delivery import Delivery, check_url

CFG = load()["delivery"] | {"retry_backoff_s": 0.05, "timeout_s": 1.0}


def _alert(i: int) -> dict:
    return {"alert_id": f"AL-{i}", "ts": "2026-03-02T15:00:00Z", "rule": "quarantine_spike", "severity": "critical",
            "subject_type": "feed", "subject": "intake", "metric": "quarantine_rate", "value": 0.1 * i,
            "expected": None, "threshold": 0.05, "message": f"m{i}", "trigger_event_ids": ["b"],
            "trigger_ts": "2026-03-02T15:00:00Z", "latency_ms": 1.0}  # fmt: skip


class _Hook(http.server.BaseHTTPRequestHandler):
    fail_first = 0
    got: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
        else:
            type(self).got.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def hook():
    _Hook.got, _Hook.fail_first = [], 0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv, _Hook
    srv.shutdown()
    srv.server_close()


def _wait(cond, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_webhook_gets_each_alert_as_json_and_a_failure_is_retried(hook, caplog):
    srv, h = hook
    h.fail_first = 2  # two 503s: the first alert needs three attempts
    d = Delivery(CFG | {"webhook_url": f"http://127.0.0.1:{srv.server_address[1]}/alerts"})
    with caplog.at_level(logging.WARNING, logger="analytics.live.delivery"):
        d.submit([_alert(1), _alert(2)])
        assert _wait(lambda: len(h.got) == 2)
    assert [g[2] for g in h.got] == [_alert(1), _alert(2)]  # in order, the alert's JSON object unchanged
    assert {g[0] for g in h.got} == {"/alerts"} and {g[1] for g in h.got} == {"application/json"}
    assert d.stats["webhook"] == {"delivered": 2, "retries": 2, "dropped": 0}
    assert sum("attempt" in r.message and "AL-1" in r.message for r in caplog.records) == 2
    d.close()


def test_dead_and_hanging_sinks_never_block_and_failures_are_dropped_after_the_attempts(caplog):
    # a hanging sink: a socket that accepts and never answers
    import socket

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(50)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens here: connection refused
    d_hang = Delivery(CFG | {"webhook_url": f"http://127.0.0.1:{hang.getsockname()[1]}/", "max_attempts": 1})
    d_dead = Delivery(CFG | {"webhook_url": f"http://127.0.0.1:{dead_port}/", "max_attempts": 3})
    t0 = time.perf_counter()
    for i in range(20):
        d_hang.submit([_alert(i)])
        d_dead.submit([_alert(i)])
    assert time.perf_counter() - t0 < 0.2  # enqueued only
    with caplog.at_level(logging.WARNING, logger="analytics.live.delivery"):
        assert _wait(lambda: d_dead.stats["webhook"]["dropped"] == 20, 30)
    assert d_dead.stats["webhook"] == {"delivered": 0, "retries": 40, "dropped": 20}
    assert any("dropped after 3 attempts" in r.message for r in caplog.records)
    t0 = time.perf_counter()
    d_hang.close(timeout=0.5)  # gives up waiting on the hanging sink
    assert time.perf_counter() - t0 < 1.5 and d_hang.stats["webhook"]["delivered"] == 0
    hang.close()


def test_non_loopback_hosts_are_refused_unless_allowed():
    for url in (
        "http://example.com/x",
        "http://10.0.0.1:80/",
        "http://127.0.0.1.example.com/",
        "nats://192.168.1.2:4222",
    ):
        with pytest.raises(ValueError, match="not loopback"):
            check_url(url, ("http", "nats"), [])
    for url in ("http://127.0.0.1:8080/a", "http://localhost/", "http://[::1]:9/", "nats://127.0.0.2:4222"):
        assert check_url(url, ("http", "nats"), []) == url
    assert check_url("http://example.com/x", ("http",), ["example.com"])
    with pytest.raises(ValueError, match="expected"):
        check_url("file:///etc/passwd", ("http", "https"), [])
    with pytest.raises(ValueError, match="not loopback"):
        Delivery(CFG | {"webhook_url": "https://hooks.example.com/a"})
    with pytest.raises(ValueError, match="not loopback"):
        Delivery(CFG | {"nats_url": "nats://nats.example.com:4222"})
    Delivery(CFG | {"webhook_url": "https://hooks.example.com/a", "allow_hosts": ["hooks.example.com"]})  # no send


def test_alert_book_hands_raised_alerts_only_to_delivery(tmp_path, hook):
    srv, h = hook
    d = Delivery(CFG | {"webhook_url": f"http://127.0.0.1:{srv.server_address[1]}/"})
    book = al.AlertBook(tmp_path, {"quarantine_spike": "critical"}, d.submit)
    spike = al.quarantine_spike(100, 10, "b1", 100.0, load()["quarantine_spike"])
    raised = book.update(spike, {"quarantine_spike"}, now=100.5)
    book.update(spike, {"quarantine_spike"}, now=101)  # still open: nothing new to deliver
    book.update(al._empty(), {"quarantine_spike"}, now=102)  # cleared: clears are not delivered
    assert _wait(lambda: len(h.got) == 1)
    time.sleep(0.3)
    assert [g[2] for g in h.got] == raised and al.read(tmp_path)["alert_id"].to_list() == [raised[0]["alert_id"]]
    d.close()


@pytest.mark.slow  # needs nats-server on PATH (./test.sh installs it): fails, never skips, without it
def test_nats_subject_gets_each_alert_and_survives_a_server_restart(tmp_path):
    import nats

    srv = natsd.start(tmp_path / "js")
    got: ClassVar[list] = []
    ready = threading.Event()
    stop = threading.Event()

    async def on_msg(m):
        got.append(json.loads(m.data))

    async def listen(url):
        nc = await nats.connect(url)
        await nc.subscribe("desk.alerts", cb=on_msg)
        await nc.flush()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await nc.close()

    pool = concurrent.futures.ThreadPoolExecutor(1)  # its own loop (sync Playwright may hold the main thread's)
    try:
        fut = pool.submit(lambda: asyncio.run(listen(srv.url)))
        if not ready.wait(10):
            fut.result(1)
        d = Delivery(CFG | {"nats_url": srv.url})
        d.submit([_alert(1), _alert(2)])
        assert _wait(lambda: len(got) == 2)
        assert got == [_alert(1), _alert(2)]
        stop.set()
        fut.result(10)
        # the server restarts on the same port: the sink reconnects on its next attempt
        srv.stop()
        d.submit([_alert(3)])  # fails while the server is down (retried, logged)
        time.sleep(0.3)
        srv = natsd.start(tmp_path / "js", port=srv.port)
        got.clear()
        stop.clear()
        ready.clear()
        fut = pool.submit(lambda: asyncio.run(listen(srv.url)))
        if not ready.wait(10):
            fut.result(1)
        d.cfg = d.cfg | {"retry_backoff_s": 0.2}
        d.submit([_alert(4)])
        assert _wait(lambda: [a["alert_id"] for a in got][-1:] == ["AL-4"], 20)
        assert d.stats["nats"]["delivered"] >= 3 and d.stats["nats"]["retries"] >= 1
        d.close()
    finally:
        stop.set()
        pool.shutdown(wait=True)
        srv.stop()


def test_the_engine_delivers_what_it_raises_and_refuses_a_non_loopback_sink(tmp_path, hook):
    from analytics.live.engine import Engine
    from analytics.live.sources import parse_source
    from analytics.store import Lake

    srv, h = hook
    cfg = load()
    cfg["delivery"] = CFG | {"webhook_url": f"http://127.0.0.1:{srv.server_address[1]}/a"}
    eng = Engine(Lake(tmp_path / "lake"), parse_source(f"dir:{tmp_path / 'inbox'}"), cfg)
    raised = eng.alerts.update(al.quarantine_spike(50, 25, "b9", 1.0, cfg["quarantine_spike"]), {"quarantine_spike"})
    assert _wait(lambda: len(h.got) == 1) and h.got[0][2] == raised[0]
    assert eng.status()["alert_delivery"] == {"webhook": {"delivered": 1, "retries": 0, "dropped": 0}}
    eng.delivery.close()
    cfg["delivery"] = CFG | {"nats_url": "nats://203.0.113.7:4222"}
    with pytest.raises(ValueError, match="not loopback"):
        Engine(Lake(tmp_path / "lake"), parse_source(f"dir:{tmp_path / 'inbox'}"), cfg)
