"""Compiled contract artifacts (ABI and bytecode) committed under ``ledger/artifacts/``.

They are produced by ``node ledger/build.mjs`` (``npm run build:contracts``) with the solc-js
version pinned in ``package.json``; running the ledger needs no compiler.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ledger.errors import ArtifactError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract.

    Attributes:
        name: contract name.
        abi: the ABI as parsed JSON.
        bytecode: creation bytecode, ``0x``-prefixed hex.
    """

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str


@cache
def load(name: str) -> Artifact:
    """Load the artifact of contract ``name``.

    Raises:
        ArtifactError: when the artifact file is missing or malformed.
    """
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Artifact(name=name, abi=tuple(data["abi"]), bytecode=data["bytecode"])
    except FileNotFoundError as exc:
        raise ArtifactError(f"no artifact for contract {name!r} at {path}") from exc
    except (KeyError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"malformed artifact {path}: {exc}") from exc


def names() -> list[str]:
    """Names of all compiled contracts."""
    return sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json") if p.stem != "manifest")


def manifest() -> dict[str, Any]:
    """The build manifest: compiler version, settings and source/artifact hashes."""
    path = ARTIFACTS_DIR / "manifest.json"
    try:
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"no build manifest at {path}") from exc
    return result


def stale_sources() -> list[str]:
    """Sources whose SHA-256 differs from the manifest (or that it does not list), and back.

    A quick consistency check that needs no compiler: an empty list means the committed
    artifacts were built from the current sources.
    """
    recorded: dict[str, str] = manifest()["sources"]
    current = {
        p.relative_to(CONTRACTS_DIR).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in CONTRACTS_DIR.rglob("*.sol")
    }
    return sorted(k for k in recorded.keys() | current.keys() if recorded.get(k) != current.get(k))
