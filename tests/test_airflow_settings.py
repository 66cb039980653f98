"""airflow_settings.yaml and its loader: parsing, the JSON handed to Airflow's CLI, and a real load.

The `airflow`-marked tests run Airflow 3.3.2's CLI against a throw-away AIRFLOW_HOME on SQLite,
migrated once for the module; the rest use a stand-in `airflow` command and need no database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mamo_revenue.airflow_settings import (
    SettingsFileError,
    SettingsLoadError,
    connections_as_env,
    load_settings,
    read_settings,
    redact,
    resolve_sqlite_path,
)

REPO = Path(__file__).resolve().parents[1]
SETTINGS = REPO / "airflow_settings.yaml"
SANDBOX_SECRETS = (
    "sk-demo-0000-mamo-sandbox",
    "mamo-sandbox-secret",
    "mamo-sandbox-zoho-secret",
    "local-dev-only-not-a-secret",
)
XERO_EXTRA = {
    "authorize_url": "http://127.0.0.1:8702/identity/connect/authorize",
    "token_url": "http://127.0.0.1:8702/identity/connect/token",
    "connections_url": "http://127.0.0.1:8702/connections",
    "redirect_uri": "http://127.0.0.1:8080/revenue-accounting/oauth/callback",
    "scopes": "openid offline_access accounting.settings accounting.manualjournals",
}
ZOHO_EXTRA = {
    "accounts_url": "http://127.0.0.1:8703/us/accounts",
    "redirect_uri": "http://127.0.0.1:8080/revenue-accounting/oauth/callback",
    "scopes": "ZohoBooks.accountants.CREATE,ZohoBooks.accountants.READ,ZohoBooks.settings.READ",
    "publish": "published",
}
CONN_IDS = ("mamo_revenue_db", "mamo_default", "xero_default", "zoho_books_default")
POOLS = {"xero_api": 2, "zoho_books_api": 2, "mamo_api": 4}


def write(tmp_path: Path, text: str, name: str = "airflow_settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- the committed file ----------------------------------------------------------------------------


def test_committed_file_is_astro_format_with_the_local_connections():
    document = yaml.safe_load(SETTINGS.read_text())
    assert set(document) == {"airflow"}
    assert set(document["airflow"]) == {"connections", "pools", "variables"}
    settings = read_settings(SETTINGS, project_root=REPO)
    by_id = {c.conn_id: dict(c.fields) for c in settings.connections}
    assert by_id == {
        "mamo_revenue_db": {
            "conn_type": "sqlite",
            "host": str(REPO / "var" / "mamo_revenue.db"),
            "extra": {"token_encryption_secret": "local-dev-only-not-a-secret"},
        },
        "mamo_default": {
            "conn_type": "mamo",
            "host": "http://127.0.0.1:8701/manage_api/v1",
            "password": "sk-demo-0000-mamo-sandbox",
        },
        "xero_default": {
            "conn_type": "xero",
            "host": "http://127.0.0.1:8702/api.xro/2.0",
            "login": "mamo-sandbox-client",
            "password": "mamo-sandbox-secret",
            "extra": XERO_EXTRA,
        },
        "zoho_books_default": {
            "conn_type": "zoho_books",
            "login": "mamo-sandbox-zoho-client",
            "password": "mamo-sandbox-zoho-secret",
            "extra": ZOHO_EXTRA,
        },
    }
    assert {p.name: p.slots for p in settings.pools} == POOLS
    assert settings.variables == ()


# --- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("var/x.db", "{root}/var/x.db", id="relative-to-project-root"),
        pytest.param("/abs/x.db", "/abs/x.db", id="absolute-kept"),
        pytest.param(":memory:", ":memory:", id="memory-kept"),
    ],
)
def test_sqlite_host_is_resolved_against_the_project_root_not_the_cwd(tmp_path, monkeypatch, host, expected):
    monkeypatch.chdir(tmp_path)
    root = REPO
    assert resolve_sqlite_path(host, project_root=root) == expected.format(root=root)


def test_only_sqlite_hosts_are_treated_as_paths(tmp_path):
    path = write(
        tmp_path,
        """
        airflow:
          connections:
            - {conn_id: pg, conn_type: postgres, conn_host: db.internal, conn_port: 5432, conn_schema: app}
        """,
    )
    (connection,) = read_settings(path, project_root=tmp_path).connections
    assert connection.fields == {
        "conn_type": "postgres",
        "host": "db.internal",
        "port": 5432,
        "schema": "app",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("connections: []\n", "no top-level `airflow:`", id="no-airflow-key"),
        pytest.param("airflow:\n  conections: []\n", "unknown key(s) under `airflow:`", id="typo-section"),
        pytest.param("airflow:\n  connections: {a: 1}\n", "must be a list", id="section-not-list"),
        pytest.param(
            "airflow:\n  connections:\n    - {conn_id: a, conn_type: http, host: x}\n",
            "unknown key(s) host",
            id="airflow-field-name-instead-of-astro",
        ),
        pytest.param(
            "airflow:\n  connections:\n    - {conn_type: http}\n", "`conn_id` is required", id="no-conn-id"
        ),
        pytest.param(
            "airflow:\n  connections:\n    - {conn_id: a, conn_type: http}\n    - {conn_id: a, conn_type: http}\n",
            "connection defined more than once: a",
            id="duplicate-connection",
        ),
        pytest.param(
            "airflow:\n  connections:\n    - {conn_id: a, conn_type: http, conn_port: eighty}\n",
            "conn_port must be an integer",
            id="bad-port",
        ),
        pytest.param(
            "airflow:\n  connections:\n    - {conn_id: a, conn_type: http, conn_extra: [1]}\n",
            "conn_extra must be a mapping",
            id="extra-not-mapping",
        ),
        pytest.param(
            "airflow:\n  connections:\n    - {conn_id: a, conn_uri: 'http://h', conn_host: h}\n",
            "conn_uri excludes conn_host",
            id="uri-and-fields",
        ),
        pytest.param(
            "airflow:\n  pools:\n    - {pool_name: p, pool_slot: two}\n", "pool_slot must be", id="bad-slots"
        ),
        pytest.param(
            "airflow:\n  variables:\n    - {variable_name: v}\n", "variable_value is required", id="no-value"
        ),
    ],
)
def test_malformed_files_are_refused_with_the_entry_named(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SettingsFileError) as caught:
        read_settings(path, project_root=tmp_path)
    assert message in str(caught.value)


def test_a_json_string_extra_is_accepted_like_astro(tmp_path):
    path = write(
        tmp_path,
        """
        airflow:
          connections:
            - conn_id: a
              conn_type: http
              conn_extra: '{"timeout": 5}'
        """,
    )
    (connection,) = read_settings(path, project_root=tmp_path).connections
    assert connection.fields["extra"] == {"timeout": 5}


# --- environment form ------------------------------------------------------------------------------


def test_connections_as_env_gives_one_json_value_per_connection():
    env = connections_as_env(SETTINGS, project_root=REPO)
    assert sorted(env) == [
        "AIRFLOW_CONN_MAMO_DEFAULT",
        "AIRFLOW_CONN_MAMO_REVENUE_DB",
        "AIRFLOW_CONN_XERO_DEFAULT",
        "AIRFLOW_CONN_ZOHO_BOOKS_DEFAULT",
    ]
    zoho = json.loads(env["AIRFLOW_CONN_ZOHO_BOOKS_DEFAULT"])
    assert zoho["conn_type"] == "zoho_books" and zoho["extra"] == ZOHO_EXTRA
    xero = json.loads(env["AIRFLOW_CONN_XERO_DEFAULT"])
    assert xero["conn_type"] == "xero" and xero["extra"] == XERO_EXTRA
    assert json.loads(env["AIRFLOW_CONN_MAMO_REVENUE_DB"])["host"] == str(REPO / "var" / "mamo_revenue.db")


def test_a_conn_uri_is_passed_through_as_a_uri(tmp_path):
    path = write(
        tmp_path, "airflow:\n  connections:\n    - {conn_id: Slack_Alerts, conn_uri: 'slack://:tok@'}\n"
    )
    assert connections_as_env(path, project_root=tmp_path) == {"AIRFLOW_CONN_SLACK_ALERTS": "slack://:tok@"}


# --- what the loader hands to Airflow's CLI (a stand-in `airflow` command) -----------------------------

FAKE_AIRFLOW = r"""
import json, os, shutil, stat, sys
group, action, path = sys.argv[1:4]
record = os.environ["FAKE_AIRFLOW_RECORD"]
mode = stat.S_IMODE(os.stat(path).st_mode)
shutil.copy(path, os.path.join(record, group + ".json"))
with open(os.path.join(record, "calls.txt"), "a") as calls:
    calls.write(" ".join(sys.argv[1:2] + sys.argv[2:3] + sys.argv[4:]) + f" mode={mode:o}\n")
