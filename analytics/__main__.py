"""Command line: ``python -m analytics <command>``. The same functions back the app's pages.

Commands:
  ingest PATH... [--type NAME] [--lake DIR] [--json]   load contract files into the lake
  lake [--lake DIR] [--json]                           tables, row counts, date ranges, quarantine
  lake verify [--lake DIR] [--json]                    check every file of the current version (size, SHA-256)
  lake repair [--to VERSION] [--lake DIR] [--json]     make CURRENT name the newest valid version (or roll back)
  quarantine purge --before DATE [--lake DIR]          drop quarantine rows ingested before DATE
  simulate --out DIR [--days N] [--symbols N] ...      write a simulated desk's contract files
  tca [--start D] [--end D] [--out FILE] [--lake DIR]  per-order TCA, stored in the lake and exported
  demo [--lake DIR]                                    build the demo lake (simulate --faults + ingest)
  quality [--by venue|algo|broker] [--start D] ...     execution quality (ExecutionQualityReportEvent rows)
  attribution --portfolio ID --start D --end D ...     Brinson attribution (PerformanceAttributionEvent rows)
  risk [--portfolio ID ...] [--start D] [--end D] ...  risk-adjusted returns vs benchmark, peer ranking
  dataset build NAME [--start D] [--end D] | list | show NAME[@V] | diff NAME@V1 NAME@V2   training datasets (JSON)
  train [--model istar|almgren] [--dataset NAME@V] ...  fit an impact model, log to MLflow, promote per the margin
  estimate --size-adv X --volatility Y --pov Z [--json]  pre-trade impact cost (bps) from the champion or published
  predict --orders FILE --out FILE [--model M]           ExecutionCostPredictionEvents for a file of orders
  live [--source nats://HOST:PORT/SUBJECT | dir:PATH] [--commit-interval S]   the real-time engine (until SIGTERM)
  alerts [--since TS] [--json]                           live alerts (PerformanceAnomalyAlertEvent) and their state
  simulate --live --speed X --to dir:PATH|nats://...     stream a simulated day in accelerated time

Exit codes: 0 done (an ingest with quarantined rows is done); 1 ``lake verify`` found a bad or missing file;
2 bad usage or an unreadable input (one line on stderr, never a traceback: a bad date, an unknown dataset
version, ``--lake`` naming a file, an unwritable ``--out``); 3 the lake is damaged (a missing or corrupt
``CURRENT``, manifest or data file: the message names it and the repair command).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import duckdb

from analytics.ingest import IngestError, ingest
from analytics.schema import TABLES
from analytics.store import Lake, LakeCorrupt
from analytics.validate import Limits


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2): the message, not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _lake_dir(text: str) -> str:
    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a directory")
    return text


def _out_file(text: str) -> str:
    """An output file whose folder exists (or can be made) and is writable: checked before any long work."""
    p = Path(text).expanduser()
    parent = next((a for a in [p.parent, *p.parent.parents] if a.exists()), Path("/"))
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: {parent} is not writable")
    return text


def _lake_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", metavar="DIR", type=_lake_dir, help="lake root (default: $ANALYTICS_LAKE or data/lake)")


def _print_table(rows: list[dict], cols: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def cmd_ingest(args: argparse.Namespace) -> int:
    lake = Lake(args.lake)
    try:
        limits = Limits(hold_limit=dt.timedelta(hours=args.hold_hours)) if args.hold_hours is not None else Limits()
        res = ingest(args.paths, lake, type_name=args.type, limits=limits)
    except IngestError as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        print("ingest: nothing was written; the lake is unchanged", file=sys.stderr)
        return 2
    out = res.to_dict()
    out["lake"] = str(lake.root)
    if args.json:
        print(json.dumps(out, default=str))
        return 0
    rows = [{"table": t, **c} for t, c in out["tables"].items()]
    _print_table(rows, ["table", "read", "accepted", "duplicate", "quarantined", "held"])
    t = out["totals"]
    print(
        f"total: read {t['read']} = accepted {t['accepted']} + duplicate {t['duplicate']} "
        f"+ quarantined {t['quarantined']} + held {t['held']}"
    )
    for table, c in out["held_before"].items():
        print(f"held earlier, {table}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if out["quarantine_reasons"]:
        print("quarantined by reason: " + ", ".join(f"{k} {v}" for k, v in out["quarantine_reasons"].items()))
    for f in out["files"]:
        if f["status"] == "skipped":
            print(f"skipped {f['path']}: {f['reason']}")
    already = [f["path"] for f in out["files"] if f["status"] == "already_ingested"]
    if already:
        print(f"{len(already)} file(s) already ingested before (no-op)")
    changed = "" if res.version != res.version_before else " (unchanged)"
    print(f"lake {lake.root} version {res.version}{changed}")
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from analytics.ingest import purge_quarantine

    before = args.before
    lake = Lake(args.lake)
    removed, kept = purge_quarantine(lake, before)
    print(f"quarantine: removed {removed} row(s) ingested before {before}, kept {kept}; lake version {lake.version()}")
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    lake = Lake(args.lake)
    if args.action == "verify":
        rep = lake.verify()
        if args.json:
            print(json.dumps(rep))
        else:
            print(
                f"lake {lake.root} version {rep['version']}: {rep['files']} file(s), {len(rep['problems'])} bad, "
                f"{rep['unhashed']} unhashed (written before hashes were recorded: presence checked only)"
            )
        for p in rep["problems"]:
            print(f"lake verify: {p['problem']}: {p['path']} ({p['table']})", file=sys.stderr)
        if rep["problems"]:
            print(
                "lake verify: fix with `python -m analytics lake repair` (newest valid version) or `--to VERSION`",
                file=sys.stderr,
            )
        return 0 if rep["ok"] else 1
    if args.action == "repair":
        rep = lake.repair(args.to)
        if args.json:
            print(json.dumps(rep))
        else:
            for v, why in rep["skipped"]:
                print(f"lake repair: skipped version {v}: {why}", file=sys.stderr)
            src = f" (the files of version {rep['restored_from']})" if rep["restored_from"] else ""
            print(f"lake {lake.root} is at version {rep['version']}{src}")
        return 0
    if args.to is not None:
        print("lake: error: --to goes with `lake repair`", file=sys.stderr)
        return 2
    info = lake.summary()
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    print(f"lake {info['lake']} version {info['version']}")
    _print_table(info["tables"], ["table", "rows", "files", "start", "end"])
    if info["quarantine"]:
        print("quarantine by reason:")
        _print_table(info["quarantine"], ["table", "reason", "rows"])
    else:
        print("quarantine: empty")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from analytics.simulate import SimConfig, simulate

    if args.live:
        return _simulate_live(args)
    if not args.out:
        print("simulate: error: --out is required (or --live --to TARGET)", file=sys.stderr)
        return 2

    kw = {
        k: getattr(args, k)
        for k in (
            "days",
            "symbols",
            "orders_per_day",
            "seed",
            "faults",
            "fills_per_order",
            "quotes_per_day",
            "trades_per_day",
            "events_format",
        )
        if getattr(args, k) is not None
    }
    if args.start:
        kw["start"] = args.start
    cfg = SimConfig(**kw)

    def progress(frac: float, msg: str) -> None:
        if not args.json:
            print(f"[{frac:5.0%}] {msg}", file=sys.stderr)

    summary = simulate(Path(args.out), cfg, progress=progress)
    print(json.dumps(summary, default=str) if args.json else f"wrote {args.out}")
    return 0


def _simulate_live(args: argparse.Namespace) -> int:
    """``simulate --live``: simulate one day (into --out, else a temporary folder), then stream it to --to."""
    import asyncio
    import tempfile

    from analytics.live import feed
    from analytics.live.config import load
    from analytics.live.sources import parse_source
    from analytics.simulate import SimConfig, simulate

    if not args.to:
        print("simulate: error: --live needs --to dir:PATH or nats://HOST:PORT/SUBJECT", file=sys.stderr)
        return 2
    target = parse_source(args.to)
    kw = {k: getattr(args, k) for k in ("symbols", "orders_per_day", "seed", "fills_per_order", "quotes_per_day",
                                         "trades_per_day") if getattr(args, k) is not None}  # fmt: skip
    if args.start:
        kw["start"] = args.start  # a date already (_date_arg)
    cfg = SimConfig(days=1, **kw)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="live-sim-"))
    simulate(out, cfg)
    day = cfg.start if cfg.start.weekday() < 5 else cfg.start + dt.timedelta(days=7 - cfg.start.weekday())
    f = feed.build(out, day, seed=cfg.seed)
    truth = (
        Path(args.truth)
        if args.truth
        else (target.path / "_live_ground_truth.json" if target.kind == "dir" else out / "_live_ground_truth.json")
    )
    feed.write_truth(truth, f, {"source": str(target), "speed": args.speed, "events": len(f.lines)})
    print(
        f"streaming {len(f.lines)} events of {day} at {args.speed}x to {target}; ground truth in {truth}",
        file=sys.stderr,
    )

    async def go() -> int:
        if target.kind == "dir":
            sink = feed.DirSink(target.path, day)
        else:
            sink = await feed.NatsSink(target.url, target.subject, load()["nats"]["stream"]).open()
        try:
            return await feed.stream(f, sink, args.speed)
        finally:
            await sink.close()

    n = asyncio.run(go())
    print(json.dumps({"events": n, "day": day.isoformat(), "truth": str(truth)}) if args.json else f"sent {n} events")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from analytics.live import delivery, engine
    from analytics.live.config import load
    from analytics.live.sources import parse_source

    lake = Lake(args.lake)
    try:
        spec = parse_source(args.source or f"dir:{lake.root / 'live' / 'inbox'}")
    except ValueError as e:
        print(f"live: error: {e}", file=sys.stderr)
        return 2
    cfg = load(lake.root, Path(args.rules) if args.rules else None)
    if args.commit_interval is not None:
        cfg["engine"]["commit_interval_s"] = args.commit_interval
    try:
        delivery.validate(cfg["delivery"])
    except ValueError as e:
        print(f"live: error: {e}", file=sys.stderr)
        return 2
    print(f"live: {spec} -> {lake.root} (commit every {cfg['engine']['commit_interval_s']} s)", file=sys.stderr)
    engine.run(lake, spec, cfg, Path(args.latency_log) if args.latency_log else None)
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from analytics.live import alerts
    from analytics.live.engine import live_dir

    lake = Lake(args.lake)
    since = dt.datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None
    if since is not None and since.tzinfo is None:
        print("alerts: error: --since needs a time zone (e.g. 2026-03-02T14:30:00Z)", file=sys.stderr)
        return 2
    df = alerts.read(live_dir(lake.root), since)
    if args.json:
        for r in df.with_columns(pl_ts_iso(df)).to_dicts():
            print(json.dumps(r, default=str))
        return 0
    if df.is_empty():
        print("no alerts")
        return 0
    rows = df.select("ts", "severity", "rule", "subject", "open", "acked", "message").to_dicts()
    _print_table(rows, ["ts", "severity", "rule", "subject", "open", "acked", "message"])
    return 0


def pl_ts_iso(df):
    import polars as pl

    return [pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") for c, d in df.schema.items() if isinstance(d, pl.Datetime)]


def _progress(fraction: float, message: str) -> None:
    """A long step's progress, on stderr (stdout stays the command's output)."""
    print(f"[{fraction:5.0%}] {message}", file=sys.stderr)


def _lake_with_data(command: str, args: argparse.Namespace) -> Lake | None:
    """The ``--lake`` lake, or None after saying on stderr that it is empty (the caller exits 2)."""
    lake = Lake(args.lake)
    if lake.exists():
        return lake
    print(f"{command}: error: the lake {lake.root} is empty (ingest data first)", file=sys.stderr)
    return None


def _date(value: dt.date | str | None) -> dt.date | None:
    """A parsed ``--start``/``--end`` (argparse already made it a date; a string from other callers)."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def cmd_tca(args: argparse.Namespace) -> int:
    from analytics import tca
    from analytics.export import ExportError, write_frame

    lake = _lake_with_data("tca", args)
    if lake is None:
        return 2
    start, end = _date(args.start), _date(args.end)
    v = tca.ensure(lake, start, end, progress=_progress)
    con = lake.connect(lake.manifest(v))
    rel = tca.results(lake, con, start, end, version=v)
    df = (
        rel.filter("order_id IS NOT NULL AND arrival_ts IS NOT NULL").order("arrival_ts, order_id").pl()
        if rel
        else None
    )
    if df is None or df.is_empty():
        print(f"tca: no orders arrived in {start or 'the beginning'}..{end or 'now'}", file=sys.stderr)
        df = None
    out = None
    if args.out and df is not None:
        try:
            out = write_frame(df, args.out)
        except ExportError as e:
            print(f"tca: error: {e}", file=sys.stderr)
            return 2
    summary = tca.summary(df) if df is not None else {"orders": 0}
    summary.update({"source_version": f"lake@{v}", "out": str(out) if out else None})
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for k, val in summary.items():
            print(f"{k}: {val}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analytics.filters import Filters
    from ui import report  # presentation layer: charts and layout, no Streamlit

    lake = _lake_with_data("report", args)
    if lake is None:
        return 2
    try:
        start, end = report.month_span(args.period) if args.period else (_date(args.start), _date(args.end))
        sections = tuple(args.sections or report.SECTIONS)
        rep = report.build(
            lake, Filters(start=start, end=end), sections, title=args.title,
            progress=_progress,
        )  # fmt: skip
    except ValueError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(report.render(rep, args.format))
    print(json.dumps({"out": str(out), "format": args.format, "sections": list(sections), "source": rep.source}))
    return 0


def cmd_attribution(args: argparse.Namespace) -> int:
    from analytics import attribution
    from analytics.export import ExportError, write_frame

    lake = Lake(args.lake)
    m = lake.manifest()
    con = lake.connect(m)
    bench = args.benchmark or attribution.benchmark_of(con, args.portfolio)
    if not bench:
        print(f"attribution: error: no benchmark for portfolio {args.portfolio!r} (give --benchmark)", file=sys.stderr)
        return 2
    start, end = _date(args.start), _date(args.end)
    try:
        pos = attribution.load_positions(con, args.portfolio, bench, start, end, args.group_by)
        att = attribution.attribute(pos, args.method, args.linking)
    except attribution.AttributionError as e:
        print(f"attribution: error: {e}", file=sys.stderr)
        return 2
    rows = attribution.events(
        att, portfolio_id=args.portfolio, benchmark_id=bench, start=start, end=end, method=args.method,
        linking=args.linking, grouping=args.group_by, version=m.version, snapshot_ts=m.created,
    )  # fmt: skip
    if args.out:
        try:
            write_frame(rows, args.out)
        except ExportError as e:
            print(f"attribution: error: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(rows.to_dicts(), default=str))
    else:
        cols = ["group", "allocation", "selection", "interaction", "total"]
        _print_table(
            [
                {k: f"{v:+.6f}" if isinstance(v, float) else v for k, v in r.items()}
                for r in rows.select(cols).to_dicts()
            ],
            cols,
        )
        print(f"{att.totals.height} day(s), source lake@{m.version}" + (f", wrote {args.out}" if args.out else ""))
    return 0


def cmd_risk(args: argparse.Namespace) -> int:
    import polars as pl

    from analytics import risk
    from analytics.export import ExportError, write_frame

    lake = Lake(args.lake)
    m = lake.manifest()
    con = lake.connect(m)
    series = risk.daily_returns(con, _date(args.start), _date(args.end), args.portfolio or None, args.benchmark)
    table = risk.peer_table(series)
    if table.is_empty():
        print("risk: error: no portfolio has holdings and benchmark weights in that range", file=sys.stderr)
        return 2
    table = table.with_columns(
        pl.lit(f"lake@{m.version}").alias("source_version"), pl.lit(risk.CODE_VERSION).alias("code_version")
    )
    if args.out:
        try:
            write_frame(table, args.out)
        except ExportError as e:
            print(f"risk: error: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(table.to_dicts(), default=str))
    else:
        cols = ["portfolio_id", "benchmark_id", "annual_return", "annual_volatility", "sharpe_ratio",
                "information_ratio", "tracking_error", "max_drawdown", "rank_ir"]  # fmt: skip
        fmt = [
            {k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()} for r in table.select(cols).to_dicts()
        ]
        _print_table(fmt, cols)
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from analytics import quality, tca
    from analytics.export import ExportError, write_frame
    from analytics.filters import Filters

    lake = _lake_with_data("quality", args)
    if lake is None:
        return 2
    start, end = _date(args.start), _date(args.end)
    v = tca.ensure(lake, start, end, progress=_progress)
    con = lake.connect(lake.manifest(v))
    f = Filters(start=start, end=end)
    try:
        rows = quality.report(lake, con, f, args.by, v, period=args.period)
        r605 = quality.rule605(lake, con, f, v) if args.rule605 else None
        if args.out:
            write_frame(rows, args.out)
        if r605 is not None:
            write_frame(r605, args.rule605)
    except (ExportError, ValueError) as e:
        print(f"quality: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows.to_dicts(), default=str))
    else:
        cols = ["key", "orders", "fills", "score", "arrival_cost_bps", "effective_spread_bps", "eq_ratio",
                "markout_cost_bps_60s", "fill_rate_qty"]  # fmt: skip
        fmt = [
            {k: f"{x:.2f}" if isinstance(x, float) else x for k, x in r.items()} for r in rows.select(cols).to_dicts()
        ]
        _print_table(fmt, cols)
        print(f"{rows.height} row(s) by {args.by}, source lake@{v}" + (f", wrote {args.out}" if args.out else "")
              + (f", Rule 605 report {args.rule605}" if args.rule605 else ""))  # fmt: skip
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    """dataset build|list|show|diff: versioned training datasets (analytics/datasets.py); prints JSON."""
    from analytics import datasets

    lake = Lake(args.lake)
    if args.action in ("build", "show") and len(args.ref) != 1:
        print(
            f"dataset {args.action}: give one NAME" + ("[@VERSION]" if args.action == "show" else ""), file=sys.stderr
        )
        return 2
    try:
        if args.action == "build":
            out = datasets.build(
                lake, args.ref[0], _date(args.start), _date(args.end), faults_dir=args.faults_from,
                progress=_progress,
            )  # fmt: skip
        elif args.action == "list":
            out = datasets.list_datasets(lake)
        elif args.action == "show":
            out = datasets.manifest(lake, args.ref[0])
        else:
            if len(args.ref) != 2:
                print("dataset diff: give two versions, NAME@V1 NAME@V2", file=sys.stderr)
                return 2
            out = datasets.diff(lake, args.ref[0], args.ref[1])
    except datasets.DatasetError as e:
        print(f"dataset: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """train: fit an impact model on a time-ordered split, log and register it in MLflow, promote it if it beats
    the champion on the holdout by the margin; prints JSON (run, params with intervals, metrics, decision)."""
    from analytics import tracking

    lake = Lake(args.lake)
    try:
        out = tracking.train(
            lake, args.model, _date(args.start), _date(args.end), dataset=args.dataset, margin=args.margin,
            n_boot=args.n_boot, weights=args.weights, progress=_progress,
        )  # fmt: skip
    except ValueError as e:  # too few orders, unknown dataset (DatasetError is a ValueError)
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, default=str))
        return 0
    print(f"run {out['run_id']}  {out['registered_model']} v{out['version']}  dataset {out['dataset']}  "
          f"train {out['n_train']} / holdout {out['n_test']} orders")  # fmt: skip
    for k, v in out["params"].items():
        lo, hi = out["intervals"].get(k, (None, None))
        print(f"  {k:14s} {v:10.4f}" + (f"  [{lo:.4f}, {hi:.4f}]" if lo is not None else ""))
    for k, v in out["metrics"].items():
        print(f"  {k:28s} {v:.4f}")
    print(f"{out['event']['decision']}: {out['event']['reason']}")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """estimate: one order's pre-trade impact cost in bps (volatility annualised, decimal, 250 days)."""
    import math

    import polars as pl

    from analytics import impact_models as im
    from analytics import tracking

    fit, version = tracking.load_champion(Lake(args.lake), args.model) if not args.published else (None, None)
    fit = fit or im.published(args.model)
    order = pl.DataFrame({"size_adv": [args.size_adv], "sigma_daily": [args.volatility / math.sqrt(im.KISSELL_DAYS_PER_YEAR)],
                          "pov": [args.pov], "algo": [args.algo]})  # fmt: skip
    row = im.pretrade_estimate(fit, order).row(0, named=True)
    keys = ["instantaneous_impact_bps", "permanent_bps", "temporary_bps", "market_impact_bps", "timing_risk_bps",
            "expected_cost_bps", "cost_lo_bps", "cost_hi_bps", "outcome_lo_bps", "outcome_hi_bps"]  # fmt: skip
    out = {"model": args.model, "version": version, "source": fit.source, "params": fit.params,
           **{k: row[k] for k in keys if k in row}, "total_cost_bps": row["expected_cost_bps"]}  # fmt: skip
    if args.json:
        print(json.dumps(out, default=str))
    else:
        for k, v in out.items():
            print(f"{k:26s} {v:.4f}" if isinstance(v, float) else f"{k:26s} {v}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """predict: one ExecutionCostPredictionEvent per order of a file (set-based, point-in-time context); rows that
    cannot be predicted go to ``<out stem>.rejected<suffix>`` with a reason. Exit 2 only when nothing was predicted
    (or the input/output cannot be used)."""
    from analytics import expectation, tca, tracking
    from analytics.export import FORMATS, ExportError, write_frame
    from analytics.filters import Filters

    lake = Lake(args.lake)
    try:
        if Path(args.out).suffix.lower() not in FORMATS:
            raise ExportError(f"{args.out}: unknown output format (use .jsonl, .csv or .parquet)")
        raw = expectation.read_orders(args.orders)
        if not lake.exists():
            raise expectation.PredictionError(f"the lake {lake.root} is empty (ingest market data first)")
        if args.model == "learned":
            fit, version = tracking.load_learned_champion(lake)
            if fit is None:
                raise expectation.PredictionError("no learned model yet: run `train --model learned` first")
        else:
            fit, version = tracking.load_champion(lake, args.model)
    except (expectation.PredictionError, ExportError) as e:
        print(f"predict: error: {e}", file=sys.stderr)
        return 2
    v = tca.ensure(lake, progress=_progress)
    con = lake.connect(lake.manifest(v))
    try:
        history = tca.load_orders(lake, con, Filters(), v)
        pred, rejected = expectation.predict_orders(
            con, raw, args.model, fit, tracking.registered_name(args.model), version, history, f"lake@{v}"
        )
    finally:
        con.close()
    if pred.height:
        write_frame(pred, args.out)
    rej_path = expectation.rejected_path(args.out)
    if rejected.height:
        write_frame(rejected, rej_path)
    out = {"read": raw.height, "predicted": pred.height, "rejected": rejected.height,
           "rejected_by_reason": dict(rejected.group_by("reason").len().sort("reason").iter_rows()),
           "model": tracking.registered_name(args.model), "model_version": version or "published",
           "source_version": f"lake@{v}", "out": args.out if pred.height else None,
           "rejected_out": str(rej_path) if rejected.height else None}  # fmt: skip
    print(json.dumps(out, default=str))
    if not pred.height:
        print("predict: error: no order could be predicted (see the rejected rows)", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from analytics.demo import build_demo_lake

    lake = Lake(args.lake)
    res = build_demo_lake(lake, progress=_progress)
    print(json.dumps(res, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m analytics", description="Post-trade analytics")
    sub = p.add_subparsers(dest="command", required=True)

    pi = sub.add_parser("ingest", help="ingest JSON Lines, CSV or Parquet files (or folders) into the lake")
    pi.add_argument("paths", nargs="+", metavar="PATH")
    pi.add_argument("--type", choices=sorted(TABLES), help="table of files that neither name it nor say it")
    _lake_arg(pi)
    pi.add_argument("--json", action="store_true", help="print one JSON object")
    pi.add_argument(
        "--hold-hours",
        type=float,
        metavar="H",
        help="how long a fill/settlement/amendment that arrived before its parent is held before it is "
        "quarantined (arrival time; default 24; 0 = at once)",
    )
    pi.set_defaults(func=cmd_ingest)

    pqa = sub.add_parser("quarantine", help="quarantine retention: purge --before DATE")
    pqs = pqa.add_subparsers(dest="action", required=True)
    pqp = pqs.add_parser("purge", help="drop quarantine rows ingested before DATE (UTC) from the next version")
    pqp.add_argument("--before", required=True, type=_date_arg, metavar="DATE")
    _lake_arg(pqp)
    pqp.set_defaults(func=cmd_quarantine)

    pl_ = sub.add_parser("lake", help="tables and counts; verify (sizes, hashes); repair (CURRENT, rollback)")
    pl_.add_argument("action", nargs="?", choices=["summary", "verify", "repair"], default="summary")
    pl_.add_argument("--to", type=int, metavar="VERSION", help="repair: roll back to this version (it must verify)")
    _lake_arg(pl_)
    pl_.add_argument("--json", action="store_true")
    pl_.set_defaults(func=cmd_lake)

    ps = sub.add_parser("simulate", help="write a simulated desk's contract files")
    ps.add_argument("--out", metavar="DIR", help="where the simulated files go (required without --live)")
    ps.add_argument("--live", action="store_true", help="stream one simulated day in accelerated time to --to")
    ps.add_argument("--speed", type=float, default=10.0, help="with --live: x real time (default 10)")
    ps.add_argument("--to", metavar="TARGET", help="with --live: dir:PATH or nats://HOST:PORT/SUBJECT")
    ps.add_argument("--truth", metavar="FILE", help="with --live: ground truth of the planted anomalies")
    ps.add_argument("--days", type=int)
    ps.add_argument("--symbols", type=int)
    ps.add_argument("--orders-per-day", type=int)
    ps.add_argument("--seed", type=int)
    ps.add_argument("--faults", type=float, help="rate of bad input mixed in per clean event (e.g. 0.02)")
    ps.add_argument("--start", type=_date_arg, help="first trading day (YYYY-MM-DD)")
    ps.add_argument("--fills-per-order", type=float)
    ps.add_argument("--quotes-per-day", type=int)
    ps.add_argument("--trades-per-day", type=int)
    ps.add_argument("--events-format", choices=["jsonl", "parquet"])
    ps.add_argument("--json", action="store_true")
    ps.set_defaults(func=cmd_simulate)

    plv = sub.add_parser("live", help="the real-time engine: intake, live TCA, alerts (runs until SIGTERM/SIGINT)")
    plv.add_argument("--source", help="nats://HOST:PORT/SUBJECT or dir:PATH (default: dir:<lake>/live/inbox)")
    _lake_arg(plv)
    plv.add_argument("--commit-interval", type=float, metavar="S", help="seconds between lake commits (default 3)")
    plv.add_argument("--rules", metavar="FILE", help="alert rules and engine settings overriding the defaults (TOML)")
    plv.add_argument("--latency-log", metavar="FILE", help="append per-refresh timings (benchmarks)")
    plv.set_defaults(func=cmd_live)

    pal = sub.add_parser("alerts", help="live alerts (PerformanceAnomalyAlertEvent) with their state")
    _lake_arg(pal)
    pal.add_argument("--since", metavar="TS", help="only alerts raised at or after TS (ISO-8601 with zone)")
    pal.add_argument("--json", action="store_true", help="one JSON object per line")
    pal.set_defaults(func=cmd_alerts)

    pt = sub.add_parser("tca", help="per-order TCA (TCACompletedEvent rows) stored in the lake and exported")
    _lake_arg(pt)
    pt.add_argument("--start", type=_date_arg, help="first arrival date (YYYY-MM-DD, UTC)")
    pt.add_argument("--end", type=_date_arg, help="last arrival date (inclusive)")
    pt.add_argument("--out", type=_out_file, metavar="FILE", help="write the rows to FILE (.jsonl, .csv or .parquet)")
    pt.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    pt.set_defaults(func=cmd_tca)

    pd_ = sub.add_parser("demo", help="build the demo lake (what the app does on first run)")
    _lake_arg(pd_)
    pd_.set_defaults(func=cmd_demo)

    prp = sub.add_parser("report", help="an HTML or PDF report of a period (executive summary, TCA, ...)")
    _lake_arg(prp)
    prp.add_argument("--period", metavar="YYYY-MM", help="a calendar month (instead of --start/--end)")
    prp.add_argument("--start", type=_date_arg, help="first arrival date (YYYY-MM-DD, UTC)")
    prp.add_argument("--end", type=_date_arg, help="last arrival date (inclusive)")
    prp.add_argument("--sections", nargs="+", metavar="SECTION", help="sections in order (default: all)")
    prp.add_argument("--format", choices=["html", "pdf"], required=True)
    prp.add_argument("--out", type=_out_file, metavar="FILE", required=True, help="where to write the report")
    prp.add_argument("--title", help="the report's title")
    prp.set_defaults(func=cmd_report)

    pq = sub.add_parser("quality", help="execution quality by venue/algo/broker (ExecutionQualityReportEvent rows)")
    _lake_arg(pq)
    pq.add_argument("--start", type=_date_arg, help="first arrival date (YYYY-MM-DD, UTC)")
    pq.add_argument("--end", type=_date_arg, help="last arrival date (inclusive)")
    pq.add_argument("--by", default="venue", help="venue, algo, broker (or a pair: broker+algo)")
    pq.add_argument("--period", choices=["week", "month"], help="one row per key and week/month (default: the range)")
    pq.add_argument("--out", type=_out_file, metavar="FILE", help="write the rows to FILE (.jsonl, .csv or .parquet)")
    pq.add_argument(
        "--rule605", type=_out_file, metavar="FILE", help="write the Rule 605-style monthly report to FILE (.csv ...)"
    )
    pq.add_argument("--json", action="store_true", help="print the rows as one JSON array")
    pq.set_defaults(func=cmd_quality)

    pa = sub.add_parser("attribution", help="Brinson attribution by group, linked over the period")
    pa.add_argument("--portfolio", required=True, metavar="ID")
    pa.add_argument("--benchmark", metavar="ID", help="default: the portfolio's benchmark_id")
    pa.add_argument("--start", required=True, type=_date_arg, help="first date (YYYY-MM-DD): returns dated start..end")
    pa.add_argument("--end", required=True, type=_date_arg, help="last date (inclusive)")
    pa.add_argument("--method", choices=["brinson_fachler", "bhb"], default="brinson_fachler")
    pa.add_argument("--linking", choices=["carino", "menchero", "grap"], default="carino")
    pa.add_argument("--group-by", default="sector", metavar="COLUMN", help="a column of securities (default sector)")
    _lake_arg(pa)
    pa.add_argument("--out", type=_out_file, metavar="FILE", help="write the rows to FILE (.jsonl, .csv or .parquet)")
    pa.add_argument("--json", action="store_true", help="print the rows as one JSON array")
    pa.set_defaults(func=cmd_attribution)

    pr = sub.add_parser("risk", help="risk-adjusted returns against the benchmark, ranked against peers")
    pr.add_argument("--portfolio", action="append", metavar="ID", help="repeat for several (default: all)")
    pr.add_argument("--benchmark", metavar="ID", help="default: each portfolio's benchmark_id")
    pr.add_argument("--start", type=_date_arg, help="first date (YYYY-MM-DD)")
    pr.add_argument("--end", type=_date_arg, help="last date (inclusive)")
    _lake_arg(pr)
    pr.add_argument("--out", type=_out_file, metavar="FILE", help="write the rows to FILE (.jsonl, .csv or .parquet)")
    pr.add_argument("--json", action="store_true", help="print the rows as one JSON array")
    pr.set_defaults(func=cmd_risk)

    pds = sub.add_parser("dataset", help="versioned ML training datasets: build, list, show, diff (JSON)")
    pds.add_argument("action", choices=["build", "list", "show", "diff"])
    pds.add_argument("ref", nargs="*", metavar="NAME[@VERSION]")
    pds.add_argument("--start", type=_date_arg, help="first arrival date (YYYY-MM-DD, UTC)")
    pds.add_argument("--end", type=_date_arg, help="last arrival date (inclusive)")
    pds.add_argument("--faults-from", metavar="DIR", help="simulator output whose _faults.jsonl scores the rules")
    _lake_arg(pds)
    pds.set_defaults(func=cmd_dataset)

    ptr = sub.add_parser("train", help="fit an impact model (walk-forward holdout), log to MLflow, promote per margin")
    ptr.add_argument("--model", choices=["istar", "almgren", "learned"], default="istar")
    ptr.add_argument("--dataset", metavar="NAME@VERSION", help="dataset recorded with the run (default tca@<lake v>)")
    ptr.add_argument("--start", type=_date_arg, help="first arrival date (YYYY-MM-DD, UTC)")
    ptr.add_argument("--end", type=_date_arg, help="last arrival date (inclusive)")
    ptr.add_argument("--margin", type=float, default=0.1, help="bps of holdout MAE a challenger must gain (0.1)")
    ptr.add_argument("--n-boot", type=int, default=100, help="bootstrap resamples for the intervals (100)")
    ptr.add_argument("--weights", choices=["equal", "notional"], default="equal",
                     help="row weights of the istar/almgren fit: equal (default) or by filled notional")  # fmt: skip
    ptr.add_argument("--json", action="store_true")
    _lake_arg(ptr)
    ptr.set_defaults(func=cmd_train)

    pe = sub.add_parser("estimate", help="pre-trade impact cost of one order (bps), champion or published model")
    pe.add_argument("--model", choices=["istar", "almgren"], default="istar")
    pe.add_argument("--size-adv", type=float, required=True, help="order shares / ADV, decimal (0.05 = 5%%)")
    pe.add_argument("--volatility", type=float, required=True, help="annualised volatility, decimal (250 days)")
    pe.add_argument("--pov", type=float, required=True, help="participation rate, decimal")
    pe.add_argument("--algo", default=None, help="algo (Almgren per-algo multiplier)")
    pe.add_argument("--published", action="store_true", help="use the published parameters, not the champion")
    pe.add_argument("--json", action="store_true")
    _lake_arg(pe)
    pe.set_defaults(func=cmd_estimate)

    ppr = sub.add_parser("predict", help="ExecutionCostPredictionEvents for a file of (hypothetical) orders")
    ppr.add_argument("--orders", required=True, metavar="FILE", help="CSV, JSON Lines or Parquet: symbol, side, "
                     "quantity; optional order_id, arrival_ts (or date), algo, urgency, pov")  # fmt: skip
    ppr.add_argument(
        "--out", required=True, type=_out_file, metavar="FILE", help="predictions (.jsonl, .csv or .parquet)"
    )
    ppr.add_argument("--model", choices=["istar", "almgren", "learned"], default="istar")
    _lake_arg(ppr)
    ppr.set_defaults(func=cmd_predict)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LakeCorrupt as e:
        print(f"{args.command}: error: {e}", file=sys.stderr)
        return 3
    except duckdb.IOException as e:  # a lake file vanished mid-command: name it if the lake can
        found = Lake(getattr(args, "lake", None)).diagnose()
        print(f"{args.command}: error: {found or e}", file=sys.stderr)
        return 3
    except OSError as e:  # an unwritable --out, an unreadable file: the path and the reason, no traceback
        print(f"{args.command}: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
