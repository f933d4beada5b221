"""The official SDK (mistralai 3.7) against the sandbox: every read and write method of
`client.beta.agents` must parse the sandbox's answers into the World's data."""

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from mistralai.client import Mistral, errors, models
from mistralai.client.utils import BackoffStrategy, RetryConfig

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World

KEY = "sandbox-key"
SDK_TOOLS: dict[str, type] = {
    "function": models.FunctionTool,
    "web_search": models.WebSearchTool,
    "web_search_premium": models.WebSearchPremiumTool,
    "code_interpreter": models.CodeInterpreterTool,
    "image_generation": models.ImageGenerationTool,
    "document_library": models.DocumentLibraryTool,
    "connector": models.CustomConnector,
}
SDK_AUTH: dict[str, type] = {"api-key": models.APIKeyAuth, "oauth2-token": models.OAuth2TokenAuth}
PLAIN_FIELDS = [
    "id",
    "object",
    "name",
    "model",
    "version",
    "versions",
    "deployment_chat",
    "source",
    "instructions",
    "description",
    "handoffs",
    "metadata",
    "owner_id",
    "version_message",
]


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    world = World.generate(
        agents=24, seed=11, max_versions=3, heavy_agents=1, heavy_versions=105, max_aliases=3
    )
    with SandboxServer(world, SandboxConfig(api_key=KEY)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Mistral:
    return Mistral(api_key=KEY, server_url=server.root_url)


def strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def dump(model: Any) -> Any:
    return strip_none(model.model_dump(mode="json", by_alias=True))


def assert_tool(parsed: Any, expected: dict[str, Any]) -> None:
    sdk_class = SDK_TOOLS.get(expected["type"])
    if sdk_class is None:
        assert isinstance(parsed, models.UnknownAgentTool) and parsed.raw == expected
        return
    # The SDK silently turns a known tool that fails validation into UnknownAgentTool.
    assert type(parsed) is sdk_class, expected
    assert dump(parsed) == strip_none(expected)
    if isinstance(parsed, models.CustomConnector) and expected["authorization"]:
        assert type(parsed.authorization) is SDK_AUTH[expected["authorization"]["type"]]


def assert_guardrails(parsed: Any, expected: list[dict[str, Any]] | None) -> None:
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None and len(parsed) == len(expected)
    for rail, want in zip(parsed, expected, strict=True):
        assert rail.block_on_error == want["block_on_error"]
        for key in ("moderation_llm_v1", "moderation_llm_v2"):
            config, want_config = getattr(rail, key), want[key]
            if want_config is None:
                assert config is None
                continue
            assert dump(config) | {"custom_category_thresholds": None} == want_config | {
                "custom_category_thresholds": None
            }
            thresholds = want_config["custom_category_thresholds"]
            known = type(config.custom_category_thresholds).model_fields
            # Category names the SDK does not know are dropped by it, not rejected.
            assert dump(config.custom_category_thresholds) == {
                k: v for k, v in thresholds.items() if k in known
            }


def assert_agent(parsed: models.Agent, expected: dict[str, Any]) -> None:
    assert {f: getattr(parsed, f) for f in PLAIN_FIELDS} == {f: expected[f] for f in PLAIN_FIELDS}
    assert parsed.created_at == datetime.fromisoformat(expected["created_at"])
    assert parsed.updated_at == datetime.fromisoformat(expected["updated_at"])
    assert parsed.tools is not None and len(parsed.tools) == len(expected["tools"])
    for tool, want in zip(parsed.tools, expected["tools"], strict=True):
        assert_tool(tool, want)
    assert parsed.completion_args is not None
    assert dump(parsed.completion_args) == strip_none(expected["completion_args"])
    assert_guardrails(parsed.guardrails, expected["guardrails"])
    # Unknown top-level fields do not survive the SDK (which is why the loader keeps raw JSON).
    assert "labels" not in parsed.model_dump()


def in_listing_order(server: SandboxServer, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items[::-1] if server.config.listing_order == "newest_first" else items


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_list_reads_every_page(server: SandboxServer, client: Mistral) -> None:
    seen: list[models.Agent] = []
    page = 0
    while True:
        batch = client.beta.agents.list(page=page, page_size=10)
        seen += batch
        if len(batch) < 10:
            break
        page += 1
    expected = in_listing_order(server, server.world.agents())
    assert [a.id for a in seen] == [a["id"] for a in expected]
    for parsed, want in zip(seen, expected, strict=True):
        assert_agent(parsed, want)


@pytest.mark.parametrize("page_size", [7, 8])
def test_list_pages_follows_next(server: SandboxServer, client: Mistral, page_size: int) -> None:
    server.stats.reset()
    seen: list[models.Agent] = []
    response: Any = client.beta.agents.list_pages(page_size=page_size)
    while response is not None:
        seen += response.result.data
        response = response.next()
    expected = in_listing_order(server, server.world.agents())
    assert [a.id for a in seen] == [a["id"] for a in expected]
    # The SDK stops on a short page; after a full last page it follows the token to an empty one.
    full_last = len(expected) % page_size == 0 and server.config.token_on_last_page
    pages = math.ceil(len(expected) / page_size) + full_last
    assert server.stats.count("GET /v1/agents/pages") == pages
    for parsed, want in zip(seen, expected, strict=True):
        assert_agent(parsed, want)


def test_get_by_id_version_number_and_alias(server: SandboxServer, client: Mistral) -> None:
    world = server.world
    for agent in world.agents():
        assert_agent(client.beta.agents.get(agent_id=agent["id"]), agent)
        for number in {0, max(agent["versions"])}:
            parsed = client.beta.agents.get(agent_id=agent["id"], agent_version=number)
            want = world.version(agent["id"], number)
            assert want is not None
            assert_agent(parsed, want)
        for alias in world.aliases(agent["id"]):
            parsed = client.beta.agents.get(agent_id=agent["id"], agent_version=alias["alias"])
            assert parsed.version == alias["version"]


def test_versions_and_aliases_of_every_agent(server: SandboxServer, client: Mistral) -> None:
    world = server.world
    for agent in world.agents():
        versions: list[models.Agent] = []
        page = 0
        while True:
            batch = client.beta.agents.list_versions(agent_id=agent["id"], page=page, page_size=50)
            versions += batch
            if len(batch) < 50:
                break
            page += 1
        expected = world.versions(agent["id"])
        if server.config.versions_order == "newest_first":
            expected = expected[::-1]
        assert [v.version for v in versions] == [v["version"] for v in expected]
        assert sorted(v.version for v in versions) == agent["versions"]
        for parsed, want in zip(versions, expected, strict=True):
            assert_agent(parsed, want)
        for number in agent["versions"]:
            parsed = client.beta.agents.get_version(agent_id=agent["id"], version=str(number))
            assert_agent(parsed, world.versions(agent["id"])[number])
        aliases = client.beta.agents.list_version_aliases(agent_id=agent["id"])
        assert [dump(a) for a in aliases] == world.aliases(agent["id"])
    assert max(len(a["versions"]) for a in world.agents()) == 105


def test_every_write_method() -> None:
    world = World.generate(agents=3, seed=4)
    with SandboxServer(world, SandboxConfig(api_key=KEY)) as server:
        agents = Mistral(api_key=KEY, server_url=server.root_url).beta.agents
        tools: list[models.CreateAgentRequestTool] = [
            models.WebSearchTool(),
            models.CustomConnector(connector_id="c1", authorization=None),
        ]
        created = agents.create(
            model="mistral-medium-latest",
            name="Writer",
            instructions="Draft replies.",
            tools=tools,
            completion_args={"temperature": 0.2},
            metadata={"team": "qa"},
        )
        assert_agent(created, world.agent(created.id) or {})
        assert (created.version, created.versions, created.source) == (0, [0], "api")

        updated = agents.update(
            agent_id=created.id, instructions="Shorter.", model="codestral-latest"
        )
        assert (updated.version, updated.versions) == (1, [0, 1])
        assert_agent(updated, world.agent(created.id) or {})
        assert updated.metadata == {"team": "qa"} and updated.instructions == "Shorter."

        switched = agents.update_version(agent_id=created.id, version=0)
        assert switched.version == 0 and switched.instructions == "Draft replies."
        assert (world.agent(created.id) or {})["version"] == 0

        alias = agents.create_version_alias(agent_id=created.id, alias="production", version=1)
        assert (alias.alias, alias.version) == ("production", 1)
        assert agents.get(agent_id=created.id, agent_version="production").version == 1
        assert [a.alias for a in agents.list_version_aliases(agent_id=created.id)] == ["production"]

        assert agents.delete_version_alias(agent_id=created.id, alias="production") is None
        assert world.aliases(created.id) == []

        assert agents.delete(agent_id=created.id) is None
        assert world.agent(created.id) is None
        with pytest.raises(errors.SDKError) as missing:
            agents.get(agent_id=created.id)
        assert missing.value.status_code == 404


def test_sdk_error_mapping_and_retries(server: SandboxServer, client: Mistral) -> None:
    with pytest.raises(errors.SDKError) as unauthorized:
        Mistral(api_key="wrong", server_url=server.root_url).beta.agents.list_pages()
    assert unauthorized.value.status_code == 401
    with pytest.raises(errors.HTTPValidationError) as invalid:
        client.beta.agents.list_pages(page_size=1001)
    assert invalid.value.data.detail and invalid.value.data.detail[0].loc == ["query", "page_size"]

    retries = RetryConfig("backoff", BackoffStrategy(1, 5, 1.1, 2000), False)
    agent_id = server.world.agents()[0]["id"]
    server.stats.reset()
    server.fail_next(1, 503, route="GET /v1/agents/{agent_id}")
    server.fail_next(1, 429, route="GET /v1/agents/{agent_id}", headers={"Retry-After": "0"})
    assert client.beta.agents.get(agent_id=agent_id, retries=retries).id == agent_id
    assert server.stats.snapshot()["by_status"] == {"200": 1, "429": 1, "503": 1}
