#!/bin/sh
# Install Debian's `chromium` for the docs' real-browser check (tests/docs/test_browser.py),
# once: does nothing when a chromium binary is already on PATH.
set -eu
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "docs: installing chromium (Debian package) for the browser check" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
