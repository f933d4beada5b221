"""Mistral's Agents API through dlt's REST client: auth, error translation and request accounting.

Retries (429 with Retry-After, 5xx, timeouts, dropped connections) are dlt's own: its session
retries by status and honours Retry-After, bounded by the `[runtime] request_*` settings. This
module decides what an answer means: 401/403 end the run at once, 404 on a child is "gone", a
success whose body is not JSON (a proxy's HTML page, a body cut short) is retried like a server
error; and when the retries run out, the error names the endpoint.
"""

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from dlt.sources.helpers.rest_client.redaction import sanitize_url
from requests import ConnectTimeout, HTTPError, RequestException, Response, Timeout
from requests.exceptions import ChunkedEncodingError, InvalidJSONError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.utils import get_environ_proxies

from chat_agents_dagster.source.configuration import API_KEY_SETTINGS
from chat_agents_dagster.source.pacing import PacedAdapter, Pacer
from chat_agents_dagster.source.paginators import CursorPaginator, ExactPagePaginator
from chat_agents_dagster.source.stats import RunStats

logger = logging.getLogger(__name__)

# Endpoint templates, the unit of request accounting.
ENDPOINT_AGENTS_PAGES = "GET /agents/pages"
ENDPOINT_AGENTS_LEGACY = "GET /agents"
ENDPOINT_AGENT = "GET /agents/{agent_id}"
ENDPOINT_VERSIONS = "GET /agents/{agent_id}/versions"
ENDPOINT_VERSION = "GET /agents/{agent_id}/versions/{version}"
ENDPOINT_ALIASES = "GET /agents/{agent_id}/aliases"


class ApiAuthError(HTTPError):
    """The API refused the key (401/403). Never retried; the message names where the key lives."""


class ApiNotFoundError(HTTPError):
    """404: the agent or version is gone, or the base URL points at the wrong place."""


class ApiAnswerError(InvalidJSONError):
    """A success whose body is not JSON: retried like a server error, then it ends the run."""


class ApiConnectionError(RequestException):
    """No complete answer (timeouts, refused or dropped connections) after every attempt."""


# What dlt's session retries without an answer to decide by; after the last attempt they end the
# run, re-raised as ApiConnectionError naming the endpoint (requests' own messages name the host
# only, and not the request that failed).
_TRANSPORT_ERRORS = (RequestsConnectionError, Timeout, ChunkedEncodingError)


def api_outage(error: BaseException) -> RequestException | None:
    """The error that says the API is down, if that is what ended the run: no complete answer
    after every attempt (ApiConnectionError), or a server error (5xx) after dlt's retries. Found
    anywhere in the chain dlt wraps around a resource's error. None for everything a later try
    would meet again: a refused key, a 404, a 429 (a quota that the pacing setting is for), a bad
    setting, a warehouse error."""
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ApiConnectionError):
            return current
        if isinstance(current, HTTPError) and not isinstance(current, ApiAuthError):
            status = current.response.status_code if current.response is not None else 0
            if status >= 500:
                return current
        # dlt keeps the resource's own error as `exception` as well as the cause.
        pending += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return None


def _where(endpoint: str, url: str | None) -> str:
    return f"{endpoint} ({sanitize_url(url)})" if url else endpoint


def _json_body(endpoint: str, response: Response) -> Any:
    try:
        return response.json()
    except ValueError as error:  # requests' JSONDecodeError; its text names no body content
        content_type = response.headers.get("Content-Type") or "no Content-Type"
        raise ApiAnswerError(
            f"The Mistral API answered {response.status_code} to"
            f" {_where(endpoint, response.url)} with a body that is not JSON ({content_type},"
            f" {len(response.content)} bytes: {error}); a proxy's error page or a body cut short.",
            response=response,
        ) from None


def _environment_settings(base_url: str) -> dict[str, Any]:
    """What requests would read from the environment for `base_url` (proxies from HTTP(S)_PROXY
    and NO_PROXY, a CA bundle from REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE), read once per run with
    requests' own functions, as session attributes with `trust_env` off. Left on, requests walks
    the whole environment on every request: 2.4 instead of 1.5 ms of CPU per request against
    the sandbox, which made a full load's extraction CPU-bound. The key always goes as a bearer
    header, so `trust_env`'s other use, ~/.netrc, never applied. `test_proxy.py` holds this to
    requests' behaviour."""
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return {"trust_env": False, "proxies": get_environ_proxies(base_url), "verify": verify}


def _is_malformed_answer(response: Response | None, error: BaseException | None) -> bool:
    return isinstance(error, ApiAnswerError)


def _raise_for(
    endpoint: str, response: Response, key_settings: Sequence[str] = API_KEY_SETTINGS
) -> None:
    status = response.status_code
    where = _where(endpoint, response.url)
    if status in (401, 403):
        raise ApiAuthError(
            f"The Mistral API answered {status} to {where}: the API key was refused. Set a valid"
            f" key in {', '.join(key_settings[:-1])} or {key_settings[-1]}.",
            response=response,
        )
    if status == 404:
        raise ApiNotFoundError(f"The Mistral API answered 404 to {where}.", response=response)
    if status >= 400:
        raise HTTPError(f"The Mistral API answered {status} to {where}.", response=response)


