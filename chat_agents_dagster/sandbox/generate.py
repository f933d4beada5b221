"""Deterministic world generation: agents, their version histories and aliases."""

import random

from chat_agents_dagster.sandbox import content
from chat_agents_dagster.sandbox.content import Picker
from chat_agents_dagster.sandbox.records import JSON, AgentRecord, Clock, arrange

# Salts give every varied dimension its own cycle (see content.Picker).
_S_VERSIONS, _S_ROLLBACK, _S_MODEL_DRIFT, _S_MODEL, _S_DEPLOY, _S_SOURCE = range(6)
_S_INSTRUCTIONS, _S_DESCRIPTION, _S_TOOLS, _S_COMPLETION, _S_GUARDRAILS = range(6, 11)
_S_HANDOFFS, _S_METADATA, _S_OWNER, _S_EXTRA, _S_ALIASES = range(11, 16)
_MAX_TICK_S = 900


def _tick(clock: Clock, rng: random.Random) -> str:
    return clock.advance(rng.randint(1, _MAX_TICK_S) * 1_000_000 + rng.randrange(1_000_000))


def _handoffs(rng: random.Random, ids: list[str], index: int, kind: int) -> list[str] | None:
    if kind < 2 or len(ids) < 3:
        return None
    others = rng.sample(range(len(ids) - 1), kind - 1)
    return [ids[j + 1 if j >= index else j] for j in others]


def _base(rng: random.Random, pick: Picker, ids: list[str], i: int, created: str) -> JSON:
    name = content.agent_name(rng, i)
    base: JSON = {
        "id": ids[i],
        "object": "agent",
        "name": name,
        "model": content.MODELS[pick(i, _S_MODEL, len(content.MODELS))],
        "created_at": created,
        "deployment_chat": pick(i, _S_DEPLOY, 2) == 0,
        "source": content.SOURCES[pick(i, _S_SOURCE, len(content.SOURCES))],
        "instructions": content.instructions(rng, pick(i, _S_INSTRUCTIONS, 6)),
        "description": None if pick(i, _S_DESCRIPTION, 4) == 1 else f"{name}, at your service.",
        "tools": content.tools(rng, pick(i, _S_TOOLS, content.TOOL_KITS)),
        "completion_args": content.completion_args(
            rng, pick(i, _S_COMPLETION, content.COMPLETION_KINDS)
        ),
        "guardrails": content.guardrails(rng, pick(i, _S_GUARDRAILS, content.GUARDRAIL_KINDS)),
        "handoffs": _handoffs(rng, ids, i, pick(i, _S_HANDOFFS, 4)),
        "metadata": content.metadata(rng, pick(i, _S_METADATA, 4) != 0),
        "owner_id": None if pick(i, _S_OWNER, 7) == 0 else content.uuid_like(rng),
    }
    if pick(i, _S_EXTRA, 6) == 5:
        base["labels"] = rng.sample(["beta", "internal", "finance", "eu-only"], 2)
    return base


def _snapshots(
    rng: random.Random, pick: Picker, clock: Clock, base: JSON, i: int, count: int
) -> list[JSON]:
    """Older versions drift from the base (a revision note, sometimes another model or the tools
    reordered) so that every snapshot differs while the latest one is the base itself."""
    drifts = pick(i, _S_MODEL_DRIFT, 3) == 0
    model_index = content.MODELS.index(base["model"])
    snapshots = []
    for v in range(count):
        older = v < count - 1
        snap = dict(base)
        if older:
            note = content.revision_note(rng, v)
            snap["instructions"] = (
                note if base["instructions"] is None else base["instructions"] + "\n\n" + note
            )
        if older and drifts:
            snap["model"] = content.MODELS[(model_index + count - 1 - v) % len(content.MODELS)]
        if older and v % 2 == 1 and len(base["tools"]) > 1:
            snap["tools"] = base["tools"][1:] + base["tools"][:1]
        snap["version"] = v
        snap["versions"] = list(range(v + 1))
        snap["updated_at"] = base["created_at"] if v == 0 else _tick(clock, rng)
        snap["version_message"] = content.version_message(rng, v)
        snapshots.append(arrange(snap))
    return snapshots


def _aliases(rng: random.Random, clock: Clock, record: AgentRecord, count: int) -> None:
    for name in rng.sample(content.ALIAS_POOL, min(count, len(content.ALIAS_POOL))):
        target = record.active if name == "production" else rng.randrange(len(record.snapshots))
        stamp = _tick(clock, rng)
        record.aliases[name] = {
            "alias": name,
            "version": target,
            "created_at": stamp,
            "updated_at": stamp,
        }


def generate_records(
    *,
    agents: int,
    seed: int,
    max_versions: int,
    heavy_agents: int,
    heavy_versions: int,
    max_aliases: int,
    clock: Clock,
    min_versions: int = 1,
) -> list[AgentRecord]:
    if agents < 0 or min_versions < 1 or heavy_versions < 1 or max_aliases < 0:
        raise ValueError("agents and max_aliases must be >= 0, version counts >= 1")
    if max_versions < min_versions:
        raise ValueError("max_versions must be >= min_versions")
    # Ordinary agents get min_versions..max_versions versions; with min_versions 1 this is the
    # same draw as before the parameter existed, so every seed keeps its world.
    spread = max_versions - min_versions + 1
    rng = random.Random(seed)
    pick = Picker(seed)
    ids = ["ag_" + content.hex_id(rng) for _ in range(agents)]
    records = []
    for i in range(agents):
        created = _tick(clock, rng)
        count = heavy_versions if i < heavy_agents else min_versions + pick(i, _S_VERSIONS, spread)
        snapshots = _snapshots(rng, pick, clock, _base(rng, pick, ids, i, created), i, count)
        record = AgentRecord(ids[i], created, snapshots[-1]["updated_at"], snapshots, count - 1)
        if count > 1 and pick(i, _S_ROLLBACK, 5) == 0:
            record.active = count - 2
            record.updated_at = _tick(clock, rng)
        _aliases(rng, clock, record, pick(i, _S_ALIASES, max_aliases + 1))
        records.append(record)
    return records
