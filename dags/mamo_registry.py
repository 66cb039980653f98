"""Keeps `registry.json` (the company list the sync DAGs are built from) in step with the product DB.

Companies added, paused or disconnected in the product DB get, lose or pause their DAG within a
few minutes. If the product DB is down this task fails and the last good file stays, so no
company's DAG disappears.
"""

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from mamo_revenue.dag_factory import REGISTRY_ENV

REGISTRY = str(Path(os.environ.get(REGISTRY_ENV) or Path(__file__).with_name("registry.json")))


def _export(path: str) -> int:
    from mamo_revenue.registry import export_registry
    from mamo_revenue.sync import product_engine

    return len(export_registry(product_engine(), Path(path)))


with DAG(
    dag_id="mamo_registry",
    description="Export the company registry from the product DB for the sync DAGs",
    schedule=timedelta(minutes=5),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["mamo-revenue", "maintenance"],
    default_args={"owner": "finance-data", "retries": 1, "retry_delay": timedelta(minutes=1)},
):
    PythonOperator(task_id="export_registry", python_callable=_export, op_kwargs={"path": REGISTRY})
