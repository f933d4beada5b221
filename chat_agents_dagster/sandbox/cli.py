"""`chat-agents-sandbox`: serve a generated world until SIGINT or SIGTERM."""

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from chat_agents_dagster.sandbox.config import SandboxConfig
from chat_agents_dagster.sandbox.server import SandboxServer
from chat_agents_dagster.sandbox.world import World

logger = logging.getLogger("chat_agents_dagster.sandbox")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chat-agents-sandbox",
        description="A Mistral-compatible Agents API over generated agents. Prints its base URL "
        "on one line once it is listening.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--min-versions",
        type=int,
        default=1,
        help="fewest versions per agent; equal to --max-versions gives exactly that many",
    )
    p.add_argument("--max-versions", type=int, default=4)
    p.add_argument("--max-aliases", type=int, default=3)
    p.add_argument("--heavy-agents", type=int, default=0)
    p.add_argument("--heavy-versions", type=int, default=120)
    p.add_argument("--api-key", default="sandbox-key", help="empty string disables auth")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--rps-limit", type=float, default=None)
    p.add_argument("--retry-after-format", choices=["seconds", "http-date"], default="seconds")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--no-strict-page-size", action="store_true")
    p.add_argument("--clamp-page-size", type=int, default=None)
    p.add_argument("--legacy-only", action="store_true", help="answer 404 on /v1/agents/pages")
    orders = ["newest_first", "oldest_first"]
    p.add_argument("--listing-order", choices=orders, default="newest_first")
    p.add_argument("--versions-order", choices=orders, default="newest_first")
    p.add_argument(
        "--no-token-on-last-page",
        action="store_true",
        help="a null next_page_token on the cursor listing's last page (default: a token whose"
        " page is empty)",
    )
    p.add_argument(
        "--switch-moves-updated-at",
        action="store_true",
        help="switching an agent's active version moves its updated_at",
    )
    p.add_argument(
        "--alias-moves-updated-at",
        action="store_true",
        help="putting or deleting an alias moves its agent's updated_at",
    )
    p.add_argument(
        "--alias-put-moves-alias-updated-at",
        action="store_true",
        help="re-pointing an alias moves the alias's own updated_at (default: it stays)",
    )
    p.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="NAME",
        help="serve another workspace too (repeatable): its own --agents agents, seeded apart,"
        " for the key <api-key>-NAME",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    world = World.generate(
        agents=args.agents,
        seed=args.seed,
        min_versions=args.min_versions,
        max_versions=args.max_versions,
        heavy_agents=args.heavy_agents,
        heavy_versions=args.heavy_versions,
        max_aliases=args.max_aliases,
    )
    config = SandboxConfig(
        api_key=args.api_key or None,
        latency_s=args.latency_ms / 1000.0,
        rps_limit=args.rps_limit,
        retry_after_format=args.retry_after_format,
        fault_rate=args.fault_rate,
        strict_page_size=not args.no_strict_page_size,
        clamp_page_size=args.clamp_page_size,
        cursor_listing=not args.legacy_only,
        listing_order=args.listing_order,
        versions_order=args.versions_order,
        token_on_last_page=not args.no_token_on_last_page,
        switch_moves_updated_at=args.switch_moves_updated_at,
        alias_moves_updated_at=args.alias_moves_updated_at,
        alias_put_moves_alias_updated_at=args.alias_put_moves_alias_updated_at,
        seed=args.seed,
    )
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with SandboxServer(world, config, host=args.host, port=args.port) as server:
        logger.info("serving %d agents (seed %d)", len(world), args.seed)
        for n, name in enumerate(args.workspace, start=1):
            other = World.generate(
                agents=args.agents,
                seed=args.seed + n,
                min_versions=args.min_versions,
                max_versions=args.max_versions,
                max_aliases=args.max_aliases,
            )
            server.add_workspace(f"{args.api_key}-{name}", other)
            logger.info(
                "workspace %s: %d agents for key %s-%s", name, len(other), args.api_key, name
            )
        sys.stdout.write(server.base_url + "\n")
        sys.stdout.flush()
        stopping.wait()
    logger.info("stopped")
