"""Alerts for periods still not posted some hours after they closed (``mamo_revenue.deadlines``).

Every 15 minutes; the grace is the Variable ``mamo_revenue_post_deadline_hours`` (default 6), the
channels the connections ``mamo_alerts_smtp`` and ``mamo_alerts_slack``.
"""

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronDataIntervalTimetable


def _check(**context):
    from mamo_revenue.deadlines import check_task

    return check_task(**context)


with DAG(
    dag_id="mamo_deadlines",
    description="Alert when a period is not posted some hours after it closed",
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["mamo-revenue", "maintenance", "alerts"],
    default_args={"owner": "finance-data", "retries": 1, "retry_delay": timedelta(minutes=2)},
):
    PythonOperator(task_id="check_deadlines", python_callable=_check)