class AgentsApi:
    """Typed reads of the six GET routes. One instance per run; safe to share across threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        stats: RunStats,
        pacer: Pacer,
        key_settings: Sequence[str] = API_KEY_SETTINGS,
    ) -> None:
        self.base_url = base_url
        self.stats = stats
        self.key_settings = key_settings
        self._auth = BearerTokenAuth(api_key)
        self._pacer = pacer
        # dlt's Client builds one retrying session per thread, configured from [runtime].
        self._http = Client(
            raise_for_status=False,
            retry_condition=_is_malformed_answer,
            session_attrs=_environment_settings(base_url),
        )
        self._runtime = resolve_configuration(RuntimeConfiguration())  # the same settings
        self._local = threading.local()
        # Set once the agents were listed by offset pages, which shift when the list changes.
        self.listing_may_shift = False

    def _client(self) -> RESTClient:
        client: RESTClient | None = getattr(self._local, "client", None)
        if client is None:
            session = self._http.session
            adapter = PacedAdapter(self._pacer)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            client = RESTClient(base_url=self.base_url, auth=self._auth, session=session)
            self._local.client = client
        return client

    def _hooks(self, endpoint: str) -> dict[str, Any]:
        # Requests calls response hooks inside the retried send, so every attempt is counted and an
        # HTTPError carrying the response lets dlt's retry decide by status.
        def on_response(response: Response, *args: Any, **kwargs: Any) -> None:
            self.stats.record(endpoint, response.status_code)
            _raise_for(endpoint, response, self.key_settings)
            if not 200 <= response.status_code < 300:
                return  # a redirect, which requests follows
            try:
                body = _json_body(endpoint, response)
            except ApiAnswerError:
                self.stats.malformed_answer()
                raise
            # Parsed here, inside the retried send, so that a malformed body is retried; the
            # paginator and `_get` then read this parse instead of parsing the body again.
            response.json = lambda **_: body  # type: ignore[method-assign]

        return {"response": [on_response]}

    def _unanswered(self, endpoint: str, path: str, error: RequestException) -> ApiConnectionError:
        # A body cut off is noticed while reading it, by an error that carries no request.
        request = error.request
        url = str(request.url) if request is not None and request.url else f"{self.base_url}/{path}"
        timeout = self._runtime.request_timeout
        if isinstance(error, ConnectTimeout):
            what = f"no connection within {timeout} s"
        elif isinstance(error, Timeout):
            what = f"no answer within {timeout} s"
        elif isinstance(error, ChunkedEncodingError):
            what = "the answer was cut off"
        else:
            what = "the connection failed or was dropped"
        return ApiConnectionError(
            f"The Mistral API gave no complete answer to {_where(endpoint, url)}"
            f" in {self._runtime.request_max_attempts} attempts: {what}. The attempts and their"
            " timeout are the settings [runtime] request_max_attempts and request_timeout"
            " (RUNTIME__REQUEST_MAX_ATTEMPTS, RUNTIME__REQUEST_TIMEOUT).",
            request=error.request,
        )

    def _pages(
        self,
        endpoint: str,
        path: str,
        params: dict[str, Any],
        paginator: BasePaginator,
        data_selector: str = "$",
    ) -> Iterator[list[Any]]:
        pages = self._client().paginate(
            path,
            params=params,
            paginator=paginator,
            data_selector=data_selector,
            hooks=self._hooks(endpoint),
        )
        try:
            for page in pages:
                yield list(page)
        except _TRANSPORT_ERRORS as error:
            raise self._unanswered(endpoint, path, error) from error

    def _get(self, endpoint: str, path: str) -> Any:
        try:
            return self._client().get(path, hooks=self._hooks(endpoint)).json()
        except _TRANSPORT_ERRORS as error:
            raise self._unanswered(endpoint, path, error) from error

    def agent_pages(self, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """Every agent, a page at a time: the cursor listing, or the legacy page list where the
        server has no cursor listing (it answers 404 before any page was read)."""
        cursor = CursorPaginator(ENDPOINT_AGENTS_PAGES)
        pages = self._pages(
            ENDPOINT_AGENTS_PAGES, "agents/pages", {"page_size": page_size}, cursor, "data"
        )
        try:
            first = next(pages, None)
        except ApiNotFoundError:
            logger.warning(
                "%s answered 404; listing agents with the legacy GET /agents", ENDPOINT_AGENTS_PAGES
            )
            self.listing_may_shift = True
            try:
                yield from self._pages(
                    ENDPOINT_AGENTS_LEGACY, "agents", {"page_size": page_size}, ExactPagePaginator()
                )
            except ApiNotFoundError as error:
                raise ApiNotFoundError(
                    f"{error} Neither agent listing exists at {self.base_url}: check the"
                    " setting base_url (SOURCES__CHAT_AGENTS_SOURCE__BASE_URL); Mistral's ends"
                    " in /v1.",
                    response=error.response,
                ) from None
            return
        if first is not None:
            yield first
            yield from pages

    def agent(self, agent_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(ENDPOINT_AGENT, f"agents/{agent_id}")
        return result

    def versions(self, agent_id: str, expected: int, page_size: int) -> list[dict[str, Any]]:
        """All versions of an agent; `expected` (its `versions` count, 0 if unknown) ends the
        listing without asking for an empty page."""
        paginator = ExactPagePaginator(expected_items=expected or None)
        path = f"agents/{agent_id}/versions"
        return [
            row
            for page in self._pages(ENDPOINT_VERSIONS, path, {"page_size": page_size}, paginator)
            for row in page
        ]

    def version(self, agent_id: str, version: int) -> dict[str, Any]:
        result: dict[str, Any] = self._get(
            ENDPOINT_VERSION, f"agents/{agent_id}/versions/{version}"
        )
        return result

    def aliases(self, agent_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(ENDPOINT_ALIASES, f"agents/{agent_id}/aliases")
        return result
