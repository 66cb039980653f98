"""Local development settings: ``airflow_settings.yaml`` (astro CLI format) into a plain Airflow install.

Airflow ignores that file (only the astro CLI reads it), so this module does what ``astro dev object
import`` does, with Airflow's own CLI: it writes the file's connections, pools and variables as the JSON
files ``airflow connections|pools|variables import`` accept and runs those commands against the current
``AIRFLOW_HOME``. :func:`connections_as_env` gives the same connections as ``AIRFLOW_CONN_<ID>`` values,
which Airflow reads without any metadata database (tests, ``airflow dags test``).

Invariants: a password, a connection URI or a secret-looking extra never reaches stdout, stderr or an
exception message; the temporary files carrying them are private (mode 0600) and are deleted before
:func:`load_settings` returns, whether it succeeds or not. Loading is idempotent: connections and
variables are overwritten, pools created or updated.

A sqlite connection's ``conn_host`` is a database file; a relative one is resolved against the project
root, so the same file works from any current directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mamo_revenue.errors import MamoRevenueError

#: Keys of one entry, as astronomer/astro-cli ``settings/types.go`` reads them.
CONNECTION_KEYS = frozenset(
    {
        "conn_id",
        "conn_type",
        "conn_host",
        "conn_schema",
        "conn_login",
        "conn_password",
        "conn_port",
        "conn_uri",
        "conn_extra",
    }
)
POOL_KEYS = frozenset({"pool_name", "pool_slot", "pool_description"})
VARIABLE_KEYS = frozenset({"variable_name", "variable_value"})

#: astro field -> Airflow Connection field.
_CONNECTION_FIELDS = {
    "conn_type": "conn_type",
    "conn_host": "host",
    "conn_schema": "schema",
    "conn_login": "login",
    "conn_password": "password",
    "conn_port": "port",
}

#: Extra keys whose values are treated as secrets in any output (``token_url`` is not one).
_SECRET_EXTRA = re.compile(r"(secret|password|passwd|token|key|credentials?)$", re.IGNORECASE)

#: How long one ``airflow ... import`` may take (each starts a Python process that imports Airflow).
CLI_TIMEOUT_SECONDS = 300


class SettingsFileError(MamoRevenueError):
    """``airflow_settings.yaml`` is not in the astro CLI format this module reads."""

    guidance = (
        "Fix the named entry in airflow_settings.yaml: it needs a top-level `airflow:` key holding lists "
        "`connections`, `pools` and `variables` with the astro CLI's field names."
    )


class SettingsLoadError(MamoRevenueError):
    """Airflow's CLI refused or only partly applied an import."""

    guidance = (
        "Check that AIRFLOW_HOME points at a migrated metadata database (`airflow db migrate`) and that "
        "`airflow` runs in this environment; the message holds the command's output, secrets removed."
    )


@dataclass(frozen=True)
class Connection:
    """One Airflow connection from the settings file, with its sqlite path already resolved."""

    conn_id: str
    fields: Mapping[str, Any]  # conn_type, host, schema, login, password, port, extra (dict) or uri

    def as_json_value(self) -> dict[str, Any]:
        """The connection as Airflow's JSON connection format (import files and AIRFLOW_CONN_ values)."""
        return dict(self.fields)

    def secrets(self) -> list[str]:
        """Every value of this connection that must not be shown."""
        found = [str(self.fields[name]) for name in ("password", "uri") if self.fields.get(name)]
        for key, value in (self.fields.get("extra") or {}).items():
            if _SECRET_EXTRA.search(key) and value not in (None, ""):
                found.append(value if isinstance(value, str) else json.dumps(value))
        return found


@dataclass(frozen=True)
class Pool:
    name: str
    slots: int
    description: str


@dataclass(frozen=True)
class Variable:
    key: str
    value: Any


@dataclass(frozen=True)
class Settings:
    """The parsed file: what would be loaded, in file order."""

    connections: tuple[Connection, ...]
    pools: tuple[Pool, ...]
    variables: tuple[Variable, ...]


@dataclass(frozen=True)
class LoadSummary:
    """What :func:`load_settings` put into the metadata database (ids only, never values)."""

    connections: tuple[str, ...]
    pools: tuple[str, ...]
    variables: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{len(self.connections)} connection(s) {', '.join(self.connections) or '-'}; "
            f"{len(self.pools)} pool(s) {', '.join(self.pools) or '-'}; "
            f"{len(self.variables)} variable(s) {', '.join(self.variables) or '-'}"
        )


# --- reading the file ------------------------------------------------------------------------------


