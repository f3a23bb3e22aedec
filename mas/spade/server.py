"""Lifecycle of the embedded XMPP server process: start on free loopback ports, stop, restart.

The server (:mod:`mas.spade.xmppd`) runs as a child process; :class:`EmbeddedXmppServer` starts
it, waits (with a deadline) until it accepts connections, stops it with SIGTERM (SIGKILL after a
grace period) and reads the number of ``<message>`` stanzas it routed. Use it as a context
manager so that it is stopped on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from mas.errors import RuntimeFailureError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on at the moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, deadline_s: float) -> None:
    """Block until ``host:port`` accepts a TCP connection.

    Raises:
        RuntimeFailureError: it did not within ``deadline_s`` seconds.
    """
    end = time.monotonic() + deadline_s
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise RuntimeFailureError(f"XMPP server at {host}:{port} did not start within "
                                          f"{deadline_s:g} s") from None
            time.sleep(0.1)


class EmbeddedXmppServer:
    """The embedded XMPP server as a child process bound to one address (loopback by default).

    Args:
        domain: XMPP domain and the only address listened on (``localhost`` = 127.0.0.1).
        client_port: client port, or ``None`` for a free one.
        start_deadline_s: how long to wait for it to accept connections.
    """

    def __init__(self, domain: str = "localhost", client_port: int | None = None,
                 start_deadline_s: float = 30.0) -> None:
        self.domain = domain
        self.address = LOOPBACK if domain == "localhost" else domain
        self.client_port = client_port or free_port(self.address)
        self.server_port = free_port(self.address)
        self.start_deadline_s = start_deadline_s
        self._dir = Path(tempfile.mkdtemp(prefix="vdg-xmppd-"))
        self.stats_path = self._dir / "stats.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self._counted = 0  # messages routed by earlier incarnations (restarts)

    def start(self) -> EmbeddedXmppServer:
        """Start the server process and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        cmd = [sys.executable, "-m", "mas.spade.xmppd", "--host", self.domain,
               "--client-port", str(self.client_port), "--server-port", str(self.server_port),
               "--stats", str(self.stats_path)]
        log_file = (self._dir / "xmppd.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=log_file,
                                     start_new_session=True)
        log_file.close()
        try:
            wait_for_port(self.address, self.client_port, self.start_deadline_s)
        except RuntimeFailureError:
            self.stop()
            raise
        log.info("embedded XMPP server on %s:%d (pid %d)", self.address, self.client_port,
                 self.proc.pid)
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the server process (SIGTERM, then SIGKILL after ``grace_s``)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("XMPP server pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait(grace_s)
        self._counted += self._read()
        with contextlib.suppress(OSError):
            self.stats_path.unlink()

    def restart(self) -> None:
        """Stop and start again on the same ports (agents must reconnect)."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def _read(self) -> int:
        try:
            return int(json.loads(self.stats_path.read_text())["messages"])
        except (OSError, ValueError, KeyError):
            return 0

    def messages(self) -> int:
        """``<message>`` stanzas routed so far, over all restarts."""
        return self._counted + (self._read() if self.proc is not None else 0)

    def log_text(self) -> str:
        """The server's own log output (for error reports)."""
        try:
            return (self._dir / "xmppd.log").read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        for p in sorted(self._dir.glob("*"), reverse=True):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def __enter__(self) -> EmbeddedXmppServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
