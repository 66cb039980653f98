"""One Mamo revenue sync DAG per company (`mamo_sync_<company>`), for Airflow 3.

The company list is `registry.json` beside this file (or `$MAMO_REVENUE_REGISTRY`), exported from
the product database by `mamo-revenue registry export` and by the `mamo_registry` DAG. Reading a
local file keeps parsing free of network and database calls, so a product database that is down
never makes a company's DAG disappear.
"""

import os
from pathlib import Path

from mamo_revenue.dag_factory import REGISTRY_ENV, build_dags, read_registry

_registry = Path(os.environ.get(REGISTRY_ENV) or Path(__file__).with_name("registry.json"))
globals().update(build_dags(read_registry(_registry)))
