"""Orchestration: generate and write a simulated desk, day by day and symbol chunk by chunk.

Per day: unaffected mid path -> orders and their fill schedule -> impact on the mid ->
(per symbol chunk) quotes, background prints, fill prices, tape and daily bars -> events.
Memory is bounded by one day's (N x 23401) mid grid, one chunk of market data and one day's
events; files are written as soon as they are complete.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from .calendar import SESSION_SECONDS, US_PER_SECOND, next_trading_day, prior_trading_days, session_open_us
from .config import SimConfig
from .execution import (
    ALGOS,
    BROKERS,
    LIQUIDITY,
    SLICES,
    ExecutionParams,
    fill_venues,
    make_orders,
    order_impact_bps,
    price_fills,
    received_ts_us,
    schedule_fills,
)
from .faults import Fault, inject_event_faults, inject_market_faults
from .market import (
    FACTORS,
    KEY_SHIFT,
    ImpactParams,
    base_mid_grid,
    daily_model,
    impact_bps_grid,
    prevailing,
    sample_background_trades,
    sample_quotes,
)
from .portfolio import (
    HORIZON_DAYS,
    MODEL_ID,
    apply_fills,
    benchmark_frame,
    holdings_frame,
    initial_shares,
    long_only_sides,
    make_portfolios,
)
from .universe import TIERS, build_universe
from .writer import PARQUET_OPTIONS, SCHEMAS, json_frame, json_lines, market_table, to_arrow, write_parquet

T = SESSION_SECONDS
N_PRIOR_DAYS = 20
CHUNK_ROWS = 1_500_000  # quotes + prints generated at once
QUOTES_PER_SYMBOL = 2000
TRADES_PER_SYMBOL = 500
EVENT_TABLES = ("decisions", "orders", "fills", "settlements")
# random streams: (seed, stream, day index[, chunk])
S_UNIVERSE, S_DAILY, S_HOLDINGS, S_PATH, S_ORDERS, S_PORT, S_FILLS, S_QUOTES, S_TRADES, S_EVENTS, S_FAULTS = range(11)
S_LATENCY = 11  # its own stream: adding received_ts left every other draw unchanged


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _allocate(total: int, weight: np.ndarray, minimum: int) -> np.ndarray:
    """Integer split of ``total`` proportional to ``weight`` (each >= ``minimum``)."""
    return np.maximum(np.floor(total * weight / weight.sum()).astype(np.int64), minimum)


def _chunks(rows: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Contiguous symbol ranges holding at most ~``limit`` rows each."""
    out, lo, acc = [], 0, 0
    for i, r in enumerate(rows.tolist()):  # loop over symbols to cut chunks
        if acc and acc + r > limit:
            out.append((lo, i))
            lo, acc = i, 0
        acc += r
    out.append((lo, len(rows)))
    return out


def _ids(prefix: str, n: int, width: int) -> pl.Series:
    return pl.select(
        pl.concat_str([pl.lit(prefix), pl.int_range(1, n + 1).cast(pl.String).str.zfill(width)])
    ).to_series()


