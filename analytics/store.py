"""The lake: Parquet files under one root, a versioned manifest, DuckDB views. All lake IO lives here.

Layout under the root (default ``data/lake``, or ``ANALYTICS_LAKE``, or ``--lake DIR``)::

    tables/<table>/<partition>/<batch>-<n>.parquet   immutable data files (partition: day=YYYY-MM-DD,
                                                      month=YYYY-MM, or all)
    _manifest/v<version>.json                         the files that make up each version of the lake
    _manifest/CURRENT                                 the current version number
    _lock                                             writers serialise on this file (flock)

Atomicity: a writer writes new, uniquely named data files, fsyncs them, writes the next manifest, then
atomically replaces ``CURRENT``. Readers only ever see files listed by the manifest named in ``CURRENT``, so
a crash or kill before that last rename leaves the lake exactly as it was (the orphan files it wrote are
invisible and removed by the next writer). Data files are never modified in place.

Version: an integer, +1 on every commit that changes the lake; an ingest that changes nothing (all rows
already present) does not commit. ``source_version`` of every output is ``lake@<version>``.

Pruning: the manifest records each file's partition, row count and min/max time, so :meth:`Lake.files`
picks only the files of a date range; inside a file rows are sorted (market data by symbol, ts) so that
DuckDB skips row groups for a symbol filter through Parquet statistics.

Time: all timestamps are UTC; DuckDB sessions opened here run with ``TimeZone = 'UTC'``. Date ranges are
half-open on timestamps (``ts >= start AND ts < end + 1 day``) and inclusive on dates.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import fcntl
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from analytics.schema import INTERNAL_TABLES, META_COLUMNS, TABLES

DEFAULT_LAKE = Path(__file__).resolve().parents[1] / "data" / "lake"
MANIFEST_DIR = "_manifest"
TABLE_DIR = "tables"

_POLARS_SQL = {
    pl.String(): "VARCHAR",
    pl.Float64(): "DOUBLE",
    pl.Int64(): "BIGINT",
    pl.Date(): "DATE",
    pl.Datetime("us", "UTC"): "TIMESTAMPTZ",
}


def default_lake_path(cli_value: str | os.PathLike | None = None) -> Path:
    """``--lake`` if given, else ``ANALYTICS_LAKE``, else ``data/lake`` in the checkout."""
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    env = os.environ.get("ANALYTICS_LAKE")
    return Path(env).expanduser().resolve() if env else DEFAULT_LAKE


def table_schema(name: str) -> dict[str, pl.DataType]:
    """Polars schema of a stored table (input tables and the internal ones)."""
    if name in TABLES:
        return TABLES[name].schema
    return INTERNAL_TABLES[name]


def all_table_names() -> list[str]:
    return [*TABLES, *INTERNAL_TABLES]


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the lake root
    rows: int
    part: str  # partition value ("2026-03-02", "2026-03" or "all")
    min_t: str | None = None  # ISO min/max of the table's time column (None when it has none)
    max_t: str | None = None
    batch: str = ""


@dataclass
class Manifest:
    version: int = 0
    created: str = ""
    tables: dict[str, list[FileEntry]] = field(default_factory=dict)

    def entries(self, table: str) -> list[FileEntry]:
        return self.tables.get(table, [])

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "created": self.created,
                "tables": {t: [e.__dict__ for e in es] for t, es in self.tables.items()},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        return cls(
            version=d["version"],
            created=d.get("created", ""),
            tables={t: [FileEntry(**e) for e in es] for t, es in d.get("tables", {}).items()},
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` all at once: a uniquely named temp file beside it, then a rename (readers see
    the old file or the new one, never half of one; concurrent writers never share a temp file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _bundle_default(x):
    if isinstance(x, pl.DataFrame):  # Arrow IPC keeps every dtype exactly; base64 keeps the file JSON
        buf = io.BytesIO()
        x.write_ipc(buf)
        return {"__frame__": base64.b64encode(buf.getvalue()).decode("ascii")}
    if isinstance(x, dt.datetime):
        return {"__datetime__": x.isoformat()}
    if isinstance(x, dt.date):
        return {"__date__": x.isoformat()}
    if isinstance(x, decimal.Decimal):
        return {"__decimal__": str(x)}
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    raise TypeError(f"cannot store {type(x).__name__} in a bundle")


def _bundle_hook(d: dict):
    if "__frame__" in d:
        return pl.read_ipc(io.BytesIO(base64.b64decode(d["__frame__"])))
    if "__datetime__" in d:
        return dt.datetime.fromisoformat(d["__datetime__"])
    if "__date__" in d:
        return dt.date.fromisoformat(d["__date__"])
    if "__decimal__" in d:
        return decimal.Decimal(d["__decimal__"])
    return d


def write_bundle(path: Path, obj) -> Path:
    """Store ``obj`` (dicts, lists, numbers, strings, dates and Polars frames) as one JSON file, atomically.
    JSON, not pickle: reading a bundle back can never run code."""
    return write_text_atomic(path, json.dumps(obj, default=_bundle_default))


def read_bundle(path: Path):
    """What :func:`write_bundle` stored at ``path`` (frames and dates restored), or None when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return json.loads(text, object_hook=_bundle_hook)


