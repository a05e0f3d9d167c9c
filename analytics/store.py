"""The lake: Parquet files under one root, a versioned manifest, DuckDB views. All lake IO lives here.

Layout under the root (default ``data/lake``, or ``ANALYTICS_LAKE``, or ``--lake DIR``)::

    tables/<table>/<partition>/<batch>-<n>.parquet   immutable data files (partition: day=YYYY-MM-DD,
                                                      month=YYYY-MM, or all)
    _manifest/v<version>.json                         the files that make up each version of the lake
    _manifest/CURRENT                                 the current version number
    _lock                                             writers serialise on this file (flock)
    _writers/<batch>                                  one marker per running writer (pid, host)
    derived/...                                       computed results keyed by their inputs (see below)

Commit protocol (one writer at a time under an ``flock`` on ``_lock``, and safe without it):
1. The writer reads ``CURRENT`` (its base version) and registers itself in ``_writers/<batch>`` (pid, host).
   A ``CURRENT`` that is missing or unreadable while manifests or data files exist is :class:`LakeCorrupt`:
   the writer refuses to run (``python -m analytics lake repair`` fixes it). "No lake" is only a folder with
   no manifest and no committed data file.
2. It writes new, uniquely named, immutable data files (temp name, fsync, rename), recording each file's
   ``size`` and ``sha256`` in its :class:`FileEntry` (hashed from the bytes being written: one pass).
3. Compare-and-swap: it re-reads ``CURRENT``; if another writer committed since (a deleted ``_lock``, a
   filesystem ignoring ``flock``), it rebases (re-lists its files on the newer manifest). It creates
   ``v<N+1>.json`` exclusively (written whole, then hard-linked: never overwritten, never seen half-written);
   losing that race it waits and retries, at most ``COMMIT_ATTEMPTS`` times, then raises
   :class:`CommitConflictError`. ``Writer.version_before`` / ``Writer.committed_version`` record what it
   really committed on (rows that name their version, like the ingest log, are written then:
   :meth:`Writer.append_at_commit`). A writer whose rows were decided against its base (an ingest's
   duplicate, reference and overfill checks, a table rewrite) does not rebase: it raises
   :class:`StaleBaseError`, commits nothing, and ingest re-runs the whole batch on the newer version, so a
   row is never stored twice even when the lock is broken.
4. It atomically replaces ``CURRENT`` (the commit point). A crash or kill before that leaves the lake exactly
   as it was.

Orphan sweep (each writer, under the lock, after reading ``CURRENT``): nothing is ever deleted on the
strength of a version number that could not be read. It deletes only temp files, manifests numbered above a
readable ``CURRENT`` that a killed writer left (its marker is still in ``_writers/``, its process gone), and
data files referenced by NO manifest on disk (so a rollback to an earlier version still finds its files),
and only those older than the writer's own start whose writer is not alive. A manifest above ``CURRENT``
without such a marker (it was committed once and ``CURRENT`` was moved back by hand) or that cannot be read
is set aside as ``v<N>.json.superseded-<time>`` / ``.unreadable-<time>``, never deleted (its files stay).

Integrity: :meth:`Lake.verify` checks every file of a version (present, size, SHA-256); :meth:`Lake.repair`
points ``CURRENT`` at the newest manifest whose files all verify, or rolls back to a chosen version by
committing its file list as a new version (version numbers only grow; nothing is deleted). Readers stat every
file they open (:meth:`Lake.check_present`): a missing or short file is one :class:`LakeCorrupt` naming it
and the repair command. Derived results hash the input files they compute from (:meth:`Lake.check_hashes`),
so a flipped byte is an error, not a silently different figure. Manifests written before hashes were
recorded read as before and verify as "unhashed".

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
import hashlib
import io
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

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
    size: int | None = None  # bytes of the file; None in manifests written before integrity was recorded
    sha256: str | None = None  # hex SHA-256 of the file's bytes (computed while writing them); None: unhashed


_ENTRY_FIELDS = {f for f in FileEntry.__dataclass_fields__}


@dataclass
class Manifest:
    version: int = 0
    created: str = ""
    tables: dict[str, list[FileEntry]] = field(default_factory=dict)
    batch: str = ""  # the writer that committed it ("" before this was recorded)
    restored_from: int | None = None  # a repair/rollback: the version whose files this one lists

    def entries(self, table: str) -> list[FileEntry]:
        return self.tables.get(table, [])

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "created": self.created,
                "batch": self.batch,
                "restored_from": self.restored_from,
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
            tables={
                t: [FileEntry(**{k: v for k, v in e.items() if k in _ENTRY_FIELDS}) for e in es]
                for t, es in d.get("tables", {}).items()
            },
            batch=d.get("batch", ""),
            restored_from=d.get("restored_from"),
        )

    def all_entries(self) -> list[FileEntry]:
        return [e for es in self.tables.values() for e in es]


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
        """Current version: 0 for no lake (no manifest and no committed data file); raises :class:`LakeCorrupt`
        when ``CURRENT`` is missing or unreadable (or names a version that is not a positive number) while
        manifests or data files exist. One small file read: cheap enough to call on every page run."""
        path = self._mdir / "CURRENT"
        try:
            text = path.read_text()
        except FileNotFoundError:
            found = self._committed_content()
            if found:
                raise LakeCorrupt(f"{path} is missing but {found} exist") from None
            return 0
        except OSError as e:
            raise LakeCorrupt(f"{path} cannot be read ({e})") from None
        try:
            v = int(text.strip())
        except ValueError:
            raise LakeCorrupt(f"{path} holds {text.strip()[:40]!r}, not a version number") from None
        if v < 1:
            raise LakeCorrupt(f"{path} holds {v}, not a committed version (versions start at 1)")
        return v

    def _committed_content(self) -> str:
        """What makes this folder a lake although ``CURRENT`` is missing ("" when nothing does): a manifest or a
        data file that no writer's marker claims (a first writer killed before its commit leaves only a manifest
        and files its marker names, which are provably uncommitted)."""
        wdir = self.root / WRITERS_DIR
        claimed = {m.name for m in wdir.iterdir()} if wdir.exists() else set()
        manifests = []
        for n in self.manifest_versions():
            try:
                if self._read_manifest(n).batch not in claimed:
                    manifests.append(n)
            except LakeCorrupt:
                manifests.append(n)
        if manifests:
            return f"{len(manifests)} manifest(s) (v{manifests[-1]:08d}.json...)"
        tdir = self.root / TABLE_DIR
        if tdir.exists():
            data = [p for p in tdir.rglob("*.parquet") if _batch_of(p.name) not in claimed]
            if data:
                return f"{len(data)} data file(s) ({data[0].relative_to(self.root)}...)"
        return ""

    def source_version(self) -> str:
        return f"lake@{self.version()}"

    def manifest(self, version: int | None = None) -> Manifest:
        """The manifest of ``version`` (default: current). Versions are immutable, so each is parsed once
        per Lake object (the pages keep one Lake; a year of history has a manifest of thousands of files).
        Raises :class:`LakeCorrupt` when the manifest is missing or unreadable."""
        v = self.version() if version is None else version
        if v == 0:
            return Manifest()
        cache = self.__dict__.setdefault("_manifests", {})
        if v not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[v] = self._read_manifest(v)
        return cache[v]

    def _read_manifest(self, v: int) -> Manifest:
        path = self._mdir / f"v{v:08d}.json"
        try:
            m = Manifest.from_json(path.read_text())
        except FileNotFoundError:
            raise LakeCorrupt(f"manifest {path} of version {v} is missing") from None
        except (ValueError, KeyError, TypeError) as e:
            raise LakeCorrupt(f"manifest {path} is corrupt ({type(e).__name__}: {str(e)[:80]})") from None
        if m.version != v:
            raise LakeCorrupt(f"manifest {path} says it is version {m.version}")
        return m

    def manifest_versions(self) -> list[int]:
        """Version numbers of the manifests on disk (committed or not), ascending."""
        if not self._mdir.exists():
            return []
        return sorted(int(p.name[1:9]) for p in self._mdir.glob("v*.json") if _MANIFEST_RE.fullmatch(p.name))

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
        return [self.root / e.path for e in self.entries(table, start, end, manifest)]

    def entries(
        self,
        table: str,
        start: dt.date | None = None,
        end: dt.date | None = None,
        manifest: Manifest | None = None,
        check: bool = True,
    ) -> list[FileEntry]:
        """Manifest entries of ``table`` whose time range meets ``start..end`` (all of them without dates).
        With ``check`` each file must be on disk at its recorded size (:class:`LakeCorrupt` otherwise)."""
        m = manifest or self.manifest()
        out = []
        for e in m.entries(table):
            if e.rows == 0:
                continue
            if start is not None and e.max_t is not None and e.max_t[:10] < start.isoformat():
                continue
            if end is not None and e.min_t is not None and e.min_t[:10] > end.isoformat():
                continue
            out.append(e)
        if check:
            self.check_present(out)
        return out

    def check_present(self, entries: list[FileEntry]) -> None:
        """Raise :class:`LakeCorrupt` naming the first file that is missing or not of its recorded size (a
        stat per file, no read): a reader then fails with one clear message, not a raw DuckDB IOException."""
        for e in entries:
            try:
                size = (self.root / e.path).stat().st_size
            except FileNotFoundError:
                raise LakeCorrupt(f"data file {e.path} of the current version is missing") from None
            if e.size is not None and size != e.size:
                raise LakeCorrupt(f"data file {e.path} has {size} bytes, the manifest records {e.size}")

    @contextlib.contextmanager
    def _named_damage(self, entries: list[FileEntry]):
        """DuckDB reads a file's footer as soon as a view or relation names it: a damaged file then raises a raw
        parser error (pyarrow an OSError when it reads the newest file's schema). Turn it into :class:`LakeCorrupt`
        naming the file (by its hash) when one is damaged; anything else is raised as it was."""
        try:
            yield
        except (duckdb.Error, OSError, ValueError):  # pyarrow: ArrowInvalid is a ValueError
            self.check_hashes(entries, cached=False)
            raise

    def diagnose(self) -> LakeCorrupt | None:
        """What is wrong with the current version's files, if anything (a stat per file): turns a raw DuckDB
        IOException raised by a long-lived connection (a file removed after it was opened) into a
        :class:`LakeCorrupt` naming the file and the repair command."""
        try:
            self.check_present(self.manifest().all_entries())
        except LakeCorrupt as e:
            return e
        return None

    def check_hashes(self, entries: list[FileEntry], cached: bool = True) -> None:
        """Raise :class:`LakeCorrupt` naming the first file whose bytes do not hash to the manifest's SHA-256.
        Derived results call it on the files they are about to compute from: a flipped byte is then an error,
        not a silently different figure. Each (file, hash) is checked once per process (files are immutable;
        ``cached=False`` re-reads them all); an entry without a hash (an older manifest) is only checked for
        presence."""
        self.check_present(entries)
        for e in entries:
            key = (str(self.root / e.path), e.sha256)
            if e.sha256 is None or (cached and key in _VERIFIED):
                continue
            if file_sha256(self.root / e.path) != e.sha256:
                raise LakeCorrupt(f"data file {e.path} does not match its SHA-256 in the manifest (changed on disk)")
            _VERIFIED.add(key)

    def _select_sql(self, table: str, files: list[Path]) -> str:
        schema = table_schema(table)
        if not files:
            cols = ", ".join(f"NULL::{_POLARS_SQL[d]} AS {quote_ident(c)}" for c, d in schema.items())
            return f"SELECT {cols} WHERE false"
        file_list = "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"
        # An optional column added to the contract after a lake was written (fills' received_ts) is in no file of
        # that lake: NULL instead of a binder error. Files are written with every contract column, so the newest
        # file says whether any has it (union_by_name fills the older ones with NULL).
        have = set(pq.read_schema(files[-1]).names)
        cols = ", ".join(
            quote_ident(c) if c in have else f"NULL::{_POLARS_SQL[d]} AS {quote_ident(c)}" for c, d in schema.items()
        )
        return f"SELECT {cols} FROM read_parquet({file_list}, union_by_name = true)"

    def connect(self, manifest: Manifest | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table over the given (default: current)
        snapshot. The snapshot is fixed for the connection's life: reconnect after the version changes."""
        m = manifest or self.manifest()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")  # ICU is built in; a config= key cannot autoload it
        for name in all_table_names():
            es = self.entries(name, manifest=m)
            with self._named_damage(es):
                con.execute(
                    f"CREATE VIEW {quote_ident(name)} AS {self._select_sql(name, [self.root / e.path for e in es])}"
                )
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
        snap = snapshot_version(con)  # None: not a connection from connect(): the current version
        files = self.files(table, start, end, self.manifest(snap) if snap is not None else None)
        with self._named_damage(self.entries(table, start, end, self.manifest(snap) if snap is not None else None)):
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
        quarantine's counts by table and reason. :class:`LakeCorrupt` when a file is missing or short."""
        m = self.manifest()
        self.check_present(m.all_entries())
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

    # -- derived results, keyed by their inputs ------------------------------------------------------
    # A computed result (a TCA day, a day's quality sums, the Overview's figures...) is stored under the
    # fingerprint of exactly the inputs it read, never under a version number:
    #     derived/<name>/day=YYYY-MM-DD/<fingerprint>/<part>.parquet      a day's result
    #     derived/<name>/<key>.json (or /<key>/...)                         a scope-level result
    # ``<name>`` carries the code version (``tca-7``), so new code never reads old rows. A commit that
    # touches day D changes only D's fingerprint (only D is recomputed); a rollback gets the fingerprints of
    # the restored files back, so it finds the results computed from them, never a stale figure; re-running
    # is a lookup. Writing a result never changes the lake's version.
    def fingerprint(self, entries, *extra: str) -> str:
        """The identity of a set of input files: a hash of their (path, SHA-256) pairs (size and row count for
        an unhashed entry of an older manifest), order-independent, plus ``extra`` strings (a code version,
        a content hash). 24 hex characters."""
        h = hashlib.sha256()
        for key in sorted(f"{e.path}\0{e.sha256 or f'unhashed:{e.size}:{e.rows}'}" for e in entries):
            h.update(key.encode() + b"\n")
        for x in extra:
            h.update(b"\1" + str(x).encode())
        return h.hexdigest()[:24]

    def day_fingerprint(
        self,
        day: dt.date,
        tables,
        manifest: Manifest | None = None,
        before: int = 0,
        after: int = 0,
        extra: tuple[str, ...] = (),
    ) -> str:
        """Fingerprint of the files of ``tables`` whose time range meets ``day - before .. day + after`` (plus
        ``extra``): the input identity of a result that reads exactly those days of those tables."""
        m = manifest or self.manifest()
        lo, hi = day - dt.timedelta(days=before), day + dt.timedelta(days=after)
        es = [e for t in sorted(tables) for e in self.entries(t, lo, hi, m, check=False)]
        return self.fingerprint(es, *extra)

    def tables_fingerprint(self, tables, manifest: Manifest | None = None, *extra: str) -> str:
        """Fingerprint of every file of ``tables`` (a scope-level result that reads them whole)."""
        m = manifest or self.manifest()
        return self.fingerprint([e for t in sorted(tables) for e in m.entries(t) if e.rows], *extra)

    def derived_path(self, name: str, day: dt.date, fp: str, part: str) -> Path:
        return self.root / "derived" / name / f"day={day.isoformat()}" / fp / f"{part}.parquet"

    def has_derived(self, name: str, day: dt.date, fp: str, part: str) -> bool:
        return self.derived_path(name, day, fp, part).exists()

    def write_derived(self, name: str, day: dt.date, fp: str, part: str, df: pl.DataFrame) -> Path:
        """Store one day's result under its input fingerprint atomically (temp file + rename; an identical
        re-write is a harmless replace). Temp files a killed run left are removed by :meth:`sweep_derived`."""
        path = self.derived_path(name, day, fp, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        df.write_parquet(tmp, compression="zstd", compression_level=1, statistics=True)
        os.replace(tmp, path)
        return path

    def derived_paths(self, name: str, fps: dict[dt.date, str], part: str) -> list[Path]:
        """The stored ``part`` files of the days in ``fps`` (day -> fingerprint) that exist, in day order."""
        return [p for d in sorted(fps) if (p := self.derived_path(name, d, fps[d], part)).exists()]

    def derived_scan(
        self, con: duckdb.DuckDBPyConnection, name: str, fps: dict[dt.date, str], part: str
    ) -> duckdb.DuckDBPyRelation | None:
        """A relation over the stored ``part`` of the days in ``fps`` (None when none is stored)."""
        files = self.derived_paths(name, fps, part)
        if not files:
            return None
        file_list = "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"
        return con.sql(f"SELECT * FROM read_parquet({file_list}, union_by_name = true)")

    def derived_dir(self, name: str, key: str | int | None = None) -> Path:
        """Folder of a scope-level result ``name`` stored under ``key`` (a fingerprint: see
        :meth:`content_key`); without ``key`` the folder of every key."""
        d = self.root / "derived" / name
        return d if key is None else d / (f"v{key:08d}" if isinstance(key, int) else str(key))

    def content_key(self, manifest: Manifest | None = None, tables=None, *extra: str) -> str:
        """The input key of a scope-level result that reads ``tables`` (default: every table) of a snapshot:
        equal for two versions with the same files (a rollback finds its results again), different as soon as
        one file changes."""
        m = manifest or self.manifest()
        return self.tables_fingerprint(tables if tables is not None else list(m.tables), m, *extra)

    def sweep_derived(self, name: str, started: float | None = None) -> int:
        """Remove the temp files a killed run left under ``derived/<name>`` (see :func:`sweep_temp`)."""
        return sweep_temp(self.root / "derived" / name, started)

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
    def writer(self, rebase: bool = True) -> Iterator[Writer]:
        """Exclusive writer: serialises with other writers (flock on ``_lock``), refuses to run on a lake whose
        ``CURRENT`` or manifest cannot be read (:class:`LakeCorrupt`), removes what killed writers left, and
        commits the new files (compare-and-swap, see the module docstring) only if the block completes.
        ``rebase=False``: a writer whose new rows were decided against its base (ingest) raises
        :class:`StaleBaseError` when another writer committed in between, instead of listing its files on the
        newer version (which could store a row twice); a writer that replaces a table never rebases."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._mdir.mkdir(exist_ok=True)
        with open(self.root / "_lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            w = None
            try:
                started = time.time()
                base = self.manifest(self.version())  # raises LakeCorrupt: nothing is swept on a guess
                w = Writer(self, base, started, rebase=rebase)
                self._remove_orphans(started, keep=w.batch_id)
                yield w
                w._commit()
            finally:
                if w is not None:
                    w._release()
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _remove_orphans(self, started: float, keep: str = "") -> None:
        """Delete what killed writers left: uncommitted manifests (numbered above ``CURRENT``), temp files, and
        data files that NO manifest on disk lists; only files older than ``started`` (this writer's start) whose
        writer is not alive (see ``_writers/``). A manifest at or below a readable ``CURRENT`` is never deleted,
        so a rollback still finds its files. Only called under the writer lock, after ``CURRENT`` was read."""
        v = self.version()
        alive = _alive_writers(self.root) | {keep}

        def stale(p: Path) -> bool:
            try:
                return p.stat().st_mtime < started and _batch_of(p.name) not in alive
            except FileNotFoundError:
                return False

        wdir = self.root / WRITERS_DIR
        markers = {p.name for p in wdir.iterdir()} if wdir.exists() else set()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        for p in list(self._mdir.iterdir()):
            mm = _MANIFEST_RE.fullmatch(p.name)
            if p.name == "CURRENT" or (mm and int(mm.group(1)) <= v) or _KEPT_RE.search(p.name):
                continue
            if not mm:
                if stale(p):
                    p.unlink(missing_ok=True)
                continue
            # Above CURRENT. Written by a writer killed between its manifest and CURRENT (its marker is still
            # there, its process gone): never visible, deleted. Otherwise it was committed once and CURRENT was
            # moved back by hand, or it cannot be read: set aside under another name (its files stay listed, so
            # they are kept), never deleted; the number is free for the next commit.
            try:
                b = Manifest.from_json(p.read_text()).batch
            except (ValueError, KeyError, TypeError):
                p.rename(p.with_name(f"{p.name}.unreadable-{stamp}"))
                continue
            if b in alive or p.stat().st_mtime >= started:
                continue
            if b and b in markers:
                p.unlink(missing_ok=True)
            else:
                p.rename(p.with_name(f"{p.name}.superseded-{stamp}"))
        tdir = self.root / TABLE_DIR
        if tdir.exists():
            # Candidates: stale files the current version does not list (usually none, so no other manifest is
            # read); each is deleted only if no other manifest on disk lists it either (newest first).
            current = {e.path for e in self.manifest(v).all_entries()}
            left = {
                rel: p
                for p in tdir.rglob("*")
                if p.is_file() and (rel := str(p.relative_to(self.root))) not in current and stale(p)
            }
            others = [self._mdir / f"v{n:08d}.json" for n in reversed(self.manifest_versions()) if n != v]
            for q in [*others, *self._mdir.glob("v*.json.superseded-*")]:
                if not left:
                    break
                try:
                    listed = {e.path for e in Manifest.from_json(q.read_text()).all_entries()}
                except (OSError, ValueError, KeyError, TypeError):
                    return  # a manifest we cannot read may list any file: delete no data file
                left = {k: p for k, p in left.items() if k not in listed}
            for p in left.values():
                p.unlink(missing_ok=True)
        wdir = self.root / WRITERS_DIR
        if wdir.exists():
            for p in wdir.iterdir():
                if p.name not in alive and p.stat().st_mtime < started:
                    p.unlink(missing_ok=True)

    # -- integrity and repair ----------------------------------------------------------------------
    def verify(self, version: int | None = None) -> dict:
        """Check every file of ``version`` (default: current): present, of its recorded size and SHA-256.
        Returns ``{"version", "files", "ok", "unhashed", "problems": [{"path", "table", "problem"}]}`` where a
        problem is ``missing``, ``size`` or ``sha256``; files of a manifest written before hashes were
        recorded count as ``unhashed`` (checked for presence only). Reads every byte of the version."""
        m = self.manifest(version)
        problems, unhashed, n = [], 0, 0
        for table, es in m.tables.items():
            for e in es:
                n += 1
                p = self.root / e.path
                if not p.exists():
                    problems.append({"path": e.path, "table": table, "problem": "missing"})
                elif e.size is not None and p.stat().st_size != e.size:
                    problems.append({"path": e.path, "table": table, "problem": "size"})
                elif e.sha256 is None:
                    unhashed += 1
                elif file_sha256(p) != e.sha256:
                    problems.append({"path": e.path, "table": table, "problem": "sha256"})
        return {"version": m.version, "files": n, "ok": not problems, "unhashed": unhashed, "problems": problems}

    def repair(self, to: int | None = None) -> dict:
        """Make ``CURRENT`` name a valid version again, under the writer lock.

        Without ``to``: the newest manifest whose every file is present and matches (size and hash), at or below
        ``CURRENT`` when it is readable (a valid current version is left as it is), never one a killed writer
        left uncommitted. With ``to``: that version (it must verify): a rollback, or forward again. When the chosen version is not the newest manifest on disk,
        its file list is committed as a NEW version (``restored_from`` = the chosen one) above every manifest on
        disk, so version numbers only grow, nothing is deleted and no later writer collides with an old number.
        Returns ``{"version": the new current, "restored_from", "skipped": [(version, reason)...]}``."""
        self._mdir.mkdir(parents=True, exist_ok=True)
        with open(self.root / "_lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._repair(to)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _repair(self, to: int | None) -> dict:
        self.__dict__.pop("_manifests", None)
        on_disk = self.manifest_versions()
        if not on_disk:
            if not self._committed_content():
                return {"version": 0, "restored_from": None, "skipped": []}  # no lake: nothing to repair
            raise LakeCorrupt(
                f"no manifest under {self._mdir} while data files exist: there is no version to restore",
                hint="restore the _manifest folder from a backup; the data files are left untouched",
            )
        try:
            cur: int | None = self.version()
        except LakeCorrupt:
            cur = None
        wdir = self.root / WRITERS_DIR
        uncommitted = {p.name for p in wdir.iterdir()} if wdir.exists() else set()  # writers that never finished
        # Without --to: the newest version at or below a readable CURRENT (never forward onto a version
        # CURRENT does not name), and never a manifest whose writer died before its commit.
        candidates = [to] if to is not None else sorted((n for n in on_disk if cur is None or n <= cur), reverse=True)
        skipped: list[tuple[int, str]] = []
        chosen = None
        for v in candidates:
            if v not in on_disk:
                raise LakeCorrupt(
                    f"there is no manifest of version {v} (versions on disk: {on_disk[0]}..{on_disk[-1]})"
                )
            try:
                rep = self.verify(v)
                batch = self._read_manifest(v).batch
            except LakeCorrupt as e:
                skipped.append((v, str(e.problem)))
                continue
            if to is None and batch and batch in uncommitted:
                skipped.append((v, "never committed (its writer was killed before CURRENT)"))
                continue
            if rep["ok"]:
                chosen = v
                break
            skipped.append((v, ", ".join(f"{p['path']} {p['problem']}" for p in rep["problems"][:3])))
        if chosen is None:
            raise LakeCorrupt("no manifest verifies: " + "; ".join(f"v{v}: {r}" for v, r in skipped[:5]))
        if chosen == cur:
            return {"version": cur, "restored_from": None, "skipped": skipped}
        if all(self._batch_of_version(n) in uncommitted for n in on_disk if n > chosen):
            # nothing committed above it (at most a killed writer's manifest, which the next writer sweeps)
            _write_current(self._mdir, chosen, uuid.uuid4().hex[:8])
            return {"version": chosen, "restored_from": None, "skipped": skipped}
        src = self._read_manifest(chosen)
        new_v = on_disk[-1] + 1
        m = Manifest(new_v, dt.datetime.now(dt.UTC).isoformat(), src.tables, batch="repair", restored_from=chosen)
        if not _link_manifest(self._mdir, m, uuid.uuid4().hex[:8]):
            raise LakeCorrupt(f"version {new_v} appeared during the repair: run it again")
        _write_current(self._mdir, new_v, uuid.uuid4().hex[:8])
        return {"version": new_v, "restored_from": chosen, "skipped": skipped}

    def _batch_of_version(self, v: int) -> str | None:
        try:
            return self._read_manifest(v).batch or None
        except LakeCorrupt:
            return None


class LakeCorrupt(RuntimeError):  # noqa: N818 (the name the issue and the pages use)
    """The lake's ``CURRENT``, a manifest or a data file is missing or damaged. The message names the problem
    and the commands that inspect and fix it; writers refuse to run until it is repaired."""

    def __init__(self, problem: str, hint: str | None = None):
        self.problem = problem
        super().__init__(f"{problem}. " + (hint or f"Check with `python -m analytics lake verify`; {REPAIR_HINT}"))


class CommitConflictError(RuntimeError):
    """A commit kept losing the compare-and-swap on ``CURRENT`` to other writers."""


class StaleBaseError(CommitConflictError):
    """``CURRENT`` moved after a writer read its base, and the writer's work depends on that base (an ingest's
    duplicate, reference and overfill checks; a rewrite of a table): nothing was committed, and the caller
    re-runs its work on the newer version (:func:`analytics.ingest.ingest` does, by itself)."""


REPAIR_HINT = (
    "restore the newest valid version with `python -m analytics lake repair` "
    "(or roll back with `python -m analytics lake repair --to VERSION`)"
)
WRITERS_DIR = "_writers"  # one marker per running writer (pid, host): its files are never orphans
COMMIT_ATTEMPTS = 20  # compare-and-swap retries before a commit fails loudly
_MANIFEST_RE = re.compile(r"v(\d{8})\.json")
_KEPT_RE = re.compile(r"\.json\.(superseded|unreadable)-")  # manifests set aside by the sweep: never deleted
_BATCH_RE = re.compile(r"(\d{8}T\d{6}-[0-9a-f]{8})")
_VERIFIED: set[tuple[str, str | None]] = set()


_PROCESS_START = time.time()


TEMP_GRACE_S = 60.0  # a derived temp file is another run's work in progress for at least this long


def sweep_temp(base: Path, started: float | None = None) -> int:
    """Remove temp files (``.*.tmp``) and temp folders (``.tmp-*``) under ``base`` last modified before
    ``started`` (default: this process's start) minus ``TEMP_GRACE_S``: what a killed ``tca`` or ``dataset build``
    left. A temp file another run is writing (or has just written and is about to rename) is newer, so it stays.
    Returns how many were removed."""
    import shutil

    started = (_PROCESS_START if started is None else started) - TEMP_GRACE_S
    n = 0
    if not base.exists():
        return 0
    for p in list(base.rglob(".*")):
        try:
            if p.is_file() and p.name.endswith(".tmp") and p.stat().st_mtime < started:
                p.unlink(missing_ok=True)
                n += 1
            elif p.is_dir() and p.name.startswith(".tmp-") and _newest_mtime(p) < started:
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        except FileNotFoundError:
            continue
    return n


def _newest_mtime(folder: Path) -> float:
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])


def _batch_of(name: str) -> str:
    """The writer batch id a lake file name carries ("" when none)."""
    m = _BATCH_RE.search(name)
    return m.group(1) if m else ""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _alive_writers(root: Path) -> set[str]:
    """Batch ids of writers whose marker names a live process on this host (a marker from another host counts
    as alive: we cannot tell, so its files are kept)."""
    out = set()
    wdir = root / WRITERS_DIR
    if not wdir.exists():
        return out
    host = socket.gethostname()
    for p in wdir.iterdir():
        try:
            info = json.loads(p.read_text())
        except (OSError, ValueError):
            out.add(p.name)  # being written right now
            continue
        if info.get("host") != host:
            out.add(p.name)
            continue
        try:
            os.kill(int(info["pid"]), 0)
            out.add(p.name)
        except ProcessLookupError:
            pass
        except PermissionError:
            out.add(p.name)
    return out


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _link_manifest(mdir: Path, m: Manifest, tag: str) -> bool:
    """Create ``v<N>.json`` exclusively: written whole to a temp file, then hard-linked to its name (link fails
    when the name exists, atomically, so a manifest is never overwritten nor seen half-written). False when
    another writer created that version first."""
    tmp = mdir / f".v{m.version:08d}.{tag}.tmp"
    tmp.write_text(m.to_json())
    _fsync_file(tmp)
    try:
        os.link(tmp, mdir / f"v{m.version:08d}.json")
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _write_current(mdir: Path, v: int, tag: str) -> None:
    cur_tmp = mdir / f"CURRENT.{tag}"
    cur_tmp.write_text(str(v))
    _fsync_file(cur_tmp)
    _fsync_dir(mdir)
    os.replace(cur_tmp, mdir / "CURRENT")  # the commit point
    _fsync_dir(mdir)


class Writer:
    """Collects new files for one commit. Use through :meth:`Lake.writer`.

    ``base`` is the manifest the writer started from; after the commit ``version_before`` is the version it
    actually committed on top of (``base.version`` unless another writer got in first and the new files were
    rebased) and ``committed_version`` the version it produced (None: nothing to commit)."""

    def __init__(self, lake: Lake, base: Manifest, started: float | None = None, rebase: bool = True):
        self.lake = lake
        self.base = base
        self.rebase = rebase
        self.batch_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.new: dict[str, list[FileEntry]] = {}
        self._n = 0
        self._at_commit: list[tuple[str, Callable[[int], pl.DataFrame]]] = []
        self.committed_version: int | None = None
        self.replaced: set[str] = set()  # tables whose files in the base are dropped at commit (retention)
        self.version_before: int = base.version
        self.rebased = 0
        wdir = lake.root / WRITERS_DIR
        wdir.mkdir(exist_ok=True)
        self._marker = wdir / self.batch_id
        write_text_atomic(
            self._marker, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})
        )

    def _release(self) -> None:
        self._marker.unlink(missing_ok=True)

    @property
    def changed(self) -> bool:
        return any(self.new.values()) or bool(self.replaced)

    def replace(self, table: str) -> None:
        """The next version lists only the files of ``table`` appended by this writer (the quarantine's
        retention rewrites it); older versions keep theirs."""
        self.replaced.add(table)

    def append_at_commit(self, table: str, rows: Callable[[int], pl.DataFrame]) -> None:
        """Rows whose content names the version being committed (the ingest log): ``rows(version)`` is called
        during the commit, once the version is known (again if a compare-and-swap retry changes it)."""
        self._at_commit.append((table, rows))

    def append(self, table: str, df: pl.DataFrame) -> None:
        """Write ``df`` (already in the table's schema) as new files, split by partition."""
        for t, e in self._write(table, df):
            self.new.setdefault(t, []).append(e)

    def _write(self, table: str, df: pl.DataFrame) -> list[tuple[str, FileEntry]]:
        if df.height == 0:
            return []
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
        out = []
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
            # Serialise once in memory: the bytes are hashed and written in one pass each (no re-read).
            buf = io.BytesIO()
            chunk.write_parquet(buf, compression="zstd", compression_level=1, row_group_size=122_880)
            data = buf.getbuffer()
            digest = hashlib.sha256(data).hexdigest()
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            del data
            os.replace(tmp, path)
            min_t = max_t = None
            if tcol:
                lo, hi = chunk[tcol].min(), chunk[tcol].max()
                min_t, max_t = lo.isoformat(), hi.isoformat()
            size = buf.getbuffer().nbytes
            out.append((table, FileEntry(str(rel), chunk.height, str(part), min_t, max_t, self.batch_id, size, digest)))
        return out

    def _commit(self) -> None:
        """Compare-and-swap: re-read ``CURRENT``; if another writer committed since ``base`` was read, rebase
        (the new files are immutable and uniquely named: rebasing is listing them on the newer manifest); create
        ``v<N+1>.json`` exclusively; then replace ``CURRENT``. Retries a bounded number of times, else raises
        :class:`CommitConflictError` (the new files stay invisible and are swept by a later writer)."""
        if not self.changed:
            return
        for dirpath in {(self.lake.root / e.path).parent for es in self.new.values() for e in es}:
            _fsync_dir(dirpath)
        mdir = self.lake._mdir
        base = self.base
        for attempt in range(COMMIT_ATTEMPTS):
            cur = self.lake.version()
            if cur != base.version:
                if not self.rebase or self.replaced:
                    raise StaleBaseError(
                        f"batch {self.batch_id} was built on version {base.version} but version {cur} is current "
                        "now (another writer committed in between; is the `_lock` file being removed?)"
                    )
                base = self.lake._read_manifest(cur) if cur else Manifest()
                self.rebased += 1
            v = base.version + 1
            late = [e for t, rows in self._at_commit for e in self._write(t, rows(v))]
            for d in {(self.lake.root / e.path).parent for _, e in late}:
                _fsync_dir(d)
            tables = {t: list(es) for t, es in base.tables.items() if t not in self.replaced}
            for t, es in [*self.new.items(), *((t, [e]) for t, e in late)]:
                tables.setdefault(t, []).extend(es)
            m = Manifest(v, dt.datetime.now(dt.UTC).isoformat(), tables, batch=self.batch_id)
            if _link_manifest(mdir, m, self.batch_id):
                _write_current(mdir, v, self.batch_id)
                self.version_before, self.committed_version = base.version, v
                return
            for _, e in late:  # another writer holds v: drop our version-stamped rows, wait, rebase
                (self.lake.root / e.path).unlink(missing_ok=True)
            time.sleep(min(0.01 * 2**attempt, 0.5))
        raise CommitConflictError(
            f"could not commit batch {self.batch_id} after {COMMIT_ATTEMPTS} attempts: other writers keep "
            f"committing version {base.version + 1} ({mdir}); is the `_lock` file being removed?"
        )


def snapshot_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The lake version a connection from :meth:`Lake.connect` reads (None for another connection)."""
    try:
        rows = con.execute("SELECT version FROM lake_version").fetchall()  # fetchall: leave no open result
    except duckdb.Error:
        return None
    return rows[0][0] if rows else None


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
    and rows are filtered half-open on timestamps (``ts >= start AND ts < end + 1 day``). The files' SHA-256
    are checked first (:meth:`Lake.check_hashes`)."""
    schema = table_schema(table)
    cols = {c: schema[c] for c in columns}
    entries = lake.entries(table, start, end, manifest)
    lake.check_hashes(entries)  # results are computed from these bytes: a flipped byte is an error (once a process)
    files = [str(lake.root / e.path) for e in entries]
    if not files:
        return pl.LazyFrame(schema=cols)
    tcol = TABLES[table].time_col
    lo = dt.datetime.combine(start, dt.time(), dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return pl.scan_parquet(files).select(list(cols)).filter((pl.col(tcol) >= lo) & (pl.col(tcol) < hi))
