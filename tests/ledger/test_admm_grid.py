"""The contract-backed aggregator step drives ``grid``'s ADMM OPF like grid's own reference.

``ledger`` never imports ``grid``; this test holds the two implementations of one interface
together: the ledger's reference and grid's reference agree exactly, and in an OPF run on
case33bw driven by the contract, every round's step equals grid's reference on the same
submissions up to the contract's fixed point (1e-6).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from grid.admm.aggregator import ReferenceAggregator, RoundResult
from grid.admm.engine import AdmmOptions
from grid.admm.opf import AdmmOpf
from grid.feeders import load_feeder
from grid.opf import Devices, OpfInputs
from grid.prices import Tariff
from grid.profiles import day_profiles
from ledger.admm import ContractAdmm
from ledger.admm_reference import ReferenceAdmm
from ledger.client import Web3Ledger


def test_ledger_reference_equals_grid_reference() -> None:
    rng = np.random.default_rng(11)
    n_global = 30
    copies = [rng.choice(n_global, size=8, replace=False).tolist() for _ in range(6)]
    copies.append(list(range(n_global)))  # every global has a copy (grid requires it)
    ours, theirs = ReferenceAdmm(), ReferenceAggregator()
    ours.setup(n_global, copies)
    theirs.setup(n_global, copies)
    for r in range(4):
        ours.open_round(r, 60.0)
        theirs.open_round(r, 60.0)
        for k, cp in enumerate(copies):
            if (r, k) in ((1, 2), (3, 0), (3, 6)):
                continue
            x = rng.normal(0, 3, len(cp))
            ours.submit(k, x)
            theirs.submit(k, x)
        a, b = ours.close_round(0.7), theirs.close_round(0.7)
        np.testing.assert_allclose(a.z, b.z, rtol=1e-12, atol=1e-12)
        assert a.primal_residual == pytest.approx(b.primal_residual, rel=1e-12)
        assert a.dual_residual == pytest.approx(b.dual_residual, rel=1e-12)
        assert a.missing == b.missing


class _Tee:
    """Drives the contract and grid's reference with the same calls; returns the contract's z.

    An OPF run is sensitive to 1e-6 changes of z (interior-point local solves), so two runs
    drift apart; comparing the two aggregator steps on the same inputs, round by round, is the
    exact check.
    """

    def __init__(self, contract: ContractAdmm) -> None:
        self.contract = contract
        self.reference = ReferenceAggregator()
        self.pairs: list[tuple[RoundResult, RoundResult]] = []

    def setup(self, n_global: int, copies: Sequence[Sequence[int]]) -> None:
        self.contract.setup(n_global, copies)
        self.reference.setup(n_global, copies)

    def open_round(self, round_index: int, deadline_s: float) -> None:
        self.contract.open_round(round_index, deadline_s)
        self.reference.open_round(round_index, deadline_s)

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        self.contract.submit(node, x_local)
        self.reference.submit(node, x_local)

    def close_round(self, rho: float) -> RoundResult:
        ours = self.contract.close_round(rho)
        theirs = self.reference.close_round(rho)
        self.pairs.append((ours, theirs))
        return ours


@pytest.mark.chain
@pytest.mark.integration
def test_admm_opf_runs_on_the_contract_step_equal_to_the_reference() -> None:
    feeder = load_feeder("case33bw")
    prof = day_profiles(feeder, "2016-06-21", 2, 60)
    imp, exp = Tariff().prices(prof.start, prof.periods, 60)
    inputs = OpfInputs(prof.load_p_kw, prof.load_q_kvar, imp, exp, prof.pv_p_avail_kw)
    devices = Devices(pv=prof.pv, batteries=prof.batteries)
    model = AdmmOpf(feeder, prof.periods, 60, devices, admm=AdmmOptions(max_iter=4), regions="bus")
    led = Web3Ledger.deploy()
    tee = _Tee(ContractAdmm(led))
    run = model.solve(inputs, aggregator=tee, batched=True).run
    assert run.iterations == len(tee.pairs) == 4
    for ours, theirs in tee.pairs:
        assert ours.round_index == theirs.round_index
        # fixed point: inputs rounded to 1e-6, z truncated to 1e-6
        np.testing.assert_allclose(ours.z, theirs.z, rtol=0, atol=2e-6)
        assert ours.primal_residual == pytest.approx(theirs.primal_residual, rel=1e-6, abs=1e-4)
        # the two keep their own z_prev (1e-6 apart): up to rho·2e-6·sqrt(copies) apart
        assert ours.dual_residual == pytest.approx(
            theirs.dual_residual, rel=1e-6, abs=2e-4 * run.rho
        )
        assert ours.missing == theirs.missing == ()
        assert ours.gas_used > 0
    np.testing.assert_allclose(run.z, tee.pairs[-1][0].z)
