"""Choosing the chain: embedded, anvil from npm, or a URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from ledger import anvil
from ledger.backends import chain_config, open_ledger
from ledger.chain import Chain, ChainConfig
from ledger.errors import ChainUnavailableError


def test_chain_config_parses_the_chain_option() -> None:
    assert chain_config(None).url is None
    assert chain_config("embedded").url is None
    assert chain_config("http://127.0.0.1:8545").url == "http://127.0.0.1:8545"
    with pytest.raises(ChainUnavailableError, match="expected 'embedded', 'anvil' or an http"):
        chain_config("ganache")


def test_missing_anvil_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(anvil, "REPO_ROOT", tmp_path)
    with pytest.raises(ChainUnavailableError, match="npm ci"):
        anvil.anvil_binary()


@pytest.mark.chain
def test_open_ledger_on_anvil_and_by_url() -> None:
    with anvil.AnvilNode() as node:
        with open_ledger(node.url, seed=5) as led:
            assert led.chain.chain_id == 31337
            (h,) = led.add_households(1, credit_eur=2.0)
            assert led.credit_nano(h) == 2_000_000_000
        proc = node._proc
        assert proc is not None
    assert proc.poll() is not None  # the node was stopped
    with open_ledger("anvil") as led:
        assert not led.chain.embedded


@pytest.mark.chain
def test_unreachable_url_is_a_chain_error() -> None:
    with pytest.raises(ChainUnavailableError), open_ledger("http://127.0.0.1:9"):
        pass


@pytest.mark.chain
def test_funder_key_and_poa_middleware_on_a_node() -> None:
    with anvil.AnvilNode() as node:
        bootstrap = Chain(ChainConfig(url=node.url, seed=77))
        funder = bootstrap.new_account(fund=False)
        bootstrap.fund([funder.address], 10**21)  # from the node's unlocked account
        with open_ledger(node.url, seed=78, funder_key=funder.key.hex(), poa=True) as led:
            (h,) = led.add_households(1, credit_eur=1.0)
            assert led.credit_nano(h) == 1_000_000_000
            assert led.chain.w3.eth.get_balance(funder.address) < 10**21 - 5 * 10**19  # it paid


@pytest.mark.chain
def test_onboarding_more_households_than_one_grant_chunk(anvil_url: str) -> None:
    with open_ledger(anvil_url, seed=79) as led:
        hh = led.add_households(201, credit_eur=0.5)
        grants = [r for r in led.gas_log if r.call == "Registry.grantMany"]
        assert len(grants) == 2
        assert max(r.gas_used for r in grants) < 6_000_000
        for h in (hh[0], hh[199], hh[200], hh[-1]):
            assert led.roles_of(h) & 16
            assert led.credit_nano(h) == 500_000_000


@pytest.mark.chain
def test_a_batch_is_mined_on_request_when_the_node_leaves_it_in_its_pool() -> None:
    # anvil's automine can leave ready transactions of a large batch in its pool until the next
    # arrival; a node that never mines by itself shows the same state every time.
    dev_key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    with anvil.AnvilNode(automine=False) as node:
        chain = Chain(ChainConfig(url=node.url, seed=3, funder_key=dev_key, timeout_s=5.0))
        payer = Account.from_key(dev_key)
        items = [(payer, {"to": chain.new_account(fund=False).address, "value": 1, "gas": 21_000},
                  "transfer") for _ in range(40)]
        records = chain.send_batch(items)
        assert [r.call for r in records] == ["transfer"] * 40
        assert min(r.block for r in records) >= 1
        assert all(r.gas_used == 21_000 for r in records)


@pytest.mark.chain
def test_the_fee_cap_follows_a_rising_base_fee() -> None:
    # Blocks above half the gas limit raise the base fee 12.5 % each; after ten of them it is
    # past the first fee cap (twice the base fee plus 1 gwei), which must have been read again.
    with anvil.AnvilNode(block_gas_limit=30_000_000) as node:
        chain = Chain(ChainConfig(url=node.url, seed=4))
        payer, to = chain.new_account(), chain.new_account(fund=False)
        first_cap = chain.fee_cap_wei()
        blob = b"\x01" * 740_000  # 29.6 M gas of calldata (prague's floor): a full block
        for _ in range(14):
            (record,) = chain.send_batch([(payer, {"to": to.address, "data": blob,
                                                   "gas": 29_700_000}, "fill")])
            assert record.gas_used > 29_000_000
        base = int(chain.w3.eth.get_block("latest")["baseFeePerGas"])
        assert base > first_cap
        assert chain.fee_cap_wei() > base


@pytest.mark.chain
def test_the_node_state_directory_is_private_and_removed_on_stop() -> None:
    with anvil.AnvilNode() as node, anvil.AnvilNode() as other:
        cache = node.cache_dir
        assert cache is not None
        assert Path(cache).is_dir()
        assert other.cache_dir != cache
        proc = node._proc
        assert proc is not None
        assert cache in proc.args
    assert not Path(cache).exists()
    assert node.cache_dir is None
