# The Dagster code location as a gRPC server: the image a container deployment or Dagster's Helm
# chart (dagster-user-deployments) runs. See docs/deployment.md.
#
# UNTESTED AS AN IMAGE: no test in this repository builds or runs it (the machine it was written on
# has no Docker engine). Its command, port and files were checked without Docker, by installing the
# package from exactly the files copied below and starting the same command; see
# docs/deployment.md, "What is verified".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/chat_agents

# Extra pip requirements, space-separated: the destination's dlt extra (for example
# "dlt[bigquery]>=1.31,<1.32") and, for Dagster's Helm chart, whose run pods load an instance that
# names the K8sRunLauncher, "dagster-k8s>=0.29,<0.30".
ARG EXTRA_PIP=""

COPY pyproject.toml README.md ./
COPY chat_agents_dagster ./chat_agents_dagster
# `.[postgres]`: dagster-postgres for the instance and dlt's PostgreSQL destination. set -f: the
# brackets in an extra are not a file pattern.
RUN set -f; pip install ".[postgres]" $EXTRA_PIP

# dlt reads .dlt/config.toml from the working directory: the committed defaults (telemetry off,
# 16 extract workers). Never secrets.toml: secrets come from the environment.
COPY .dlt/config.toml .dlt/config.toml

# Runs launched from this container write their compute logs under DAGSTER_HOME, and dlt its
# working files under DLT_DATA_DIR (scratch: the state that counts is in the warehouse); a DuckDB
# warehouse, if that is the destination, is a file on a volume mounted at /data.
RUN useradd --create-home --uid 10001 dagster \
    && mkdir -p /opt/dagster/dagster_home /data \
    && chown dagster /opt/dagster/dagster_home /data
# The instance (PostgreSQL, credentials from the environment; pools limited to one run). The Helm
# chart mounts its own dagster.yaml over this one.
COPY --chown=dagster deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
# DLT_PROJECT_DIR: .dlt/ is found whatever the working directory of the process (run pods too).
ENV DAGSTER_HOME=/opt/dagster/dagster_home \
    DLT_PROJECT_DIR=/opt/chat_agents \
    DLT_DATA_DIR=/tmp/dlt \
    DESTINATION__DUCKDB__CREDENTIALS=/data/chat_agents.duckdb
USER dagster

EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "chat_agents_dagster.definitions"]
