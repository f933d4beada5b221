"""Deterministic field content for generated agents.

Categorical varieties are chosen from the agent's index (see `Picker`) so that any 20 consecutive
agents cover every variety; free text and numbers come from the seeded rng.
"""

import random
from typing import Any

from chat_agents_dagster.sandbox.records import JSON

MODELS = [
    "mistral-large-latest",
    "mistral-medium-latest",
    "mistral-small-latest",
    "codestral-latest",
    "magistral-medium-latest",
    "ministral-8b-latest",
    "devstral-medium-latest",
]
SOURCES = ["api", "playground", "agent_builder_v1"]
COMPLETION_KEYS = [
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "temperature",
    "top_p",
    "max_tokens",
    "random_seed",
    "prediction",
    "response_format",
    "tool_choice",
    "reasoning_effort",
]
ALIAS_POOL = ["production", "staging", "canary", "beta", "rollback", "eval-2025", "v2_candidate"]
_ADJECTIVES = ["Careful", "Swift", "Friendly", "Strict", "Curious", "Terse", "Polyglot", "Legal"]
_NOUNS = ["Support Triage", "Invoice Reader", "Code Reviewer", "Travel Planner", "Data Analyst"]
_SENTENCES = [
    "You answer customer questions about billing and subscriptions.",
    "Always cite the document you used, with its title and page.",
    "Never reveal internal ticket numbers to the customer.",
    "When unsure, ask one clarifying question before answering.",
    "Prefer short answers; use bullet points for lists of more than three items.",
    "Escalate to a human when the user mentions legal action.",
    "Format dates as ISO 8601 and amounts with their currency code.",
    "Use the weather tool only for cities, never for coordinates.",
]
_UNICODE = (
    "Tu es un assistant serviable 🤖✨. 你是一个乐于助人的助手\uff0c请用简体中文回答。"
    " أنت مساعد مفيد، أجب باختصار. אתה עוזר מועיל. Привет, мир! 👩🏽‍💻🚀 «guillemets» — ok?"
)
_ESCAPES = 'Reply as JSON like {"ok": true, "items": []}.\n\tQuote "exactly"; keep \\backslashes\\.'
_PROPERTY_NAMES = [
    "city",
    "userId",
    "order_id",
    "Customer Name",
    "x-trace-id",
    "données",
    "数量",
    "_private",
    "2fa_code",
    "limit",
    "includeArchived",
]
_METADATA_POOL: list[tuple[str, Any]] = [
    ("team", "growth"),
    ("cost_center", 4711),
    ("tags", ["internal", "pilot"]),
    ("owner.email", "ops@example.com"),
    ("nested", {"level": {"deep": True, "n": 3}}),
    ("ratio", 0.25),
    ("launch_🚀", "yes"),
    ("enabled", False),
    ("retired_at", None),
]
_V1_CATEGORIES = ["sexual", "hate_and_discrimination", "violence_and_threats", "selfharm", "pii"]
_V2_CATEGORIES = ["jailbreaking", "criminal", "dangerous", "financial", "law", "health"]
# Primes above 20 keep every multiplier coprime with every variety count, so each count k
# cycles through all k varieties within k consecutive agents.
_MULTIPLIERS = [23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89]


