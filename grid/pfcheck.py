"""Independent check of an OPF result with pandapower's AC power flow.

For every period, the OPF's net injection at each bus is applied to a copy of the feeder's
pandapower network (every original load, static generator and storage unit switched off, one
load per bus carrying the OPF's net withdrawal), Newton–Raphson is run, and the bus voltage
magnitudes are compared with the OPF's. Where the SOC relaxation is tight the two agree to the
modelling differences the DistFlow model leaves out (transformer magnetising branch, line
charging), well below 1e-3 p.u. on the shipped feeders.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from grid.errors import GridError
from grid.feeders import Feeder
from grid.opf import OpfResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class PfCheck:
    """The comparison of an OPF result with AC power flow.

    Attributes:
        max_dv_pu: largest |V_opf − V_pf| over buses and periods.
        dv_pu: per period and bus, ``(T, n_buses)``.
        v_pf_pu: power-flow voltages, ``(T, n_buses)``.
        loss_kw_pf: power-flow losses per period.
        converged: whether every period's power flow converged.
    """

    max_dv_pu: float
    dv_pu: np.ndarray
    v_pf_pu: np.ndarray
    loss_kw_pf: np.ndarray
    converged: bool


def check_with_pandapower(feeder: Feeder, result: OpfResult) -> PfCheck:
    """Run pandapower AC power flow on the OPF's injections and compare voltages.

    Raises:
        GridError: the result does not belong to this feeder.
    """
    import pandapower as pp  # noqa: PLC0415 - heavy import, only on demand

    if tuple(result.buses) != tuple(feeder.buses):
        raise GridError(f"result of feeder {result.feeder!r} does not match feeder "
                        f"{feeder.name!r}")
    net = copy.deepcopy(feeder.net)
    for table in ("load", "sgen", "storage", "gen"):
        tab = getattr(net, table)
        if len(tab):
            tab["in_service"] = False
    buses: list[Any] = list(feeder.buses[1:])
    first = len(net.load)
    for b in buses:
        pp.create_load(net, bus=int(b), p_mw=0.0, q_mvar=0.0, name=f"opf@{b}")
    rows = net.load.index[first:]
    ext = net.ext_grid.index[net.ext_grid.in_service.astype(bool)][0]
    net.ext_grid.at[ext, "vm_pu"] = feeder.v_root_pu
    pos = {b: k for k, b in enumerate(feeder.buses)}
    T = result.periods
    v_pf = np.full((T, len(feeder.buses)), np.nan)
    losses = np.zeros(T)
    converged = True
    for t in range(T):
        net.load.loc[rows, "p_mw"] = -result.p_inj_kw[t, 1:] / 1000.0
        net.load.loc[rows, "q_mvar"] = -result.q_inj_kvar[t, 1:] / 1000.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
                pp.runpp(net, init="results" if t else "auto", numba=False, tolerance_mva=1e-10)
        except pp.LoadflowNotConverged:
            converged = False
            log.warning("AC power flow did not converge in period %d", t)
            continue
        vm = net.res_bus.vm_pu
        for b, k in pos.items():
            v_pf[t, k] = float(vm.at[b])
        losses[t] = float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()) * 1000.0 \
            if len(net.trafo) else float(net.res_line.pl_mw.sum()) * 1000.0
    dv = np.abs(result.v_pu - v_pf)
    max_dv = float(np.nanmax(dv)) if np.isfinite(dv).any() else float("nan")
    return PfCheck(max_dv_pu=max_dv, dv_pu=dv, v_pf_pu=v_pf, loss_kw_pf=losses,
                   converged=converged)
