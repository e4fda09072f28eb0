"""Loads and validates the run-type registry and the agent personas, once per process.

A broken file stops start-up with the file, the entry and the field at fault.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runhq.errors import RegistryError, RunTypeUnknown
from runhq.registry.schemas import AgentSpec, RunTypeSpec

REGISTRY_FILE = Path(__file__).with_name("run_types.toml")
AGENTS_FILE = Path(__file__).parent.parent / "agents" / "agents.toml"


@dataclass(frozen=True)
class Registry:
    run_types: dict[str, RunTypeSpec]
    agents: dict[str, AgentSpec]
    source: Path

    def get(self, key: str) -> RunTypeSpec:
        """The run type ``key``, or ``RunTypeUnknown`` listing the valid keys."""
        try:
            return self.run_types[key]
        except KeyError:
            valid = sorted(self.run_types)
            raise RunTypeUnknown(
                f"unknown run type {key!r}; valid run types: {', '.join(valid)}",
                details={"valid_run_types": valid},
            ) from None

    def agent_of(self, key: str) -> AgentSpec:
        return self.agents[self.get(key).agent]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RegistryError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}") from None


def _format_errors(path: Path, entry: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(entry)"
        parts.append(f"field {field!r}: {err['msg']}")
    return f"{path}: entry {entry}: " + "; ".join(parts)


def load_registry(path: Path | None = None, agents_path: Path | None = None) -> Registry:
    """Read and validate both files; raise ``RegistryError`` naming what is wrong."""
    path = path or REGISTRY_FILE
    agents_path = agents_path or AGENTS_FILE
    agents_doc = _read_toml(agents_path)
    agents: dict[str, AgentSpec] = {}
    for key, entry in _table(agents_doc, "agents", agents_path).items():
        try:
            agents[key] = AgentSpec.model_validate({"key": key, **entry})
        except ValidationError as exc:
            raise RegistryError(_format_errors(agents_path, key, exc)) from None
        except TypeError:
            raise RegistryError(f"{agents_path}: entry {key}: must be a table") from None

    doc = _read_toml(path)
    run_types: dict[str, RunTypeSpec] = {}
    for key, entry in _table(doc, "run_types", path).items():
        if not isinstance(entry, dict):
            raise RegistryError(f"{path}: entry {key}: must be a table")
        if entry.get("key", key) != key:
            raise RegistryError(
                f"{path}: entry {key}: field 'key': {entry.get('key')!r} differs from the "
                f"table name {key!r}"
            )
        try:
            spec = RunTypeSpec.model_validate({**entry, "key": key})
        except ValidationError as exc:
            raise RegistryError(_format_errors(path, key, exc)) from None
        if spec.agent not in agents:
            raise RegistryError(
                f"{path}: entry {key}: field 'agent': unknown agent {spec.agent!r} "
                f"(known: {', '.join(sorted(agents))})"
            )
        run_types[key] = spec
    if not run_types:
        raise RegistryError(f"{path}: no run types defined")
    return Registry(run_types=run_types, agents=agents, source=path)


def _table(doc: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    table = doc.get(name)
    if not isinstance(table, dict):
        raise RegistryError(f"{path}: missing the [{name}.*] tables")
    return table


@lru_cache(maxsize=4)
def _cached(path: Path | None) -> Registry:
    return load_registry(path)


def get_registry(path: Path | None = None) -> Registry:
    """The process's registry (read once). ``path`` overrides the shipped file."""
    return _cached(path)
