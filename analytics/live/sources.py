"""Where live events come from: a NATS JetStream durable pull consumer, or a watched folder of JSON Lines files.

Both deliver whole lines (one JSON event each) with a token; the engine hands the tokens of a batch back through
:meth:`committed` only after the batch's lake commit, so nothing is acknowledged before it is durable:
- NATS: the token is the message's stream sequence; ``committed`` acknowledges the message (its latest delivery).
  Messages held for their commit are kept alive with in-progress acknowledgements every ack_wait_s / 3, and a
  redelivery of a held message is not spooled twice; after a crash the server redelivers what was not
  acknowledged (after ``ack_wait_s``), and the lake's keys (or the pending segment, see engine.py) make it a no-op.
- Folder: the token is (file, byte offset after the line); ``committed`` records the offsets in
  ``<lake>/live/offsets.json`` (atomic rewrite), where a restart resumes. Only whole lines (ending in a newline)
  are read: a line being appended is read when its newline arrives. Files whose name starts with ``_`` or ``.``
  are ignored (as batch ingest does).

Source strings: ``nats://HOST:PORT/SUBJECT`` or ``dir:PATH``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from analytics.store import write_text_atomic

DEFAULT_SUBJECT = "desk.events"
FOLDER_SUFFIXES = (".jsonl", ".ndjson")
MAX_READ_BYTES = 8 << 20  # per file per poll: bounds one poll's work


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "nats" | "dir"
    url: str = ""  # nats://host:port
    subject: str = DEFAULT_SUBJECT
    path: Path | None = None

    def __str__(self) -> str:
        return f"{self.url}/{self.subject}" if self.kind == "nats" else f"dir:{self.path}"


def parse_source(text: str) -> SourceSpec:
    """``nats://HOST:PORT/SUBJECT`` (subject default ``desk.events``) or ``dir:PATH``."""
    if text.startswith("dir:"):
        return SourceSpec("dir", path=Path(text[4:]).expanduser().resolve())
    u = urlparse(text)
    if u.scheme == "nats" and u.hostname:
        subject = u.path.lstrip("/") or DEFAULT_SUBJECT
        return SourceSpec("nats", url=f"nats://{u.hostname}:{u.port or 4222}", subject=subject)
    raise ValueError(f"source must be nats://HOST:PORT/SUBJECT or dir:PATH, not {text!r}")


class FolderSource:
    """JSON Lines files dropped into or appended to a folder."""

    def __init__(self, path: Path, state_file: Path):
        self.path = Path(path)
        self.state_file = Path(state_file)
        self.committed_offsets: dict[str, int] = self._load()
        self.read_offsets = dict(self.committed_offsets)

    def _load(self) -> dict[str, int]:
        if not self.state_file.is_file():
            return {}
        d = json.loads(self.state_file.read_text())
        return d.get(str(self.path), {})

    async def open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def _files(self) -> list[Path]:
        return sorted(
            f
            for f in self.path.iterdir()
            if f.is_file() and f.suffix.lower() in FOLDER_SUFFIXES and not f.name.startswith(("_", "."))
        )

    async def poll(self, timeout: float) -> list[tuple[bytes, object]]:
        """Whole new lines of every file, each with its token (file name, offset after the line)."""
        out: list[tuple[bytes, object]] = []
        for f in self._files():
            name = f.name
            pos = self.read_offsets.get(name, 0)
            try:
                size = f.stat().st_size
            except FileNotFoundError:
                continue
            if size <= pos:
                continue
            with open(f, "rb") as fh:
                fh.seek(pos)
                data = fh.read(min(size - pos, MAX_READ_BYTES))
            end = data.rfind(b"\n")
            if end < 0:
                continue
            off = pos
            for line in data[: end + 1].split(b"\n")[:-1]:
                off += len(line) + 1
                if line.strip():
                    out.append((line, (name, off)))
            self.read_offsets[name] = pos + end + 1
        if not out:
            await asyncio.sleep(timeout)
        return out

    def pending_state(self, tokens: list) -> dict:
        """The offsets once ``tokens`` are committed (recorded before the commit, applied after it)."""
        offs = dict(self.committed_offsets)
        for name, off in tokens:
            offs[name] = max(offs.get(name, 0), off)
        return {"offsets": offs}

    async def committed(self, tokens: list, state: dict | None = None) -> None:
        self.committed_offsets = (state or self.pending_state(tokens))["offsets"]
        d = json.loads(self.state_file.read_text()) if self.state_file.is_file() else {}
        d[str(self.path)] = self.committed_offsets
        write_text_atomic(self.state_file, json.dumps(d, indent=1, sort_keys=True))

    def recover(self, state: dict) -> None:
        """After a crash between a commit and its offsets: the pending batch's offsets (its commit is redone)."""
        self.committed_offsets = dict(state["offsets"])
        self.read_offsets = dict(self.committed_offsets)

    async def close(self) -> None:
        return None