def simulate(out: Path, cfg: SimConfig, progress: Callable[[float, str], None] | None = None) -> dict:
    """Simulate ``cfg.days`` trading days of a US equity desk into directory ``out``.

    Returns a summary: ``files`` written, ``rows`` (clean rows per table), ``faults`` (count per
    fault type), ``expected`` (per table: accepted/duplicate/quarantined rows an ingest should
    report, plus ``unknown`` for lines that are not JSON). Same config -> byte-identical files.
    """
    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ip, ep = ImpactParams(adverse_bps=cfg.adverse_bps), ExecutionParams()
    seed = cfg.seed
    sim_days = _trading_days(cfg)
    prior = prior_trading_days(sim_days[0], N_PRIOR_DAYS)
    all_days = prior + sim_days
    n_prior = len(prior)
    uni = build_universe(cfg.symbols, _rng(seed, S_UNIVERSE))
    n = uni.n
    model = daily_model(uni, len(all_days), _rng(seed, S_DAILY))
    sigma = uni.sigma_daily
    liq = np.sqrt(uni.adv / uni.adv.max())
    q_count = _allocate(cfg.quotes_per_day or QUOTES_PER_SYMBOL * n, liq, 50)
    t_count = _allocate(cfg.trades_per_day or TRADES_PER_SYMBOL * n, liq, 20)
    pick_w = (uni.adv * uni.price0) ** 0.25
    portfolios = make_portfolios(cfg.portfolios)
    pids = portfolios["portfolio_id"].to_list()
    strategies = np.asarray(portfolios["strategy"].to_list())
    shares = initial_shares(uni, cfg.portfolios, _rng(seed, S_HOLDINGS))

    files: list[str] = []
    rows: Counter[str] = Counter()
    faults = _FaultLog(out / "_faults.jsonl")

    def put(name: str, table, kind: str) -> None:
        write_parquet(out / name, table)
        files.append(name)
        rows[kind] += table.num_rows

    # realised closes; the close before the first prior day is the universe's initial price
    close_real = np.zeros((len(all_days), n))
    bars_parts: list[pl.DataFrame] = []
    prev = uni.price0
    for t in range(n_prior):  # prior bars: loop over days only
        o = np.round(prev * np.exp(model.gaps[t]), 2)
        c = np.round(model.closes[t], 2)
        r = _rng(seed, S_DAILY, t)
        hi = np.round(np.maximum(o, c) * (1 + 0.3 * sigma * np.abs(r.standard_normal(n))), 2)
        lo = np.round(np.minimum(o, c) * (1 - 0.3 * sigma * np.abs(r.standard_normal(n))), 2)
        bars_parts.append(_bars(all_days[t], uni.symbols, o, hi, lo, c, model.volume[t].astype(np.int64),
                                np.round((o + hi + lo + c) / 4, 4)))  # fmt: skip
        close_real[t] = c
        prev = c

    carry = np.zeros(n)
    hold_parts: list[pl.DataFrame] = []
    bench_parts: list[pl.DataFrame] = []
    for d, day in enumerate(sim_days):  # loop over days
        t = n_prior + d
        tag = day.strftime("%Y%m%d")
        open_us = session_open_us(day)
        prev_close = close_real[t - 1]
        hold_parts.append(holdings_frame(day, shares, prev_close, uni, pids))
        bench_parts.append(benchmark_frame(day, prev_close, uni))

        # market path and desk orders (independent random streams)
        o_px = model.closes[t - 1] * np.exp(model.gaps[t])
        base = base_mid_grid(o_px, model.closes[t], sigma, _rng(seed, S_PATH, t))
        orders, port, fills, dec_rel_us = desk_day(cfg, uni.adv, pick_w, shares, t, ep)
        n_orders = len(orders["qty"])
        f_order = fills["order"]
        f_sym = orders["sym"][f_order]
        f_side = orders["side"][f_order]

        # impact on the mid
        imp = order_impact_bps(orders, sigma, uni.adv, model.volume[t], ip)
        adverse = fills["slice"] == SLICES.index(ip.adverse_venue)
        shift = impact_bps_grid(
            n, carry, orders["sym"], orders["side"],
            np.floor(orders["first_s"]), np.floor(orders["end_s"]),
            imp["perm_bps"], imp["temp_bps"],
            f_sym[adverse], f_side[adverse], fills["rel_us"][adverse] // US_PER_SECOND, ip,
        )  # fmt: skip
        mid = base * (1.0 + shift / 1e4)
        del base, shift
        np.add.at(carry, orders["sym"], orders["side"] * imp["perm_bps"])
        close_px = np.round(mid[:, T], 2)
        close_real[t] = close_px

        dec_mid = np.full(n_orders, np.nan)
        fill_price = np.zeros(len(f_order))
        venue = fill_venues(fills, uni.exchange[f_sym])
        bar_cols = {k: np.zeros(n) for k in ("open", "high", "low", "volume", "vwap")}
        # the desk's own fills are prints too: they replace background prints (a quarter kept)
        background = np.maximum(t_count - np.bincount(f_sym, minlength=n), t_count // 4)

        qname, tname = f"quotes_{day}.parquet", f"trades_{day}.parquet"
        qw = pq.ParquetWriter(out / qname, SCHEMAS["quotes"], **PARQUET_OPTIONS)
        tw = pq.ParquetWriter(out / tname, SCHEMAS["trades"], **PARQUET_OPTIONS)
        q_rows = t_rows = 0
        for ci, (lo, hi) in enumerate(_chunks(q_count + t_count, CHUNK_ROWS)):  # symbol chunks
            m = hi - lo
            quotes = sample_quotes(q_count[lo:hi], mid[lo:hi], uni.spread_bps[lo:hi], uni.quote_lots[lo:hi],
                                   _rng(seed, S_QUOTES, t, ci))  # fmt: skip
            trades = sample_background_trades(background[lo:hi], model.volume[t, lo:hi], quotes,
                                              _rng(seed, S_TRADES, t, ci))  # fmt: skip
            fi = np.flatnonzero((f_sym >= lo) & (f_sym < hi))
            fkey = ((f_sym[fi] - lo).astype(np.int64) << KEY_SHIFT) | fills["rel_us"][fi]
            qi = prevailing(quotes["key"], fkey)
            fill_price[fi] = price_fills(
                f_side[fi], fills["qty"][fi], fills["liquidity"][fi], quotes["bid"][qi], quotes["ask"][qi],
                quotes["bid_size"][qi], quotes["ask_size"][qi], close_px[f_sym[fi]],
            )  # fmt: skip
            oi = np.flatnonzero((orders["sym"] >= lo) & (orders["sym"] < hi))
            dkey = ((orders["sym"][oi] - lo).astype(np.int64) << KEY_SHIFT) | dec_rel_us[oi]
            qd = prevailing(quotes["key"], dkey)
            dec_mid[oi] = (quotes["bid"][qd] + quotes["ask"][qd]) / 2

            # the tape: other participants, the desk's own fills, the closing cross
            loc = np.arange(m, dtype=np.int64)
            auc_key = (loc << KEY_SHIFT) | (T * US_PER_SECOND)
            auc_size = np.maximum(np.round(0.05 * model.volume[t, lo:hi] / 100) * 100, 100).astype(np.int64)
            desk_auction = fills["liquidity"][fi] == LIQUIDITY.index("AUCTION")
            desk_cond = np.where(desk_auction, "6", np.where(fills["qty"][fi] < 100, "I", "@"))
            key = np.concatenate([trades["key"], fkey, auc_key])
            order = np.argsort(key, kind="stable")
            tape = {
                "key": key[order],
                "price": np.concatenate([trades["price"], fill_price[fi], close_px[lo:hi]])[order],
                "size": np.concatenate([trades["size"], fills["qty"][fi], auc_size])[order],
                "venue": np.concatenate([trades["venue"], venue[fi], uni.exchange[lo:hi]])[order],
                "condition": np.concatenate([trades["condition"], desk_cond, np.full(m, "6")])[order],
            }
            tsym = tape["key"] >> KEY_SHIFT
            starts = np.searchsorted(tsym, loc)
            vol = np.bincount(tsym, tape["size"], minlength=m)
            bar_cols["open"][lo:hi] = tape["price"][starts]
            bar_cols["high"][lo:hi] = np.maximum.reduceat(tape["price"], starts)
            bar_cols["low"][lo:hi] = np.minimum.reduceat(tape["price"], starts)
            bar_cols["volume"][lo:hi] = vol
            bar_cols["vwap"][lo:hi] = np.round(np.bincount(tsym, tape["price"] * tape["size"], minlength=m) / vol, 4)

            qcols = {
                "sym": quotes["sym"] + lo, "ts": open_us + quotes["us"], "bid": quotes["bid"], "ask": quotes["ask"],
                "bid_size": quotes["bid_size"], "ask_size": quotes["ask_size"],
            }  # fmt: skip
            tcols = {
                "sym": tsym + lo, "ts": open_us + (tape["key"] & ((1 << KEY_SHIFT) - 1)), "price": tape["price"],
                "size": tape["size"], "venue": tape["venue"], "condition": tape["condition"],
            }  # fmt: skip
            rows["quotes"] += len(qcols["ts"])
            rows["trades"] += len(tcols["ts"])
            fr = _rng(seed, S_FAULTS, t, ci)
            qcols, qf = inject_market_faults("quotes", qcols, cfg.faults, fr)
            tcols, tf = inject_market_faults("trades", tcols, cfg.faults, fr)
            faults.add([Fault(qname, q_rows + r, "quotes", None, k, "quarantined") for r, k in qf])
            faults.add([Fault(tname, t_rows + r, "trades", None, k, "quarantined") for r, k in tf])
            qw.write_table(market_table("quotes", uni.symbols, qcols))
            tw.write_table(market_table("trades", uni.symbols, tcols))
            q_rows += len(qcols["ts"])
            t_rows += len(tcols["ts"])
        qw.close()
        tw.close()
        files += [qname, tname]
        del mid

        bars_parts.append(_bars(day, uni.symbols, bar_cols["open"], bar_cols["high"], bar_cols["low"], close_px,
                                bar_cols["volume"].astype(np.int64), bar_cols["vwap"]))  # fmt: skip
        frames = _event_frames(
            cfg, day, tag, open_us, uni, orders, port, strategies, pids, dec_rel_us, dec_mid, fills, f_sym,
            f_side, fill_price, venue, ep, _rng(seed, S_EVENTS, t), _rng(seed, S_LATENCY, t),
        )  # fmt: skip
        for ti, (table, frame) in enumerate(frames.items()):
            faults.add(_write_events(out, table, day, frame, cfg, _rng(seed, S_FAULTS, t, 10_000 + ti), files))
            rows[table] += frame.height
        shares = apply_fills(shares, port[f_order], f_sym, f_side * fills["qty"])
        if progress is not None:
            progress((d + 1) / len(sim_days), f"simulated {day} ({d + 1}/{len(sim_days)})")

    # reference, portfolio and daily files
    put("securities.parquet", to_arrow(uni.securities, "securities"), "securities")
    put("portfolios.parquet", to_arrow(portfolios, "portfolios"), "portfolios")
    put("holdings.parquet", to_arrow(pl.concat(hold_parts), "holdings"), "holdings")
    put("benchmark_weights.parquet", to_arrow(pl.concat(bench_parts), "benchmark_weights"), "benchmark_weights")
    bars = pl.concat(bars_parts).sort(["symbol", "ts"])
    put("bars_1d.parquet", to_arrow(bars, "bars"), "bars")
    prev_close = np.vstack([np.round(uni.price0, 2)[None, :], close_real[:-1]])
    put("returns.parquet", to_arrow(_daily_long(all_days, uni.symbols, close_real / prev_close - 1, "return"),
                                    "returns"), "returns")  # fmt: skip
    put("factor_exposures.parquet", to_arrow(_exposures_long(all_days, uni.symbols, model.exposures),
                                             "factor_exposures"), "factor_exposures")  # fmt: skip
    fr = pl.DataFrame({
        "date": np.repeat(np.array(all_days, dtype="datetime64[D]"), len(FACTORS)),
        "factor": np.tile(np.asarray(FACTORS), len(all_days)),
        "return": model.factor_returns.ravel(),
    })  # fmt: skip
    put("factor_returns.parquet", to_arrow(fr, "factor_returns"), "factor_returns")

    expected = _expected(rows, faults)
    if faults.close():
        files.append("_faults.jsonl")
    fault_counts = dict(sorted(faults.by_type.items()))
    truth = _ground_truth(cfg, uni, ip, ep, all_days, n_prior, dict(rows), expected, fault_counts)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    files.append("ground_truth.json")
    return {
        "out": str(out),
        "files": sorted(files),
        "rows": dict(sorted(rows.items())),
        "faults": fault_counts,
        "expected": expected,
    }


def desk_day(
    cfg: SimConfig, adv: np.ndarray, pick_w: np.ndarray, shares: np.ndarray, t: int, ep: ExecutionParams
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The desk's day ``t`` (index among all days, prior ones included): its orders (sides made long-only against
    ``shares``), their portfolio index, their child fills, and each decision's time (us after the open: minutes
    before the NEW, after the open). The one place that draws them, from the day's own random streams, so a
    replay (``replay.day_state``) redraws exactly what :func:`simulate` drew."""
    orders = make_orders(cfg.orders_per_day, adv, pick_w, _rng(cfg.seed, S_ORDERS, t), ep)
    n_orders = len(orders["qty"])
    rp = _rng(cfg.seed, S_PORT, t)
    port = rp.integers(0, cfg.portfolios, n_orders)
    orders["side"] = long_only_sides(port, orders["sym"], orders["side"], orders["qty"], shares)
    fills = schedule_fills(orders, cfg.fills_per_order, _rng(cfg.seed, S_FILLS, t), ep)
    dec_s = orders["start_s"] - np.maximum(300.0 * np.exp(0.8 * rp.standard_normal(n_orders)), 30.0)
    early = rp.uniform(0.2, 0.8, n_orders) * (orders["start_s"] - 30.0)
    dec_rel_us = (np.where(dec_s < 0, early, dec_s) * US_PER_SECOND).astype(np.int64)
    return orders, port, fills, dec_rel_us


def _trading_days(cfg: SimConfig) -> list[date]:
    from .calendar import trading_days

    return trading_days(cfg.start, cfg.days)


def _bars(day, symbols, o, h, lo, c, v, vwap) -> pl.DataFrame:
    ts = np.full(len(symbols), session_open_us(day), dtype=np.int64)
    return pl.DataFrame({
        "symbol": symbols, "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")), "interval": ["1d"] * len(symbols),
        "open": o, "high": np.maximum(h, np.maximum(o, c)), "low": np.minimum(lo, np.minimum(o, c)), "close": c,
        "volume": v, "vwap": vwap,
    })  # fmt: skip


def _daily_long(days: list[date], symbols: np.ndarray, values: np.ndarray, name: str) -> pl.DataFrame:
    return pl.DataFrame({
        "date": np.repeat(np.array(days, dtype="datetime64[D]"), len(symbols)),
        "symbol": np.tile(symbols, len(days)),
        name: values.ravel(),
    })  # fmt: skip


def _exposures_long(days: list[date], symbols: np.ndarray, exposures: np.ndarray) -> pl.DataFrame:
    d, n, f = exposures.shape
    return pl.DataFrame({
        "date": np.repeat(np.array(days, dtype="datetime64[D]"), n * f),
        "symbol": np.tile(np.repeat(symbols, f), d),
        "factor": np.tile(np.asarray(FACTORS), d * n),
        "exposure": exposures.ravel(),
    })  # fmt: skip


def _event_frames(cfg, day, tag, open_us, uni, orders, port, strategies, pids, dec_rel_us, dec_mid, fills, f_sym,
                  f_side, fill_price, venue, ep, rng, lat_rng) -> dict[str, pl.DataFrame]:  # fmt: skip
    """Decision, order, fill and settlement events of one day (ts as Int64 us since epoch)."""
    n_orders = len(orders["qty"])
    f_order = fills["order"]
    side_txt = np.where(orders["side"] > 0, "BUY", "SELL")
    sym_txt = uni.symbols[orders["sym"]]
    start_us = open_us + (orders["start_s"] * US_PER_SECOND).astype(np.int64)
    end_us = open_us + (orders["end_s"] * US_PER_SECOND).astype(np.int64)
    rank = np.empty(n_orders, dtype=np.int64)
    rank[np.lexsort((np.arange(n_orders), start_us))] = np.arange(n_orders)
    order_ids = np.asarray(_ids(f"O{tag}-", n_orders, 6).to_list())[rank]
    decision_ids = np.asarray(_ids(f"D{tag}-", n_orders, 6).to_list())[rank]
    strategy = strategies[port]
    pov = orders["target_pov"]
    urgency = np.where(pov > 0.12, "HIGH", np.where(pov < 0.04, "LOW", "MEDIUM"))
    model_id = [MODEL_ID.get(s) for s in strategy.tolist()]
    quant = np.array([m is not None for m in model_id])
    decisions = pl.DataFrame({
        "event_id": np.char.add("EV-", decision_ids), "decision_id": decision_ids, "ts": open_us + dec_rel_us,
        "portfolio_id": np.asarray(pids)[port], "strategy": strategy, "symbol": sym_txt, "side": side_txt,
        "quantity": orders["qty"], "decision_price": np.where(quant, np.round(dec_mid, 4), np.nan),
        "urgency": urgency, "alpha_bps": np.round(25.0 * np.exp(0.7 * rng.standard_normal(n_orders)), 1),
        "horizon_days": np.array([HORIZON_DAYS[s] for s in strategy.tolist()], dtype=np.int64), "model_id": model_id,
    }).with_columns(pl.col("decision_price").fill_nan(None))  # fmt: skip

    # order life cycle
    filled_by_order = np.bincount(f_order, fills["qty"], minlength=n_orders).astype(np.int64)
    last_fill_us = open_us + np.maximum.reduceat(fills["rel_us"], np.searchsorted(f_order, np.arange(n_orders)))
    done = filled_by_order == orders["qty"]
    end_ts = np.where(done, last_fill_us + 1000, np.maximum(end_us, last_fill_us + 1000))
    pmax = np.full(n_orders, -np.inf)
    pmin = np.full(n_orders, np.inf)
    np.maximum.at(pmax, f_order, fill_price)
    np.minimum.at(pmin, f_order, fill_price)
    has_limit = rng.random(n_orders) < 0.3
    limit = np.where(orders["side"] > 0, np.round(pmax * 1.02 + 0.01, 2), np.round(pmin * 0.98 - 0.01, 2))
    iso = "%Y-%m-%dT%H:%M:%S%.6fZ"
    new = pl.DataFrame({
        "order_id": order_ids, "ts": start_us, "action": "NEW", "symbol": sym_txt, "side": side_txt,
        "quantity": orders["qty"], "broker": np.asarray(BROKERS)[orders["broker"]],
        "algo": np.asarray(ALGOS)[orders["algo"]], "decision_id": decision_ids,
        "limit_price": np.where(has_limit, limit, np.nan),
        "trader": np.char.add("T", np.char.zfill((rng.integers(1, 9, n_orders)).astype(str), 2)),
        "desk": np.where(orders["sym"] % 2 == 0, "US-EQ-HT", "US-EQ-LT"), "urgency": urgency,
        "start_us": start_us, "end_us": end_us, "target_pov": np.round(pov, 4), "to_close": orders["to_close"],
    }).with_columns(pl.col("limit_price").fill_nan(None))  # fmt: skip
    replace_ts = open_us + ((orders["first_s"] + orders["end_s"]) / 2 * US_PER_SECOND).astype(np.int64)
    rep = new.filter(pl.Series(orders["replace"] & (orders["end_s"] - orders["first_s"] > 120))).with_columns(
        ts=pl.Series(replace_ts[orders["replace"] & (orders["end_s"] - orders["first_s"] > 120)]),
        action=pl.lit("REPLACE"),
        target_pov=(pl.col("target_pov") * 1.25).round(4),
    )
    full = pl.concat([new, rep]).with_columns(
        event_id=pl.concat_str([pl.col("order_id"), pl.lit("-"), pl.col("action"),
                                pl.when(pl.col("action") == "REPLACE").then(pl.lit("-1")).otherwise(pl.lit(""))]),
        algo_params=pl.struct(
            start_time=pl.col("start_us").cast(pl.Datetime("us", "UTC")).dt.strftime(iso),
            end_time=pl.col("end_us").cast(pl.Datetime("us", "UTC")).dt.strftime(iso),
            target_pov=pl.col("target_pov"),
            to_close=pl.col("to_close"),
        ),
    ).drop("start_us", "end_us", "target_pov", "to_close")  # fmt: skip
    action = np.where(done, "DONE", "CANCEL")
    ends = pl.DataFrame({"event_id": np.char.add(np.char.add(order_ids, "-"), action), "order_id": order_ids,
                         "ts": end_ts, "action": action})  # fmt: skip
    orders_df = pl.concat([full, ends], how="diagonal_relaxed")

    # fills, in time order
    n_f = len(f_order)
    fo = np.lexsort((f_order, fills["rel_us"]))
    fill_ids = _ids(f"F{tag}-", n_f, 7).to_numpy()
    first_idx = np.searchsorted(f_order, np.arange(n_orders))
    child = (np.arange(n_f) - first_idx[f_order]) // 4
    qty = fills["qty"]
    notional = qty * fill_price
    cps = np.array([c for _, c in ep.commission_cps])[orders["broker"][f_order]]
    commission = np.round(cps * qty / 100.0, 4)
    sells = f_side < 0
    fees = np.where(sells, np.round(notional * ep.sec_fee_rate, 2), 0.0)
    fills_df = pl.DataFrame({
        "event_id": np.char.add("EV-", fill_ids.astype(str)), "fill_id": fill_ids,
        "order_id": order_ids[f_order][fo], "ts": open_us + fills["rel_us"][fo],
        "received_ts": received_ts_us(open_us + fills["rel_us"][fo], venue[fo], ep, lat_rng),
        "symbol": uni.symbols[f_sym][fo],
        "side": np.where(f_side > 0, "BUY", "SELL")[fo], "quantity": qty[fo], "price": fill_price[fo],
        "venue": venue[fo], "liquidity": np.asarray(LIQUIDITY)[fills["liquidity"]][fo],
        "child_order_id": np.char.add(np.char.add(order_ids[f_order], "-C"), np.char.zfill(child.astype(str), 3))[fo],
        "commission": commission[fo], "fees": fees[fo], "currency": "USD",
    })  # fmt: skip
    settle = next_trading_day(day)
    settle_us = int(datetime(settle.year, settle.month, settle.day, 11, tzinfo=UTC).timestamp()) * US_PER_SECOND
    adj = np.where(rng.random(n_f) < 0.1, rng.uniform(-0.02, 0.02, n_f), 0.0)
    taf = np.minimum(qty * ep.taf_per_share, ep.taf_cap)
    settlements = pl.DataFrame({
        "event_id": np.char.add("EV-S", fill_ids.astype(str)), "fill_id": fill_ids,
        "ts": settle_us + np.arange(n_f, dtype=np.int64), "settle_date": [settle] * n_f,
        "commission": np.round(commission * (1 + adj), 2)[fo],
        "fees": np.where(sells, np.round(notional * ep.sec_fee_rate + taf, 2), 0.0)[fo],
        "taxes": 0.0, "currency": "USD", "fx_rate": 1.0,
    })  # fmt: skip
    sort = ["ts", "event_id"]
    return {
        "decisions": decisions.sort(sort),
        "orders": orders_df.sort(sort),
        "fills": fills_df.sort(sort),
        "settlements": settlements.sort(sort),
    }


def _write_events(out: Path, table: str, day: date, frame: pl.DataFrame, cfg: SimConfig, rng, files) -> list[Fault]:
    """Write one event file (JSON Lines or Parquet) with its faults; return the fault records."""
    if cfg.events_format == "jsonl":
        name = f"{table}_{day}.jsonl"
        view = json_frame(frame, table)
        if cfg.faults <= 0 and not any(view[c].null_count() for c in view.columns):
            view.write_ndjson(out / name)
            recs = []
        else:
            lines = json_lines(view)
            lines, recs = inject_event_faults(table, view, lines, cfg.faults, rng, f"{table[:3]}{day:%Y%m%d}")
            with open(out / name, "w") as fh:
                fh.write("\n".join(lines))
                fh.write("\n")
    else:
        name = f"{table}_{day}.parquet"
        typed = frame.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
        if "algo_params" in typed.columns:  # a JSON object as text; null stays null
            params = pl.col("algo_params")
            typed = typed.with_columns(pl.when(params.is_not_null()).then(params.struct.json_encode()))
        typed = typed.select(SCHEMAS[table].names)
        merged, recs = inject_event_faults(table, typed, None, cfg.faults, rng, f"{table[:3]}{day:%Y%m%d}")
        write_parquet(out / name, to_arrow(merged, table))
    files.append(name)
    return [Fault(name, line, tbl, eid, kind, exp) for line, eid, tbl, kind, exp in recs]


class _FaultLog:
    """Streams fault records to _faults.jsonl (created only if there is a fault) and counts them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = None
        self.by_type: Counter[str] = Counter()
        self.by_outcome: Counter[tuple[str, str]] = Counter()
        path.unlink(missing_ok=True)

    def add(self, faults: list[Fault]) -> None:
        if faults and self.fh is None:
            self.fh = open(self.path, "w")  # noqa: SIM115 - closed in close()
        for f in faults:
            self.fh.write(json.dumps(f.as_dict(), sort_keys=True) + "\n")
            self.by_type[f.fault] += 1
            self.by_outcome[(f.table, f.expected)] += 1

    def close(self) -> bool:
        if self.fh is not None:
            self.fh.close()
        return self.fh is not None