content = json.load(open(path))
if os.environ.get("FAKE_AIRFLOW_FAIL") == group:
    print("boom:", json.dumps(content))
    sys.exit(1)
if group == "connections":
    for conn_id in content:
        if conn_id != os.environ.get("FAKE_AIRFLOW_SKIP"):
            print("Imported connection", conn_id)
elif group == "pools":
    print(f"Uploaded {len(content)} pool(s)")
else:
    print(f"{len(content)} of {len(content)} variables successfully updated.")
"""


@pytest.fixture
def fake_airflow(tmp_path, monkeypatch):
    script = tmp_path / "fake_airflow.py"
    script.write_text(FAKE_AIRFLOW)
    record = tmp_path / "record"
    record.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    return {"command": [sys.executable, str(script)], "record": record, "scratch": scratch}


def test_loader_writes_airflows_import_formats_privately_and_deletes_them(tmp_path, fake_airflow):
    path = write(
        tmp_path,
        """
        airflow:
          connections:
            - {conn_id: db, conn_type: sqlite, conn_host: var/p.db, conn_extra: {token_encryption_secret: s3}}
          pools:
            - {pool_name: xero_api, pool_slot: 2, pool_description: Xero}
            - {pool_name: bare, pool_slot: 1}
          variables:
            - {variable_name: plain, variable_value: text}
            - {variable_name: nested, variable_value: {value: 1, other: [2]}}
        """,
    )
    summary = load_settings(path, project_root=tmp_path, airflow=fake_airflow["command"])
    assert (summary.connections, summary.pools, summary.variables) == (
        ("db",),
        ("xero_api", "bare"),
        ("plain", "nested"),
    )
    record = fake_airflow["record"]
    assert json.loads((record / "connections.json").read_text()) == {
        "db": {
            "conn_type": "sqlite",
            "host": str(tmp_path / "var" / "p.db"),
            "extra": {"token_encryption_secret": "s3"},
        }
    }
    assert json.loads((record / "pools.json").read_text()) == {
        "xero_api": {"slots": 2, "description": "Xero", "include_deferred": False},
        "bare": {"slots": 1, "description": "", "include_deferred": False},
    }
    assert json.loads((record / "variables.json").read_text()) == {
        "plain": {"value": "text"},
        "nested": {"value": {"value": 1, "other": [2]}},
    }
    assert (record / "calls.txt").read_text().splitlines() == [
        "connections import --overwrite mode=600",
        "pools import mode=600",
        "variables import --action-on-existing-key overwrite mode=600",
    ]
    assert list(fake_airflow["scratch"].iterdir()) == [], "temporary files holding secrets were left behind"


def test_empty_sections_run_no_command(tmp_path, fake_airflow):
    path = write(tmp_path, "airflow:\n  connections: []\n  pools: []\n  variables: []\n")
    assert str(load_settings(path, project_root=tmp_path, airflow=fake_airflow["command"])) == (
        "0 connection(s) -; 0 pool(s) -; 0 variable(s) -"
    )
    assert not (fake_airflow["record"] / "calls.txt").exists()


@pytest.mark.parametrize("failing", ["connections", "pools"])
def test_a_failed_import_is_reported_without_secrets_and_cleans_up(fake_airflow, monkeypatch, failing):
    monkeypatch.setenv("FAKE_AIRFLOW_FAIL", failing)
    with pytest.raises(SettingsLoadError) as caught:
        load_settings(SETTINGS, project_root=REPO, airflow=fake_airflow["command"])
    message = str(caught.value)
    assert f"airflow {failing} import` exited with 1" in message
    if failing == "connections":
        assert "***" in message
    for secret in SANDBOX_SECRETS:
        assert secret not in message
    assert list(fake_airflow["scratch"].iterdir()) == []


def test_a_connection_airflow_skipped_is_an_error(fake_airflow, monkeypatch):
    monkeypatch.setenv("FAKE_AIRFLOW_SKIP", "xero_default")
    with pytest.raises(SettingsLoadError, match="did not import xero_default"):
        load_settings(SETTINGS, project_root=REPO, airflow=fake_airflow["command"])


def test_redact_removes_the_longest_secret_first():
    assert redact("pw=abc abcdef", ["abc", "abcdef"]) == "pw=*** ***"


# --- against real Airflow ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """A migrated SQLite AIRFLOW_HOME for this module, and the environment that selects it."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        key: value
        for key, value in os.environ.items()
        # Environment connections and variables are read before the database: they would hide it.
        if not key.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    migrate = airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    return env


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=300
    )


