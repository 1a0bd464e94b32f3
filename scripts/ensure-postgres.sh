#!/usr/bin/env bash
# Install Debian's PostgreSQL server when no server binaries (initdb, postgres, pg_ctl) are found
# and it is installable (root or passwordless sudo, apt).
# The tests start their own throwaway server from these binaries (on 127.0.0.1, a free port, a
# temporary data folder); they never use a system cluster. So the package's own service is kept
# from starting during the install (policy-rc.d), and nothing is left running. Without the
# binaries the PostgreSQL tests skip with a reason, so a failure here is a notice, not an error.
set -u

have_server() {
  local bindir
  for bindir in /usr/lib/postgresql/*/bin "$(pg_config --bindir 2>/dev/null)"; do
    if [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ] \
      && [ -x "$bindir/pg_ctl" ]; then
      return 0
    fi
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 \
    && command -v pg_ctl >/dev/null 2>&1
}

if have_server; then
  exit 0
fi
PACKAGES=(postgresql)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "pytest-teach: no PostgreSQL server binaries (initdb, postgres, pg_ctl) and no apt-get; the PostgreSQL tests will skip (install a PostgreSQL server, 14 or newer, and put its bin folder on PATH)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "pytest-teach: no PostgreSQL server binaries; install with 'sudo apt-get install ${PACKAGES[*]}' (the PostgreSQL tests skip until then)" >&2
    exit 0
  fi
fi
# Keep the package's service from starting: the tests need the binaries only. A policy-rc.d
# that is already there (Docker images have one) is the administrator's and stays as it is.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=""
if [ ! -e "$POLICY" ]; then
  if printf '#!/bin/sh\n# pytest-teach: no service starts while it installs PostgreSQL\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod 755 "$POLICY"; then
    OWN_POLICY=1
    trap '$SUDO rm -f "$POLICY"' EXIT
  fi
fi
echo "pytest-teach: installing Debian's ${PACKAGES[*]} for the PostgreSQL tests (once; its service is not started)..."
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq >/dev/null \
  && $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null \
  && have_server; then
  echo "pytest-teach: installed ${PACKAGES[*]}"
else
  echo "pytest-teach: could not install ${PACKAGES[*]}; the PostgreSQL tests will skip" >&2
fi
if [ -n "$OWN_POLICY" ]; then
  $SUDO rm -f "$POLICY"
  trap - EXIT
fi
exit 0
