#!/usr/bin/env bash
# System prerequisites for building Slipstream: a C compiler, Python headers and libpq
# headers (pg_config) for psycopg[c]. Installs them with apt-get where that is possible
# (root on Debian/Ubuntu); otherwise says exactly what to install and fails.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v pg_config >/dev/null 2>&1 || missing+=(libpq-dev)
py_inc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
[ -n "$py_inc" ] && [ -f "$py_inc/Python.h" ] || missing+=(python3-dev)

[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "prereqs: installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  exit 0
fi
cat >&2 <<MSG
prereqs: missing ${missing[*]}.
  Debian/Ubuntu: sudo apt-get install -y ${missing[*]}
  Fedora/RHEL:   sudo dnf install -y gcc python3-devel libpq-devel
  macOS:         brew install libpq && export PATH="\$(brew --prefix libpq)/bin:\$PATH"
Then run 'make init' again.
MSG
exit 1
