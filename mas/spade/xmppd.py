"""The embedded XMPP server (pyjabber, as ``spade run`` starts it) bound to loopback only.

Run as its own process (``python -m mas.spade.xmppd``) so that its global state, signal
handlers and worker pool stay out of the agents' processes and a test can stop and restart it.
Unlike ``spade run``, which also listens on the machine's LAN address, it listens on the given
host only (default 127.0.0.1): an open-registration server must not be exposed. It counts the
``<message>`` stanzas it routes and writes the count to a small JSON file every 0.2 s and on exit,
the proof that the agents' traffic went through the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)



class _Stats:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages = 0

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"messages": self.messages, "pid": os.getpid()}))
        tmp.replace(self.path)


def _install_counter(stats: _Stats) -> None:
    from pyjabber.stream.handlers.StanzaHandler import StanzaHandler  # noqa: PLC0415

    original = StanzaHandler.handle_msg

    async def counting(self: object, element: object) -> None:
        stats.messages += 1
        await original(self, element)

    StanzaHandler.handle_msg = counting


def _install_tls_fix() -> None:
    """Hold what a client sends during the STARTTLS handshake until the stream is reset.

    pyjabber resets its parser after ``loop.start_tls`` returns; a fast client's new stream
    header can arrive before that and is then lost, and the connection stalls. Data received
    while the handshake is in progress is held and replayed after the reset.
    """
    from pyjabber.network.protocols.XMLProtocol import XMLProtocol  # noqa: PLC0415
    from pyjabber.stream.negotiators.StreamNegotiator import StreamNegotiator  # noqa: PLC0415

    held: dict[int, list[bytes]] = {}
    original_tls = StreamNegotiator._handle_tls
    original_data = XMLProtocol.data_received

    def data_received(self: object, data: bytes) -> None:
        if id(self) in held:
            held[id(self)].append(data)
            return
        original_data(self, data)

    async def handle_tls(self: object, element: object) -> object:
        proto = self._protocol  # type: ignore[attr-defined]
        starting = getattr(element, "tag", "") == "{urn:ietf:params:xml:ns:xmpp-tls}starttls"
        if starting:
            held[id(proto)] = []
        try:
            return await original_tls(self, element)
        finally:
            if starting:
                chunks = held.pop(id(proto), [])
                if chunks:
                    asyncio.get_running_loop().call_soon(
                        lambda: [original_data(proto, c) for c in chunks])

    XMLProtocol.data_received = data_received
    StreamNegotiator._handle_tls = handle_tls


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - uvloop ships with spade's dependencies on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(host: str, client_port: int, server_port: int, stats: _Stats, cert_dir: str) -> None:
    from loguru import logger as loguru_logger  # noqa: PLC0415
    from pyjabber.server import Server  # noqa: PLC0415
    from pyjabber.server_parameters import Parameters  # noqa: PLC0415

    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level=os.environ.get("VDG_XMPPD_LOG", "WARNING"))
    # As `spade run` does: uvloop, with the server built before the loop runs (pyjabber binds
    # its queues to the loop current at construction; on the plain asyncio loop its STARTTLS
    # handling loses a fast client's stream restart).
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    params = Parameters(host=host, client_port=client_port, server_port=server_port,
                        database_in_memory=True, database_path=os.path.join(cert_dir, "db"),
                        cert_path=cert_dir, message_persistence=True, connection_timeout=600)
    server = Server(params)
    server._public_ip = None
    _install_counter(stats)
    _install_tls_fix()

    async def flush() -> None:
        while True:
            stats.write()
            await asyncio.sleep(0.2)

    main = loop.create_task(server.start())

    async def on_signals() -> None:
        await asyncio.sleep(0)  # after server.start() installed its own handlers
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, main.cancel)

    loop.create_task(flush())
    loop.create_task(on_signals())
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        pass
    finally:
        rest = asyncio.all_tasks(loop)
        for task in rest:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        stats.write()
        loop.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m mas.spade.xmppd --host H --client-port P --stats FILE``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost",
                        help="the XMPP domain of the agents' JIDs, also the only address it "
                             "listens on (localhost: 127.0.0.1)")
    parser.add_argument("--client-port", type=int, required=True)
    parser.add_argument("--server-port", type=int, required=True)
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args(argv)
    stats = _Stats(args.stats)
    stats.write()
    cert_dir = tempfile.mkdtemp(prefix="vdg-xmpp-")
    from pyjabber.server import SERVER_FILE_PATH  # noqa: PLC0415

    for name in ("ca_cert.pem", "ca_key.pem"):
        shutil.copy(os.path.join(SERVER_FILE_PATH, "network", "certs", name), cert_dir)
    try:
        _serve(args.host, args.client_port, args.server_port, stats, cert_dir)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        stats.write()
        shutil.rmtree(cert_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
