"""The NATS JetStream source end to end against a real ``nats-server`` (Debian's; ./test.sh installs it) on a free
loopback port with a temporary store: published -> committed -> acknowledged; messages held for a commit longer than
ack_wait are kept alive (in-progress acknowledgements), not redelivered; the engine killed (SIGKILL) before its
commit -> nothing in the lake, nothing acknowledged -> the restarted engine gets the redelivery -> the lake holds
every event exactly once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import time

import pytest

from analytics.live import natsd
from tests.live_helpers import counts, events, snapshot, start_engine, stop_engine, wait_for

pytestmark = pytest.mark.slow  # needs nats-server on PATH (./test.sh installs it): fails, never skips, without it
SUBJECT = "desk.events"


@pytest.fixture
def server(tmp_path):
    srv = natsd.start(tmp_path / "js")
    yield srv
    srv.stop()


def _publish(url: str, evs: list[dict]) -> None:
    import json

    import nats
    from nats.js.errors import NotFoundError

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        try:
            await js.stream_info("DESK_EVENTS")
        except NotFoundError:  # the first publisher creates the stream
            await js.add_stream(name="DESK_EVENTS", subjects=[SUBJECT])
        for e in evs:
            await js.publish(SUBJECT, json.dumps(e).encode())
        await nc.drain()

    _run(go)


def _run(go):
    """Run the coroutine function ``go`` to completion in a thread of its own: the browser tests' sync Playwright
    keeps an event loop running in the main thread for the whole session, where asyncio.run refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(go())).result()


def _consumer(url: str) -> tuple[int, int]:
    """(delivered stream sequence, acknowledgements pending) of the engine's durable consumer."""
    import nats

    async def go():
        nc = await nats.connect(url)
        info = await nc.jetstream().consumer_info("DESK_EVENTS", "analytics-live")
        await nc.drain()
        return info.delivered.stream_seq, info.num_ack_pending

    return _run(go)


def test_nats_publish_commit_ack_and_redelivery(server, tmp_path):
    lake = tmp_path / "lake"
    rules = tmp_path / "rules.toml"
    rules.write_text("[nats]\nack_wait_s = 2.0\n")
    url = f"{server.url}/{SUBJECT}"
    ev1 = events(4)  # 1 order, 4 fills, 5 quotes (one without seq), 4 trades: 14 messages
    proc = start_engine(lake, url, 0.3, rules, tmp_path / "engine.log")
    try:
        wait_for(lambda: (s := snapshot(lake)) and s["status"]["heartbeat"])
        _publish(server.url, ev1)
        wait_for(lambda: counts(lake) == {"orders": 1, "fills": 4, "quotes": 5, "trades": 4})
        wait_for(lambda: _consumer(server.url) == (14, 0))  # every message delivered and acknowledged
        assert stop_engine(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # A slow-committing engine receives the next messages, then dies before its commit.
    (lake / "live" / "state.json").unlink()  # wait for the new engine's own snapshot
    proc = start_engine(lake, url, 60.0, rules, tmp_path / "engine.log")
    try:
        wait_for(lambda: (s := snapshot(lake)) and s["status"]["heartbeat"])
        _publish(server.url, events(3, start=4))  # 3 fills, 4 quotes, 3 trades: 10 messages
        wait_for(lambda: (s := snapshot(lake)) and s["status"]["events_received"] == 10)
        # Held past twice ack_wait: kept alive by in-progress acknowledgements, so nothing is redelivered meanwhile.
        time.sleep(5)
        assert snapshot(lake)["status"]["events_received"] == 10
        stop_engine(proc, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert counts(lake) == {"orders": 1, "fills": 4, "quotes": 5, "trades": 4}  # nothing committed
    assert _consumer(server.url) == (24, 10)  # delivered, not acknowledged
    proc = start_engine(lake, url, 0.3, rules, tmp_path / "engine.log")
    try:
        wait_for(lambda: counts(lake) == {"orders": 1, "fills": 7, "quotes": 9, "trades": 7}, timeout=30)
        wait_for(lambda: _consumer(server.url)[1] == 0)
        assert stop_engine(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert counts(lake) == {"orders": 1, "fills": 7, "quotes": 9, "trades": 7}
