"""The live engine: receive -> spool -> (every commit interval) batch ingest -> acknowledge; live state and alerts.

Intake (one code path with batch ingest): every received line is appended to a JSON Lines segment under
``<lake>/live/spool/``. Every ``commit_interval_s`` the segment is sealed and ingested as ONE batch by
``analytics.ingest.ingest`` (its validation, quarantine, deduplication and atomic commit); only after that
commit are the segment's messages acknowledged (NATS) or its offsets recorded (folder). Before the ingest the
engine writes ``live/pending.json`` (the sealed segment and the source position it completes); a restart finds
it and ingests the same segment again (a no-op when its bytes were committed: ingest skips a file whose SHA-256
it has seen) before applying the position, so a crash at any point loses nothing and doubles nothing, even for
market data without ``seq`` (which has no row identity in the lake).

State: after each received batch (at most every ``max_refresh_s``) the day's live TCA (``state.live_tca``), the
board and the alert rules are recomputed from the in-memory day (``book.DayBook``; on start and at a new day the
day's rows already in the lake are loaded, so a restart does not forget the morning). Every
``snapshot_interval_s`` ``live/state.json`` is rewritten atomically for the app: engine status (events/s, lag,
last event ts, last commit version, heartbeat), the working-orders blotter, today's board (with the trailing
baselines of ``baseline``, computed in a background thread at start and at a new day) and the portfolios' intraday
P&L and drawdown (``pnl``).

Stops on SIGTERM / SIGINT after a final commit. Listens on nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import importlib
import json
import os
import signal
import threading
import time
import traceback
from pathlib import Path

import polars as pl

from analytics.ingest import ingest
from analytics.live import alerts as al
from analytics.live import baseline as bl
from analytics.live.book import LIVE_TABLES, DayBook, typed_events
from analytics.live.config import RULES
from analytics.live.delivery import Delivery
from analytics.live.pnl import DrawdownTracker, strategy_fills
from analytics.live.sources import SourceSpec, make_source
from analytics.live.state import board, live_tca
from analytics.store import Lake, write_text_atomic

STATE_FILE = "state.json"
STATUS_FILE = "status.json"
PENDING_FILE = "pending.json"
ENGINE_FILE = "engine.json"
HEARTBEAT_STALE_S = 5.0  # a snapshot older than this: the engine is not running


def live_dir(lake_root: Path) -> Path:
    return Path(lake_root) / "live"


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def _records(df: pl.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (timestamps as ISO strings)."""
    ts_cols = [c for c, d in df.schema.items() if isinstance(d, pl.Datetime)]
    return df.with_columns(pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") for c in ts_cols).to_dicts()


class Engine:
    def __init__(self, lake: Lake, spec: SourceSpec, cfg: dict, latency_log: Path | None = None):
        self.lake = lake
        self.spec = spec
        self.cfg = cfg
        self.ecfg = cfg["engine"]
        self.dir = live_dir(lake.root)
        self.spool = self.dir / "spool"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.source = make_source(spec, lake.root, cfg)
        self.latency_log = latency_log
        self.book: DayBook | None = None
        self.clock: dt.datetime | None = None
        self.observed_from: dt.datetime | None = None
        self.delivery = Delivery(cfg["delivery"])  # refuses a non-loopback host not allowed (no network at run time)
        self.alerts = al.AlertBook(self.dir, {r: cfg[r]["severity"] for r in RULES}, self.delivery.submit)
        self.exp = pl.DataFrame(schema={"order_id": pl.String, "expected_impact_bps": pl.Float64,
                                        "sigma_impact_bps": pl.Float64})  # fmt: skip
        self.contexts = pl.DataFrame(schema={"symbol": pl.String, "adv": pl.Float64, "sigma_daily": pl.Float64})
        self.orders_state = pl.DataFrame()
        self.board_state = pl.DataFrame()
        self.baseline = bl.empty()  # today's trailing baselines (analytics.live.baseline), set by a thread
        self.baseline_day: dt.date | None = None
        self.drawdown = DrawdownTracker(cfg["strategy_drawdown"]["sample_s"])
        self.portfolios_state = pl.DataFrame()  # per (portfolio_id, strategy): intraday pnl, peak, drawdown
        self.pending: list[dict] = []  # received, not yet in the state
        self.seg_n = 0
        self.seg_fh = None
        self.seg_path: Path | None = None
        self.seg_tokens: list = []
        self.received = 0
        self.committed_events = 0
        self.rate = collections.deque()  # (wall, n) of the last few seconds
        self.last_recv: float | None = None
        self.last_refresh = 0.0
        self.lag_ms: float | None = None
        self.last_commit: dict = {"version": lake.version(), "wall": None, "events": 0}
        self.changed = True
        self.ready = False
        self._stop = asyncio.Event()

    # -- spool and commit --------------------------------------------------------------------------------
    def _open_segment(self) -> None:
        self.seg_n += 1
        self.seg_path = self.spool / f"seg-{os.getpid()}-{int(time.time() * 1e3)}-{self.seg_n:06d}.jsonl"
        self.seg_fh = open(self.seg_path, "ab")  # noqa: SIM115 (kept open across polls, closed when sealed)
        self.seg_tokens = []

    async def _recover(self) -> None:
        """A pending batch from before a crash: ingest its segment again (a no-op if it was committed), then apply
        its source position. Unsealed segments were never committed nor acknowledged: the source resends them."""
        pending = self.dir / PENDING_FILE
        if pending.is_file():
            p = json.loads(pending.read_text())
            seg = Path(p["segment"])
            if seg.is_file():
                await asyncio.to_thread(ingest, [seg], lake=self.lake, display_names={str(seg): f"live/{seg.name}"})
            self.source.recover(p["state"])
            if self.spec.kind == "dir":
                await self.source.committed([], p["state"])
            seg.unlink(missing_ok=True)
            pending.unlink()
        for f in self.spool.glob("seg-*.jsonl"):
            f.unlink()

    async def commit(self) -> None:
        """Seal the current segment, ingest it as one batch, then acknowledge / record its position."""
        if self.seg_fh is None or not self.seg_tokens:
            return
        self.seg_fh.close()
        seg, tokens = self.seg_path, self.seg_tokens
        self._open_segment()
        state = self.source.pending_state(tokens)
        write_text_atomic(self.dir / PENDING_FILE, json.dumps({"segment": str(seg), "state": state}))
        res = await asyncio.to_thread(ingest, [seg], lake=self.lake, display_names={str(seg): f"live/{seg.name}"})
        await self.source.committed(tokens, state)
        (self.dir / PENDING_FILE).unlink(missing_ok=True)
        seg.unlink(missing_ok=True)
        self.committed_events += len(tokens)
        tot = res.to_dict()["totals"]
        self.last_commit = {"version": res.version, "wall": time.time(), "events": len(tokens),
                            "accepted": tot["accepted"], "duplicate": tot["duplicate"],
                            "quarantined": tot["quarantined"], "batch_id": res.batch_id}  # fmt: skip
        if self.cfg["quarantine_spike"]["enabled"]:
            b = al.quarantine_spike(
                tot["read"], tot["quarantined"], res.batch_id, time.time(), self.cfg["quarantine_spike"]
            )
            self.alerts.update(b, {"quarantine_spike"})
        self.changed = True

    # -- receiving ---------------------------------------------------------------------------------------
    def _receive(self, items: list[tuple[bytes, object]]) -> None:
        now = time.time()
        buf = bytearray()
        for line, token in items:
            buf += line.rstrip(b"\r\n") + b"\n"
            self.seg_tokens.append(token)
            try:
                e = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # spooled all the same: ingest quarantines it
            if isinstance(e, dict):
                e["_recv"] = now
                self.pending.append(e)
        self.seg_fh.write(buf)
        self.seg_fh.flush()
        self.received += len(items)
        self.last_recv = now
        self.rate.append((now, len(items)))

    def _load_day(self, day: dt.date) -> None:
        """A fresh book for ``day`` with the day's rows already in the lake (a restart keeps the morning), and the
        market contexts (ADV, daily sigma from the daily bars before ``day``) of the expectations."""
        self.book = DayBook(day)
        self.observed_from = None  # the earliest market data time seen today (the lake's rows of the day count)
        self.exp = self.exp.clear()
        for t in LIVE_TABLES:
            df = self.lake.read(t, day, day)
            if df.height:
                self.book.add(t, df.drop([c for c in ("_batch", "_hash") if c in df.columns]))
                if t in ("quotes", "trades"):
                    first = df["ts"].min()
                    self.observed_from = first if self.observed_from is None else min(self.observed_from, first)
        self.drawdown = DrawdownTracker(self.cfg["strategy_drawdown"]["sample_s"])
        self._start_baseline(day)
        from analytics.pretrade import market_contexts

        con = self.lake.connect()
        try:
            syms = con.execute("SELECT DISTINCT symbol FROM bars WHERE \"interval\" = '1d'").fetchall()
            probes = pl.DataFrame({"symbol": [s for (s,) in syms], "asof": [day] * len(syms)})
            self.contexts = market_contexts(con, probes) if syms else self.contexts
        finally:
            con.close()

    def _start_baseline(self, day: dt.date) -> None:
        """Compute the day's trailing baselines in a background thread (tca.ensure may compute stored TCA of the
        window first): the board shows no baseline, and venue_markout uses its configured constants, until done."""
        self.baseline, self.baseline_day = bl.empty(), None

        def work() -> None:
            try:
                b = bl.compute(self.lake, day, int(self.ecfg["baseline_days"]))
            except Exception:  # a baseline is context: the live state goes on without it
                traceback.print_exc()
                return
            if self.book is not None and self.book.day == day:
                self.baseline, self.baseline_day = b, day
                self.changed = True

        self._baseline_thread = threading.Thread(target=work, name=f"baseline-{day}", daemon=True)
        self._baseline_thread.start()

    def refresh(self, final: bool = False) -> None:
        """Fold the received events into the day and recompute the state and the alert rules."""
        t0 = time.time()
        new, self.pending = self.pending, []
        typed = typed_events(new)
        ts_max = max((df["ts"].max() for df in typed.values() if df.height), default=None)
        if ts_max is not None and (self.book is None or ts_max.date() > self.book.day):
            self._load_day(ts_max.date())
        if self.book is not None:
            for t, df in typed.items():
                self.book.add(t, df)
        if ts_max is not None and (self.clock is None or ts_max > self.clock):
            self.clock = ts_max
        # Observation starts with the first market data seen today (desk events may carry older times: a NEW
        # delivered late, an order that started before a replay's window).
        ts_min = min(
            (typed[t]["ts"].min() for t in ("quotes", "trades") if t in typed and typed[t].height), default=None
        )
        if ts_min is not None and self.book is not None and ts_min.date() == self.book.day:
            self.observed_from = ts_min if self.observed_from is None else min(self.observed_from, ts_min)
        if self.book is None:
            return
        b = self.book
        frames = {t: b.frame(t) for t in LIVE_TABLES}
        o, fm = live_tca(frames["orders"], frames["fills"], frames["quotes"], frames["trades"], frames["decisions"],
                         self.clock, final)  # fmt: skip
        self._alerts(frames, o, fm)
        # The pre-trade expectation fixed at NEW (published I-Star) and the deviation in its own sigmas.
        o = o.join(self.exp, on="order_id", how="left").with_columns(
            ((pl.col("impact_cost_bps") - pl.col("expected_impact_bps")) / pl.col("sigma_impact_bps")).alias("impact_z")
        )
        self.orders_state, self.board_state = o, bl.with_baseline(board(fm), self.baseline)
        now = time.time()
        recvs = [e["_recv"] for e in new]
        self.lag_ms = (now - min(recvs)) * 1000 if recvs else self.lag_ms
        self.last_refresh = now
        self.changed = True
        if self.latency_log is not None and new:
            ids = [e.get("event_id") for e in new if e.get("event_type") in ("TradeExecutedEvent", "OrderEvent")]
            with open(self.latency_log, "a") as fh:
                fh.write(json.dumps({"t": now, "ids": ids, "n": len(new), "refresh_ms": (now - t0) * 1000}) + "\n")

    def _alerts(self, frames: dict, o: pl.DataFrame, fm: pl.DataFrame) -> None:
        c = self.cfg
        trig = al.order_triggers(frames["orders"], frames["fills"])
        known = set(self.exp["order_id"].to_list())
        fresh = o.filter(~pl.col("order_id").is_in(list(known))).select(
            "order_id", "symbol", "order_qty", "target_pov", "urgency"
        )
        if fresh.height:
            self.exp = pl.concat([self.exp, al.expectations(fresh, self.contexts)])
        recv = self.last_recv or time.time()
        parts, rules = [], set()
        if c["cost_vs_expectation"]["enabled"]:
            parts.append(al.cost_vs_expectation(o, self.exp, trig, c["cost_vs_expectation"]))
            rules.add("cost_vs_expectation")
        if c["participation_limit"]["enabled"]:
            parts.append(al.participation_limit(o, trig, c["participation_limit"]))
            rules.add("participation_limit")
        if c["stale_quote"]["enabled"]:
            parts.append(
                al.stale_quote(
                    o, frames["quotes"], self.clock, recv, c["stale_quote"], self.observed_from or self.clock
                )
            )
            rules.add("stale_quote")
        if c["sequence_gap"]["enabled"]:
            market = pl.concat(
                [frames["quotes"].select("symbol", "venue", "seq", "ts", "_recv").with_columns(pl.lit("quote").alias("kind")),
                 frames["trades"].select("symbol", "venue", "seq", "ts", "_recv").with_columns(pl.lit("trade").alias("kind"))],
                how="vertical_relaxed",
            )  # fmt: skip
            parts.append(al.sequence_gap(market, self.clock, c["sequence_gap"]))
            rules.add("sequence_gap")
        cur = self.drawdown.update(
            strategy_fills(frames["fills"], frames["orders"], frames["decisions"]), frames["quotes"], self.clock
        )
        self.portfolios_state = cur
        if c["strategy_drawdown"]["enabled"]:
            parts.append(al.strategy_drawdown(cur, c["strategy_drawdown"], recv))
            rules.add("strategy_drawdown")
        if c["venue_markout"]["enabled"]:
            parts.append(al.venue_markout(fm, frames["fills"], c["venue_markout"], recv, baseline=self.baseline))
            rules.add("venue_markout")
        breaches = pl.concat([p.cast(al.BREACH_SCHEMA) for p in parts]) if parts else al._empty()
        self.alerts.update(breaches, rules)

    # -- snapshot ----------------------------------------------------------------------------------------
    def status(self) -> dict:
        now = time.time()
        while self.rate and self.rate[0][0] < now - 5:
            self.rate.popleft()
        return {
            "heartbeat": now,
            "pid": os.getpid(),
            "source": str(self.spec),
            "day": self.book.day.isoformat() if self.book else None,
            "events_received": self.received,
            "events_committed": self.committed_events,
            "uncommitted": len(self.seg_tokens),
            "events_per_s": sum(n for _, n in self.rate) / 5.0,
            "lag_ms": self.lag_ms,
            "last_event_ts": _iso(self.clock),
            "last_receive": self.last_recv,
            "last_commit_version": self.last_commit["version"],
            "last_commit": self.last_commit,
            "open_alerts": len(self.alerts.open),
            "alert_delivery": self.delivery.stats,  # per sink: delivered, retries, dropped
            "ready": self.ready,  # warmed up (the expectations' JAX import done): steady-state latency from here
        }

    def snapshot(self) -> None:
        """``state.json`` (status, blotter, board) and ``status.json`` (the status alone, for every page's sidebar)."""
        status = self.status()
        doc = {"status": status, "orders": _records(self.orders_state), "board": _records(self.board_state),
               "portfolios": _records(self.portfolios_state)}  # fmt: skip
        write_text_atomic(self.dir / STATE_FILE, json.dumps(doc, default=str, separators=(",", ":")))
        write_text_atomic(self.dir / STATUS_FILE, json.dumps(status, default=str))
        self.changed = False

    # -- the loop ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        write_text_atomic(self.dir / ENGINE_FILE, json.dumps({"pid": os.getpid(), "source": str(self.spec)}))
        # The expectations need JAX (impact_models): import it beside the intake, not on the first order's refresh.
        warm = asyncio.create_task(asyncio.to_thread(importlib.import_module, "analytics.pretrade"))
        warm.add_done_callback(lambda _: setattr(self, "ready", True))
        await self.source.open()
        await self._recover()
        self._open_segment()
        last_commit = last_snap = time.time()
        commit_task: asyncio.Task | None = None
        try:
            while not self._stop.is_set():
                items = await self.source.poll(0.05)
                if items:
                    self._receive(items)
                now = time.time()
                if self.pending and now - self.last_refresh >= float(self.ecfg["max_refresh_s"]):
                    try:
                        self.refresh()
                    except Exception:  # the intake and its commits must go on; the state catches up
                        traceback.print_exc()
                        self.last_refresh = now
                if now - last_commit >= float(self.ecfg["commit_interval_s"]) and (
                    commit_task is None or commit_task.done()
                ):
                    if commit_task is not None:
                        commit_task.result()
                    commit_task = asyncio.create_task(self.commit())
                    last_commit = now
                if now - last_snap >= float(self.ecfg["snapshot_interval_s"]):
                    self.snapshot()
                    last_snap = now
        finally:
            await warm
            if commit_task is not None:
                await commit_task
            if self.pending:
                self.refresh()
            await self.commit()
            self.snapshot()
            await self.source.close()
            await asyncio.to_thread(self.delivery.close, float(self.cfg["delivery"]["timeout_s"]))
            (self.dir / ENGINE_FILE).unlink(missing_ok=True)


def read_status(lake_root: Path) -> dict | None:
    """The engine's last status (``running`` = heartbeat within HEARTBEAT_STALE_S); None if none ran here."""
    try:
        st = json.loads((live_dir(lake_root) / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    st["running"] = time.time() - float(st.get("heartbeat", 0)) < HEARTBEAT_STALE_S
    return st


def read_snapshot(lake_root: Path) -> dict | None:
    """The engine's last snapshot: ``status`` (dict, with ``running`` = heartbeat within HEARTBEAT_STALE_S),
    ``orders``, ``board`` and ``portfolios`` (frames). None when no engine has run on this lake."""
    p = live_dir(lake_root) / STATE_FILE
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    st = doc["status"]
    st["running"] = time.time() - float(st.get("heartbeat", 0)) < HEARTBEAT_STALE_S
    return {
        "status": st,
        "orders": pl.DataFrame(doc["orders"], infer_schema_length=None),
        "board": pl.DataFrame(doc["board"], infer_schema_length=None),
        "portfolios": pl.DataFrame(doc.get("portfolios", []), infer_schema_length=None),
    }


def run(lake: Lake, spec: SourceSpec, cfg: dict, latency_log: Path | None = None) -> None:
    """Run the engine until SIGTERM / SIGINT."""
    asyncio.run(Engine(lake, spec, cfg, latency_log).run())
