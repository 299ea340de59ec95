#!/usr/bin/env bash
# Make this machine able to run the browser tests (tests/ui, marker `browser`): Debian's headless Chromium and its
# chromedriver (selenium comes with the `dev` extra that `make test` installs). Idempotent; needs root for apt.
# CI calls it before `make test` and sets VALLEY_REQUIRE_BROWSER=1, so that a missing browser fails the browser tests
# instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ((${#missing[@]})); then
    echo "ci_browser_setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A browser that cannot start headless would otherwise only show up as a webdriver error inside the tests.
/usr/bin/chromium --headless=new --no-sandbox --disable-gpu --disable-background-networking --dump-dom about:blank \
    >/dev/null 2>&1 || { echo "ci_browser_setup: chromium does not start headless" >&2; exit 1; }
echo "ci_browser_setup: $(/usr/bin/chromium --version 2>/dev/null), $(chromedriver --version | cut -d' ' -f1-2)"
