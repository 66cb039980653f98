#!/usr/bin/env bash
# Creates the product database (Airflow connection `mamo_revenue_db`) and its owner beside Airflow's
# metadata DB. The postgres image runs this once, on the first start of an empty data volume; on an
# existing volume run it by hand: docker compose exec postgres bash /docker-entrypoint-initdb.d/01-product-db.sh
# Names and password come from the service's environment (PRODUCT_DB_* in .env), never from this file.
set -eo pipefail

: "${PRODUCT_DB_NAME:?PRODUCT_DB_NAME is not set}"
: "${PRODUCT_DB_USER:?PRODUCT_DB_USER is not set}"
: "${PRODUCT_DB_PASSWORD:?PRODUCT_DB_PASSWORD is not set}"

# psql quotes the values itself (:"name" as an identifier, :'name' as a literal), so no value can
# break out of the statement. \gexec runs the CREATE only when the SELECT returns it: re-runs are safe.
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v db="$PRODUCT_DB_NAME" -v owner="$PRODUCT_DB_USER" -v password="$PRODUCT_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'owner', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner')
\gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'owner', :'password')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db')
\gexec
SQL
echo "product database ${PRODUCT_DB_NAME} owned by ${PRODUCT_DB_USER} is ready"
