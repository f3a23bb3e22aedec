"""Choosing a chain: ``embedded`` (default), ``anvil`` (started here from npm) or a node's URL.

This is what a ``--chain`` option maps to::

    with open_ledger("http://127.0.0.1:8545") as led:   # any JSON-RPC node (anvil, geth, besu)
        ...
    with open_ledger("anvil") as led:                   # a private anvil, stopped on exit
        ...
    with open_ledger() as led:                          # in-process py-evm
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ledger.anvil import AnvilNode
from ledger.chain import ChainConfig
from ledger.client import Web3Ledger
from ledger.errors import ChainUnavailableError


def chain_config(
    chain: str | None, *, seed: int = 0, funder_key: str | None = None, poa: bool = False
) -> ChainConfig:
    """Config for ``None``/``"embedded"`` or an ``http(s)://`` URL.

    Raises:
        ChainUnavailableError: the value is neither (``"anvil"`` is handled by :func:`open_ledger`).
    """
    if chain in (None, "", "embedded"):
        return ChainConfig(url=None, seed=seed)
    if chain.startswith(("http://", "https://")):
        return ChainConfig(url=chain, seed=seed, funder_key=funder_key, poa=poa)
    raise ChainUnavailableError(f"chain={chain!r}: expected 'embedded', 'anvil' or an http(s) URL")


@contextmanager
def open_ledger(
    chain: str | None = None, *, seed: int = 0, funder_key: str | None = None, poa: bool = False
) -> Iterator[Web3Ledger]:
    """Deploy a fresh ledger on the chosen chain for the duration of a ``with`` block."""
    if chain == "anvil":
        with AnvilNode() as node:
            yield Web3Ledger.deploy(ChainConfig(url=node.url, seed=seed))
        return
    yield Web3Ledger.deploy(chain_config(chain, seed=seed, funder_key=funder_key, poa=poa))
