"""A market day with the XMPP server and two agent groups in three network namespaces.

Namespaces ``srv`` (the embedded XMPP server on 10.231.0.1), ``a`` (operator: DSO, auctioneer,
aggregator, chain client) and ``b`` (the households), joined by veth pairs on a bridge inside
``srv``. Only namespace addresses are used; everything is removed afterwards. Needs root and
``ip`` (iproute2), as in CI.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.xmpp, pytest.mark.chain, pytest.mark.integration, pytest.mark.slow]

SRV_IP = "10.231.0.1"
SCENARIO = """
name = "netns"
feeder = "kerber-landnetz-kabel-1"
households = 6
seed = 5
[runtime]
reply_timeout_s = 10.0
day_deadline_s = 400.0
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespaces():
    tag = f"{os.getpid() % 100000}"
    srv, a, b = (f"vdg{tag}{x}" for x in ("s", "a", "b"))
    made = []
    try:
        for ns in (srv, a, b):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", srv, "link", "add", "br0", "type", "bridge")
        _ip("-n", srv, "addr", "add", f"{SRV_IP}/24", "dev", "br0")
        _ip("-n", srv, "link", "set", "br0", "up")
        for ns, host_ip in ((a, "10.231.0.2"), (b, "10.231.0.3")):
            _ip("-n", srv, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
                "netns", ns)
            _ip("-n", srv, "link", "set", "p0", "name", f"to{ns[-1]}")
            _ip("-n", srv, "link", "set", f"to{ns[-1]}", "master", "br0")
            _ip("-n", srv, "link", "set", f"to{ns[-1]}", "up")
            _ip("-n", ns, "addr", "add", f"{host_ip}/24", "dev", "p1")
            _ip("-n", ns, "link", "set", "p1", "up")
        yield srv, a, b
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _in(ns: str, *cmd: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *cmd],
                            start_new_session=True, **kw)


def test_a_market_day_across_network_namespaces(namespaces, tmp_path: Path):
    srv, a, b = namespaces
    scenario = tmp_path / "netns.toml"
    scenario.write_text(SCENARIO)
    stats = tmp_path / "stats.json"
    out = tmp_path / "out"
    procs = []
    try:
        server = _in(srv, "-m", "mas.spade.xmppd", "--host", SRV_IP, "--client-port", "5222",
                     "--server-port", "5269", "--stats", str(stats),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(server)
        probe = ("import sys; from mas.spade.server import wait_for_port; "
                 f"wait_for_port('{SRV_IP}', 5222, 60)")
        subprocess.run(["ip", "netns", "exec", b, sys.executable, "-c", probe], check=True)
        homes = _in(b, "-m", "experiments.cli", "-q", "agents", "--roles", "household",
                    "--ids", "0-5", "--xmpp", f"{SRV_IP}:5222", "--scenario", str(scenario),
                    stdout=subprocess.PIPE, text=True)
        procs.append(homes)
        assert homes.stdout is not None
        assert homes.stdout.readline().startswith("READY 6")
        operator = _in(a, "-m", "experiments.cli", "-q", "agents", "--roles", "operator",
                       "--xmpp", f"{SRV_IP}:5222", "--scenario", str(scenario),
                       "--out", str(out), stdout=subprocess.DEVNULL)
        procs.append(operator)
        assert operator.wait(420) == 0
        assert homes.wait(60) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["households"] == 6
        assert summary["missing_readings"] == 0
        assert summary["trades"] > 0
        assert summary["money_conserved"]
        assert summary["energy_conserved"]
        assert summary["clearing_matches_reference"]
        server.terminate()
        server.wait(20)
        routed = json.loads(stats.read_text())["messages"]
        assert routed >= summary["xmpp_messages"] > 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            if p.stdout is not None:
                p.stdout.close()
