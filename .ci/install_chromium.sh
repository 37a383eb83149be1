#!/usr/bin/env bash
# Install headless Chromium + chromedriver (Debian packages) for the report browser test, if missing.
# Called by install.sh --dev; safe to re-run. Needs root (or sudo) and apt.
set -euo pipefail
if [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium and chromedriver already installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install chromium and chromedriver yourself; the browser test is skipped without them" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "not root and no sudo: cannot install chromium; the browser test will be skipped" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver
echo "installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
