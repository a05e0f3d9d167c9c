"""A loopback ``nats-server`` with JetStream for tests, benchmarks and the embedded demo (Debian's package).

Started in its own process group on 127.0.0.1 and a free port with a private store folder; stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return shutil.which("nats-server") is not None


@dataclass
class NatsServer:
    port: int
    store: Path
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL if it has not exited within 5 s."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start(store: Path, port: int | None = None, timeout: float = 10.0) -> NatsServer:
    """Start ``nats-server -js`` on 127.0.0.1 (``port`` or a free one) with JetStream's store in ``store``; returns
    once it accepts connections."""
    port = port or free_port()
    Path(store).mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return NatsServer(port, Path(store), proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nats-server did not start")
