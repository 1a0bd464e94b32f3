#!/usr/bin/env bash
# Install Debian's Chromium when it is missing and installable (root or passwordless sudo, apt).
# Browser tests and the browser demo use it through Playwright's executable_path; without it
# they skip with a reason, so a failure here is a notice, not an error.
set -u
for candidate in "${TEACH_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "pytest-teach: no Chromium and no apt-get; browser tests will skip (set TEACH_CHROMIUM=/path/to/chromium)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "pytest-teach: Chromium is missing; install it with 'sudo apt-get install chromium' (browser tests skip until then)" >&2
    exit 0
  fi
fi
echo "pytest-teach: installing Debian's chromium (once)..."
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
  echo "pytest-teach: chromium installed at $(command -v chromium)"
else
  echo "pytest-teach: could not install chromium; browser tests will skip" >&2
fi
exit 0
