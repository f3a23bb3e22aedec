"""The layer rules of the design, checked on every module's imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"grid", "market", "ledger", "mas", "experiments"}
ALLOWED = {
    "grid": set(),
    "market": {"grid"},
    "ledger": set(),
    "mas": {"grid", "market", "ledger"},
    "experiments": {"grid", "market", "ledger", "mas"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_the_design_allows(layer: str) -> None:
    offenders = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        bad = _imports(path) - ALLOWED[layer] - {layer}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_layer_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("import numpy\nfrom experiments.cli import main\nimport market.orders\n")
    assert _imports(bad) == {"experiments", "market"}
