"""Agents over XMPP: start-up, messages per second through the server, memory per agent.

Two parts, in one run:

1. **Messaging**, on the embedded server (pyjabber, loopback) and on Prosody (Debian package,
   started on loopback for the run): for 10 / 50 / 200 / 500 agents spread over two processes,
   the agents' start-up time, then ``--rounds`` rounds in which one initiator sends a ``cfp`` to
   every agent and gathers every ``propose`` (two messages per agent per round, validated bodies,
   all through the server); messages per second through the server; resident memory per agent
   (growth of each agent process's RSS divided by its agents).
2. **A simulated day** (``vdg run`` on the embedded server and chain) for ``--day-sizes``
   households: wall time per phase and messages per second.

The goal of the issue: the default day (41 households) in at most three minutes on a 2-core
machine.

    .venv/bin/python benchmarks/bench_mas.py [--sizes 10,50,200,500] [--day-sizes 10,41]
                                             [--servers embedded,prosody] [--rounds 5]
                                             [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

from mas.spade.agents import CFP, PROPOSE, VdgAgent
from mas.spade.loop import run_agents

TIMEOUT_S = 120.0


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _echo_agents(first: int, last: int, port: int) -> None:
    async def answer(_sender: str, body: Any) -> tuple[str, str, dict[str, Any]]:
        return PROPOSE, "plan.answer", {"round": body["round"], "net_import_kw": [0.0] * 24}

    before = _rss_kb()
    agents = []
    for i in range(first, last + 1):
        a = VdgAgent(f"e{i:04d}", "localhost", port, "bench")
        a.handlers = {"plan.round": answer, "day.end": _done}
        agents.append(a)
        await a.start()
    print(f"READY {len(agents)} {_rss_kb() - before}", flush=True)
    await asyncio.Event().wait()  # until the parent terminates the process


async def _done(_sender: str, _body: Any) -> None:
    return None


def _worker(argv: list[str]) -> None:
    first, last, port = (int(x) for x in argv)

    run_agents(lambda: _echo_agents(first, last, port))


def messaging(server: str, n: int, rounds: int) -> dict[str, Any]:
    from mas.spade.prosody import ProsodyServer  # noqa: PLC0415
    from mas.spade.server import EmbeddedXmppServer  # noqa: PLC0415

    srv = EmbeddedXmppServer() if server == "embedded" else ProsodyServer()
    srv.start()
    procs = []
    try:
        t0 = time.perf_counter()
        halves = np.array_split(np.arange(n), 2)
        for h in halves:
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", str(h[0]), str(h[-1]),
                 str(srv.client_port)], stdout=subprocess.PIPE, text=True))
        grown_kb = 0
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().split()
            if not line or line[0] != "READY":
                raise RuntimeError(f"agent process {p.pid} failed to start")
            grown_kb += int(line[2])
        startup_s = time.perf_counter() - t0
        names = [f"e{i:04d}" for i in range(n)]

        async def drive() -> float:
            boss = VdgAgent("boss", "localhost", srv.client_port, "bench")
            await boss.start()
            t = time.perf_counter()
            for r in range(rounds):
                got = await boss.gather(
                    "plan.answer", "", r, names,
                    lambda name, r=r: boss.send_body(name, CFP, "plan.round", round=r,
                                                     lam_eur_per_kwh=[0.0] * 24,
                                                     target_import_kw=None,
                                                     rho_eur_per_kw2=0.02), TIMEOUT_S)
                if len(got) != n:
                    raise RuntimeError(f"round {r}: {len(got)} of {n} answers")
            elapsed = time.perf_counter() - t
            await boss.stop()
            return elapsed

        elapsed = run_agents(drive)
        msgs = 2 * n * rounds
        return {"server": server, "agents": n, "startup_s": round(startup_s, 2),
                "startup_per_agent_s": round(startup_s / n, 3),
                "messages": msgs, "msg_per_s": round(msgs / elapsed, 1),
                "memory_per_agent_mb": round(grown_kb / n / 1024, 2)}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            if p.stdout is not None:
                p.stdout.close()
        if server == "embedded":
            srv.close()  # type: ignore[union-attr]
        else:
            srv.close()


def day(n: int) -> dict[str, Any]:
    from mas.scenario import Scenario  # noqa: PLC0415
    from mas.spade.runtime import DayRunner  # noqa: PLC0415

    phases: dict[str, float] = {}
    state = {"phase": None, "t": time.perf_counter()}

    def progress(phase: str, _done: int, _total: int) -> None:
        now = time.perf_counter()
        if state["phase"] is not None:
            key = str(state["phase"]).split(" ")[0]
            phases[key] = phases.get(key, 0.0) + now - float(state["t"])  # type: ignore[arg-type]
        state["phase"], state["t"] = phase, now

    t0 = time.perf_counter()
    runner = DayRunner(Scenario(households=n), progress=progress)
    runner.run()
    progress("end", 0, 0)
    wall = time.perf_counter() - t0
    msgs = runner.server_messages() or 0
    return {"households": n, "wall_s": round(wall, 1), "messages": msgs,
            "msg_per_s": round(msgs / wall, 1),
            **{f"{k}_s": round(v, 1) for k, v in phases.items()}}


def _table(rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    out = ["  ".join(f"{c:>{width[c]}}" for c in cols)]
    out += ["  ".join(f"{r.get(c, '')!s:>{width[c]}}" for c in cols) for r in rows]
    return "\n".join(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,50,200,500")
    ap.add_argument("--day-sizes", default="10,41")
    ap.add_argument("--servers", default="embedded,prosody")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = [messaging(s, int(n), args.rounds) for s in args.servers.split(",") if s
            for n in args.sizes.split(",") if n]
    print("messaging through the server")
    print(_table(rows))
    days = [day(int(n)) for n in args.day_sizes.split(",") if n]
    print("\na simulated day (embedded server and chain)")
    print(_table(days))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"messaging": rows, "day": days}, fh, indent=2)


if __name__ == "__main__":
    main()
