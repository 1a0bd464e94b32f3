#!/usr/bin/env bash
# Install Debian's Chromium, and Xvfb (a virtual display for the headed-browser tests), when
# they are missing and installable (root or passwordless sudo, apt).
# Browser tests and the browser demo use Chromium through Playwright's executable_path; the
# headed `teach record` test runs it in a window on Xvfb. Without them those tests skip with a
# reason, so a failure here is a notice, not an error.
set -u
PACKAGES=()
HAVE_CHROMIUM=""
for candidate in "${TEACH_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    HAVE_CHROMIUM=1
    break
  fi
done
if [ -z "$HAVE_CHROMIUM" ]; then PACKAGES+=(chromium fonts-dejavu-core); fi
if ! command -v Xvfb >/dev/null 2>&1 && ! command -v xvfb-run >/dev/null 2>&1; then
  PACKAGES+=(xvfb)
fi
if [ ${#PACKAGES[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "pytest-teach: ${PACKAGES[*]} missing and no apt-get; browser tests that need them will skip (set TEACH_CHROMIUM=/path/to/chromium; install Xvfb for the headed test)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "pytest-teach: ${PACKAGES[*]} missing; install with 'sudo apt-get install ${PACKAGES[*]}' (the browser tests that need them skip until then)" >&2
    exit 0
  fi
fi
echo "pytest-teach: installing Debian's ${PACKAGES[*]} (once)..."
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; then
  echo "pytest-teach: installed ${PACKAGES[*]}"
else
  echo "pytest-teach: could not install ${PACKAGES[*]}; the browser tests that need them will skip" >&2
fi
exit 0
