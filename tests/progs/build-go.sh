#!/usr/bin/env bash
# Builds gonet for meson, offline and hermetic:
#   build-go.sh GO SRCDIR OUTPUT WORKDIR
# A module with no dependencies, CGO_ENABLED=0 (a static binary), the local
# toolchain only, no module proxy, and every cache, GOPATH and HOME under
# WORKDIR (in the build dir): nothing is fetched, nothing written elsewhere.
set -euo pipefail
go=$1 src=$2 out=$3 work=$4
mkdir -p "$work/home" "$work/tmp"
export CGO_ENABLED=0 GO111MODULE=on GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
	GOPROXY=off GOSUMDB=off GOWORK=off GOENV=off \
	GOCACHE="$work/cache" GOPATH="$work/path" GOMODCACHE="$work/path/pkg/mod" \
	HOME="$work/home" XDG_CACHE_HOME="$work/home/.cache" XDG_CONFIG_HOME="$work/home/.config" \
	GOTMPDIR="$work/tmp"
out=$(realpath -m "$out")
cd "$src"
exec "$go" build -o "$out" .
