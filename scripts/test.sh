#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the
# dependencies, builds, and runs every meson suite (unit, sanitize, doc,
# valgrind, harness, fuzz, integ, vm). Suites that cannot run here (no container engine, no VM) skip
# with exit 77 and say why. Ends with meson's summary.
#   scripts/test.sh [meson test args...]     e.g. --suite unit
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ((EUID != 0)); then
	echo "test.sh: run as root (it installs packages, starts dockerd, makes namespaces)" >&2
	exit 1
fi
scripts/deps.sh
scripts/build.sh
exec meson test -C build --print-errorlogs --num-processes 2 "$@"
