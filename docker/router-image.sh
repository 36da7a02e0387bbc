#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build the router's image, ffnet/router, from a build directory of this
# tree: no registry and no base image. The root tree is made by tb_rootfs
# (tests/integ/lib/testbed-image.sh): ffrouter and ffctl in /usr/bin, what
# ldd lists for them, busybox-static (a shell for `docker exec`), a few /etc
# files, and, when the host has rdma-core, libibverbs and its providers (the
# router dlopen()s them; it runs without). The tree is imported as one layer
# tagged NAME:HASH and NAME:latest, HASH naming its content: a second run
# with the same inputs builds nothing. See docker/README.md and
# docker/compose.yml, which runs it.
set -euo pipefail

usage() {
	cat <<-EOF
		usage: $0 [options] BUILDDIR

		  -n, --name NAME    image name (default ffnet/router)
		  -H, --host ADDR    docker engine to build into (default \$DOCKER_HOST,
		                     else unix:///var/run/docker.sock)
		  --no-rdma          leave libibverbs and its providers out
		  --rootfs DIR       only write the root tree to DIR (a new directory)

		BUILDDIR holds ffrouter/ffrouter and ffctl/ffctl (meson setup BUILDDIR).
		The image runs 'ffrouter --rundir /run/ffnet --log-level info'; bind-mount
		the host's run directory at /run/ffnet (docker/compose.yml).
	EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
top=$(dirname "$here")
name=ffnet/router
host=${DOCKER_HOST:-unix:///var/run/docker.sock}
rdma=1
rootfs=""
build=""
while (($#)); do
	case $1 in
	-n | --name) name=${2:?}; shift 2 ;;
	-H | --host) host=${2:?}; shift 2 ;;
	--no-rdma) rdma=""; shift ;;
	--rootfs) rootfs=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	-*) echo "$0: unknown option $1" >&2; usage >&2; exit 2 ;;
	*) [[ -z $build ]] || { usage >&2; exit 2; }; build=$1; shift ;;
	esac
done
[[ -n $build ]] || { usage >&2; exit 2; }
for f in ffrouter/ffrouter ffctl/ffctl; do
	[[ -x $build/$f ]] || { echo "$0: $build/$f is missing (ninja -C $build)" >&2; exit 1; }
done

specs=("$build/ffrouter/ffrouter=/usr/bin/ffrouter" "$build/ffctl/ffctl=/usr/bin/ffctl")
verbs=/usr/lib/x86_64-linux-gnu/libibverbs.so.1
if [[ -n $rdma && -e $verbs ]]; then
	# each provider by name: some are links to a library beside libibverbs
	specs+=("$verbs")
	for f in "${verbs%.so.1}"/*.so; do [[ -e $f ]] && specs+=("$f"); done
	[[ -d /etc/libibverbs.d ]] && specs+=(/etc/libibverbs.d)
fi

# shellcheck source=../tests/integ/lib/testbed.sh
. "$top/tests/integ/lib/testbed.sh"

if [[ -n $rootfs ]]; then
	tb_rootfs "$rootfs" "${specs[@]}"
	echo "root tree in $rootfs"
	exit 0
fi

# /usr/bin/docker, the engine's own CLI (a newer one in /usr/local/bin may
# want buildx); any docker for import and tag otherwise
cli=/usr/bin/docker
[[ -x $cli ]] || cli=docker
dk() { "$cli" -H "$host" "$@"; }
if ! err=$(dk version -f '{{.Server.Version}}' 2>&1); then
	echo "$0: no docker engine at $host: $err" >&2
	exit 1
fi

wd=$(mktemp -d "${TMPDIR:-/tmp}/ffnet-router-image.XXXXXX")
trap 'rm -rf "$wd"' EXIT
tb_rootfs "$wd/root" "${specs[@]}"
# (ldconfig's record of inodes and times: not content, and different each time)
rm -f "$wd/root/var/cache/ldconfig/aux-cache"
changes=('ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' 'ENV FFNET_RUNDIR=/run/ffnet'
	'ENTRYPOINT ["/usr/bin/ffrouter"]' 'CMD ["--rundir", "/run/ffnet", "--log-level", "info"]')
# the image's hash: the tree's paths, types, modes, link targets and bytes,
# and its configuration
hash=$(cd "$wd/root" && {
	printf '%s\n' "${changes[@]}"
	find . -printf '%y %P %m %l\n' | LC_ALL=C sort
	find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
} | sha256sum | cut -c1-12)
if dk image inspect "$name:$hash" >/dev/null 2>&1; then
	echo "$name:$hash is up to date"
else
	args=()
	for c in "${changes[@]}"; do args+=(-c "$c"); done
	tar -C "$wd/root" --numeric-owner -cf - . |
		dk import -m "ffnet router from $(realpath -e "$build")" "${args[@]}" - "$name:$hash" >/dev/null
	echo "built $name:$hash ($(du -sh --apparent-size "$wd/root" | cut -f1))"
fi
dk tag "$name:$hash" "$name:latest"
echo "tagged $name:latest in the engine at $host"