class NatsSource:
    """A durable pull consumer on a JetStream subject; the stream is created over the subject when missing."""

    def __init__(self, spec: SourceSpec, cfg: dict):
        self.spec = spec
        self.cfg = cfg
        self.nc = None
        self.sub = None
        self.done_seqs: set[int] = set()  # stream sequences committed but maybe not acknowledged (after a crash)
        self.held: dict[int, object] = {}  # stream sequence -> its latest delivery, received and not yet committed
        self.last_keepalive = time.time()

    async def open(self) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig
        from nats.js.errors import NotFoundError

        self.nc = await nats.connect(
            self.spec.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5
        )
        js = self.nc.jetstream()
        try:
            await js.stream_info(self.cfg["stream"])
        except NotFoundError:
            await js.add_stream(name=self.cfg["stream"], subjects=[self.spec.subject])
        self.sub = await js.pull_subscribe(
            self.spec.subject,
            durable=self.cfg["durable"],
            stream=self.cfg["stream"],
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=float(self.cfg["ack_wait_s"]),
                max_ack_pending=int(self.cfg["max_ack_pending"]),
            ),
        )

    async def poll(self, timeout: float) -> list[tuple[bytes, object]]:
        from nats.errors import TimeoutError as NatsTimeout

        # Held messages wait for their commit: tell the server they are in progress well before ack_wait runs out,
        # so that it does not redeliver them meanwhile.
        if self.held and time.time() - self.last_keepalive > float(self.cfg["ack_wait_s"]) / 3:
            for m in self.held.values():
                await m.in_progress()
            self.last_keepalive = time.time()
        try:
            msgs = await self.sub.fetch(int(self.cfg["fetch_batch"]), timeout=timeout)
        except (TimeoutError, NatsTimeout):
            return []
        out = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            if seq in self.done_seqs:  # committed before a crash, redelivered: acknowledge, do not spool again
                await m.ack()
                continue
            if seq in self.held:  # redelivered while waiting for its commit: spooled already; ack the latest delivery
                self.held[seq] = m
                continue
            self.held[seq] = m
            out.append((m.data, seq))
        return out

    def pending_state(self, tokens: list) -> dict:
        return {"stream_seqs": list(tokens)}

    async def committed(self, tokens: list, state: dict | None = None) -> None:
        for seq in tokens:
            m = self.held.pop(seq, None)
            if m is not None:
                await m.ack()
        if tokens:
            await self.nc.flush()

    def recover(self, state: dict) -> None:
        self.done_seqs = set(state.get("stream_seqs", []))

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.flush()  # the last acknowledgements out before the connection goes
            await self.nc.close()  # not drain(): draining a pull subscription waits on a fetch nobody makes


def make_source(spec: SourceSpec, lake_root: Path, cfg: dict):
    if spec.kind == "dir":
        return FolderSource(spec.path, Path(lake_root) / "live" / "offsets.json")
    return NatsSource(spec, cfg["nats"])
