#!/usr/bin/env bash
# shellcheck disable=SC2016 # shell lines run in the container: single quotes on purpose
# ffnet-runtime under Docker as a user sets it up: dockerd with the runtime
# added (daemon.json "runtimes"), containers started with `--runtime ffnet`
# from an image with nothing of ffnet in it, on a user-defined network with
# Docker's own IPAM (no --ip, no -v, no -e): no ffctl register by hand.
# iperf3, redis (also from a `docker exec`) and curl against a static Go
# server (the ffexec route) between them: bytes right, the router counts the connections, ffctl list
# shows the containers with their Docker IPs, and after `docker rm -f` (or
# `docker kill`) they are gone. Then: a container that opts out, one with
# no network, and one started while no router runs, all start and run
# unaccelerated; nothing is left in the router's directories; the image is
# the same at the end.
# Docker only: exits 77 on the netns backend or without a backend.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib/ffenv.sh"

FF_NAME=runtime-docker
FF_RUNDIR=${FF_RUNDIR:-/run/ffnet-t}
FF_WORK=${FF_WORK:-/var/tmp/ffnet-testbed/$FF_NAME}
TB_BACKEND=${TB_BACKEND:-docker}
export TB_BACKEND
IMG=ffrtplain
NET=ffrt
LABEL=ffnet.test=$FF_NAME

for f in ffrouter/ffrouter ffctl/ffctl ffexec/ffexec runtime/ffnet-runtime libffshim/libffshim.so; do
	[[ -e $FF_BUILD/$f ]] || { ff_log "build first: $FF_BUILD/$f is missing"; exit 1; }
done
rtlog=$FF_WORK/runtime.log
mkdir -p "$FF_WORK"
: >"$rtlog"
# the engine's configuration, as the README's three steps have it
TB_DOCKERD_JSON=$(ff_runtime_json "$rtlog")
export TB_DOCKERD_JSON

