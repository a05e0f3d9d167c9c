"""The live simulator feed: one simulated day streamed in accelerated time, with planted anomalies.

The day comes from the desk simulator's own output (``analytics.simulate.simulate``: quotes, trades, decisions,
orders, fills of one day; its models are not duplicated here). This module only turns those files into a live
stream:
- every event becomes one JSON object (EVENTS.md); market data gets ``seq`` (the feed sequence number, per
  (kind, symbol, venue), in event-time order), which also gives it an identity in the lake;
- delivery time = event time + a random delivery latency (market data: exponential, mean 5 ms; desk events:
  exponential, mean 50 ms, and 1% of fills late by up to 2 s), so events arrive out of order across and within
  types as on a real desk's bus;
- planted anomalies, with their ground truth (what alert should fire, on what subject, from when):
  ``stale_quote`` (a symbol with a working order loses its quotes for ``stale_s`` seconds), ``sequence_gap``
  (three consecutive quotes of another symbol are never delivered), ``quarantine_spike`` (a burst of crossed
  quotes, which ingest quarantines), and the simulator's own planted adverse selection at its dark pool
  (``SimConfig.adverse_bps``, all day: the ``venue_markout`` rule's subject ``DRKB`` when it is above the baseline:
  the configured constant on a lake without history, as the benchmark's; against DRKB's own trailing baseline, on a
  lake holding earlier simulated days with the same adverse selection, it is not an anomaly).

:func:`stream` paces the events at ``speed`` x real time into a folder (JSON Lines appended to one file) or a
NATS JetStream subject.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from analytics.simulate.writer import ISO_FORMAT

MD_LATENCY_S = 0.005
EVENT_LATENCY_S = 0.05
LATE_FILL_SHARE = 0.01
LATE_FILL_MAX_S = 2.0


@dataclass
class DayFeed:
    """Events of one day in delivery order: ``lines`` (JSON text), ``deliver_s`` (seconds after the first
    delivery), ``ts`` (event time), ``ids`` (event_id or None) and the planted anomalies' ground truth."""

    day: dt.date
    lines: list[str]
    deliver_s: np.ndarray
    ids: list[str | None]
    truth: list[dict] = field(default_factory=list)


