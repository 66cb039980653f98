"""Import the task code once, in the long-lived Airflow processes that fork task processes.

Airflow 3 runs each task in a process forked from a long-lived one: the LocalExecutor's workers are
forked from the scheduler, a Celery worker's pool processes from the worker. What the parent has
imported, every task inherits for free; what it has not, every task imports again. The sync steps
need pandas, numpy, SQLAlchemy, requests and the ledger hooks: about 2 s of CPU per task on a
2-core machine, four tasks per period, so a 365-day backfill would spend most of its time importing.

``preload()`` imports them in the parent. It is called from ``airflow_local_settings.py`` (which
Airflow imports at start-up in every process, from ``$AIRFLOW_HOME/config``; the compose stack's
``airflow-init`` puts ``docker/airflow_local_settings.py`` there), and acts only in the processes
that fork tasks (``airflow scheduler``, ``airflow celery worker``), so the api-server, the
dag-processor and the CLI start as fast as before. Nothing here opens a connection or starts a
thread: it is safe to fork after (numpy's BLAS is pinned to one thread before it loads).
"""

from __future__ import annotations

import os
import sys

#: The modules every sync task imports (the hooks' own imports come with them).
TASK_MODULES = (
    "pandas",
    "mamo_revenue.sync",
    "mamo_revenue.events",
    "mamo_revenue.validation",
    "mamo_revenue.db.repository",
    "mamo_revenue.db.tokens",
    "mamo_revenue.db.company_secrets",
    "mamo_revenue.hooks.mamo",
    "mamo_revenue.hooks.registry",
    "mamo_revenue.hooks.xero",
    "mamo_revenue.hooks.zoho_books",
    "mamo_revenue.dag_factory",
    "mamo_revenue.notifiers",
    "mamo_revenue.ledger_limits",
)


def forks_tasks(argv: list[str] | None = None) -> bool:
    """Whether this process is one that task processes are forked from."""
    args = [os.path.basename(a) for a in (sys.argv if argv is None else argv)]
    return "scheduler" in args or ("celery" in args and "worker" in args)


def preload(*, force: bool = False) -> list[str]:
    """Import ``TASK_MODULES`` when this process forks tasks (or ``force``); returns what was imported."""
    if not (force or forks_tasks()) or os.environ.get("MAMO_REVENUE_PRELOAD", "1") == "0":
        return []
    # Forked children must not inherit BLAS worker threads: one thread, set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from importlib import import_module

    done = []
    for name in TASK_MODULES:
        try:
            import_module(name)
            done.append(name)
        except Exception:  # a broken import shows in the task that needs it, with its traceback
            pass
    return done
