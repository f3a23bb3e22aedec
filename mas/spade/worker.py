"""A process of agents: ``python -m mas.spade.worker --scenario F (--ids 0-9 | --aggregator)``.

Builds the scenario's world, starts one :class:`HouseholdAgent` per id (or the aggregator's
agent) on the given XMPP server, prints ``READY n`` on stdout when all are connected, and runs
until every agent got ``day.end`` or the deadline passes. ``vdg agents --roles household`` and
``--roles aggregator`` run the same code on another machine.

Each agent signs its market transactions with its own key: from ``--key-file`` (or the file
named by ``VDG_KEY_FILE``), a JSON object ``{"h000": "0x…", "agg": "0x…"}``; without one, keys
are derived from the scenario seed and the agent's id — public inputs, so simulation only.
Keys never leave this process; the operator receives signed transactions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from eth_account.signers.local import LocalAccount

from ledger.wallet import KEY_FILE_ENV, load_keys
from mas.errors import ScenarioError
from mas.scenario import Scenario

log = logging.getLogger(__name__)


def parse_ids(text: str, n: int) -> list[int]:
    """Household indices from ``"0-9,12,15-17"`` (inclusive ranges) or ``"all"``.

    Raises:
        ScenarioError: a malformed range or an index outside ``0..n-1``.
    """
    if text == "all":
        return list(range(n))
    out: list[int] = []
    for part in text.split(","):
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ScenarioError(f"ids: {part!r} is not an index or a range a-b") from None
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ScenarioError(f"ids: index {bad[0]} is outside 0..{n - 1}")
    return sorted(set(out))


def parse_xmpp(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` → (host, port); the port defaults to 5222.

    Raises:
        ScenarioError: a port that is not a number in 1..65535.
    """
    host, _, port = text.partition(":")
    try:
        p = int(port) if port else 5222
    except ValueError:
        raise ScenarioError(f"xmpp: port must be a number, got {port!r}") from None
    if not host or not 0 < p < 65536:
        raise ScenarioError(f"xmpp: expected HOST[:PORT], got {text!r}")
    return host, p


async def run_households(scenario: Scenario, ids: list[int], domain: str, port: int,
                         password: str, deadline_s: float,
                         keys: Mapping[str, LocalAccount] | None = None) -> int:
    """Start the households ``ids`` and serve until ``day.end`` or the deadline.

    Args:
        scenario: the scenario (the same on every machine).
        ids: household indices to start here.
        domain: XMPP domain.
        port: the server's client port.
        password: the agents' account password.
        deadline_s: stop serving after this many seconds.
        keys: each household's key by id (``None``: simulation keys from the seed).
    """
    from ledger.wallet import wallets_for  # noqa: PLC0415
    from mas.brains.household import HouseholdBrain  # noqa: PLC0415
    from mas.spade.agents import HouseholdAgent  # noqa: PLC0415
    from mas.world import build_world, household_rng  # noqa: PLC0415

    world = build_world(scenario)
    wallets = wallets_for([world.households[i].id for i in ids], scenario.seed, keys)
    agents = []
    for i in ids:
        spec = world.households[i]
        brain = HouseholdBrain(spec, world.import_eur_per_kwh, world.export_eur_per_kwh,
                               scenario.forecast, household_rng(scenario.seed, i),
                               salt_seed=scenario.seed,
                               prox_eur_per_kw2=scenario.grid.rho_eur_per_kw2)
        agents.append(HouseholdAgent(brain, domain, port, password, wallets[spec.id]))
    for a in agents:
        await a.start(auto_register=True)
    print(f"READY {len(agents)}", flush=True)
    try:
        await asyncio.wait_for(asyncio.gather(*(a.done.wait() for a in agents)),
                               timeout=deadline_s)
    except TimeoutError:
        log.warning("households %s: day deadline passed", ids)
    finally:
        for a in agents:
            await a.stop()
    sent = sum(a.sent for a in agents)
    rejected = sum(a.rejected for a in agents)
    print(f"DONE sent={sent} rejected={rejected}", flush=True)
    return rejected


async def run_aggregator(scenario: Scenario, domain: str, port: int, password: str,
                         deadline_s: float, keys: Mapping[str, LocalAccount] | None = None
                         ) -> int:
    """Start the aggregator's agent and serve until ``day.end`` or the deadline.

    Args:
        scenario: the scenario (the same on every machine).
        domain: XMPP domain.
        port: the server's client port.
        password: the agent's account password.
        deadline_s: stop serving after this many seconds.
        keys: the aggregator's key under ``agg`` (``None``: simulation key from the seed).
    """
    from ledger.wallet import wallets_for  # noqa: PLC0415
    from mas.brains.aggregator import AggregatorBrain  # noqa: PLC0415
    from mas.spade.agents import AGGREGATOR, AggregatorAgent  # noqa: PLC0415
    from mas.world import build_world  # noqa: PLC0415

    world = build_world(scenario)
    wallet = wallets_for([AGGREGATOR], scenario.seed, keys)[AGGREGATOR]
    agent = AggregatorAgent(AggregatorBrain(world.wholesale_eur_per_kwh), scenario.seed, domain,
                            port, password, wallet)
    await agent.start(auto_register=True)
    print("READY 1", flush=True)
    try:
        await asyncio.wait_for(agent.done.wait(), timeout=deadline_s)
    except TimeoutError:
        log.warning("aggregator: day deadline passed")
    finally:
        await agent.stop()
    print(f"DONE sent={agent.sent} rejected={agent.rejected}", flush=True)
    return agent.rejected


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, required=True, help="scenario as JSON")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--ids", help="household indices, e.g. 0-9,12")
    who.add_argument("--aggregator", action="store_true", help="the aggregator's agent")
    parser.add_argument("--xmpp", required=True, help="HOST[:PORT] of the XMPP server")
    parser.add_argument("--password", default="vdg")
    parser.add_argument("--deadline-s", type=float, default=None)
    parser.add_argument("--key-file", type=Path, default=os.environ.get(KEY_FILE_ENV),
                        help=f"JSON id -> private key (default ${KEY_FILE_ENV}; none: keys "
                             "derived from the seed, simulation only)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mas.spade.loop import run_agents  # noqa: PLC0415

    scenario = Scenario.from_dict(json.loads(args.scenario.read_text()))
    domain, port = parse_xmpp(args.xmpp)
    deadline = args.deadline_s or scenario.runtime.day_deadline_s
    keys = load_keys(args.key_file) if args.key_file else None
    if args.aggregator:
        run_agents(lambda: run_aggregator(scenario, domain, port, args.password, deadline, keys))
        return 0
    ids = parse_ids(args.ids, scenario.households or 10**6)
    run_agents(lambda: run_households(scenario, ids, domain, port, args.password, deadline,
                                      keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
