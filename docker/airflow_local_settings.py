# Airflow imports this module at start-up in every process (from $AIRFLOW_HOME/config). The Mamo revenue
# task code is imported once in the processes that fork tasks (scheduler, Celery worker), so each task
# inherits it instead of importing pandas and the hooks again: see mamo_revenue/preload.py.
from mamo_revenue.preload import preload

preload()