def read_settings(path: str | os.PathLike[str], *, project_root: str | os.PathLike[str]) -> Settings:
    """Parse and check the whole file; raise :class:`SettingsFileError` naming the first bad entry."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsFileError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SettingsFileError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("airflow"), dict):
        raise SettingsFileError(f"{path}: no top-level `airflow:` mapping")
    section = document["airflow"]
    unknown = set(section) - {"connections", "pools", "variables"}
    if unknown:
        raise SettingsFileError(f"{path}: unknown key(s) under `airflow:`: {', '.join(sorted(unknown))}")
    root = Path(project_root).resolve()
    connections = tuple(
        _connection(entry, index, path, root)
        for index, entry in enumerate(_entries(section, "connections", CONNECTION_KEYS, path))
    )
    pools = tuple(
        _pool(entry, index, path) for index, entry in enumerate(_entries(section, "pools", POOL_KEYS, path))
    )
    variables = tuple(
        _variable(entry, index, path)
        for index, entry in enumerate(_entries(section, "variables", VARIABLE_KEYS, path))
    )
    for kind, ids in (
        ("connection", [c.conn_id for c in connections]),
        ("pool", [p.name for p in pools]),
        ("variable", [v.key for v in variables]),
    ):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise SettingsFileError(f"{path}: {kind} defined more than once: {', '.join(duplicates)}")
    return Settings(connections, pools, variables)


def _entries(section: dict, name: str, allowed: frozenset[str], path: Path) -> list[dict]:
    entries = section.get(name)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise SettingsFileError(f"{path}: `airflow.{name}` must be a list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SettingsFileError(f"{path}: airflow.{name}[{index}] must be a mapping")
        unknown = set(entry) - allowed
        if unknown:
            raise SettingsFileError(
                f"{path}: airflow.{name}[{index}] has unknown key(s) {', '.join(sorted(unknown))}"
            )
    return entries


def _required_str(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SettingsFileError(f"{where}: `{key}` is required and must be a non-empty string")
    return value.strip()


def _connection(entry: dict, index: int, path: Path, root: Path) -> Connection:
    where = f"{path}: airflow.connections[{index}]"
    conn_id = _required_str(entry, "conn_id", where)
    where = f"{path}: connection {conn_id}"
    if entry.get("conn_uri"):
        others = sorted(k for k in entry if k not in ("conn_id", "conn_uri") and entry[k] not in (None, ""))
        if others:
            raise SettingsFileError(f"{where}: conn_uri excludes {', '.join(others)}")
        return Connection(conn_id, {"uri": str(entry["conn_uri"])})
    _required_str(entry, "conn_type", where)
    fields: dict[str, Any] = {}
    for astro_key, airflow_key in _CONNECTION_FIELDS.items():
        value = entry.get(astro_key)
        if value is None or value == "":
            continue
        if astro_key == "conn_port":
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
                raise SettingsFileError(f"{where}: conn_port must be an integer")
            value = int(value)
        elif not isinstance(value, str | int | float):
            raise SettingsFileError(f"{where}: {astro_key} must be a scalar")
        else:
            value = str(value)
        fields[airflow_key] = value
    extra = entry.get("conn_extra")
    if isinstance(extra, str) and extra.strip():
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            raise SettingsFileError(f"{where}: conn_extra is a string but not a JSON object") from None
    if extra not in (None, "", {}):
        if not isinstance(extra, dict):
            raise SettingsFileError(f"{where}: conn_extra must be a mapping")
        fields["extra"] = dict(extra)
    if fields["conn_type"] == "sqlite" and fields.get("host"):
        fields["host"] = resolve_sqlite_path(fields["host"], project_root=root)
    return Connection(conn_id, fields)


def resolve_sqlite_path(host: str, *, project_root: str | os.PathLike[str]) -> str:
    """An absolute database path: relative ones are taken from the project root; ``:memory:`` stays."""
    if host == ":memory:" or host.startswith("file:"):
        return host
    candidate = Path(host).expanduser()
    if not candidate.is_absolute():
        candidate = Path(project_root).resolve() / candidate
    return str(candidate)


def _pool(entry: dict, index: int, path: Path) -> Pool:
    name = _required_str(entry, "pool_name", f"{path}: airflow.pools[{index}]")
    slots = entry.get("pool_slot")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
        raise SettingsFileError(f"{path}: pool {name}: pool_slot must be a whole number >= 0")
    description = entry.get("pool_description") or ""
    return Pool(name, slots, str(description))


def _variable(entry: dict, index: int, path: Path) -> Variable:
    key = _required_str(entry, "variable_name", f"{path}: airflow.variables[{index}]")
    if "variable_value" not in entry or entry["variable_value"] is None:
        raise SettingsFileError(f"{path}: variable {key}: variable_value is required")
    return Variable(key, entry["variable_value"])


# --- environment form ------------------------------------------------------------------------------


def env_var_name(conn_id: str) -> str:
    """``AIRFLOW_CONN_<ID>``: Airflow's environment-variables backend upper-cases the id."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connections_as_env(
    path: str | os.PathLike[str], *, project_root: str | os.PathLike[str]
) -> dict[str, str]:
    """Every connection of the file as ``{"AIRFLOW_CONN_<ID>": <JSON connection>}``.

    Airflow (and ``airflow.sdk.BaseHook.get_connection``) serves these before its database, so they
    need no ``airflow db migrate``. Values hold passwords: pass them to a process, do not print them.
    """
    settings = read_settings(path, project_root=project_root)
    env = {}
    for connection in settings.connections:
        value = connection.as_json_value()
        env[env_var_name(connection.conn_id)] = value["uri"] if "uri" in value else json.dumps(value)
    return env


