"""docker-compose.yaml, its Dockerfile and .env.example: valid Compose, faithful to Airflow's official
stack, and carrying no secret.

No Docker engine runs here, so the file is checked against the Compose JSON schema and against what
`docker compose` would do with it: `${...}` interpolation from .env (reproduced below) and YAML merges.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
PRODUCT_DB_INIT = REPO / "docker" / "postgres-init" / "01-product-db.sh"
#: In CI the shared specs are cloned beside this repository (../shared).
COMPOSE_SCHEMA = REPO.parent / "shared" / "specs" / "compose" / "compose-spec.json"

AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
    "airflow-cli",
    "flower",
]
#: Started by a plain `docker compose up`; the rest wait for a profile.
DEFAULT_SERVICES = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}
PROFILES = {"airflow-cli": ["debug"], "flower": ["flower"], "sandboxes": ["sandboxes"]}
#: Long-running Airflow components: each waits for airflow-init and restarts always.
LONG_RUNNING = [s for s in AIRFLOW_SERVICES if s not in ("airflow-init", "airflow-cli")]


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(text) -> dict:
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def common(compose) -> dict:
    return compose["x-airflow-common"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_dotenv(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(
            f"Compose JSON schema not found at {COMPOSE_SCHEMA}: these tests expect the shared repository "
            "cloned beside this one, so that ../shared/specs/compose/compose-spec.json exists."
        )
    return json.loads(COMPOSE_SCHEMA.read_text())


# --- what `docker compose` does with the files (enough of it for these tests) ----------------------------


def parse_dotenv(content: str) -> dict[str, str]:
    """Compose's .env rules for the forms .env.example uses: comments, KEY=value, 'literal', "quoted"."""
    values = {}
    for line in content.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) > 1:
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[key.strip()] = value
    return values


INTERPOLATION = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``$$``, ``${X}``, ``${X:-default}``, ``${X-default}``, ``${X:?error}`` and ``${X?error}``."""

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        present = name in env and (env[name] != "" or op in (None, "-", "?"))
        if present:
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return INTERPOLATION.sub(substitute, value)


def interpolate_all(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_all(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_all(value, env) for key, value in node.items()}
    return node


def strings(node, path: str = ""):
    """Every string in the document, with where it sits."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from strings(item, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}" if path else str(key))


