#!/usr/bin/env bash
# Installs what greenpoints needs on a fresh Debian machine, idempotently:
# a Go toolchain check and the PostgreSQL server binaries (the test harness
# and the demo start throwaway clusters from them).
set -euo pipefail

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
	echo "install-deps: Go is not installed; install Go 1.26 (https://go.dev/dl) and re-run" >&2
	exit 1
fi

have_pg() {
	compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1
}

if ! have_pg; then
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "install-deps: PostgreSQL server binaries not found; install Debian's postgresql package (apt-get install postgresql)" >&2
		exit 1
	fi
	echo "install-deps: installing PostgreSQL (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq postgresql >/dev/null
	# Debian starts a system cluster on 5432; we never use it, our harness runs its own.
fi
echo "install-deps: ok ($(go version | cut -d' ' -f3), $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | head -1))"
