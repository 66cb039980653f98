"""Real Airflow: a migrated metadata DB (SQLite) in this session's throw-away AIRFLOW_HOME, reading
the project's dags/ folder with a registry of test companies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ACME = {"id": "acme", "name": "Acme Trading LLC", "timezone": "Asia/Dubai", "frequency": "daily",
        "first_period": "2026-11-20", "status": "active", "ledger_platform": "xero"}


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory):
    """``airflow db migrate`` once per session; the DAG folder is the project's, with acme registered."""
    registry = tmp_path_factory.mktemp("registry") / "registry.json"
    registry.write_text(json.dumps({"companies": [ACME]}))
    os.environ["MAMO_REVENUE_REGISTRY"] = str(registry)
    subprocess.run([AIRFLOW, "db", "migrate"], check=True, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return os.environ["AIRFLOW_HOME"]
