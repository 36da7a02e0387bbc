#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build an ffnet app image by hand: a FROM-scratch image holding the given host
# programs and files, everything ldd lists for them, busybox, and the ffnet shim
# at /usr/lib/ffnet/libffshim.so. A thin CLI over tb_image
# (tests/integ/lib/testbed.sh); see docker/README.md.
set -euo pipefail

usage() {
	cat <<-EOF
		usage: $0 [options] FILE|DIR|SRC=DST...

		  -n, --name NAME    image name (default ffnet-app); tagged NAME:HASH and NAME:latest
		  --shim PATH        the shim to put at /usr/lib/ffnet/libffshim.so
		                     (default build/libffshim/libffshim.so of this tree)
		  --no-shim          do not add the shim
		  -H, --host ADDR    docker engine to build into (default \$DOCKER_HOST,
		                     else unix:///var/run/docker.sock); it must be running
		  --save FILE        no engine needed: build with a private dockerd that is
		                     stopped afterwards, and write the image to FILE for
		                     'docker load -i FILE'
		  --rootfs DIR       only write the image's root tree to DIR (new directory)

		FILE and DIR go to the same path in the image, SRC=DST to DST. ELF files
		bring the libraries ldd lists (glibc and the loader included).
		Example: $0 /usr/bin/iperf3 /usr/bin/sockperf
	EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
top=$(dirname "$here")
name=ffnet-app
shim=$top/build/libffshim/libffshim.so
with_shim=1
host=${DOCKER_HOST:-unix:///var/run/docker.sock}
save=""
rootfs=""
specs=()
while (($#)); do
	case $1 in
	-n | --name) name=${2:?}; shift 2 ;;
	--shim) shim=${2:?}; shift 2 ;;
	--no-shim) with_shim=""; shift ;;
	-H | --host) host=${2:?}; shift 2 ;;
	--save) save=${2:?}; shift 2 ;;
	--rootfs) rootfs=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; specs+=("$@"); break ;;
	-*) echo "$0: unknown option $1" >&2; usage >&2; exit 2 ;;
	*) specs+=("$1"); shift ;;
	esac
done
if [[ -n $with_shim ]]; then
	if [[ ! -f $shim ]]; then
		echo "$0: no shim at $shim (build it with ninja -C build, or pass --shim/--no-shim)" >&2
		exit 1
	fi
	specs+=("$shim=/usr/lib/ffnet/libffshim.so")
fi
[[ -n $save ]] && save=$(realpath -m -- "$save")

# shellcheck source=../tests/integ/lib/testbed.sh
. "$top/tests/integ/lib/testbed.sh"

if [[ -n $rootfs ]]; then
	tb_rootfs "$rootfs" "${specs[@]}"
	echo "root tree in $rootfs (e.g. tar -C $rootfs -c . | docker import - $name)"
	exit 0
fi

export TB_BACKEND=docker TB_LOCK=0
trap tb_cleanup EXIT
if [[ -n $save ]]; then
	# a private engine whose data stays in the work dir as a build cache
	tb_init "${TB_APPIMAGE_DIR:-/var/tmp/ffnet-testbed/app-image}"
	tb_image "$name" "${specs[@]}"
	tb_docker save -o "$save" "$name:latest"
	echo "saved $name:latest to $save (load it with: docker load -i $save)"
else
	export TB_DOCKER_HOST=$host
	wd=$(mktemp -d "${TMPDIR:-/tmp}/ffnet-app-image.XXXXXX")
	trap 'tb_cleanup; rm -rf "$wd"' EXIT
	if ! tb_init "$wd"; then
		echo "$0: no docker engine at $host; start one (docker/README.md) or use --save FILE" >&2
		exit 1
	fi
	tb_image "$name" "${specs[@]}"
	echo "built $name:latest in the engine at $host"
fi
