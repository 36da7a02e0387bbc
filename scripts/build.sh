#!/usr/bin/env bash
# Configures (once) and builds ffnet into build/. Extra args go to meson setup.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -f build/build.ninja ]]; then
	meson setup --reconfigure build "$@" >/dev/null
else
	meson setup build "$@" >/dev/null
fi
ninja -C build
