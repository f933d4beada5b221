"""Alias history: the intervals each alias held, moved on from what the last load saw.

dlt's `scd2` merge strategy would keep the history, but it dates every row with one timestamp per
load (the load package's, or `x-boundary-timestamp`), so it cannot use the `updated_at` the API
gives for each alias, and its retirement of absent rows cannot tell a deleted alias (a
tombstone, dated) from one the run did not fetch. Its rule is kept (a new row when the tracked
value changes, the old one closed at the same instant, an absent one closed) and written here with
the API's own time where it has one.

An alias's move is dated by its `updated_at` when that is later than the interval it ends and not
later than the load that saw it ("api"); otherwise, as when the API does not move `updated_at` on
a PUT or the alias moved more than once between loads, by the time of that load ("run"). A
deletion is dated by the tombstone the load wrote (the run's time).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

API = "api"
RUN = "run"

AliasKey = tuple[str, str]  # agent_id, alias


@dataclass(frozen=True)
class LiveAlias:
    """An alias as the last load of its workspace saw it."""

    version: int
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class Interval:
    """One row of `agent_alias_history`: `version` held from `valid_from` to `valid_to`."""

    agent_id: str
    alias: str
    version: int
    valid_from: datetime
    valid_to: datetime | None
    valid_from_source: str
    valid_to_source: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @property
    def key(self) -> AliasKey:
        return (self.agent_id, self.alias)


def _dated(
    updated_at: datetime | None, after: datetime | None, observed_at: datetime
) -> tuple[datetime, str]:
    """When a move that `observed_at`'s load saw happened, and who says so."""
    if (
        updated_at is not None
        and (after is None or updated_at > after)
        and updated_at <= observed_at
    ):
        return updated_at, API
    return (observed_at if after is None else max(observed_at, after)), RUN


def moved_on(
    history: Iterable[Interval],
    live: Mapping[AliasKey, LiveAlias],
    tombstones: Mapping[AliasKey, datetime | None],
    observed_at: datetime,
) -> list[Interval]:
    """The rows to write so that `history` (a workspace's rows) tells what the load at
    `observed_at` saw: `live` aliases and deleted ones (`tombstones`, with their deletion time).
    An interval that ends is written again, closed; a move also opens one. Nothing changed,
    nothing written."""
    current: dict[AliasKey, Interval] = {}
    boundary: dict[AliasKey, datetime] = {}
    for interval in history:
        end = interval.valid_to or interval.valid_from
        if interval.key not in boundary or end > boundary[interval.key]:
            boundary[interval.key] = end
        if interval.valid_to is None:
            current[interval.key] = interval
    written: list[Interval] = []
    for key, alias in sorted(live.items()):
        held = current.get(key)
        if held is not None and held.version == alias.version:
            continue
        at, source = _dated(
            alias.updated_at, held.valid_from if held else boundary.get(key), observed_at
        )
        if held is not None:
            written.append(replace(held, valid_to=at, valid_to_source=source))
        written.append(
            Interval(
                *key, alias.version, at, None, source, None, alias.created_at, alias.updated_at
            )
        )
    for key, held in sorted(current.items()):
        if key in live:
            continue
        deleted_at = tombstones.get(key)
        end = deleted_at if deleted_at is not None and deleted_at <= observed_at else observed_at
        written.append(replace(held, valid_to=max(end, held.valid_from), valid_to_source=RUN))
    return written