def _expected(rows: Counter, faults: _FaultLog) -> dict:
    """Ingest outcome per table: clean rows accepted; faults duplicate or quarantined; lines that
    are not JSON under ``unknown``."""
    expected: dict = {t: {"accepted": int(c), "duplicate": 0, "quarantined": 0} for t, c in sorted(rows.items())}
    expected["unknown"] = 0
    for (table, outcome), count in sorted(faults.by_outcome.items()):
        if table == "unknown":
            expected["unknown"] += count
        else:
            expected[table][outcome] += count
    return expected


def _ground_truth(cfg, uni, ip, ep, all_days, n_prior, rows, expected, fault_counts) -> dict:
    config = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in dataclasses.asdict(cfg).items()}
    return {
        "config": config,
        "calendar": {
            "prior_days": [d.isoformat() for d in all_days[:n_prior]],
            "simulated_days": [d.isoformat() for d in all_days[n_prior:]],
            "holidays": "ignored: every weekday is a trading day",
            "session": "09:30-16:00 America/New_York",
        },
        "impact": {
            **dataclasses.asdict(ip),
            "algo_multiplier": dict(ip.algo_multiplier),
            "law": "perm_bps = gamma*sigma_daily_bps*sqrt(X/ADV) (linear accrual, kept); "
            "temp_bps = eta*mult[algo]*sigma_daily_bps*sqrt(POV/(1-POV)) (first fill..end, linear decay over tau_s)",
            "sign": "mid displaced by s*(perm+temp) bps, s=+1 buy",
        },
        "planted": {
            "adverse_selection": {
                "venue": ip.adverse_venue,
                "bps": ip.adverse_bps,
                "ramp_s": ip.adverse_ramp_s,
                "hold_s": ip.adverse_hold_s,
                "revert_s": ip.adverse_revert_s,
            },
            "liqseek_temp_multiplier": ip.multiplier("LIQSEEK"),
            "null_pair": {"VWAP": ip.multiplier("VWAP"), "POV": ip.multiplier("POV")},
            "slow_broker": {
                "broker": "Crescent",
                "first_fill_median_s": dict(ep.first_fill_median_s),
                "p_done": dict(ep.p_done),
            },
        },
        "execution": {
            "algos": list(ALGOS),
            "brokers": list(BROKERS),
            "slices": list(SLICES),
            "algo_weights": dict(zip(ALGOS, ep.algo_weights, strict=True)),
            "slice_mix": {a: dict(zip(SLICES, m, strict=True)) for a, m in ep.slice_mix},
            "commission_cents_per_share": dict(ep.commission_cps),
            "partial_fill": {b: [lo, hi] for b, lo, hi in ep.partial_fill},
            "pov_range": list(ep.pov_range),
            "volume_share_range": list(ep.volume_share_range),
            "auction_share": list(ep.auction_share),
            "sec_fee_rate": ep.sec_fee_rate,
            "taf_per_share": ep.taf_per_share,
            "taf_cap": ep.taf_cap,
            "routing_latency_ms": dict(ep.routing_latency_ms),
        },
        "factors": list(FACTORS),
        "symbols": [
            {
                "symbol": s,
                "tier": TIERS[int(k)],
                "spread_bps": round(float(sp), 4),
                "vol_annual": round(float(v), 6),
                "adv": round(float(a)),
                "initial_close": round(float(p), 2),
                "exchange": str(e),
            }
            for s, k, sp, v, a, p, e in zip(
                uni.symbols.tolist(),
                uni.tier,
                uni.spread_bps,
                uni.vol_annual,
                uni.adv,
                uni.price0,
                uni.exchange,
                strict=True,
            )
        ],
        "rows": dict(sorted(rows.items())),
        "expected": expected,
        "faults": fault_counts,
    }
