"""A throw-away Prosody server for tests and benchmarks (Debian's ``prosody`` package).

Runs ``prosody -F --config FILE`` as a child process with its own data directory, listening on
127.0.0.1 only, in-band registration open (loopback only) and a self-signed certificate made
with ``openssl`` for STARTTLS (the agents do not verify it). For a shared server across machines see
``docs/agents.md``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from mas.errors import RuntimeFailureError
from mas.spade.server import LOOPBACK, free_port, wait_for_port

log = logging.getLogger(__name__)

CONFIG = """
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{}}
interfaces = {{ "{address}" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ {s2s_port} }}
http_ports = {{}}
https_ports = {{}}
c2s_require_encryption = true
s2s_require_encryption = false
ssl = {{ certificate = "{dir}/certs/{domain}.crt"; key = "{dir}/certs/{domain}.key" }}
allow_registration = true
authentication = "internal_hashed"
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "register"; "presence" }}
modules_disabled = {{ "posix" }}  -- daemon handling: the process runs in the foreground
limits = {{ c2s = {{ rate = "100mb/s"; burst = "10s" }} }}
log = {{ warn = "{dir}/prosody.log" }}
VirtualHost "{domain}"
"""


def prosody_binary() -> str:
    """Path of the ``prosody`` executable.

    Raises:
        RuntimeFailureError: it is not installed (``apt-get install prosody``).
    """
    path = shutil.which("prosody")
    if path is None:
        raise RuntimeFailureError("prosody is not installed (Debian: apt-get install prosody)")
    return path


class ProsodyServer:
    """Prosody on loopback as a child process.

    Args:
        domain: the virtual host (JID domain).
        start_deadline_s: how long to wait for it to accept connections.
    """

    def __init__(self, domain: str = "localhost", start_deadline_s: float = 30.0) -> None:
        self.domain = domain
        self.client_port = free_port()
        self.start_deadline_s = start_deadline_s
        self._dir = Path(tempfile.mkdtemp(prefix="vdg-prosody-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProsodyServer:
        """Write the configuration, start Prosody and wait for its client port."""
        (self._dir / "data").mkdir(exist_ok=True)
        certs = self._dir / "certs"
        certs.mkdir(exist_ok=True)
        subprocess.run(
            [shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048",
             "-nodes", "-days", "2", "-subj", f"/CN={self.domain}",
             "-keyout", str(certs / f"{self.domain}.key"),
             "-out", str(certs / f"{self.domain}.crt")], check=True, capture_output=True)
        cfg = self._dir / "prosody.cfg.lua"
        cfg.write_text(CONFIG.format(dir=self._dir, address=LOOPBACK, port=self.client_port,
                                     s2s_port=free_port(), domain=self.domain))
        log_file = (self._dir / "stdout.log").open("ab")
        self.proc = subprocess.Popen(
            [prosody_binary(), "-F", "--config", str(cfg)], stdout=log_file, stderr=log_file,
            start_new_session=True)
        log_file.close()
        try:
            wait_for_port(LOOPBACK, self.client_port, self.start_deadline_s)
        except RuntimeFailureError:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop Prosody and remove its directory."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)

    def __enter__(self) -> ProsodyServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
