"""A local anvil node from the project's npm install, started and stopped by us.

``npm ci`` at the repository root (run by ``./dev setup``) installs ``@foundry-rs/anvil``; its
binary lands in ``node_modules/``. :class:`AnvilNode` starts it on a free port with the prague
hardfork (the contracts are compiled for it) and stops it on exit.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from ledger.errors import ChainUnavailableError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "run 'npm ci --no-audit --no-fund' at the repository root (or './dev setup')"


def anvil_binary() -> Path:
    """Path of the anvil executable installed by npm.

    Raises:
        ChainUnavailableError: anvil is not installed; the message says how to install it.
    """
    candidates = [
        REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
        REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-arm64" / "bin" / "anvil",
        REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-darwin-arm64" / "bin" / "anvil",
        REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-darwin-amd64" / "bin" / "anvil",
        REPO_ROOT / "node_modules" / ".bin" / "anvil",
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise ChainUnavailableError(
        f"anvil is not installed in {REPO_ROOT / 'node_modules'}: {INSTALL_HINT}"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilNode:
    """An anvil process for the duration of a ``with`` block.

    Args:
        block_gas_limit: the node's block gas limit.
        startup_timeout_s: seconds to wait for the RPC port.
        automine: mine a block when a transaction arrives (anvil's default); ``False`` starts
            the node with ``--no-mining`` (blocks only on ``evm_mine``).
        base_fee_wei: the first block's base fee (anvil's default when None). With 0 the base
            fee stays 0: blocks above the gas target (half the limit) raise a nonzero base fee
            by up to 12.5 % each, which can overtake a sender's fee cap and leave its
            transactions in the pool.
        prune_history: keep at most this many past states, in memory (anvil's
            ``--prune-history``); by default anvil keeps every block's state and writes the
            older ones to disk, gigabytes for a long run with large storage.
        order: how anvil orders the transactions of a block: ``"fifo"`` (default) by arrival,
            which keeps the order in which a batch of several senders' transactions was sent
            when they are mined together (:meth:`ledger.chain.Chain.send_batch`);
            ``"fees"`` by priority fee.

    The node writes the states it does not keep in memory to a private directory (anvil's
    ``--cache-path``; by default it is ``~/.foundry/anvil/tmp``, left behind when the node
    is killed), removed when the node stops.
    """

    def __init__(self, block_gas_limit: int = 30_000_000, startup_timeout_s: float = 20.0,
                 *, automine: bool = True, base_fee_wei: int | None = None,
                 prune_history: int | None = None, order: str = "fifo") -> None:
        if order not in ("fifo", "fees"):
            raise ValueError(f"order must be 'fifo' or 'fees', got {order!r}")
        self.order = order
        self.block_gas_limit = block_gas_limit
        self.prune_history = prune_history
        self.base_fee_wei = base_fee_wei
        self.automine = automine
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._cache_dir: str | None = None

    @property
    def url(self) -> str:
        """The node's JSON-RPC URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AnvilNode:
        """Start the node and wait until it answers."""
        binary = anvil_binary()
        if binary.parent.name == ".bin" and shutil.which("node") is None:
            raise ChainUnavailableError(f"node is needed to run {binary}")
        self.port = _free_port()
        self._cache_dir = tempfile.mkdtemp(prefix="vdg-anvil-")
        cmd = [
            str(binary),
            "--port", str(self.port),
            "--hardfork", "prague",
            "--gas-limit", str(self.block_gas_limit),
            "--balance", "10000000",
            "--order", self.order,
            "--no-request-size-limit",
            "--cache-path", self._cache_dir,
            "--silent",
        ]  # fmt: skip
        if not self.automine:
            cmd.append("--no-mining")
        if self.base_fee_wei is not None:
            cmd += ["--block-base-fee-per-gas", str(self.base_fee_wei)]
        if self.prune_history is not None:
            cmd += ["--prune-history", str(self.prune_history)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                self._remove_cache()
                raise ChainUnavailableError(f"anvil exited with {self._proc.returncode}: {err}")
            if self._answers():
                logger.info("anvil %s started (pid %d)", self.url, self._proc.pid)
                return self
            time.sleep(0.1)
        self.stop()
        raise ChainUnavailableError(
            f"anvil did not answer on {self.url} within {self.startup_timeout_s} s"
        )

    def _answers(self) -> bool:
        req = urllib.request.Request(
            self.url,
            data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        """Stop the node (terminate, then kill after 5 s) and remove its state directory."""
        if self._proc is None:
            self._remove_cache()
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        if self._proc.stderr:
            self._proc.stderr.close()
        logger.info("anvil %s stopped", self.url)
        self._proc = None
        self._remove_cache()

    def _remove_cache(self) -> None:
        if self._cache_dir is not None:
            shutil.rmtree(self._cache_dir, ignore_errors=True)
            self._cache_dir = None

    @property
    def cache_dir(self) -> str | None:
        """The directory where the running node writes the states it does not keep in memory."""
        return self._cache_dir

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