def sql_literal(text: str) -> str:
    """Quote a path for DDL, which cannot take bound parameters (TOOLCHAIN.md)."""
    return "'" + text.replace("'", "''") + "'"


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> pl.DataFrame:
    """Run ``sql`` with bound ``params`` and return a Polars frame."""
    rel = con.sql(sql, params=params)
    assert rel is not None, "query() is for statements that return rows"
    return rel.pl()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Lake:
    """A handle on one lake root. Cheap to create; reads the manifest on demand."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = default_lake_path(root)

    # -- versions --------------------------------------------------------------------------------
    @property
    def _mdir(self) -> Path:
        return self.root / MANIFEST_DIR

    def version(self) -> int:
        """Current version (0 for an empty or missing lake). One small file read: cheap enough to call
        on every page run as a cache key."""
        try:
            return int((self._mdir / "CURRENT").read_text().strip())
        except FileNotFoundError:
            return 0

    def source_version(self) -> str:
        return f"lake@{self.version()}"

    def manifest(self, version: int | None = None) -> Manifest:
        """The manifest of ``version`` (default: current). Versions are immutable, so each is parsed once
        per Lake object (the pages keep one Lake; a year of history has a manifest of thousands of files)."""
        v = self.version() if version is None else version
        if v == 0:
            return Manifest()
        cache = self.__dict__.setdefault("_manifests", {})
        if v not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[v] = Manifest.from_json((self._mdir / f"v{v:08d}.json").read_text())
        return cache[v]

    def exists(self) -> bool:
        return self.version() > 0

    # -- reading ---------------------------------------------------------------------------------
    def files(
        self,
        table: str,
        start: dt.date | None = None,
        end: dt.date | None = None,
        manifest: Manifest | None = None,
    ) -> list[Path]:
        """Files of ``table`` that may hold rows dated ``start..end`` (inclusive dates, UTC)."""
        m = manifest or self.manifest()
        out = []
        for e in m.entries(table):
            if e.rows == 0:
                continue
            if start is not None and e.max_t is not None and e.max_t[:10] < start.isoformat():
                continue
            if end is not None and e.min_t is not None and e.min_t[:10] > end.isoformat():
                continue
            out.append(self.root / e.path)
        return out

    def _select_sql(self, table: str, files: list[Path]) -> str:
        schema = table_schema(table)
        if not files:
            cols = ", ".join(f"NULL::{_POLARS_SQL[d]} AS {quote_ident(c)}" for c, d in schema.items())
            return f"SELECT {cols} WHERE false"
        file_list = "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"
        cols = ", ".join(quote_ident(c) for c in schema)
        return f"SELECT {cols} FROM read_parquet({file_list}, union_by_name = true)"

    def connect(self, manifest: Manifest | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table over the given (default: current)
        snapshot. The snapshot is fixed for the connection's life: reconnect after the version changes."""
        m = manifest or self.manifest()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")  # ICU is built in; a config= key cannot autoload it
        for name in all_table_names():
            files = [self.root / e.path for e in m.entries(name) if e.rows > 0]
            con.execute(f"CREATE VIEW {quote_ident(name)} AS {self._select_sql(name, files)}")
        con.execute(f"CREATE TABLE lake_version AS SELECT {int(m.version)}::BIGINT AS version")
        return con

    def scan(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """A relation over only the files of ``table`` that can hold rows in ``start..end``, filtered to
        that range on the table's time column (half-open on timestamps). Reads the snapshot ``con`` was
        opened on (its ``lake_version``), not whatever version is current now."""
        try:
            snap = con.execute("SELECT version FROM lake_version").fetchall()
        except duckdb.Error:  # not a connection from connect(): the current version
            snap = []
        files = self.files(table, start, end, self.manifest(snap[0][0]) if snap else None)
        rel = con.sql(self._select_sql(table, files))
        tcol = TABLES[table].time_col if table in TABLES else None
        if tcol and start is not None:
            rel = rel.filter(duckdb.ColumnExpression(tcol) >= duckdb.ConstantExpression(start))
        if tcol and end is not None:
            rel = rel.filter(duckdb.ColumnExpression(tcol) < duckdb.ConstantExpression(end + dt.timedelta(days=1)))
        return rel

    def read(self, table: str, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """A whole table (or a date range of it) as a Polars frame. For small tables and tests."""
        con = self.connect()
        try:
            return self.scan(con, table, start, end).pl()
        finally:
            con.close()

    def summary(self) -> dict:
        """Row counts, files and date ranges per table (from the manifest, no data read) and the
        quarantine's counts by table and reason."""
        m = self.manifest()
        tables = []
        for name in all_table_names():
            es = m.entries(name)
            mins = [e.min_t for e in es if e.min_t]
            maxs = [e.max_t for e in es if e.max_t]
            tables.append(
                {
                    "table": name,
                    "rows": sum(e.rows for e in es),
                    "files": len(es),
                    "start": min(mins)[:10] if mins else None,
                    "end": max(maxs)[:10] if maxs else None,
                }
            )
        quarantine: list[dict] = []
        if m.entries("quarantine"):
            con = self.connect(m)
            try:
                rows = con.execute(
                    'SELECT "table", reason, count(*) FROM quarantine GROUP BY ALL ORDER BY 3 DESC, 1, 2'
                ).fetchall()
            finally:
                con.close()
            quarantine = [{"table": t, "reason": r, "rows": n} for t, r, n in rows]
        return {"lake": str(self.root), "version": m.version, "tables": tables, "quarantine": quarantine}

    # -- derived results ---------------------------------------------------------------------------
    # Computed outputs (TCA results, ...) live under derived/<name>/v<version>/<part>/day=YYYY-MM-DD.parquet,
    # keyed by the input version they were computed from, so writing them never changes the lake version,
    # a re-run on the same version finds them, and each day is computed once (lazily, when first asked).
    def derived_dir(self, name: str, version: int | None = None) -> Path:
        v = self.version() if version is None else version
        return self.root / "derived" / name / f"v{v:08d}"

    def derived_days(self, name: str, version: int, part: str) -> set[dt.date]:
        d = self.derived_dir(name, version) / part
        return {dt.date.fromisoformat(p.stem[4:]) for p in d.glob("day=*.parquet")} if d.exists() else set()

    def write_derived_day(self, name: str, version: int, part: str, day: dt.date, df: pl.DataFrame) -> None:
        """Write one day of a derived result atomically (temp file + rename; an identical re-write is a
        harmless replace)."""
        d = self.derived_dir(name, version) / part
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"day={day.isoformat()}.parquet"
        tmp = d / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        df.write_parquet(tmp, compression="zstd", compression_level=1, statistics=True)
        os.replace(tmp, path)

    def derived_files(
        self, name: str, version: int, part: str, start: dt.date | None = None, end: dt.date | None = None
    ) -> list[Path]:
        d = self.derived_dir(name, version) / part
        if not d.exists():
            return []
        out = []
        for p in sorted(d.glob("day=*.parquet")):
            day = dt.date.fromisoformat(p.stem[4:])
            if (start is None or day >= start) and (end is None or day <= end):
                out.append(p)
        return out

    def derived_relation(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        version: int,
        part: str,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> duckdb.DuckDBPyRelation | None:
        """A relation over the derived days in ``start..end`` (None when there are none)."""
        files = self.derived_files(name, version, part, start, end)
        if not files:
            return None
        file_list = "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"
        return con.sql(f"SELECT * FROM read_parquet({file_list}, union_by_name = true)")

    def order_days(
        self, start: dt.date | None = None, end: dt.date | None = None, version: int | None = None
    ) -> list[dt.date]:
        """Days that have order events (from the manifest's day partitions), within ``start..end``."""
        days = set()
        for e in self.manifest(version).entries("orders"):
            if e.rows and e.part != "all":
                d = dt.date.fromisoformat(e.part)
                if (start is None or d >= start) and (end is None or d <= end):
                    days.add(d)
        return sorted(days)

    # -- writing ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self) -> Iterator[Writer]:
        """Exclusive writer: serialises with other writers, removes orphans of crashed writers, and
        commits the new files as the next version only if the block completes."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._mdir.mkdir(exist_ok=True)
        with open(self.root / "_lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._remove_orphans()
                w = Writer(self, self.manifest())
                yield w
                w._commit()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _remove_orphans(self) -> None:
        """Delete data and manifest files no committed version references (left by a killed writer).
        Only called under the writer lock."""
        v = self.version()
        for p in self._mdir.glob("v*.json*"):
            if p.name.endswith(".tmp") or int(p.name[1:9]) > v:
                p.unlink(missing_ok=True)
        for p in self._mdir.glob("CURRENT.*"):
            p.unlink(missing_ok=True)
        tdir = self.root / TABLE_DIR
        if not tdir.exists():
            return
        # Versions only ever add files, so the current manifest lists every file any version uses.
        live = {e.path for es in self.manifest(v).tables.values() for e in es}
        for p in tdir.rglob("*.parquet*"):
            if str(p.relative_to(self.root)) not in live:
                p.unlink(missing_ok=True)


class Writer:
    """Collects new files for one commit. Use through :meth:`Lake.writer`."""

    def __init__(self, lake: Lake, base: Manifest):
        self.lake = lake
        self.base = base
        self.batch_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.new: dict[str, list[FileEntry]] = {}
        self._n = 0
        self.committed_version: int | None = None
        self.replaced: set[str] = set()  # tables whose files in the base are dropped at commit (retention)

    @property
    def changed(self) -> bool:
        return any(self.new.values()) or bool(self.replaced)

    def replace(self, table: str) -> None:
        """The next version lists only the files of ``table`` appended by this writer (the quarantine's
        retention rewrites it); older versions keep theirs."""
        self.replaced.add(table)

    def append(self, table: str, df: pl.DataFrame) -> None:
        """Write ``df`` (already in the table's schema) as new files, split by partition."""
        if df.height == 0:
            return
        spec = TABLES.get(table)
        tcol = spec.time_col if spec else None
        part_kind = spec.partition if spec else None
        if part_kind and tcol:
            # Partition on the date (cheap), format the few distinct values afterwards.
            day = pl.col(tcol).dt.date() if part_kind == "day" else pl.col(tcol).dt.truncate("1mo").dt.date()
            df = df.with_columns(day.alias("__part"))
        else:
            df = df.with_columns(pl.lit(None, pl.Date).alias("__part"))
        sort = list(spec.sort) if spec and spec.sort else []
        for (pday,), chunk in df.partition_by("__part", as_dict=True, maintain_order=True).items():
            part = "all" if pday is None else (pday.isoformat() if part_kind == "day" else pday.isoformat()[:7])
            chunk = chunk.drop("__part")
            if sort:
                chunk = chunk.sort(sort, nulls_last=True, maintain_order=True)
            self._n += 1
            key = "day" if part_kind == "day" else ("month" if part_kind == "month" else "all")
            rel = Path(TABLE_DIR) / table / (f"{key}={part}" if part != "all" else "all")
            rel = rel / f"{self.batch_id}-{self._n:05d}.parquet"
            path = self.lake.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            chunk.write_parquet(tmp, compression="zstd", compression_level=1, row_group_size=122_880)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            min_t = max_t = None
            if tcol:
                lo, hi = chunk[tcol].min(), chunk[tcol].max()
                min_t, max_t = lo.isoformat(), hi.isoformat()
            self.new.setdefault(table, []).append(
                FileEntry(str(rel), chunk.height, str(part), min_t, max_t, self.batch_id)
            )

    def _commit(self) -> None:
        if not self.changed:
            return
        for dirpath in {(self.lake.root / e.path).parent for es in self.new.values() for e in es}:
            _fsync_dir(dirpath)
        tables = {t: list(es) for t, es in self.base.tables.items() if t not in self.replaced}
        for t, es in self.new.items():
            tables.setdefault(t, []).extend(es)
        v = self.base.version + 1
        m = Manifest(v, dt.datetime.now(dt.UTC).isoformat(), tables)
        mdir = self.lake._mdir
        tmp = mdir / f"v{v:08d}.json.tmp"
        tmp.write_text(m.to_json())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, mdir / f"v{v:08d}.json")
        cur_tmp = mdir / f"CURRENT.{self.batch_id}"
        cur_tmp.write_text(str(v))
        with open(cur_tmp, "rb") as fh:
            os.fsync(fh.fileno())
        _fsync_dir(mdir)
        os.replace(cur_tmp, mdir / "CURRENT")  # the commit point
        _fsync_dir(mdir)
        self.committed_version = v


def empty_frame(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=table_schema(table))


__all__ = [
    "DEFAULT_LAKE",
    "META_COLUMNS",
    "FileEntry",
    "Lake",
    "Manifest",
    "default_lake_path",
    "empty_frame",
    "quote_ident",
    "table_schema",
]


# --- numbered output folders and pruned tick scans (training datasets) ----------------------------------
def version_dirs(base: Path, marker: str = "manifest.json") -> list[int]:
    """Published versions under ``base``: folders ``v0001``, ``v0002``... holding ``marker`` (a folder without it
    is half-written or not ours)."""
    if not base.exists():
        return []
    return sorted(int(p.name[1:]) for p in base.glob("v[0-9]*") if p.is_dir() and (p / marker).exists())


def publish_version_dir(base: Path, files: dict, manifest: dict, marker: str = "manifest.json") -> int:
    """Publish the next numbered version folder ``base/vNNNN`` atomically and return its number.

    ``files`` maps a file name to a writer ``f(path)``. Everything is written into a hidden temp folder beside the
    versions, then ONE rename makes the folder visible (a crash leaves only a ``.tmp-*`` folder readers ignore).
    The manifest (JSON, ``version`` and ``location`` filled in here) is written last, as ``marker``. Two
    concurrent publishers race on the rename; the loser takes the next number."""
    import shutil

    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        for fname, write in files.items():
            write(tmp / fname)
        for _ in range(100):
            v = (version_dirs(base, marker) or [0])[-1] + 1
            manifest["version"] = v
            manifest["location"] = str(base / f"v{v:04d}")
            (tmp / marker).write_text(json.dumps(manifest, indent=1, default=str))
            try:
                os.rename(tmp, base / f"v{v:04d}")  # fails when another publisher took v first
                return v
            except OSError:
                continue
        raise OSError(f"could not claim a version number under {base}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def scan_day_files(
    lake: Lake, table: str, start: dt.date, end: dt.date, columns: list[str], manifest: Manifest | None = None
) -> pl.LazyFrame:
    """Columns ``columns`` of ``table`` (quotes, trades...) dated ``start..end`` straight from the snapshot's
    date-pruned Parquet files, as a Polars lazy scan: only the files whose time range meets the dates are opened,
    and rows are filtered half-open on timestamps (``ts >= start AND ts < end + 1 day``)."""
    schema = table_schema(table)
    cols = {c: schema[c] for c in columns}
    files = [str(p) for p in lake.files(table, start, end, manifest)]
    if not files:
        return pl.LazyFrame(schema=cols)
    tcol = TABLES[table].time_col
    lo = dt.datetime.combine(start, dt.time(), dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return pl.scan_parquet(files).select(list(cols)).filter((pl.col(tcol) >= lo) & (pl.col(tcol) < hi))