def _iso(t: dt.datetime) -> str:
    """A Python datetime as the feed's ISO-8601 UTC text (microseconds, ``Z``)."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_lines(df: pl.DataFrame) -> pl.Series:
    ts_cols = [c for c, d in df.schema.items() if isinstance(d, pl.Datetime)]
    return df.with_columns(pl.col(c).dt.strftime(ISO_FORMAT) for c in ts_cols).select(
        pl.struct(pl.all()).struct.json_encode().alias("line")
    )["line"]


def _market(folder: Path, day: dt.date, table: str, kind: str) -> pl.DataFrame:
    df = pl.read_parquet(folder / f"{table}_{day}.parquet")
    if "venue" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.String).alias("venue"))
    return df.select(pl.lit("MarketDataEvent").alias("event_type"), pl.lit(kind).alias("kind"), pl.all())


def _with_seq(df: pl.DataFrame) -> pl.DataFrame:
    """The feed sequence number per (symbol, venue) in event-time order (what the feed published)."""
    return df.sort("symbol", "venue", "ts").with_columns(
        pl.int_range(1, pl.len() + 1).over("symbol", "venue").alias("seq")
    )


def build(
    folder: Path,
    day: dt.date,
    seed: int = 7,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    anomalies: bool = True,
    stale_s: float = 180.0,
    spike_rows: int = 40,
) -> DayFeed:
    """The simulator's day in ``folder`` as a delivery-ordered stream. ``window`` (event-time [start, end)) keeps
    the events inside it plus the NEW orders and decisions of the orders that fill inside it (delivered at its
    start), so a replay of an hour needs no earlier state."""
    rng = np.random.default_rng(seed)
    quotes = _market(folder, day, "quotes", "quote")
    trades = _market(folder, day, "trades", "trade")
    ev = {
        name: pl.read_ndjson(folder / f"{name}_{day}.jsonl", infer_schema_length=None).with_columns(
            pl.col("ts").str.to_datetime(time_unit="us", time_zone="UTC")
        )
        for name in ("decisions", "orders", "fills")
    }
    truth: list[dict] = []
    if window is not None:
        lo, hi = window
        inside = pl.col("ts").is_between(lo, hi, closed="left")
        quotes, trades = quotes.filter(inside), trades.filter(inside)
        fills = ev["fills"].filter(inside)
        active = fills["order_id"].unique()
        news = ev["orders"].filter((pl.col("action") == "NEW") & pl.col("order_id").is_in(active.implode()))
        orders = pl.concat([ev["orders"].filter(inside), news.filter(pl.col("ts") < lo)], how="diagonal_relaxed")
        dec_ids = orders["decision_id"].drop_nulls().unique()
        decisions = ev["decisions"].filter(pl.col("decision_id").is_in(dec_ids.implode()))
        ev = {"decisions": decisions.filter(pl.col("ts") < hi), "orders": orders, "fills": fills}
    trades = _with_seq(trades)
    if anomalies:
        quotes, truth = _plant(quotes, ev["orders"], rng, stale_s, spike_rows)
    else:
        quotes = _with_seq(quotes)
    frames = []
    for name, df, lat in (
        ("quotes", quotes, MD_LATENCY_S),
        ("trades", trades, MD_LATENCY_S),
        ("decisions", ev["decisions"], EVENT_LATENCY_S),
        ("orders", ev["orders"], EVENT_LATENCY_S),
        ("fills", ev["fills"], EVENT_LATENCY_S),
    ):
        if df.height == 0:
            continue
        delay = rng.exponential(lat, df.height)
        if name == "fills":
            late = rng.random(df.height) < LATE_FILL_SHARE
            delay = np.where(late, delay + rng.uniform(0, LATE_FILL_MAX_S, df.height), delay)
        us = df["ts"].dt.epoch("us").to_numpy() + np.round(delay * 1e6).astype(np.int64)
        if window is not None:
            us = np.maximum(us, int(window[0].timestamp() * 1e6))
        eid = df["event_id"] if "event_id" in df.columns else pl.Series([None] * df.height, dtype=pl.String)
        frames.append(pl.DataFrame({"deliver_us": us, "line": _json_lines(df), "id": eid}))
    allf = pl.concat(frames).sort("deliver_us", maintain_order=True)
    d = allf["deliver_us"].to_numpy()
    return DayFeed(day, allf["line"].to_list(), (d - d[0]) / 1e6, allf["id"].to_list(), truth)


def _plant(
    quotes: pl.DataFrame, orders: pl.DataFrame, rng, stale_s: float, spike_rows: int
) -> tuple[pl.DataFrame, list[dict]]:
    """Plant the feed anomalies in ``quotes`` (without ``seq``: a withheld quote was never published, so the stale
    feed leaves no sequence gap); returns the quotes with ``seq`` and the ground truth."""
    truth = []
    busy = quotes.group_by("symbol").len("n_quotes")
    new = orders.filter(pl.col("action") == "NEW")
    end = (
        orders.filter(pl.col("action").is_in(["CANCEL", "DONE"]))
        .group_by("order_id")
        .agg(pl.col("ts").min().alias("end"))
    )
    life = new.join(end, on="order_id").with_columns((pl.col("end") - pl.col("ts")).alias("dur"))
    # The most quoted name with an order working long enough: a silence there is unmistakable. The silence starts a
    # third into the order's life, at least a minute after the stream's first quote (the engine must have seen the
    # name's cadence), and ends before the order and the stream do.
    q0, q1 = quotes["ts"].min(), quotes["ts"].max()
    lead = dt.timedelta(seconds=60)
    long = (
        life.with_columns(
            pl.max_horizontal(pl.col("ts") + pl.col("dur") / 3, pl.lit(q0) + lead).alias("s0") if q0 is not None
            else (pl.col("ts") + pl.col("dur") / 3).alias("s0")
        )
        .filter(pl.col("s0") + dt.timedelta(seconds=stale_s) < pl.min_horizontal("end", pl.lit(q1)))
        .join(busy, on="symbol")
        .sort("n_quotes", "dur", descending=True)
    )  # fmt: skip
    if long.height:
        o = long.row(0, named=True)
        start = o["s0"]
        stop = start + dt.timedelta(seconds=stale_s)
        gone = (pl.col("symbol") == o["symbol"]) & pl.col("ts").is_between(start, stop, closed="left")
        # A quote just before the gap, so that the alert's clock starts at a known time.
        quotes = quotes.filter(~gone)
        last_before = quotes.filter((pl.col("symbol") == o["symbol"]) & (pl.col("ts") < start))["ts"].max()
        truth.append({"rule": "stale_quote", "subject": f"quotes:{o['symbol']}", "from": _iso(last_before or start),
                      "to": _iso(stop), "note": f"quotes of {o['symbol']} withheld while {o['order_id']} works"})  # fmt: skip
        stale_sym = o["symbol"]
    else:
        stale_sym = None
    quotes = _with_seq(quotes)
    others = (
        quotes.filter(pl.col("symbol").ne_missing(stale_sym))
        .group_by("symbol")
        .len()
        .filter(pl.col("len") > 20)
        .sort("symbol")
    )
    if others.height:
        sym = others["symbol"][0]
        q = quotes.filter(pl.col("symbol") == sym).sort("seq")
        k = q.height // 2
        drop = q["seq"][k : k + 3]
        quotes = quotes.filter(~((pl.col("symbol") == sym) & pl.col("seq").is_in(drop.implode())))
        truth.append({"rule": "sequence_gap", "subject": f"quote:{sym}", "from": _iso(q["ts"][k + 3]),
                      "to": None, "note": f"seq {drop[0]}..{drop[-1]} of {sym} never delivered"})  # fmt: skip
    if spike_rows and quotes.height:
        at = quotes["ts"].sort()[quotes.height * 2 // 3]
        sym = quotes["symbol"].sort()[0]
        bad = pl.DataFrame({"symbol": [sym] * spike_rows, "ts": [at] * spike_rows}).with_columns(
            pl.col("ts").cast(quotes.schema["ts"]),
            pl.lit(101.0).alias("bid"), pl.lit(100.0).alias("ask"),  # crossed: quarantined by ingest
            pl.lit(100).cast(quotes.schema["bid_size"]).alias("bid_size"),
            pl.lit(100).cast(quotes.schema["ask_size"]).alias("ask_size"),
            pl.lit(None, pl.String).alias("venue"),
            pl.lit(None, pl.Int64).alias("seq"),
            pl.lit("MarketDataEvent").alias("event_type"), pl.lit("quote").alias("kind"),
        )  # fmt: skip
        quotes = pl.concat([quotes, bad.select(quotes.columns)], how="vertical_relaxed")
        truth.append({"rule": "quarantine_spike", "subject": "intake", "from": _iso(at), "to": None,
                      "note": f"{spike_rows} crossed quotes of {sym} in one burst"})  # fmt: skip
    truth.append({"rule": "venue_markout", "subject": "DRKB", "from": None, "to": None,
                  "note": "the simulator's planted adverse selection at its dark pool (SimConfig.adverse_bps), all day; "
                          "alerts when above the rule's baseline"})  # fmt: skip
    return quotes.sort("ts"), truth


# ---------------------------------------------------------------------------------------------------
# Sinks and pacing
# ---------------------------------------------------------------------------------------------------
class DirSink:
    """Appends to ``<folder>/live-<day>.jsonl`` (the watched folder picks whole lines up as they land)."""

    def __init__(self, folder: Path, day: dt.date):
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.fh = open(Path(folder) / f"live-{day}.jsonl", "a")  # noqa: SIM115 (closed by close())

    async def send(self, lines: list[str]) -> None:
        self.fh.write("".join(x + "\n" for x in lines))
        self.fh.flush()

    async def close(self) -> None:
        self.fh.close()


class NatsSink:
    """Publishes each event as one message on a JetStream subject (the stream is created when missing)."""

    def __init__(self, url: str, subject: str, stream: str):
        self.url, self.subject, self.stream = url, subject, stream

    async def open(self) -> NatsSink:
        import nats
        from nats.js.errors import NotFoundError

        self.nc = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
        self.js = self.nc.jetstream()
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(name=self.stream, subjects=[self.subject])
        return self

    async def send(self, lines: list[str]) -> None:
        futs = [await self.js.publish_async(self.subject, x.encode()) for x in lines]
        await asyncio.gather(*futs)

    async def close(self) -> None:
        await self.nc.drain()


async def stream(
    feed: DayFeed,
    sink,
    speed: float,
    on_sent: Callable[[int, int, float], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Send ``feed`` to ``sink`` at ``speed`` x real time (each event when its delivery time comes, in batches of
    the events due). ``on_sent(first, last, wall)`` after each batch (indices into the feed). Returns events sent."""
    t0 = time.time()
    i, n = 0, len(feed.lines)
    while i < n:
        if stop is not None and stop():
            break
        due = (time.time() - t0) * speed
        j = int(np.searchsorted(feed.deliver_s, due, side="right"))
        if j > i:
            await sink.send(feed.lines[i:j])
            if on_sent is not None:
                on_sent(i, j, time.time())
            i = j
        else:
            await asyncio.sleep(min(0.01, max(0.0, (feed.deliver_s[i] - due) / speed)))
    return i


def write_truth(path: Path, feed: DayFeed, extra: dict | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"day": feed.day.isoformat(), "anomalies": feed.truth, **(extra or {})}, indent=1))