def airflow_json(env: dict[str, str], *args: str):
    done = airflow(env, *args, "-o", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def loaded(airflow_env):
    return load_settings(SETTINGS, project_root=REPO, env=airflow_env)


@pytest.mark.airflow
def test_load_reports_every_entry_by_id(loaded):
    assert loaded.connections == CONN_IDS
    assert loaded.pools == ("xero_api", "zoho_books_api", "mamo_api")
    assert loaded.variables == ()


@pytest.mark.airflow
def test_xero_connection_is_in_the_metadata_db_with_type_host_and_extras(airflow_env, loaded):
    (connection,) = airflow_json(airflow_env, "connections", "get", "xero_default")
    assert connection["conn_type"] == "xero"
    assert connection["host"] == "http://127.0.0.1:8702/api.xro/2.0"
    assert connection["login"] == "mamo-sandbox-client"
    assert connection["extra_dejson"] == XERO_EXTRA


@pytest.mark.airflow
def test_pools_are_listed_with_their_slots(airflow_env, loaded):
    pools = {p["pool"]: int(p["slots"]) for p in airflow_json(airflow_env, "pools", "list")}
    assert {name: pools.get(name) for name in POOLS} == POOLS


@pytest.mark.airflow
@pytest.mark.slow
def test_reloading_overwrites_then_restores_without_duplicates(airflow_env, loaded, tmp_path):
    changed = yaml.safe_load(SETTINGS.read_text())
    changed["airflow"]["connections"][2]["conn_host"] = "http://127.0.0.1:9999/api.xro/2.0"
    changed["airflow"]["pools"][0]["pool_slot"] = 3
    changed_path = tmp_path / "airflow_settings.yaml"
    changed_path.write_text(yaml.safe_dump(changed))
    load_settings(changed_path, project_root=REPO, env=airflow_env)
    (xero,) = airflow_json(airflow_env, "connections", "get", "xero_default")
    assert xero["host"] == "http://127.0.0.1:9999/api.xro/2.0"

    # The committed file again, through the module's command line: same state, and no secret printed.
    done = subprocess.run(
        [sys.executable, "-m", "mamo_revenue.airflow_settings", str(SETTINGS), "--project-root", str(REPO)],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Loaded 4 connection(s) {', '.join(CONN_IDS)}; 3 pool(s)" in done.stdout
    for secret in SANDBOX_SECRETS:
        assert secret not in done.stdout + done.stderr
    connections = airflow_json(airflow_env, "connections", "list")
    assert sorted(c["conn_id"] for c in connections) == sorted(CONN_IDS)
    pools = airflow_json(airflow_env, "pools", "list")
    assert sorted(p["pool"] for p in pools) == sorted([*POOLS, "default_pool"])
    assert {p["pool"]: int(p["slots"]) for p in pools if p["pool"] in POOLS} == POOLS


@pytest.mark.airflow
def test_env_form_round_trips_through_the_task_sdk(tmp_path):
    """``AIRFLOW_CONN_*`` values serve ``airflow.sdk.BaseHook.get_connection`` with no database at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(connections_as_env(SETTINGS, project_root=REPO), AIRFLOW_HOME=str(tmp_path))
    code = textwrap.dedent(
        """
        import json
        from airflow.sdk import BaseHook
        out = {}
        for conn_id in ("mamo_revenue_db", "mamo_default", "xero_default"):
            c = BaseHook.get_connection(conn_id)
            out[conn_id] = {"conn_type": c.conn_type, "host": c.host, "login": c.login, "extra": c.extra_dejson,
                            "has_password": bool(c.password)}
        print(json.dumps(out))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["xero_default"] == {
        "conn_type": "xero",
        "host": "http://127.0.0.1:8702/api.xro/2.0",
        "login": "mamo-sandbox-client",
        "extra": XERO_EXTRA,
        "has_password": True,
    }
    assert got["mamo_revenue_db"]["host"] == str(REPO / "var" / "mamo_revenue.db")
    assert got["mamo_revenue_db"]["extra"] == {"token_encryption_secret": "local-dev-only-not-a-secret"}
    assert got["mamo_default"]["host"] == "http://127.0.0.1:8701/manage_api/v1"
    assert got["mamo_default"]["has_password"] is True
    assert not list(tmp_path.glob("*.db")), "the env form must not need a metadata database"
