"""Alert delivery: each raised alert (PerformanceAnomalyAlertEvent, its JSON object as in ``alerts.jsonl``) is
optionally POSTed to a webhook and published to a NATS subject, as configured in ``[delivery]`` of alerts.toml.

No network at run time is a project rule: a webhook or NATS URL whose host is not loopback (``localhost``,
127.0.0.0/8, ``::1``) is refused when the engine starts, unless the host is listed in ``allow_hosts``. Host names are
compared as written, never resolved.

Each sink has its own queue and worker thread: :meth:`Delivery.submit` only enqueues, so the engine loop never waits
on a sink. A failed attempt (connection refused, timeout, HTTP status >= 300, NATS error) is logged and retried
after ``retry_backoff_s`` x 2^(attempt - 1), up to ``max_attempts``; then the alert is dropped for that sink (logged;
it stays in ``alerts.jsonl``). The webhook ignores proxy settings of the environment and follows no redirect. A sink delivers in the order alerts were raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

log = logging.getLogger("analytics.live.delivery")
_STOP = object()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # a redirect could leave loopback: refused
        return None


# No proxy from the environment (http_proxy would send a loopback POST elsewhere) and no redirects: the checked URL
# is the only place an alert goes. A 3xx, 4xx or 5xx answer is a failed attempt (HTTPError).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, schemes: tuple[str, ...], allow_hosts: list[str]) -> str:
    """``url`` if its scheme is one of ``schemes`` and its host is loopback or in ``allow_hosts``; else ValueError."""
    u = urlparse(url)
    if u.scheme not in schemes or not u.hostname:
        raise ValueError(f"delivery URL {url!r}: expected {' or '.join(s + '://HOST' for s in schemes)}")
    if not is_loopback(u.hostname) and u.hostname not in set(allow_hosts or []):
        raise ValueError(
            f"delivery URL {url!r}: host {u.hostname!r} is not loopback; list it in [delivery] allow_hosts to allow it"
        )
    return url


def validate(cfg: dict) -> None:
    """Raise ValueError when a configured URL is malformed or its host not loopback nor allowed."""
    allow = list(cfg.get("allow_hosts") or [])
    if cfg.get("webhook_url"):
        check_url(cfg["webhook_url"], ("http", "https"), allow)
    if cfg.get("nats_url"):
        check_url(cfg["nats_url"], ("nats",), allow)


class _Sink:
    def __init__(self, name: str, send, cfg: dict, stats: dict, on_stop=None):
        self.name, self.send, self.cfg, self.stats, self.on_stop = name, send, cfg, stats, on_stop
        self.q: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"alert-delivery-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is _STOP:
                if self.on_stop is not None:
                    self.on_stop()
                return
            attempts = int(self.cfg["max_attempts"])
            for k in range(1, attempts + 1):
                try:
                    self.send(item)
                    self.stats["delivered"] += 1
                    break
                except Exception as e:  # every failure is the same to the desk: logged, retried
                    log.warning("alert %s to %s: attempt %d/%d failed: %s", item["alert_id"], self.name, k, attempts, e)
                    if k == attempts:
                        self.stats["dropped"] += 1
                        log.error("alert %s to %s: dropped after %d attempts", item["alert_id"], self.name, attempts)
                    else:
                        self.stats["retries"] += 1
                        time.sleep(float(self.cfg["retry_backoff_s"]) * 2 ** (k - 1))


class Delivery:
    """The configured sinks (none when ``webhook_url`` and ``nats_url`` are empty)."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        allow = list(cfg.get("allow_hosts") or [])
        self.sinks: dict[str, _Sink] = {}
        self.stats: dict[str, dict] = {}
        hooks, stops = {}, {}
        if cfg.get("webhook_url"):
            self.webhook_url = check_url(cfg["webhook_url"], ("http", "https"), allow)
            hooks["webhook"] = self._post
        if cfg.get("nats_url"):
            self.nats_url = check_url(cfg["nats_url"], ("nats",), allow)
            self.subject = cfg["nats_subject"]
            self._nc = None
            self._loop = None
            hooks["nats"], stops["nats"] = self._publish, self._nats_close
        for name, send in hooks.items():
            self.stats[name] = {"delivered": 0, "retries": 0, "dropped": 0}
            self.sinks[name] = _Sink(name, send, cfg, self.stats[name], stops.get(name))

    def submit(self, alerts: list[dict]) -> None:
        """Enqueue ``alerts`` to every sink (returns at once)."""
        for a in alerts:
            for s in self.sinks.values():
                s.q.put(a)

    def close(self, timeout: float = 5.0) -> None:
        """Let the sinks finish what is queued for up to ``timeout`` seconds in all, then stop waiting (the threads
        are daemons: what is left is logged by nobody and stays in alerts.jsonl)."""
        end = time.time() + timeout
        for s in self.sinks.values():
            s.q.put(_STOP)
        for s in self.sinks.values():
            s.thread.join(max(0.0, end - time.time()))
            left = s.q.qsize()
            if s.thread.is_alive():
                log.warning("alert delivery to %s: %d alert(s) still queued at stop", s.name, left)

    # -- sinks (run in their worker thread) --------------------------------------------------------------
    def _post(self, alert: dict) -> None:
        req = urllib.request.Request(
            self.webhook_url,
            data=json.dumps(alert, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with _OPENER.open(req, timeout=float(self.cfg["timeout_s"])) as r:
            if r.status >= 300:
                raise urllib.error.HTTPError(self.webhook_url, r.status, "unexpected status", r.headers, None)

    def _publish(self, alert: dict) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()  # this worker thread's own loop, never the engine's
        self._loop.run_until_complete(self._publish_async(json.dumps(alert, default=str).encode()))

    def _nats_close(self) -> None:
        """At stop, in the worker thread: close the connection and the thread's loop."""
        if self._loop is None:
            return
        if self._nc is not None:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._nc.close())
            self._nc = None
        self._loop.close()
        self._loop = None

    async def _publish_async(self, data: bytes) -> None:
        import nats

        t = float(self.cfg["timeout_s"])
        try:
            if self._nc is None or not self._nc.is_connected:
                self._nc = await nats.connect(
                    self.nats_url, connect_timeout=t, allow_reconnect=False, max_reconnect_attempts=0
                )
            await self._nc.publish(self.subject, data)
            await self._nc.flush(timeout=t)
        except Exception:
            nc, self._nc = self._nc, None
            if nc is not None:
                with contextlib.suppress(Exception):  # closing a broken connection: nothing more to do
                    await nc.close()
            raise
