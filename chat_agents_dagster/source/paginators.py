"""Paginators for Mistral's two kinds of list: the cursor listing and the offset page lists.

The cursor listing promises no null token on its last page and no token that is never repeated
(Mistral's SDK stops on a null token and on an empty page): dlt's cursor paginator with its
empty-page stop, and an error instead of paging forever when a token comes back.

dlt's PageNumberPaginator stops on an empty page (one wasted request per list) or on a total the
API does not send. Mistral's page lists carry no total, and a server may clamp `page_size` below
what was asked, so "shorter than requested" is no stop signal either. What is known instead: how
many items to expect (an agent's `versions` field) and how long earlier pages were.
"""

from typing import Any

from dlt.sources.helpers.rest_client.paginators import (
    JSONResponseCursorPaginator,
    PageNumberPaginator,
)
from requests import Request, Response


class RepeatedPageTokenError(RuntimeError):
    """The cursor listing handed out a page token it had handed out before."""


class CursorPaginator(JSONResponseCursorPaginator):
    """`next_page_token` into `page_token` until the token is null or missing or a page is
    empty; a token seen before ends the listing with an error naming `endpoint`."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            cursor_path="next_page_token", cursor_param="page_token", stop_after_empty_page=True
        )
        self.endpoint = endpoint
        self._seen: set[str] = set()

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        token = self._next_reference
        if not self._has_next_page or token is None:
            return
        if token in self._seen:
            raise RepeatedPageTokenError(
                f"{self.endpoint} gave a next_page_token it had given before, after"
                f" {len(self._seen) + 1} pages: the server's pagination repeats itself, so the"
                " listing is stopped rather than read forever. Nothing of this run is loaded."
            )
        self._seen.add(token)


class ExactPagePaginator(PageNumberPaginator):
    """Pages `page=0,1,...` and stops on the first of: every expected item seen, an empty page,
    or a page shorter than an earlier one (the server's real page size is then known)."""

    def __init__(self, expected_items: int | None = None) -> None:
        super().__init__(base_page=0, page_param="page", total_path=None)
        self.expected_items = expected_items
        self.items_seen = 0
        self.longest_page = 0

    def init_request(self, request: Request) -> None:
        self.items_seen = 0
        self.longest_page = 0
        super().init_request(request)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        # Replaces RangePaginator's rule (empty page or total) with the exact one above; setting
        # _has_next_page is how dlt's documented custom paginators end a list.
        page_length = len(data or ())
        self.items_seen += page_length
        is_last = (
            page_length == 0
            or page_length < self.longest_page
            or (self.expected_items is not None and self.items_seen >= self.expected_items)
        )
        self.longest_page = max(self.longest_page, page_length)
        if is_last:
            self._has_next_page = False
        else:
            self.current_value += self.value_step

    def __str__(self) -> str:
        return f"ExactPagePaginator(expected_items={self.expected_items})"
