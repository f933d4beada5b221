"""The whole thing offline: start the sandbox API, load it into DuckDB, print what was loaded.

chat-agents-demo [--agents 200] [--port 0]
"""

import argparse
import logging
import os
import sys

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World
from chat_agents_dagster.source.__main__ import main as load_main

SANDBOX_KEY = "sandbox-key"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200, help="agents in the sandbox world")
    parser.add_argument("--max-versions", type=int, default=5, help="versions per agent, at most")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated world")
    parser.add_argument("--port", type=int, default=0, help="sandbox port (0: any free port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    world = World.generate(agents=args.agents, seed=args.seed, max_versions=args.max_versions)
    with SandboxServer(world, SandboxConfig(api_key=SANDBOX_KEY), port=args.port) as server:
        sys.stdout.write(f"Sandbox API with {args.agents} agents at {server.base_url}\n")
        os.environ["SOURCES__CHAT_AGENTS_SOURCE__BASE_URL"] = server.base_url
        os.environ["SOURCES__CHAT_AGENTS_SOURCE__API_KEY"] = SANDBOX_KEY
        return load_main([])


if __name__ == "__main__":
    sys.exit(main())
