# The one image of every Airflow service in docker-compose.yaml (and of its `sandboxes` service):
# Airflow's official 3.3.2 image plus this project, installed with the committed lock as constraints,
# so every package the lock names gets the version the test suite ran with.
FROM apache/airflow:3.3.2-python3.11

# The official image runs pip as the `airflow` user (PIP_USER: into ~/.local) and sets AIRFLOW_VERSION.
# /opt/mamo holds the sources pip builds from; pip writes its build files there, as `airflow`.
USER root
RUN mkdir -p /opt/mamo && chown airflow:0 /opt/mamo
USER airflow
WORKDIR /opt/mamo

# Dependencies first, so that editing the code does not re-run this layer.
# Runtime requirements only: requirements.txt minus its "# tests and tools" section. Repeating
# apache-airflow==$AIRFLOW_VERSION keeps pip from moving Airflow; the celery and fab providers (the
# executor and auth manager of docker-compose.yaml) come with the image and are named so pip checks
# them against the lock's versions too.
COPY --chown=airflow:0 requirements.txt requirements.lock ./
RUN sed '/^# tests and tools/,$d' requirements.txt > /tmp/requirements-runtime.txt \
 && pip install --no-cache-dir \
      --constraint requirements.lock \
      "apache-airflow==${AIRFLOW_VERSION}" \
      apache-airflow-providers-celery \
      apache-airflow-providers-fab \
      -r /tmp/requirements-runtime.txt \
 && rm /tmp/requirements-runtime.txt

# The project itself (the mamo_revenue and mamo_sandboxes packages): installing it registers the
# `apache_airflow_provider` entry point, hence the Mamo and Xero connection types.
COPY --chown=airflow:0 pyproject.toml ./
COPY --chown=airflow:0 include/ ./include/
COPY --chown=airflow:0 sandboxes/ ./sandboxes/
# What airflow-init puts in place: the pools (airflow_settings.yaml, `mamo-revenue settings load --only pools`)
# and config/airflow_local_settings.py (the scheduler and workers preload the task code).
COPY --chown=airflow:0 airflow_settings.yaml docker/airflow_local_settings.py ./
RUN pip install --no-cache-dir --constraint requirements.lock . \
 && pip check \
 && AIRFLOW_HOME=/tmp/provider-check airflow providers get mamo-revenue \
 && rm -rf /tmp/provider-check

# DAGs and the UI plugin, so the image runs without the compose file's bind mounts (which overlay
# these folders in local development).
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/

WORKDIR /opt/airflow
