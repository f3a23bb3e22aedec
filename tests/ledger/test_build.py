"""The committed artifacts are the compiler's output for the committed sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger import artifacts

ROOT = Path(__file__).resolve().parents[2]
SOLC = ROOT / "node_modules" / "solc"
NPM_HINT = (
    "solc-js is not installed: run 'npm ci --no-audit --no-fund' at the repository root"
    " (or './dev setup')"
)


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH; install Node >= 18 to check the artifacts"
    assert SOLC.is_dir(), NPM_HINT
    return node


def test_manifest_hashes_match_the_sources() -> None:
    assert artifacts.stale_sources() == [], "sources changed: run 'npm run build:contracts'"


def test_manifest_pins_compiler_and_evm_version() -> None:
    m = artifacts.manifest()
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["solc"]
    assert m["solc"].startswith(pinned + "+")
    assert m["settings"]["evmVersion"] == "prague"
    for name in artifacts.names():
        art = artifacts.load(name)
        assert art.bytecode.startswith("0x")
        assert len(art.bytecode) > 2
        # EIP-170: deployed code must stay under 24,576 bytes; creation code bounds it loosely
        assert len(art.bytecode) // 2 < 2 * 24_576


def _copy_ledger(tmp_path: Path) -> Path:
    copy = tmp_path / "ledger"
    shutil.copytree(ROOT / "ledger" / "contracts", copy / "contracts")
    shutil.copytree(ROOT / "ledger" / "artifacts", copy / "artifacts")
    shutil.copy(ROOT / "ledger" / "build.mjs", copy / "build.mjs")
    return copy


def _check(node: str, copy: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NODE_PATH": str(ROOT / "node_modules")}
    return subprocess.run(
        [node, str(copy / "build.mjs"), "--check"],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip


@pytest.mark.chain
def test_committed_artifacts_equal_a_fresh_compile(tmp_path: Path) -> None:
    """One compile: every committed artifact matches it except one we tampered with."""
    node = _node()
    copy = _copy_ledger(tmp_path)
    art = copy / "artifacts" / "Registry.json"
    data = json.loads(art.read_text())
    data["bytecode"] = data["bytecode"][:-2] + ("00" if data["bytecode"][-2:] != "00" else "01")
    art.write_text(json.dumps(data, indent=1) + "\n")
    proc = _check(node, copy)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "artifacts differ from sources: Registry.json\n" in proc.stderr, proc.stderr


@pytest.mark.chain
def test_check_fails_when_a_source_changes(tmp_path: Path) -> None:
    node = _node()
    copy = _copy_ledger(tmp_path)
    src = copy / "contracts" / "Credit.sol"
    src.write_text(src.read_text().replace("decimals = 9", "decimals = 8"))
    proc = _check(node, copy)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "sources changed since the artifacts were built: Credit.sol" in proc.stderr
