"""The naive pipeline: the dltHub page's `rest_api` example, extended to all five endpoints and
made to run, and nothing more.

Everything is as generic as the page suggests: the legacy page-number listing, a paginator that
stops on an empty page (no total, no short-page rule, no use of an agent's `versions` list),
sequential resources, full replace on every run. run.py runs it in a subprocess:

    SOURCES__CHAT_AGENTS_SOURCE__BASE_URL=... SOURCES__CHAT_AGENTS_SOURCE__API_KEY=... \\
    DESTINATION__DUCKDB__CREDENTIALS=naive.duckdb python benchmarks/naive_pipeline.py

It prints one JSON line: rows per table and its own peak RSS in KiB (`ru_maxrss`, RUSAGE_SELF).
"""

import json
import resource
import sys
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources

PIPELINE_NAME = "naive_chat_agents"
DATASET_NAME = "chat_agents_data"
TABLES = ("agents", "agent_detail", "agent_versions", "agent_aliases", "agent_version_detail")


def _pages() -> PageNumberPaginator:
    # The legacy lists carry no total: without total_path=None dlt refuses to paginate, and with
    # it the only stop signal left is an empty page, one wasted request per list.
    return PageNumberPaginator(base_page=0, page_param="page", total_path=None)


# Named like the page's source so that the same SOURCES__CHAT_AGENTS_SOURCE__* settings apply.
@dlt.source(name="chat_agents_source")
def chat_agents_source(
    api_key: str = dlt.secrets.value, base_url: str = "https://api.mistral.ai/v1"
) -> Any:
    config: RESTAPIConfig = {
        "client": {"base_url": base_url, "auth": {"type": "bearer", "token": api_key}},
        "resource_defaults": {"write_disposition": "replace"},
        "resources": [
            {
                "name": "agents",
                "endpoint": {"path": "agents", "params": {"page_size": 100}, "paginator": _pages()},
            },
            {"name": "agent_detail", "endpoint": {"path": "agents/{resources.agents.id}"}},
            {
                "name": "agent_versions",
                "endpoint": {
                    "path": "agents/{resources.agents.id}/versions",
                    "params": {"page_size": 100},
                    "paginator": _pages(),
                },
            },
            {
                "name": "agent_aliases",
                "endpoint": {
                    "path": "agents/{resources.agents.id}/aliases",
                    "paginator": "single_page",
                },
            },
            {
                "name": "agent_version_detail",
                "endpoint": {
                    "path": "agents/{resources.agent_versions.id}"
                    "/versions/{resources.agent_versions.version}"
                },
            },
        ],
    }
    yield from rest_api_resources(config)


def main() -> None:
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME, destination="duckdb", dataset_name=DATASET_NAME
    )
    sys.stderr.write(f"{pipeline.run(chat_agents_source())}\n")
    rows: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in TABLES:
            name = client.make_qualified_table_name(table)
            answer: Any = client.execute_sql(f"SELECT COUNT(*) FROM {name}")
            rows[table] = int(answer[0][0])
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sys.stdout.write(json.dumps({"rows": rows, "ru_maxrss_kib": peak_kib}) + "\n")


if __name__ == "__main__":
    main()
