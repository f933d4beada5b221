#!/usr/bin/env bash
# A PostgreSQL server for the tests, from Debian's packages: installed if missing, started if
# down, with the role and the two databases a deployment uses (the warehouse and the Dagster
# instance), all idempotent. Needs root. `.ci/run` sources it and then has the variables the tests
# read; a developer can run it once (`sudo bash .ci/postgres.sh`): the tests' default URL is the
# one it creates.
set -euo pipefail

pg_role=chat_agents
pg_password=chat_agents
pg_warehouse_db=chat_agents
pg_dagster_db=dagster

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "+ apt-get install postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
# The newest installed major version; Debian's package depends on exactly one.
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {found = 1} END {exit !found}'; then
    pg_createcluster "$pg_version" main >/dev/null
fi
# Columns: version, cluster, port, status, ...
pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" && $4 ~ /^online/ {found = 1} END {exit !found}'; then
    echo "+ pg_ctlcluster $pg_version main start"
    pg_ctlcluster "$pg_version" main start
fi
for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 1
done
pg_isready -h 127.0.0.1 -p "$pg_port"

# Debian's pg_hba.conf lets the postgres OS user in by peer authentication over the socket, and
# everyone else by password over TCP (scram-sha-256), which is how the tests connect (psql runs
# from / so that the postgres user is not refused the working directory). CREATEDB:
# every test loads into a database of its own, so tests never see each other's tables.
(cd / && runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -p "$pg_port" -d postgres) <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$pg_role') THEN
        CREATE ROLE $pg_role LOGIN CREATEDB PASSWORD '$pg_password';
    ELSE
        ALTER ROLE $pg_role LOGIN CREATEDB PASSWORD '$pg_password';
    END IF;
END
\$\$;
SELECT format('CREATE DATABASE %I OWNER %I', db, '$pg_role')
FROM unnest(ARRAY['$pg_warehouse_db', '$pg_dagster_db']) AS db
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = db)
\gexec
SQL

# What the tests read (chat_agents_dagster_tests/conftest.py). REQUIRE turns "no server, skip"
# into a failure, so CI can never pass with the PostgreSQL tests skipped.
export CHAT_AGENTS_TEST_POSTGRES_URL="postgresql://$pg_role:$pg_password@127.0.0.1:$pg_port/$pg_warehouse_db"
export CHAT_AGENTS_REQUIRE_POSTGRES=1
echo "PostgreSQL $pg_version on 127.0.0.1:$pg_port: role $pg_role, databases $pg_warehouse_db and $pg_dagster_db"
