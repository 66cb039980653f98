"""A whole product for the page's tests: Airflow 3 (api-server with the plugin, scheduler, dag-processor)
as separate processes on real sockets, the Mamo, Xero and Zoho Books sandboxes, and a PostgreSQL
product DB of its own.

Airflow runs as deployed: its own AIRFLOW_HOME, a PostgreSQL metadata DB, the LocalExecutor, the
project's dags/ and plugins/ folders, the simple auth manager with fixed users (``admin``/``admin``,
``viewer``/``viewer``; passwords pre-written as ``make run`` does), connections as env vars pointing at
the sandboxes, and the company registry in a temporary file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import sqlalchemy as sa

from mamo_revenue.airflow_settings import load_settings
from mamo_revenue.db.crypto import TokenCipher
from mamo_revenue.db.session import engine_for_url, upgrade
from mamo_sandboxes import xero_data, zoho_data
from mamo_sandboxes.mamo import MamoSandbox
from mamo_sandboxes.mamo import create_app as mamo_app
from mamo_sandboxes.serving import BackgroundServer, free_port
from mamo_sandboxes.xero import XeroSandbox
from mamo_sandboxes.xero import create_app as xero_app
from mamo_sandboxes.zoho import ZohoSandbox
from mamo_sandboxes.zoho import create_app as zoho_app

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
USERS = {"admin": "admin", "viewer": "viewer", "editor": "editor"}
ROLES = {"admin": "admin", "viewer": "viewer", "editor": "user"}
TOKEN_SECRET = "ui-tests-only-not-a-secret"
CIPHER = TokenCipher(TOKEN_SECRET)
DEFAULT_KEY = "sk-ui-default-business"


@dataclass
class Stack:
    url: str  # Airflow: http://127.0.0.1:<port>
    home: Path
    registry: Path
    engine: object
    mamo: MamoSandbox
    mamo_url: str
    xero: XeroSandbox
    xero_url: str
    zoho: ZohoSandbox
    zoho_url: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    # --- logins -------------------------------------------------------------------------------------

    def token(self, user: str) -> str:
        if user not in self._tokens:
            answer = requests.post(f"{self.url}/auth/token", json={"username": user, "password": USERS[user]},
                                   timeout=30)
            answer.raise_for_status()
            self._tokens[user] = answer.json()["access_token"]
        return self._tokens[user]

    def browser_session(self, user: str | None) -> requests.Session:
        """Requests as the UI makes them: the ``_token`` cookie, and ``Origin`` on posts."""
        session = requests.Session()
        session.headers["Accept"] = "text/html"
        if user:
            session.cookies.set("_token", self.token(user), domain=urlsplit(self.url).hostname, path="/")
        session.headers["Origin"] = self.url
        return session

    def api_session(self, user: str | None) -> requests.Session:
        """Requests of an API client: ``Authorization: Bearer``, JSON answers."""
        session = requests.Session()
        session.headers["Accept"] = "application/json"
        if user:
            session.headers["Authorization"] = f"Bearer {self.token(user)}"
        return session

    # --- the sandboxes ------------------------------------------------------------------------------

    def new_business(self, name: str = "Test Trading LLC") -> tuple[str, str]:
        """A Mamo business of its own: (api key, tag)."""
        tag = "b" + uuid.uuid4().hex[:10]
        key = f"sk-ui-{tag}"
        self.mamo.add_business(key, name, business_tag=tag)
        return key, tag

    # --- Airflow ------------------------------------------------------------------------------------

    def wait_for_dag(self, dag_id: str, timeout: float = 120, *, unpaused: bool = False) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.api_session("admin").get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30)
            if answer.status_code == 200 and not (unpaused and answer.json()["is_paused"]):
                return answer.json()
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} did not appear in Airflow ({answer.status_code})")
            time.sleep(1)

    def dag_runs(self, dag_id: str) -> list[dict]:
        answer = self.api_session("admin").get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns", timeout=30)
        answer.raise_for_status()
        return answer.json()["dag_runs"]

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def start_stack(tmp: Path, pg_admin_url: str) -> Stack:
    """Everything up, or a clear error naming the log to read."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    callback = f"{url}/revenue-accounting/oauth/callback"

    mamo, xero, zoho = MamoSandbox(), XeroSandbox(), ZohoSandbox()
    mamo.add_business(DEFAULT_KEY, "Default Business", business_tag="default")
    xero.identity.apps[xero_data.DEFAULT_CLIENT_ID].redirect_uris.append(callback)
    zoho.identity.apps[zoho_data.DEFAULT_CLIENT_ID].redirect_uris.append(callback)
    servers = [BackgroundServer(mamo_app(mamo)).start(), BackgroundServer(xero_app(xero)).start(),
               BackgroundServer(zoho_app(zoho)).start()]

    name = f"mamo_ui_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        # Airflow's metadata DB on PostgreSQL too: three Airflow processes and their tasks write at
        # once, which SQLite answers with "database is locked" under load.
        conn.execute(sa.text(f'CREATE DATABASE "{name}_airflow"'))
    admin.dispose()
    db = sa.make_url(pg_admin_url).set(database=name)
    metadata_db = db.set(database=f"{name}_airflow").render_as_string(hide_password=False)
    engine = engine_for_url(db)
    upgrade(engine)

    home = tmp / "airflow"
    home.mkdir(parents=True)
    registry = tmp / "registry.json"
    registry.write_text(json.dumps({"companies": []}))
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps(USERS))
    connections = {
        "MAMO_REVENUE_DB": {"conn_type": "postgres", "host": db.host, "port": db.port or 5432,
                            "login": db.username, "password": db.password, "schema": name,
                            "extra": {"token_encryption_secret": TOKEN_SECRET}},
        "MAMO_DEFAULT": {"conn_type": "mamo", "host": f"{servers[0].url}/manage_api/v1", "password": DEFAULT_KEY,
                         "extra": {"per_page": 100}},
        "XERO_DEFAULT": {"conn_type": "xero", "host": f"{servers[1].url}/api.xro/2.0",
                         "login": xero_data.DEFAULT_CLIENT_ID, "password": xero_data.DEFAULT_CLIENT_SECRET,
                         "extra": {"redirect_uri": callback, "backoff": 0.01}},
        "ZOHO_BOOKS_DEFAULT": {"conn_type": "zoho_books", "login": zoho_data.DEFAULT_CLIENT_ID,
                               "password": zoho_data.DEFAULT_CLIENT_SECRET,
                               "extra": {"accounts_url": f"{servers[2].url}/us/accounts", "redirect_uri": callback,
                                         "backoff": 0.01, "rate_limit_backoff": 0.01}},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MAMO_REVENUE"))}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in ROLES.items()),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": "ui-tests-secret-key",
        "AIRFLOW__API_AUTH__JWT_SECRET": "ui-tests-jwt-secret-not-a-real-one",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "MAMO_REVENUE_REGISTRY": str(registry),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    env |= {f"AIRFLOW_CONN_{k}": json.dumps(v) for k, v in connections.items()}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=(home / "migrate.log").open("wb"))
    # The pools the DAGs use (one per external API), as make run creates them.
    load_settings(ROOT / "airflow_settings.yaml", project_root=ROOT, airflow=[AIRFLOW], env=env, only=["pools"])

    stack = Stack(url, home, registry, engine, mamo, servers[0].url, xero, servers[1].url, zoho, servers[2].url)
    stack._servers = servers  # type: ignore[attr-defined]
    for name_, command in (("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"]),
                           ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
        log = (home / f"{name_}.log").open("wb")
        stack.processes[name_] = subprocess.Popen([AIRFLOW, *command], env=env, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        for name_, process in stack.processes.items():
            if process.poll() is not None:
                stack.stop()
                raise RuntimeError(f"airflow {name_} stopped at start:\n{stack.log(name_)[-4000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stack.stop()
            raise RuntimeError(f"Airflow did not start:\n{stack.log('api-server')[-4000:]}")
        time.sleep(0.5)
    return stack


def stop_stack(stack: Stack, pg_admin_url: str) -> None:
    stack.stop()
    for server in getattr(stack, "_servers", []):
        server.stop()
    stack.engine.dispose()
    name = stack.engine.url.database
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}_airflow" WITH (FORCE)'))
    admin.dispose()


# --- answering a sandbox consent page as a person would ----------------------------------------------


class ConsentForm(HTMLParser):
    """The consent page's form: action, hidden fields, organisations (checkboxes), users (a select)."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self.tenants, self.users = None, {}, [], []
        self._select = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("name"):
            if attrs.get("type") == "checkbox":
                self.tenants.append(attrs.get("value"))
            else:
                self.fields[attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select == "user":
            self.users.append(attrs.get("value"))


def answer_consent(consent_url: str, *, decision: str = "allow", tenants: list[str] | None = None) -> str:
    """GET the sandbox's consent page, submit it; returns the callback URL the ledger redirected to."""
    page = requests.get(consent_url, timeout=10)
    page.raise_for_status()
    form = ConsentForm()
    form.feed(page.text)
    data = {**form.fields, "decision": decision}
    if form.tenants:
        data["tenant"] = tenants if tenants is not None else form.tenants
    answer = requests.post(urljoin(consent_url, form.action), data=data, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text[:500]
    return answer.headers["Location"]


HIDDEN = re.compile(r'name="(?P<name>[a-z_]+)" value="(?P<value>[^"]*)"')


def hidden_fields(html: str) -> dict[str, str]:
    return {m["name"]: m["value"] for m in HIDDEN.finditer(html)}
