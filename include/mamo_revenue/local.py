"""The embedded default: everything under ``<project>/var``, Airflow on SQLite, the local sandboxes,
and a demo company connected to the Xero sandbox. Used by ``make run`` and ``make demo``.

Nothing here is used in production: there, Airflow, the product DB and the connections come from
the deployment (docker-compose.yaml and its env file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

DEMO_TZ = "Asia/Dubai"
#: (company id, name, ledger platform, ledger connection): one demo company per ledger, both reading
#: the Mamo sandbox's demo business, so the two ledgers' journals can be compared line by line.
DEMO_COMPANIES = (
    ("demo", "Demo Trading LLC", "xero", "xero_default"),
    ("demo_zoho", "Demo Trading LLC (Zoho Books)", "zoho_books", "zoho_books_default"),
)
#: Demo mapping by account code: both ledger sandboxes' default UAE charts use these codes.
DEMO_MAPPING_CODES = {"clearing": "1215", "sales": "4000", "refunds": "4010", "fees": "6110", "vat_payable": "2200"}
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"


@dataclass(frozen=True)
class Embedded:
    root: Path
    api_port: int = 8080
    mamo_port: int = 8701
    xero_port: int = 8702
    zoho_port: int = 8703

    @classmethod
    def here(cls) -> Embedded:
        return cls(Path(os.environ.get("MAMO_REVENUE_ROOT") or Path.cwd()).resolve())

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def airflow_home(self) -> Path:
        return self.var / "airflow"

    @property
    def settings_file(self) -> Path:
        return self.root / "airflow_settings.yaml"

    @property
    def registry_file(self) -> Path:
        return self.root / "dags" / "registry.json"

    # --- environment ---------------------------------------------------------------------------

    def airflow_env(self) -> dict[str, str]:
        """Environment of every Airflow process of the embedded install."""
        from mamo_revenue.airflow_settings import connections_as_env

        env = {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.root / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",  # LocalExecutor forks this many workers: 2 cores here
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "15",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            # Everything starts at once on a small machine: give task-to-API calls time to get through.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            # `airflow standalone` starts its components as `airflow …` found on PATH: this venv's.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        # The connections are also loaded into the metadata DB (the UI lists them); as env vars
        # they serve this process and any `airflow` command before that load.
        env.update(connections_as_env(self.settings_file, project_root=self.root))
        return env

    def activate(self) -> None:
        """Make this process (and its children) part of the embedded install."""
        self.var.mkdir(exist_ok=True)
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        os.environ.update(self.airflow_env())
        # Fixed login for the embedded install: Airflow only generates passwords for users missing here.
        passwords = self.airflow_home / "simple_auth_manager_passwords.json.generated"
        passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))

    def airflow(self, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
        command = [str(Path(sys.executable).with_name("airflow")), *args]
        return subprocess.run(command, check=check, env=os.environ.copy(),
                              stdout=subprocess.DEVNULL if quiet else None,
                              stderr=subprocess.DEVNULL if quiet else None)

    def prepare_airflow(self) -> None:
        from mamo_revenue.airflow_settings import load_settings

        print("• Airflow metadata DB (SQLite) …", flush=True)
        self.airflow("db", "migrate", quiet=True)
        load_settings(self.settings_file, project_root=self.root)

    # --- sandboxes -----------------------------------------------------------------------------

    def start_sandboxes(self) -> subprocess.Popen:
        log = (self.var / "sandboxes.log").open("ab")
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("mamo-sandboxes")), "--mamo-port", str(self.mamo_port),
             "--xero-port", str(self.xero_port), "--zoho-port", str(self.zoho_port),
             "--state-dir", str(self.var / "sandboxes")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        for url in (f"http://127.0.0.1:{port}/_sandbox/health"
                    for port in (self.mamo_port, self.xero_port, self.zoho_port)):
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"the sandboxes stopped at start; see {self.var / 'sandboxes.log'}")
                try:
                    if requests.get(url, timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the sandboxes did not start; see {self.var / 'sandboxes.log'}")
                time.sleep(0.2)
        print(f"• Sandboxes: Mamo on 127.0.0.1:{self.mamo_port}, Xero on 127.0.0.1:{self.xero_port}, "
              f"Zoho Books on 127.0.0.1:{self.zoho_port}", flush=True)
        return process

    # --- the demo company ----------------------------------------------------------------------

    def bootstrap_demo(self, *, first_period_days_back: int = 7) -> None:
        """Product DB, the demo companies, each ledger's consent answered on its sandbox's consent page,
        mappings, registry."""
        from mamo_revenue.connect import connect_through_sandbox_consent, map_by_codes
        from mamo_revenue.db import repository as repo
        from mamo_revenue.db.session import engine_for_connection, session_scope, upgrade
        from mamo_revenue.registry import export_registry

        engine = engine_for_connection()
        upgrade(engine)
        today = datetime.now(UTC).astimezone(ZoneInfo(DEMO_TZ)).date()
        for company_id, name, platform, conn_id in DEMO_COMPANIES:
            with session_scope(engine) as session:
                if repo.get_company(session, company_id) is None:
                    repo.upsert_company(session, company_id, name=name, timezone=DEMO_TZ, frequency="daily",
                                        base_currency="AED",
                                        first_period=today - timedelta(days=first_period_days_back),
                                        mamo_conn_id="mamo_default", ledger_platform=platform,
                                        ledger_conn_id=conn_id)
            tenant = connect_through_sandbox_consent(engine, company_id)
            map_by_codes(engine, company_id, DEMO_MAPPING_CODES)
            print(f"• Demo company '{company_id}' connected to the {platform} sandbox organisation {tenant!r}, "
                  f"accounts mapped", flush=True)
        export_registry(engine, self.registry_file)


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
