"""The ADMM aggregator step: reference semantics, and the contract against the reference."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ledger.admm import (
    MAX_GLOBAL,
    MAX_NODES,
    ONE_TX_CLOSE_GAS,
    SEGMENT,
    ContractAdmm,
    close_pages,
    one_tx_close_gas,
)
from ledger.admm_reference import ReferenceAdmm
from ledger.anvil import AnvilNode
from ledger.chain import ChainConfig
from ledger.client import Web3Ledger
from ledger.errors import ContractRevert, ProtocolError

COPIES = [[0, 1], [1, 2], [2, 0, 3]]


def test_reference_known_answer() -> None:
    ref = ReferenceAdmm()
    ref.setup(4, COPIES)
    ref.open_round(0, 10.0)
    ref.submit(0, [1.0, 2.0])
    ref.submit(1, [4.0, 6.0])
    ref.submit(2, [8.0, 3.0, 5.0])
    r = ref.close_round(rho=2.0)
    np.testing.assert_allclose(r.z, [2.0, 3.0, 7.0, 5.0])
    # (1-2)² + (2-3)² + (4-3)² + (6-7)² + (8-7)² + (3-2)² + (5-5)² = 6
    assert r.primal_residual == pytest.approx(math.sqrt(6.0))
    # z_prev = 0: Σ over all 7 copies of z_g²: 2·4 + 2·9 + 2·49 + 25 = 149
    assert r.dual_residual == pytest.approx(2.0 * math.sqrt(149.0))
    assert r.missing == ()
    assert r.converged is None


def test_reference_missing_node_keeps_previous_z() -> None:
    ref = ReferenceAdmm()
    ref.setup(4, COPIES)
    ref.open_round(0, 10.0)
    for k, x in enumerate([[1.0, 2.0], [4.0, 6.0], [8.0, 3.0, 5.0]]):
        ref.submit(k, x)
    ref.close_round(1.0)
    ref.open_round(1, 10.0)
    ref.submit(0, [1.0, 2.0])
    ref.submit(1, [4.0, 6.0])
    r = ref.close_round(1.0, eps_primal=10.0, eps_dual=10.0)
    assert r.missing == (2,)
    np.testing.assert_allclose(r.z, [1.0, 3.0, 6.0, 5.0])  # global 3 only had node 2's copy
    assert r.converged is True
    with pytest.raises(ProtocolError):
        ref.open_round(5, 1.0)


def test_reference_refuses_late_and_double_submissions() -> None:
    now = [0.0]
    ref = ReferenceAdmm(clock=lambda: now[0])
    ref.setup(4, COPIES)
    ref.open_round(0, 5.0)
    ref.submit(0, [1.0, 2.0])
    with pytest.raises(ProtocolError, match="already submitted"):
        ref.submit(0, [1.0, 2.0])
    now[0] = 6.0
    with pytest.raises(ProtocolError, match="deadline"):
        ref.submit(1, [1.0, 2.0])


@pytest.mark.chain
@pytest.mark.parametrize(
    ("page_copies", "page_globals", "paged"),
    [(1, 1, False), (2_000, 2_000, True), (10, 7, True), (1, 1, True)],
    ids=["one-transaction", "one-page", "pages-of-10-copies-7-globals", "one-value-pages"],
)
def test_contract_z_update_equals_the_reference(
    led: Web3Ledger, page_copies: int, page_globals: int, paged: bool
) -> None:
    rng = np.random.default_rng(7)
    n_global = 40
    copies = [
        sorted(rng.choice(n_global, size=int(rng.integers(3, 12)), replace=False).tolist())
        for _ in range(9)
    ]
    copies[5] = [3, 3, 17]  # a node may hold two copies of one global
    ca, ref = ContractAdmm(led, page_copies, page_globals, paged), ReferenceAdmm()
    mark = len(led.gas_log)
    ca.setup(n_global, copies)
    ref.setup(n_global, copies)
    for r in range(3):
        ca.open_round(r, 600)
        ref.open_round(r, 600)
        for k, cp in enumerate(copies):
            if r == 2 and k in (1, 4):
                continue  # two nodes miss the last round
            x = rng.normal(0.0, 50.0, len(cp))
            ca.submit(k, x)
            ref.submit(k, x)
        a = ca.close_round(1.7, eps_primal=1e-3, eps_dual=1e9)
        b = ref.close_round(1.7, eps_primal=1e-3, eps_dual=1e9)
        # fixed point: inputs rounded to 1e-6, z truncated to 1e-6
        np.testing.assert_allclose(a.z, b.z, atol=2e-6, rtol=0)
        assert a.primal_residual == pytest.approx(b.primal_residual, rel=1e-6, abs=1e-4)
        assert a.dual_residual == pytest.approx(b.dual_residual, rel=1e-6, abs=1e-4)
        assert a.missing == b.missing
        assert a.converged == b.converged is False
        assert a.gas_used > 0
    assert b.missing == (1, 4)
    calls = [r.call for r in led.gas_log[mark:]]
    n_close = len(close_pages([len(c) for c in copies], page_copies)) if paged else 0
    assert calls.count("AdmmCoordinator.closeRound") == (0 if paged else 3)
    assert calls.count("AdmmCoordinator.closePage") == 3 * n_close
    n_final = -(-n_global // page_globals) if paged else 0
    assert calls.count("AdmmCoordinator.finalisePage") == 3 * n_final
    if paged and page_copies < 20:
        assert n_close > 1


@pytest.mark.chain
def test_contract_refuses_late_double_and_foreign_submissions(led: Web3Ledger) -> None:
    ca = ContractAdmm(led)
    ca.setup(4, COPIES)
    ca.open_round(0, 30)
    ca.submit(0, [1.0, 2.0])
    with pytest.raises(ContractRevert) as err:
        ca.submit(0, [1.0, 2.0])
    assert err.value.error == "AlreadySubmitted"
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(ca.contract, "submit", [0, b"\x00" * 16], led.chain.new_account())
    assert err.value.error == "UnknownNode"
    with pytest.raises(ContractRevert) as err:
        ca.submit(1, [1.0, 2.0, 3.0])
    assert err.value.error == "BadLength"
    led.advance_time(31)
    with pytest.raises(ContractRevert) as err:
        ca.submit(1, [1.0, 2.0])
    assert err.value.error == "PastDeadline"
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(
            ca.contract,
            "closePage",
            [b"", 1],
            led.chain.key(led.new_account()),
        )
    assert err.value.error == "Unauthorized"
    r = ca.close_round(1.0)
    assert r.missing == (1, 2)
    np.testing.assert_allclose(r.z, [1.0, 2.0, 0.0, 0.0])


@pytest.mark.chain
def test_contract_rejects_a_forged_vector_at_close(led: Web3Ledger) -> None:
    ca = ContractAdmm(led)
    ca.setup(4, COPIES)
    assert not ca.paged  # small: one closeRound
    ca.open_round(0, 600)
    ca.submit(0, [1.0, 2.0])
    ca._x[0] = ca._x[0][:-1] + b"\x01"  # the aggregator alters node 0's vector
    with pytest.raises(ContractRevert) as err:
        ca.close_round(1.0)
    assert err.value.error == "SubmissionMismatch"
    assert led.chain.call(ca.contract, "isOpen") is True


@pytest.mark.chain
def test_contract_refuses_a_page_beyond_the_block_gas_limit(led: Web3Ledger) -> None:
    ca = ContractAdmm(led, page_globals=65536, paged=True)
    with pytest.raises(ProtocolError, match=r"finalisePage over 65536 global .* block gas"):
        ca.setup(65536, [[0, 1], [65535]])


@pytest.mark.chain
def test_contract_takes_global_indices_up_to_its_limit(led: Web3Ledger) -> None:
    """The copy map holds 32-bit indices: the last global of the largest setup is accepted."""
    ca = ContractAdmm(led, paged=True)
    ca.setup(MAX_GLOBAL, [[0, 65_536], [MAX_GLOBAL - 1]])
    assert led.chain.call(ca.contract, "nGlobal") == MAX_GLOBAL == 2**32
    assert led.chain.call(ca.contract, "nCopies") == 3


def test_contract_admm_refuses_too_many_globals_or_nodes() -> None:
    led = Web3Ledger.deploy()
    mark = len(led.gas_log)
    ca = ContractAdmm(led)
    with pytest.raises(ProtocolError, match=r"n_global=4294967297: .* 1\.\.4,294,967,296 global"):
        ca.setup(MAX_GLOBAL + 1, [[0]])
    with pytest.raises(ProtocolError, match=r"65536 nodes .* 1\.\.65,535 nodes"):
        ca.setup(4, [[0]] * (MAX_NODES + 1))
    with pytest.raises(ProtocolError, match=r"outside \[0, 4\)"):
        ca.setup(4, [[0], [4]])
    assert len(led.gas_log) == mark  # refused before anything was deployed


def _two_rounds_agree(ca: ContractAdmm, ref: ReferenceAdmm, copies: list[list[int]],
                      rng: np.random.Generator, scale: float, rho: float, skip: int) -> Any:
    """Rounds 0 and 1 on the contract and the reference (node ``skip`` misses round 1).

    Returns the contract's result of round 1.
    """
    for r in range(2):
        ca.open_round(r, 600)
        ref.open_round(r, 600)
        for k, cp in enumerate(copies):
            if r == 1 and k == skip:
                continue
            x = rng.normal(0.0, scale, len(cp))
            ca.submit(k, x)
            ref.submit(k, x)
        a, b = ca.close_round(rho), ref.close_round(rho)
        np.testing.assert_allclose(a.z, b.z, atol=2e-6, rtol=0)
        assert a.primal_residual == pytest.approx(b.primal_residual, rel=1e-6, abs=1e-4)
        assert a.dual_residual == pytest.approx(b.dual_residual, rel=1e-6, abs=1e-4)
        assert a.missing == b.missing == ((skip,) if r == 1 else ())
    return a


@pytest.mark.chain
def test_contract_agrees_with_the_reference_beyond_16_bit_indices() -> None:
    """70,000 globals (more than the former 65,536), copies on both sides of 2^16."""
    rng = np.random.default_rng(5)
    n_global = 70_000
    edge = [0, 65_535, 65_536, 65_537, n_global - 1]
    copies = [edge, rng.integers(60_000, n_global, 40).tolist(), [65_536, 3, 65_536], edge[::-1]]
    with AnvilNode(block_gas_limit=1_000_000_000) as node:
        led = Web3Ledger.deploy(ChainConfig(url=node.url, seed=3))
        ca = ContractAdmm(led, page_copies=16, page_globals=n_global, paged=True)
        ref = ReferenceAdmm()
        ca.setup(n_global, copies)
        ref.setup(n_global, copies)
        last = _two_rounds_agree(ca, ref, copies, rng, 30.0, 1.3, skip=1)
        assert np.count_nonzero(last.z[65_535:65_538]) == 3



def test_close_pages_split_nodes_at_segment_boundaries() -> None:
    assert close_pages([3, 3, 3], 6) == [[(0, 0, 3), (1, 0, 3)], [(2, 0, 3)]]
    assert close_pages([3, 9, 0, 1], 4, segment=4) == [
        [(0, 0, 3)], [(1, 0, 4)], [(1, 4, 4)], [(1, 8, 1), (2, 0, 0), (3, 0, 1)]
    ]
    assert close_pages([5, 0], 1, segment=2) == [[(0, 0, 2)], [(0, 2, 2)], [(0, 4, 1), (1, 0, 0)]]


@pytest.mark.chain
@pytest.mark.parametrize("batch", [False, True], ids=["submit-each", "submits-batched"])
def test_contract_pages_split_a_large_node_and_agree_with_the_reference(
    led: Web3Ledger, batch: bool
) -> None:
    """A node of 3.5 segments and empty nodes, closed in pages of one segment or less."""
    rng = np.random.default_rng(11)
    n_global = 50
    big = rng.integers(0, n_global, size=SEGMENT * 3 + SEGMENT // 2).tolist()
    copies = [[0, 1], [], big, [2, 3, 4], []]
    ca = ContractAdmm(led, page_copies=SEGMENT, page_globals=20, paged=True, batch_submits=batch)
    ref = ReferenceAdmm()
    ca.setup(n_global, copies)
    ref.setup(n_global, copies)
    assert led.chain.call(ca.contract, "SEGMENT") == SEGMENT
    _two_rounds_agree(ca, ref, copies, rng, 20.0, 0.9, skip=0)
    ca.open_round(2, 600)
    ca.submit(2, np.zeros(len(big)))
    ca._x[2] = ca._x[2][:-1] + b"\x01"  # the aggregator alters the last segment of node 2
    with pytest.raises(ContractRevert) as err:
        ca.close_round(1.0)
    assert err.value.error == "SubmissionMismatch"


@pytest.mark.chain
def test_contract_refuses_the_other_mode_of_closing(led: Web3Ledger) -> None:
    for paged, call, args in (
        (True, "closeRound", [b"", b"\x00" * 32, 0, 0, 0]),
        (False, "closePage", [b"", 1]),
    ):
        ca = ContractAdmm(led, paged=paged)
        ca.setup(4, COPIES)
        ca.open_round(0, 600)
        with pytest.raises(ContractRevert) as err:
            led.chain.transact(ca.contract, call, args, ca._aggregator)
        assert err.value.error == "WrongMode"


def test_a_large_problem_is_closed_in_pages() -> None:
    t = 24
    counts = [t] * 1000 + [1000 * t]
    assert one_tx_close_gas(1000 * t, counts) > ONE_TX_CLOSE_GAS
    assert one_tx_close_gas(2232, [140] * 32) < ONE_TX_CLOSE_GAS  # case33bw x 24 h by bus