# --- loading into the metadata database --------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str],
    *,
    project_root: str | os.PathLike[str],
    airflow: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    only: Sequence[str] | None = None,
) -> LoadSummary:
    """Load the file into the metadata database of the current ``AIRFLOW_HOME`` (or ``env``'s).

    ``airflow`` is the command that runs Airflow's CLI (default: this interpreter's ``-m airflow``);
    ``env`` replaces ``os.environ`` for it; ``only`` names the sections to load (``connections``,
    ``pools``, ``variables``; default all). Returns the ids loaded; raises :class:`SettingsFileError`
    before touching Airflow when the file is malformed, :class:`SettingsLoadError` when a command fails.
    """
    settings = read_settings(path, project_root=project_root)
    if only:
        settings = Settings(
            connections=settings.connections if "connections" in only else (),
            pools=settings.pools if "pools" in only else (),
            variables=settings.variables if "variables" in only else (),
        )
    command = list(airflow) if airflow else [sys.executable, "-m", "airflow"]
    secrets = [s for connection in settings.connections for s in connection.secrets()]
    process_env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="mamo-airflow-settings-") as workdir:
        os.chmod(workdir, 0o700)
        if settings.connections:
            file = _write_private(
                Path(workdir, "connections.json"),
                {c.conn_id: c.as_json_value() for c in settings.connections},
            )
            output = _run(
                "connections import",
                command + ["connections", "import", str(file), "--overwrite"],
                process_env,
                secrets,
            )
            missing = [
                c.conn_id for c in settings.connections if f"Imported connection {c.conn_id}" not in output
            ]
            if missing:
                raise SettingsLoadError(
                    f"airflow connections import did not import {', '.join(missing)}: {output.strip()}"
                )
        if settings.pools:
            file = _write_private(
                Path(workdir, "pools.json"),
                {
                    p.name: {"slots": p.slots, "description": p.description, "include_deferred": False}
                    for p in settings.pools
                },
            )
            _run("pools import", command + ["pools", "import", str(file)], process_env, secrets)
        if settings.variables:
            file = _write_private(
                Path(workdir, "variables.json"),
                # Always the {"value": ...} form, so a mapping value that has a "value" key stays whole.
                {v.key: {"value": v.value} for v in settings.variables},
            )
            output = _run(
                "variables import",
                command + ["variables", "import", str(file), "--action-on-existing-key", "overwrite"],
                process_env,
                secrets,
            )
            expected = (
                f"{len(settings.variables)} of {len(settings.variables)} variables successfully updated"
            )
            if expected not in output:
                raise SettingsLoadError(f"airflow variables import failed: {output.strip()}")
    return LoadSummary(
        connections=tuple(c.conn_id for c in settings.connections),
        pools=tuple(p.name for p in settings.pools),
        variables=tuple(v.key for v in settings.variables),
    )


def _write_private(path: Path, content: dict) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    return path


def _run(label: str, command: list[str], env: dict[str, str], secrets: list[str]) -> str:
    """Run one CLI command; return its stdout and stderr, secrets removed; raise if it failed."""
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SettingsLoadError(f"`airflow {label}` did not run: {exc}") from None
    output = redact(f"{done.stdout}\n{done.stderr}", secrets)
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-20:])
        raise SettingsLoadError(f"`airflow {label}` exited with {done.returncode}: {tail}")
    return output


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (longest first, so one inside another goes too) replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# --- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mamo_revenue.airflow_settings [FILE] [--project-root DIR]``: load and summarise."""
    parser = argparse.ArgumentParser(
        prog="python -m mamo_revenue.airflow_settings",
        description="Load airflow_settings.yaml (astro CLI format) into the current AIRFLOW_HOME.",
    )
    parser.add_argument("file", nargs="?", default="airflow_settings.yaml")
    parser.add_argument(
        "--project-root", default=None, help="where relative sqlite paths start (default: the file's folder)"
    )
    args = parser.parse_args(argv)
    root = args.project_root or str(Path(args.file).resolve().parent)
    try:
        summary = load_settings(args.file, project_root=root)
    except MamoRevenueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Loaded {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
