"""Runtime knobs of the sandbox server; the server reads them on every request, so tests may
change them between calls."""

from dataclasses import dataclass
from typing import Literal

RetryAfterFormat = Literal["seconds", "http-date"]
Order = Literal["newest_first", "oldest_first"]


@dataclass
class SandboxConfig:
    """How the sandbox misbehaves.

    api_key: required bearer key (None disables the check). latency_s: sleep added to /v1 answers.
    rps_limit: requests per second over all /v1 routes in a sliding 1 s window, then 429.
    retry_after_format: how a 429's Retry-After is written. fault_rate: probability of a
    500/502/503 on GET /v1 routes, drawn from an rng seeded with `seed`. strict_page_size:
    out-of-range page_size is a 422; otherwise it is accepted and, when clamp_page_size is set,
    silently capped at it. cursor_listing: False answers 404 on /v1/agents/pages, like an older
    deployment.

    Where Mistral's documentation leaves the behaviour open, the default is the choice that is
    harder on a client: listing_order (agents, cursor and legacy) and versions_order are newest
    first, so that an offset page list shifts when an agent or version is created during a scan;
    token_on_last_page gives the last page of the cursor listing a token whose page is empty;
    switch_moves_updated_at and alias_moves_updated_at False leave an agent's updated_at alone
    when its active version is switched or one of its aliases is put or deleted;
    alias_put_moves_alias_updated_at False leaves an existing alias's own updated_at alone when
    a PUT re-points it, so a client cannot date the move from the API.
    """

    api_key: str | None = "sandbox-key"
    latency_s: float = 0.0
    rps_limit: float | None = None
    retry_after_format: RetryAfterFormat = "seconds"
    fault_rate: float = 0.0
    strict_page_size: bool = True
    clamp_page_size: int | None = None
    cursor_listing: bool = True
    listing_order: Order = "newest_first"
    versions_order: Order = "newest_first"
    token_on_last_page: bool = True
    switch_moves_updated_at: bool = False
    alias_moves_updated_at: bool = False
    alias_put_moves_alias_updated_at: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.retry_after_format not in ("seconds", "http-date"):
            raise ValueError("retry_after_format must be 'seconds' or 'http-date'")
        for order in (self.listing_order, self.versions_order):
            if order not in ("newest_first", "oldest_first"):
                raise ValueError("an order must be 'newest_first' or 'oldest_first'")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        if self.clamp_page_size is not None and self.clamp_page_size < 1:
            raise ValueError("clamp_page_size must be >= 1")
