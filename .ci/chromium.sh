#!/usr/bin/env bash
# Headless Chromium for the browser test (chat_agents_dagster_tests/test_browser.py), from
# Debian's `chromium` package: installed if missing (the test drives /usr/bin/chromium and never
# downloads a browser of its own), quick when present. Needs root. `.ci/run` sources it and then
# has CHAT_AGENTS_REQUIRE_BROWSER=1, which turns the test's "no browser, skip" into a failure; a
# developer can run it once (`sudo bash .ci/chromium.sh`).
set -euo pipefail

if ! [ -x /usr/bin/chromium ]; then
    echo "+ apt-get install chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

export CHAT_AGENTS_REQUIRE_BROWSER=1
echo "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium (version unknown)') at /usr/bin/chromium"
