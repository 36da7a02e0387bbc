#!/usr/bin/env bash
# Installs everything ffnet needs to build, test, benchmark and demo on a
# fresh Debian 12 machine (root, Debian archive reachable). Idempotent: a
# second run installs nothing. FFNET_DEPS=build limits it to the build.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

build=(meson ninja-build pkg-config gcc libc6-dev libibverbs-dev librdmacm-dev libevent-dev
	libprotobuf-c-dev protobuf-c-compiler libcunit1-dev libsodium-dev
	libjson-c-dev)
tests=(valgrind clang iproute2 iptables procps psmisc util-linux kmod busybox-static jq
	docker.io iperf3 sockperf redis-server redis-tools nginx-light curl wrk
	python3 python3-matplotlib etcd-server
	golang-go musl-tools # tests/progs: a static Go and a musl program for ffexec
	containernetworking-plugins # tests/integ/t-cni.sh chains our plugin after bridge + host-local
	systemd mandoc man-db # systemd-analyze verify of the unit; the man pages linted
	docker-compose # tests/integ/t-compose.sh: docker/compose.yml, the router as a container
	podman) # tests/integ/t-runtime-podman.sh: ffnet-runtime under podman
mapfile -t vm < <(grep -vE '^\s*(#|$)' "$here/tests/vm/deps.txt")

want=("${build[@]}")
[[ ${FFNET_DEPS:-all} == build ]] || want+=("${tests[@]}" "${vm[@]}")

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	echo "deps: all ${#want[@]} packages present"
	exit 0
fi
if ((EUID != 0)); then
	echo "deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's nginx and redis packages try to start their services; nothing here
# runs systemd, and the tests start their own instances.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
