"""A production-shaped Airflow around a test or a benchmark (AIRFLOW3.md §8).

A fresh PostgreSQL metadata database (``airflow db migrate``) and a fresh product database; the
sandboxes (``mamo-sandboxes``: Mamo, Xero, Zoho Books) in a process of their own, on free ports; the
scheduler (LocalExecutor), the dag-processor and the api-server as real processes, each started in a
session of its own so that stopping kills the whole group; companies connected through the ledger
sandboxes' consent pages, mapped, and exported to the registry file the DAG file reads. Pools come
from ``mamo-revenue settings load --only pools`` (airflow_settings.yaml's), connections are env vars.

Ports: the api-server, the scheduler's log server (``worker_log_server_port``, 8793 by default) and
the triggerer's (8794) all get free ports, so this runs beside ``make run`` or another test session.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("MAMO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
TZ = "Asia/Dubai"
MAPPING_CODES = {"clearing": "1215", "sales": "4000", "refunds": "4010", "fees": "6110", "vat_payable": "2200"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def today_local() -> date:
    return datetime.now(ZoneInfo(TZ)).date()


@dataclass(frozen=True)
class Company:
    id: str
    platform: str  # xero | zoho_books
    conn_id: str


@dataclass
class Stack:
    """Everything one run needs; ``start()`` brings it up, ``stop()`` takes it down (idempotent)."""

    home: Path
    companies: tuple[Company, ...]
    first_period: date
    charges: int = 150
    days: int = 30
    parallelism: int = 4
    extra_connections: dict[str, dict] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = 0
    ports: dict[str, int] = field(default_factory=dict)

    # --- names and addresses ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def mamo_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mamo']}"

    @property
    def xero_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['xero']}"

    @property
    def zoho_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['zoho']}"

    def db_url(self, name: str) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    # --- start -------------------------------------------------------------------------------------------

    def start(self) -> Stack:
        return self.prepare().launch()

    def prepare(self) -> Stack:
        """Databases, sandboxes, connected companies and the registry; no Airflow process yet."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        # As the compose stack's airflow-init does: the task code preloaded where tasks are forked.
        (self.home / "config").mkdir(exist_ok=True)
        (self.home / "config" / "airflow_local_settings.py").write_text(
            (ROOT / "docker" / "airflow_local_settings.py").read_text())
        self.api_port = free_port()
        self.ports = {"mamo": free_port(), "xero": free_port(), "zoho": free_port()}
        suffix = uuid.uuid4().hex[:8]
        metadata, product = f"mamo_ops_af_{suffix}", f"mamo_ops_product_{suffix}"
        for name in (metadata, product):
            self._create_database(name)
        self.env = self._environment(metadata, product)
        self._start_sandboxes()
        with self.environment():
            self._set_up_companies()
        return self

    def launch(self) -> Stack:
        """``airflow db migrate``, the pools, then the scheduler, dag-processor and api-server."""
        self.run("airflow", "db", "migrate", timeout=600)
        self.run("mamo-revenue", "settings", "load", "--only", "pools", str(ROOT / "airflow_settings.yaml"))
        for name, command in (("scheduler", ["airflow", "scheduler"]),
                              ("dag-processor", ["airflow", "dag-processor"]),
                              ("api-server", ["airflow", "api-server", "--port", str(self.api_port)])):
            self._spawn(name, command)
        self._wait_healthy()
        self._wait_for_dags()
        return self

    def _create_database(self, name: str) -> None:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.databases.append(name)

    def connections(self, product_db: str) -> dict[str, dict]:
        db = sa.make_url(self.db_url(product_db))
        return {
            "MAMO_REVENUE_DB": {"conn_type": "postgres", "host": db.host, "port": db.port or 5432,
                                "login": db.username, "schema": db.database,
                                "extra": {"token_encryption_secret": "ops-test-only-secret"}},
            "MAMO_DEFAULT": {"conn_type": "mamo", "host": f"{self.mamo_url}/manage_api/v1",
                             "password": "sk-demo-0000-mamo-sandbox"},
            "XERO_DEFAULT": {"conn_type": "xero", "host": f"{self.xero_url}/api.xro/2.0",
                             "login": "mamo-sandbox-client", "password": "mamo-sandbox-secret",
                             "extra": {"authorize_url": f"{self.xero_url}/identity/connect/authorize",
                                       "token_url": f"{self.xero_url}/identity/connect/token",
                                       "connections_url": f"{self.xero_url}/connections",
                                       "redirect_uri": "http://127.0.0.1:8080/revenue-accounting/oauth/callback",
                                       "scopes": "openid offline_access accounting.settings accounting.manualjournals"}},
            "ZOHO_BOOKS_DEFAULT": {"conn_type": "zoho_books", "login": "mamo-sandbox-zoho-client",
                                   "password": "mamo-sandbox-zoho-secret",
                                   "extra": {"accounts_url": f"{self.zoho_url}/us/accounts",
                                             "redirect_uri": "http://127.0.0.1:8080/revenue-accounting/oauth/callback",
                                             "scopes": "ZohoBooks.accountants.CREATE,ZohoBooks.accountants.READ,"
                                                       "ZohoBooks.settings.READ",
                                             "publish": "published"}},
            **self.extra_connections,
        }

    def _environment(self, metadata: str, product: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW_", "AIRFLOW__", "MAMO_REVENUE_", "PYTEST_"))}
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "admin"}))
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url(metadata),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.home / "plugins"),  # the UI plugin is another test's
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # Everything starts at once on a small machine: give task-to-API calls time to get through.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "MAMO_REVENUE_REGISTRY": str(self.home / "registry.json"),
            "MAMO_REVENUE_AIRFLOW_URL": self.api_url,
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        })
        env.update({f"AIRFLOW_CONN_{k}": json.dumps(v) for k, v in self.connections(product).items()})
        env.update(self.extra_env)
        return env

    @contextmanager
    def environment(self) -> Iterator[None]:
        """This process as one of the stack's (its connections, registry and URLs), for the block."""
        keys = [k for k in self.env if k.startswith(("AIRFLOW_CONN_", "MAMO_REVENUE_"))]
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update({k: self.env[k] for k in keys})
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def product_engine(self):
        from mamo_revenue.db.session import engine_for_url, url_from_connection

        class _Conn:  # the product DB's connection, as Airflow would hand it over
            def __init__(self, data):
                self.conn_type, self.host, self.port = data["conn_type"], data["host"], data["port"]
                self.login, self.password, self.schema = data["login"], None, data["schema"]
                self.extra_dejson = data["extra"]

        return engine_for_url(url_from_connection(_Conn(json.loads(self.env["AIRFLOW_CONN_MAMO_REVENUE_DB"]))))

    def _start_sandboxes(self) -> None:
        self._spawn("sandboxes", ["mamo-sandboxes", "--mamo-port", str(self.ports["mamo"]),
                                  "--xero-port", str(self.ports["xero"]), "--zoho-port", str(self.ports["zoho"]),
                                  "--count", str(self.charges), "--days", str(self.days)])
        for url in (self.mamo_url, self.xero_url, self.zoho_url):
            self._wait_url(f"{url}/_sandbox/health", "sandboxes", timeout=120)

    def _set_up_companies(self) -> None:
        from mamo_revenue.connect import connect_through_sandbox_consent, map_by_codes
        from mamo_revenue.db import repository as repo
        from mamo_revenue.db.session import session_scope, upgrade
        from mamo_revenue.registry import export_registry

        engine = self.product_engine()
        upgrade(engine)
        for company in self.companies:
            with session_scope(engine) as session:
                repo.upsert_company(session, company.id, name=f"{company.id} Trading LLC", timezone=TZ,
                                    frequency="daily", base_currency="AED", first_period=self.first_period,
                                    mamo_conn_id="mamo_default", ledger_platform=company.platform,
                                    ledger_conn_id=company.conn_id)
            connect_through_sandbox_consent(engine, company.id)
            map_by_codes(engine, company.id, MAPPING_CODES)
        export_registry(engine, self.home / "registry.json")

    # --- processes --------------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.home / "logs" / f"{name}.out").open("ab")
        self.processes[name] = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]], env=self.env, cwd=self.home, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def run(self, *command: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / command[0]), *command[1:]], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-3000:]}")
        return done

    def _alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.home / "logs" / f"{name}.out").read_text(errors="replace")[-4000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail}")

    def _wait_url(self, url: str, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._alive()
            try:
                if requests.get(url, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{what} did not answer {url} within {timeout:.0f} s")

    def _wait_healthy(self) -> None:
        self._wait_url(f"{self.api_url}/api/v2/monitor/health", "the api-server", timeout=240)

    def _wait_for_dags(self, timeout: float = 240) -> None:
        wanted = {f"mamo_sync_{c.id}" for c in self.companies}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._alive()
            dags = self.api("GET", "/dags", params={"dag_id_pattern": "mamo_sync_", "limit": 100}).json()["dags"]
            if wanted <= {d["dag_id"] for d in dags}:
                return
            time.sleep(1)
        raise AssertionError(f"the dag-processor did not register {sorted(wanted)} within {timeout:.0f} s")

    # --- the REST API --------------------------------------------------------------------------------

    _token: str | None = None

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        if self._token is None:
            answer = requests.post(f"{self.api_url}/auth/token", json={"username": "admin", "password": "admin"},
                                   timeout=30)
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        answer = requests.request(method, f"{self.api_url}/api/v2{path}", timeout=60,
                                  headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
        return answer

    def dag_runs(self, dag_id: str) -> list[dict]:
        runs, offset = [], 0
        while True:
            page = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "offset": offset}).json()
            runs += page["dag_runs"]
            offset += 100
            if offset >= page["total_entries"]:
                return runs

    def wait_for_backfills(self, ids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            self._alive()
            for backfill_id in list(pending):
                if self.api("GET", f"/backfills/{backfill_id}").json().get("completed_at"):
                    pending.discard(backfill_id)
            time.sleep(2)
        if pending:
            raise AssertionError(f"backfills {sorted(pending)} not complete within {timeout:.0f} s")

    def wait_for_runs(self, dag_id: str, count: int, timeout: float) -> list[dict]:
        """Until ``dag_id`` has at least ``count`` runs and none is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._alive()
            runs = self.dag_runs(dag_id)
            if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            time.sleep(2)
        raise AssertionError(f"{dag_id}: runs not finished within {timeout:.0f} s: "
                             f"{sorted((r['logical_date'], r['state']) for r in self.dag_runs(dag_id))}")

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}")
        data = answer.json()
        content = data.get("content")
        if isinstance(content, list):
            return "\n".join(str(item.get("event", item)) if isinstance(item, dict) else str(item) for item in content)
        return str(content)

    # --- stop -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        for name in ("scheduler", "dag-processor", "api-server", "sandboxes"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
        from mamo_revenue.db.session import dispose_engines

        dispose_engines()
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.databases:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        self.databases.clear()


def ledger_journals(stack: Stack) -> dict[str, list[dict]]:
    """Every journal each ledger sandbox holds, by platform: {organisation, reference, id, status}."""
    out: dict[str, list[dict]] = {"xero": [], "zoho_books": []}
    for platform, url, id_key in (("xero", stack.xero_url, "OrganisationID"),
                                  ("zoho_books", stack.zoho_url, "organization_id")):
        for org in requests.get(f"{url}/_sandbox/organisations", timeout=30).json()["organisations"]:
            answer = requests.get(f"{url}/_sandbox/organisations/{org[id_key]}/journals", timeout=30).json()
            for journal in answer["journals"]:
                reference = journal["Narration"].split()[0] if platform == "xero" else journal["reference_number"]
                out[platform].append({"organisation": org[id_key], "reference": reference,
                                      "id": journal.get("ManualJournalID") or journal.get("journal_id"),
                                      "status": journal.get("Status") or journal.get("status")})
    return out


def days_back(n: int) -> date:
    return today_local() - timedelta(days=n)


def utc_now() -> datetime:
    return datetime.now(UTC)