dk_rm_all() {
	local ids=()
	[[ ${TB_BACKEND:-} == docker && -d ${TB_STATE:-/nonexistent} ]] || return 0
	mapfile -t ids < <(tb_docker ps -aq --filter "label=$LABEL" 2>/dev/null)
	((${#ids[@]} == 0)) || tb_docker rm -f -v "${ids[@]}" >/dev/null 2>&1 || true
	return 0
}
on_exit() {
	set +e
	dk_rm_all
	ff_cleanup
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

ff_docker_init || exit $?
dk_rm_all
rm -rf "$FF_RUNDIR"
tb_ensure jq
ff_check "dockerd lists the runtime ffnet" grep -qw ffnet <<<"$(tb_docker info -f '{{json .Runtimes}}')"

# ---- the plain image: the programs, nothing of ffnet
specs=(/bin/busybox /usr/bin/iperf3 /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/curl)
if [[ -x $FF_BUILD/tests/progs/gonet ]]; then
	specs+=("$FF_BUILD/tests/progs/gonet=/usr/bin/gonet")
else
	echo "# gonet is not built here (tests/progs/meson.build says what it needs): curl goes to busybox httpd"
fi
tb_image "$IMG" "${specs[@]}"
img_id() { tb_docker image inspect -f '{{.Id}}' "$IMG:latest"; }
img_before=$(img_id)
ffnet_files() {
	local id
	id=$(tb_docker create --pull never --label "$LABEL" "$IMG" 2>/dev/null) || return 1
	tb_docker export "$id" | tar -t | sed 's|^\./||' | grep -E '(^|/)(ffnet|ffexec|libffshim)' || true
	tb_docker rm -f -v "$id" >/dev/null
}
found=$(ffnet_files) || found="(no container from $IMG to export)"
ff_check "the image has nothing of ffnet but the test bed's empty /run/ffnet ($(ff_flat "$found"))" \
	test "$found" = "run/ffnet/"

# ---- the router and a network with Docker's IPAM
# shellcheck disable=SC2119
ff_router_start
tb_net "$NET" 10.77.15.0/24
run=(--pull never --label "$LABEL" --runtime ffnet --network "$NET")
# cli [DOCKER-OPTS...] -- PROGRAM ARGS...: a client container, removed at
# its end; its output (Docker's IPv4 forwarding warning dropped)
cli() {
	local opts=()
	while [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	tb_docker run --rm "${run[@]}" "${opts[@]}" "$IMG" "$@" 2>&1 |
		grep -v '^WARNING: IPv4 forwarding is disabled' || true
}
# shellcheck disable=SC2034 # read by lib/runtime-apps.sh
RT_ENG=tb_docker RT_WHO=Docker RT_PFX=ffrt RT_RM=(-f)
# shellcheck source-path=SCRIPTDIR source=lib/runtime-apps.sh
. "$(dirname "$0")/lib/runtime-apps.sh"
conns() { rt_conns; }
nlisted() { rt_nlisted; }

# ---- iperf3, redis
rt_iperf
rt_redis_server
c0=$(conns)
out=$(cli -- sh -c "redis-cli -h $rip set ffkey ffvalue && redis-cli -h $rip get ffkey")
c1=$(conns)
ff_check "redis-cli set/get: '$(ff_flat "$out")', router connections $c0 -> $c1" \
	test "$(ff_flat "$out")" = "OK ffvalue" -a "$c1" -ge $((c0 + 2))

# docker exec into a running container of the runtime: the exec'd
# program is set up as the container's was
tb_docker run -d --name ffrt-cli "${run[@]}" "$IMG" sleep 600 >/dev/null
c0=$(conns)
out=$(tb_docker exec ffrt-cli sh -c "echo \$LD_PRELOAD; redis-cli -h $rip get ffkey" 2>&1)
c1=$(conns)
ff_check "docker exec: '$(ff_flat "$out")', router connections $c0 -> $c1" \
	test "$(ff_flat "$out")" = "/opt/ffnet/libffshim.so ffvalue" -a "$c1" -gt "$c0"
tb_docker rm -f ffrt-cli >/dev/null

# a container in another's network namespace (--network container:X)
# uses X's registration: accelerated, nothing registered for it
n0=$(nlisted)
c0=$(conns)
# (the program's output only: on a host whose ip_forward is 0, as on a
# fresh machine, the docker CLI warns about it on stderr)
out=$(tb_docker run --rm --pull never --label "$LABEL" --runtime ffnet --network container:ffrt-iperf \
	"$IMG" redis-cli -h "$rip" get ffkey 2>"$FF_WORK/netx.err")
c1=$(conns)
err=$(grep -v '^WARNING: IPv4 forwarding is disabled' "$FF_WORK/netx.err" || true)
ff_check "--network container:X: '$(ff_flat "$out")'${err:+ (stderr: $(ff_flat "$err"))}, router connections $c0 -> $c1, still $n0 registered" \
	test "$(ff_flat "$out")" = ffvalue -a "$c1" -gt "$c0" -a "$(nlisted)" = "$n0"

# ---- curl to a static server; then all gone with their containers
rt_http '10\.77\.15\.'
rt_gone

# ---- left alone, and still running
out=$(cli -e FFNET=off -- sh -c 'echo "preload=${LD_PRELOAD:-none}"; ls /opt/ffnet 2>&1 | head -1')
ff_check "FFNET=off: runs untouched ($(ff_flat "$out"))" grep -q 'preload=none' <<<"$out"
out=$(cli --annotation io.ffnet.enable=false -- sh -c 'echo "preload=${LD_PRELOAD:-none}"' 2>&1) ||
	true
if grep -q 'unknown flag: --annotation' <<<"$out"; then
	echo "# this docker CLI has no --annotation (Docker >= 24): the annotation is checked by the unit test"
else
	ff_check "annotation io.ffnet.enable=false: runs untouched ($(ff_flat "$out"))" grep -q 'preload=none' <<<"$out"
fi
out=$(tb_docker run --rm --pull never --label "$LABEL" --runtime ffnet --network none "$IMG" \
	sh -c 'echo ran' 2>&1)
ff_check "--network none: runs ($(ff_flat "$out")), nothing registered" \
	test "$(ff_flat "$out")" = ran -a "$(nlisted)" = 0
ff_router_stop
out=$(cli -- sh -c 'echo "ran preload=${LD_PRELOAD:-none}"')
ff_check "no router: the container runs unaccelerated ($(ff_flat "$out"))" grep -q 'ran preload=none' <<<"$out"
ff_check "no router: the runtime said why in its log" grep -q "not accelerated: cannot reach ffrouter" "$rtlog"

# ---- nothing left behind, the image unchanged
left=$(find "$FF_RUNDIR/c" "$FF_RUNDIR/oci" -mindepth 1 2>/dev/null | head -5)
ff_check "nothing left in $FF_RUNDIR/c and /oci ($(ff_flat "$left"))" test -z "$left"
ff_check "the image is the same" test "$(img_id)" = "$img_before"
echo "# runtime log:"
sed 's/^/#   /' "$rtlog" | tail -n 30
ff_summary