class Picker:
    """Index-based variety choice: for each salt, consecutive agents cycle through all options."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, index: int, salt: int, count: int) -> int:
        return (index * _MULTIPLIERS[salt] + self.seed + salt) % count


def hex_id(rng: random.Random, bits: int = 128) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def uuid_like(rng: random.Random) -> str:
    h = hex_id(rng)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def agent_name(rng: random.Random, index: int) -> str:
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {index}"


def instructions(rng: random.Random, kind: int) -> str | None:
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice(_SENTENCES)
    if kind == 2:
        target = rng.randint(2048, 8192)
        parts = ["# Role\n"]
        size = 0
        while size < target:
            line = f"- {rng.choice(_SENTENCES)}\n"
            parts.append(line)
            size += len(line)
        return "".join(parts)
    if kind == 3:
        return _UNICODE
    if kind == 4:
        return _ESCAPES
    return " ".join(rng.sample(_SENTENCES, 3))


def json_schema(rng: random.Random) -> JSON:
    names = rng.sample(_PROPERTY_NAMES, rng.randint(1, 4))
    kinds = ["string", "integer", "number", "boolean"]
    return {
        "type": "object",
        "properties": {n: {"type": rng.choice(kinds), "description": f"The {n}."} for n in names},
        "required": names[:1],
        "additionalProperties": False,
    }


def _tool_configuration(rng: random.Random) -> JSON:
    return {
        "include": rng.sample(["search", "fetch", "summarize"], 2),
        "exclude": None,
        "requires_confirmation": rng.choice([None, ["fetch"]]),
    }


def _function(rng: random.Random) -> JSON:
    name = rng.choice(["get_weather", "lookup_order", "create_ticket", "convert_currency"])
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": json_schema(rng),
            "description": f"Call {name} with the user's parameters.",
            "strict": rng.choice([True, False]),
        },
    }


def _builtin(rng: random.Random, kind: str, configured: bool) -> JSON:
    return {"type": kind, "tool_configuration": _tool_configuration(rng) if configured else None}


def _library(rng: random.Random) -> JSON:
    ids = [uuid_like(rng) for _ in range(rng.randint(1, 3))]
    return {"type": "document_library", "library_ids": ids, "tool_configuration": None}


def _connector(rng: random.Random, auth: str | None) -> JSON:
    authorization = None if auth is None else {"type": auth, "value": "conn-secret-" + hex_id(rng)}
    return {
        "type": "connector",
        "connector_id": "conn_" + hex_id(rng, 64),
        "authorization": authorization,
        "tool_configuration": None,
    }


def _unknown_tool(rng: random.Random) -> JSON:
    return {
        "type": "mcp_server",
        "server_url": f"https://mcp.example.com/{hex_id(rng, 32)}",
        "allowed_tools": ["search", "fetch"],
    }


TOOL_KITS = 10


def tools(rng: random.Random, kit: int) -> list[JSON]:
    kits: list[list[JSON]] = [
        [],
        [_function(rng)],
        [_builtin(rng, "web_search", True), _function(rng)],
        [_builtin(rng, "web_search_premium", False), _builtin(rng, "code_interpreter", True)],
        [_builtin(rng, "image_generation", True), _library(rng)],
        [_connector(rng, "api-key"), _builtin(rng, "web_search", False)],
        [_connector(rng, "oauth2-token"), _connector(rng, None), _unknown_tool(rng)],
        [_function(rng), _function(rng), _library(rng)],
        [
            _builtin(rng, "code_interpreter", False),
            _builtin(rng, "image_generation", False),
            _builtin(rng, "web_search_premium", True),
        ],
        [_unknown_tool(rng), _function(rng), _connector(rng, "api-key")],
    ]
    return kits[kit]


COMPLETION_KINDS = 5


def completion_args(rng: random.Random, kind: int) -> JSON:
    args: JSON = dict.fromkeys(COMPLETION_KEYS)
    args["tool_choice"] = "auto"
    if kind == 1:
        args |= {"temperature": round(rng.random(), 2), "top_p": 0.9, "max_tokens": 1024}
        args |= {"stop": "\n\n", "response_format": {"type": "json_object", "json_schema": None}}
    elif kind == 2:
        schema = {
            "name": rng.choice(["answer", "ticket", "invoice_fields"]),
            "schema": json_schema(rng),
            "description": rng.choice([None, "Structured answer."]),
            "strict": rng.choice([True, False]),
        }
        args |= {"response_format": {"type": "json_schema", "json_schema": schema}}
        args |= {"stop": ["###", "</answer>"], "random_seed": rng.randint(0, 2**31)}
        args |= {"presence_penalty": 0.1, "frequency_penalty": 0.2, "tool_choice": "none"}
    elif kind == 3:
        prediction = {"type": "content", "content": "Dear customer,"}
        args |= {"prediction": prediction, "reasoning_effort": "high", "tool_choice": "any"}
    elif kind == 4:
        args |= {"temperature": 0.7, "reasoning_effort": "medium", "tool_choice": "required"}
        args |= {"response_format": {"type": "text", "json_schema": None}}
    return args


def _moderation(rng: random.Random, model: str, categories: list[str], extra: bool) -> JSON:
    thresholds = {c: round(rng.random(), 2) for c in rng.sample(categories, 3)}
    if extra:
        thresholds["custom_brand_safety"] = 0.5
    return {
        "model_name": model,
        "custom_category_thresholds": thresholds,
        "ignore_other_categories": rng.choice([True, False]),
        "action": rng.choice(["block", "none"]),
    }


GUARDRAIL_KINDS = 5


def guardrails(rng: random.Random, kind: int) -> list[JSON] | None:
    if kind == 0:
        return None
    v1 = {
        "block_on_error": True,
        "moderation_llm_v1": _moderation(rng, "mistral-moderation-2411", _V1_CATEGORIES, False),
        "moderation_llm_v2": None,
    }
    v2 = {
        "block_on_error": False,
        "moderation_llm_v1": None,
        "moderation_llm_v2": _moderation(rng, "mistral-moderation-2603", _V2_CATEGORIES, True),
    }
    choices: list[list[JSON]] = [[], [v1], [v2], [v1, v2]]
    return choices[kind - 1]


def metadata(rng: random.Random, present: bool) -> JSON | None:
    if not present:
        return None
    return dict(rng.sample(_METADATA_POOL, rng.randint(1, 5)))


def version_message(rng: random.Random, version: int) -> str | None:
    if version == 0:
        return rng.choice([None, "Initial version"])
    note = rng.choice(["Tighten tone", "Add tools", "Switch model", "Fix typo", None])
    return None if note is None else f"{note} (v{version})"


def revision_note(rng: random.Random, version: int) -> str:
    return f"Revision {version}: {rng.choice(_SENTENCES)}"