# --- Compose schema -----------------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_schema(compose, compose_schema):
    validator = jsonschema.Draft7Validator(compose_schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_compose_file_is_still_valid_once_interpolated_with_the_example_env(
    compose, compose_schema, env_example
):
    """What Compose validates after filling in `${...}` from .env."""
    jsonschema.validate(interpolate_all(compose, env_example), compose_schema, cls=jsonschema.Draft7Validator)


# --- services and profiles -----------------------------------------------------------------------------


def test_the_products_services_and_profiles_are_present(services):
    assert set(services) == set(AIRFLOW_SERVICES) | {"postgres", "redis", "sandboxes"}
    assert {name for name, service in services.items() if not service.get("profiles")} == DEFAULT_SERVICES
    assert {
        name: service["profiles"] for name, service in services.items() if service.get("profiles")
    } == PROFILES


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_every_airflow_service_merges_the_common_block(text, services, common, name):
    service = services[name]
    assert re.search(rf"^  {re.escape(name)}:\n    <<: \*airflow-common\n", text, re.MULTILINE), (
        f"{name} must start with `<<: *airflow-common`"
    )
    for key in ("image", "build", "env_file", "volumes"):
        assert service[key] == common[key], key
    assert service["user"] == ("0:0" if name == "airflow-init" else common["user"])
    # Services may add variables, never drop or change the common ones.
    for key, value in common["environment"].items():
        if name == "airflow-init" and key == "_PIP_ADDITIONAL_REQUIREMENTS":
            assert service["environment"][key] == ""
            continue
        assert service["environment"].get(key) == value, f"{name}: {key}"


def test_one_image_built_from_the_projects_dockerfile(common, services):
    assert common["build"] == {"context": "${AIRFLOW_PROJ_DIR:-.}", "dockerfile": "Dockerfile"}
    assert common["image"] == "${AIRFLOW_IMAGE_NAME:-mamo-revenue-airflow:local}"
    assert services["sandboxes"]["image"] == common["image"]
    assert services["sandboxes"]["build"] == common["build"]
    assert common["env_file"] == ["${ENV_FILE_PATH:-.env}"]


def test_executor_is_celery_with_redis_and_the_metadata_db(common):
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("fab_auth_manager.FabAuthManager")
    assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"


def test_project_folders_are_mounted_read_only_where_nothing_writes(common):
    mounts = {}
    for volume in common["volumes"]:
        source, target, *mode = volume.replace("${AIRFLOW_PROJ_DIR:-.}", ".").split(":")
        mounts[source] = (target, mode)
    assert mounts == {
        "./dags": ("/opt/airflow/dags", []),
        "./logs": ("/opt/airflow/logs", []),
        "./config": ("/opt/airflow/config", []),
        "./plugins": ("/opt/airflow/plugins", ["ro"]),
        "./include": ("/opt/airflow/include", ["ro"]),
    }
    assert common["environment"]["PYTHONPATH"] == "/opt/airflow/include"


# --- faithful to the official file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "probe"),
    [
        pytest.param("postgres", "pg_isready -U airflow", id="postgres"),
        pytest.param("redis", "redis-cli ping", id="redis"),
        pytest.param(
            "airflow-apiserver", "curl --fail http://localhost:8080/api/v2/monitor/health", id="apiserver"
        ),
        pytest.param("airflow-scheduler", "curl --fail http://localhost:8974/health", id="scheduler"),
        pytest.param(
            "airflow-dag-processor", "airflow jobs check --job-type DagProcessorJob", id="dag-processor"
        ),
        pytest.param("airflow-triggerer", "airflow jobs check --job-type TriggererJob", id="triggerer"),
        pytest.param("airflow-worker", "celery_executor.app inspect ping", id="worker"),
        pytest.param("flower", "curl --fail http://localhost:5555/", id="flower"),
        pytest.param("sandboxes", "curl --fail http://localhost:8701/_sandbox/health", id="sandboxes"),
    ],
)
def test_health_checks(services, name, probe):
    check = services[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert probe in " ".join(check["test"][1:])
    assert check["retries"] >= 5 and "interval" in check


def test_images_and_ports_are_the_official_ones(services):
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7.2-bookworm"
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]
    assert services["flower"]["ports"] == ["5555:5555"]
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-worker"]["command"] == "celery worker"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_components_wait_for_init_and_restart(services, name):
    service = services[name]
    assert service["restart"] == "always"
    assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert service["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_worker_shuts_down_warm_and_waits_for_the_api_server(services):
    worker = services["airflow-worker"]
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"
    assert worker["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}


def test_init_migrates_and_creates_the_admin_user(services):
    init = services["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_PASSWORD"].startswith("${_AIRFLOW_WWW_USER_PASSWORD:?")
    assert init["entrypoint"] == "/bin/bash"
    assert "/entrypoint airflow version" in init["command"][1]
    assert "restart" not in init


def test_sandboxes_run_the_projects_command_outside_airflows_entrypoint(services):
    sandboxes = services["sandboxes"]
    assert sandboxes["command"] == ["mamo-sandboxes", "--host", "0.0.0.0"]
    # The image's entrypoint would run `airflow mamo-sandboxes ...`.
    assert sandboxes["entrypoint"] == ["/usr/bin/dumb-init", "--"]
    assert sandboxes["ports"] == ["8701:8701", "8702:8702", "8703:8703"]
    for port in (8701, 8702, 8703):  # Mamo, Xero, Zoho Books
        assert f"curl --fail http://localhost:{port}/_sandbox/health" in sandboxes["healthcheck"]["test"][1]
    assert "env_file" not in sandboxes and "environment" not in sandboxes, "the sandboxes need no secrets"


def test_product_database_is_created_by_an_init_script_on_the_postgres_service(services):
    postgres = services["postgres"]
    assert "${AIRFLOW_PROJ_DIR:-.}/docker/postgres-init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    assert PRODUCT_DB_INIT.is_file()
    assert PRODUCT_DB_INIT.stat().st_mode & stat.S_IXUSR, "the postgres image sources non-executable scripts"
    used = set(re.findall(r"\$\{?(PRODUCT_DB_\w+)", PRODUCT_DB_INIT.read_text()))
    assert used == {"PRODUCT_DB_NAME", "PRODUCT_DB_USER", "PRODUCT_DB_PASSWORD"}
    assert used <= set(postgres["environment"])


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs the psql client")
def test_product_database_init_script_creates_db_and_owner_and_reruns(tmp_path):
    """Run the init script, twice, against the suite's PostgreSQL, as the postgres image would."""
    import sqlalchemy as sa

    admin_url = sa.engine.make_url(
        os.environ.get("MAMO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    )
    suffix = os.urandom(4).hex()
    env = {
        **os.environ,
        "PGHOST": admin_url.host or "127.0.0.1",
        "PGPORT": str(admin_url.port or 5432),
        "PGPASSWORD": admin_url.password or "",
        "POSTGRES_USER": admin_url.username or "postgres",
        "POSTGRES_DB": admin_url.database or "postgres",
        "PRODUCT_DB_NAME": f"mamo_init_{suffix}",
        "PRODUCT_DB_USER": f"mamo_init_{suffix}_owner",
        "PRODUCT_DB_PASSWORD": 'it\'s "quoted"; DROP ROLE postgres; --',
    }
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):
            done = subprocess.run(
                ["bash", str(PRODUCT_DB_INIT)], env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
        with engine.connect() as conn:
            owner = conn.execute(
                sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :n"),
                {"n": env["PRODUCT_DB_NAME"]},
            ).scalar_one()
        assert owner == env["PRODUCT_DB_USER"]
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{env["PRODUCT_DB_NAME"]}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{env["PRODUCT_DB_USER"]}"'))
        engine.dispose()


# --- secrets ----------------------------------------------------------------------------------------------

SECRET_SETTINGS = {
    "AIRFLOW__CORE__FERNET_KEY": "FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY": "AIRFLOW__API__SECRET_KEY",
}


@pytest.mark.parametrize("setting", sorted(SECRET_SETTINGS))
def test_airflow_secrets_are_required_from_env_with_no_default(common, setting):
    assert re.fullmatch(rf"\$\{{{SECRET_SETTINGS[setting]}:\?[^}}]+\}}", common["environment"][setting])


def test_no_secret_is_written_into_the_compose_file(compose, text):
    # A Fernet key is 32 bytes in URL-safe base64: 43 characters and "=".
    assert not re.search(r"[A-Za-z0-9_-]{43}=", text)
    for where, value in strings(compose):
        # user:password@host in any URL: the password must be a required interpolation (or empty).
        masked = re.sub(r"\$\{\w+:\?[^}]*\}", "REQUIRED", value)
        for password in re.findall(r"://[^:/@\s]*:([^@/\s]*)@", masked):
            assert password in ("", "REQUIRED"), f"{where}: inline password in a URL"
        key = where.rsplit(".", 1)[-1]
        if re.search(r"PASSWORD|SECRET|FERNET", key):
            assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), f"{where}: a secret needs ${{NAME:?...}}"
    product_db = compose["x-airflow-common"]["environment"]["AIRFLOW_CONN_MAMO_REVENUE_DB"]
    assert '"password": "${PRODUCT_DB_PASSWORD:?' in product_db
    assert '"token_encryption_secret": "${MAMO_TOKEN_ENCRYPTION_SECRET:?' in product_db


def test_every_required_variable_has_a_placeholder_in_env_example(compose, env_example):
    required = {name for _, value in strings(compose) for name in re.findall(r"\$\{(\w+):\?", value)}
    assert required == {
        "FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "POSTGRES_PASSWORD",
        "_AIRFLOW_WWW_USER_PASSWORD",
        "PRODUCT_DB_NAME",
        "PRODUCT_DB_USER",
        "PRODUCT_DB_PASSWORD",
        "MAMO_TOKEN_ENCRYPTION_SECRET",
    }
    assert required <= set(env_example)
    lines = ENV_EXAMPLE.read_text().splitlines()
    secrets = [name for name in required if name not in ("PRODUCT_DB_NAME", "PRODUCT_DB_USER")]
    for name in secrets:
        assert env_example[name] == "replace-me", f"{name} must be a placeholder"
        # Its own comment: the lines above it, up to a blank line or another secret.
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        above = []
        for line in reversed(lines[:index]):
            if not line.strip() or line.endswith("=replace-me"):
                break
            above.append(line)
        assert any("Generate:" in line for line in above), f"{name} needs a comment saying how to generate it"


def test_example_env_renders_a_valid_product_db_connection(compose, env_example):
    rendered = interpolate_all(compose, env_example)
    conn = json.loads(rendered["x-airflow-common"]["environment"]["AIRFLOW_CONN_MAMO_REVENUE_DB"])
    assert conn == {
        "conn_type": "postgres",
        "host": "postgres",
        "port": 5432,
        "schema": env_example["PRODUCT_DB_NAME"],
        "login": env_example["PRODUCT_DB_USER"],
        "password": env_example["PRODUCT_DB_PASSWORD"],
        "extra": {"token_encryption_secret": env_example["MAMO_TOKEN_ENCRYPTION_SECRET"]},
    }
    assert rendered["services"]["postgres"]["environment"]["PRODUCT_DB_NAME"] == conn["schema"]


def test_a_missing_secret_stops_compose(compose, env_example):
    without = {k: v for k, v in env_example.items() if k != "FERNET_KEY"}
    with pytest.raises(KeyError, match="FERNET_KEY"):
        interpolate_all(compose, without)


def test_example_ledger_connections_are_valid_json_for_real_and_sandbox_apis():
    lines = [
        line.removeprefix("# ")
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"(# )?AIRFLOW_CONN_\w+='", line)
    ]
    conns = [(line.split("=", 1)[0], json.loads(parse_dotenv(line)[line.split("=", 1)[0]])) for line in lines]
    ledgers = ["AIRFLOW_CONN_MAMO_DEFAULT", "AIRFLOW_CONN_XERO_DEFAULT", "AIRFLOW_CONN_ZOHO_BOOKS_DEFAULT"]
    assert [name for name, _ in conns] == ledgers * 2 + ["AIRFLOW_CONN_MAMO_ALERTS_SMTP", "AIRFLOW_CONN_MAMO_ALERTS_SLACK"]
    assert {conn["conn_type"] for _, conn in conns} == {"mamo", "xero", "zoho_books", "smtp", "slackwebhook"}
    real, sandbox = conns[:3], conns[3:6]
    assert all((conn.get("host") or conn["extra"]["accounts_url"]).startswith("https://") for _, conn in real)
    assert all(conn.get("host", "http://sandboxes:870").startswith("http://sandboxes:870") for _, conn in sandbox)
    assert sandbox[2][1]["extra"]["accounts_url"].startswith("http://localhost:8703/")
    for _, conn in conns:
        if conn["conn_type"] == "xero":
            assert set(conn["extra"]) == {
                "authorize_url",
                "token_url",
                "connections_url",
                "redirect_uri",
                "scopes",
            }


# --- the image ---------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n\s*",
        " ",
        "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_dockerfile_builds_on_the_official_image_and_installs_from_the_lock():
    instructions = dockerfile_instructions()
    assert instructions[0] == "FROM apache/airflow:3.3.2-python3.11"
    copies = " ".join(i for i in instructions if i.startswith("COPY"))
    for source in ("requirements.lock", "pyproject.toml", "include/", "sandboxes/"):
        assert source in copies
    installs = [i for i in instructions if "pip install" in i]
    assert len(installs) == 2
    for install in installs:
        assert "--constraint requirements.lock" in install
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in installs[0]
    assert re.search(r"pip install .* \.( |$)", installs[1]), "the project itself must be installed"
    assert "pip check" in installs[1]
    assert "airflow providers get mamo-revenue" in installs[1], "the build proves the provider registers"


def test_dockerfiles_runtime_requirements_cut_matches_requirements_txt():
    """The Dockerfile drops requirements.txt from its "# tests and tools" line on; the rest is runtime."""
    content = (REPO / "requirements.txt").read_text()
    assert "\n# tests and tools\n" in content
    runtime = content.split("\n# tests and tools\n")[0]
    assert "apache-airflow==3.3.2" in runtime.splitlines()
    assert "sed '/^# tests and tools/,$d' requirements.txt" in DOCKERFILE.read_text()


def test_build_context_leaves_out_secrets_and_local_state():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", "var/"} <= ignored


# --- operations: pools, preloading, alert links (issue #5) ----------------------------------------------------


def test_init_creates_the_pools_and_the_preload_settings(services):
    script = services["airflow-init"]["command"][1]
    assert "mamo-revenue settings load --only pools /opt/mamo/airflow_settings.yaml" in script
    assert "cp -n /opt/mamo/airflow_local_settings.py /opt/airflow/config/airflow_local_settings.py" in script
    # after the migration (`/entrypoint airflow version` runs it) and before ownership is handed over
    assert script.index("/entrypoint airflow version") < script.index("settings load") < script.index("chown")


def test_the_image_carries_the_settings_file_and_the_preload_module():
    copies = [i for i in dockerfile_instructions() if i.startswith("COPY")]
    assert any("airflow_settings.yaml" in c and "docker/airflow_local_settings.py" in c for c in copies)
    preload = (REPO / "docker" / "airflow_local_settings.py").read_text()
    assert "from mamo_revenue.preload import preload" in preload and "preload()" in preload


def test_the_pools_loaded_by_init_are_the_ones_the_dags_use():
    from mamo_revenue.airflow_settings import read_settings
    from mamo_revenue.dag_factory import MAMO_POOL, ledger_pool
    from mamo_revenue.hooks.registry import LEDGER_HOOKS

    pools = {p.name for p in read_settings(REPO / "airflow_settings.yaml", project_root=REPO).pools}
    assert {MAMO_POOL, *(ledger_pool(platform) for platform in LEDGER_HOOKS)} <= pools


def test_alert_links_use_the_configurable_base_url(common, env_example):
    assert common["environment"]["AIRFLOW__API__BASE_URL"] == "${AIRFLOW_BASE_URL:-http://localhost:8080}"
    assert interpolate_all(common, env_example)["environment"]["AIRFLOW__API__BASE_URL"] == "http://localhost:8080"
