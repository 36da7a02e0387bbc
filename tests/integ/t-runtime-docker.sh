#!/usr/bin/env bash
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
rt=$(realpath -e "$FF_BUILD/runtime/ffnet-runtime")
rtlog=$FF_WORK/runtime.log
mkdir -p "$FF_WORK"
: >"$rtlog"
# the engine's configuration: the three lines of the README's section
TB_DOCKERD_JSON=$(jq -nc --arg rt "$rt" --arg rd "$FF_RUNDIR" --arg log "$rtlog" \
	--arg shim "$(realpath -e "$FF_BUILD/libffshim/libffshim.so")" \
	--arg exec "$(realpath -e "$FF_BUILD/ffexec/ffexec")" \
	'{runtimes: {ffnet: {path: $rt, runtimeArgs: ["--ffnet-rundir=\($rd)", "--ffnet-shim=\($shim)",
	  "--ffnet-exec=\($exec)", "--ffnet-log=\($log)"]}}}')
export TB_DOCKERD_JSON

dk_rm_all() {
	local ids=()
	[[ ${TB_BACKEND:-} == docker && -d ${TB_STATE:-/nonexistent} ]] || return 0
	mapfile -t ids < <(tb_docker ps -aq --filter "label=$LABEL" 2>/dev/null)
	((${#ids[@]} == 0)) || tb_docker rm -f -v "${ids[@]}" >/dev/null 2>&1 || true
	return 0
}
flat() { printf '%s' "${1//$'\n'/ }"; }
on_exit() {
	set +e
	dk_rm_all
	ff_cleanup
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

rc=0
tb_init "$FF_WORK" || rc=$?
if ((rc == 2)); then
	echo "SKIP: no Docker engine can run here (reasons above)"
	exit 77
fi
((rc == 0)) || exit 1
if [[ $(tb_backend) != docker ]]; then
	echo "SKIP: the test bed's backend is $(tb_backend); this test is about Docker"
	exit 77
fi
dk_rm_all
rm -rf "$FF_RUNDIR"
tb_ensure jq
ff_check "dockerd lists the runtime ffnet" grep -qw ffnet <<<"$(tb_docker info -f '{{json .Runtimes}}')"

# ---- the plain image: the programs, nothing of ffnet
specs=(/bin/busybox /usr/bin/iperf3 /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/curl)
go=
if [[ -x $FF_BUILD/tests/progs/gonet ]]; then
	specs+=("$FF_BUILD/tests/progs/gonet=/usr/bin/gonet")
	go=1
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
ff_check "the image has nothing of ffnet but the test bed's empty /run/ffnet ($(flat "$found"))" \
	test "$found" = "run/ffnet/"

# ---- the router and a network with Docker's IPAM
# shellcheck disable=SC2119
ff_router_start
tb_net "$NET" 10.77.15.0/24
run=(--pull never --label "$LABEL" --runtime ffnet --network "$NET")
conns() { ffctl status --json | jq .conns_total; }
cid_of() { tb_docker inspect -f '{{.Id}}' "$1"; }
ip_of() { tb_docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1"; }
listed_ip() { # CONTAINER: its IPs in ffctl list (the router's name: the ID's first 63 characters)
	local id
	id=$(cid_of "$1") || return 0
	ffctl list --json | jq -r --arg n "${id:0:63}" '.[] | select(.name == $n) | .ips | join(",")'
}
nlisted() { ffctl list --json | jq length; }
# cli [DOCKER-OPTS...] -- PROGRAM ARGS...: a client container, removed at
# its end; its output (Docker's IPv4 forwarding warning dropped)
cli() {
	local opts=()
	while [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	tb_docker run --rm "${run[@]}" "${opts[@]}" "$IMG" "$@" 2>&1 |
		grep -v '^WARNING: IPv4 forwarding is disabled' || true
}
wait_listen() { # CONTAINER PORT: until the router holds its listener (an accelerated listen)
	local i n
	n=$(cid_of "$1" | cut -c1-63)
	for ((i = 0; i < 300; i++)); do
		ffctl status --json | jq -e --arg n "$n" --arg p ":$2" \
			'any(.listeners[]?; .container == $n and (.addr | endswith($p)))' >/dev/null 2>&1 &&
			return 0
		sleep 0.05
	done
	return 1
}

# ---- iperf3
tb_docker run -d --name ffrt-iperf "${run[@]}" "$IMG" iperf3 -s >/dev/null
sip=$(ip_of ffrt-iperf)
ff_check "iperf3 server: registered as itself with Docker's IP $sip" test "$(listed_ip ffrt-iperf)" = "$sip"
wait_listen ffrt-iperf 5201 || ff_log "iperf3 -s did not listen: $(tb_docker logs ffrt-iperf 2>&1 | tail -3)"
c0=$(conns)
out=$(cli -- iperf3 -c "$sip" -t 2 -J)
bytes=$(jq -r '.end.sum_received.bytes // 0' <<<"$out" 2>/dev/null || echo 0)
c1=$(conns)
ff_check "iperf3 client -> server: $bytes bytes, router connections $c0 -> $c1" \
	test "${bytes:-0}" -gt 0 -a "$c1" -ge $((c0 + 2))

# ---- redis
tb_docker run -d --name ffrt-redis "${run[@]}" "$IMG" redis-server --protected-mode no --save '' \
	--appendonly no >/dev/null
rip=$(ip_of ffrt-redis)
wait_listen ffrt-redis 6379 || ff_log "redis did not listen: $(tb_docker logs ffrt-redis 2>&1 | tail -3)"
c0=$(conns)
out=$(cli -- sh -c "redis-cli -h $rip set ffkey ffvalue && redis-cli -h $rip get ffkey")
c1=$(conns)
ff_check "redis-cli set/get: '$(flat "$out")', router connections $c0 -> $c1" \
	test "$(flat "$out")" = "OK ffvalue" -a "$c1" -ge $((c0 + 2))

# docker exec into a running container of the runtime: the exec'd
# program is set up as the container's was
tb_docker run -d --name ffrt-cli "${run[@]}" "$IMG" sleep 600 >/dev/null
c0=$(conns)
out=$(tb_docker exec ffrt-cli sh -c "echo \$LD_PRELOAD; redis-cli -h $rip get ffkey" 2>&1)
c1=$(conns)
ff_check "docker exec: '$(flat "$out")', router connections $c0 -> $c1" \
	test "$(flat "$out")" = "/opt/ffnet/libffshim.so ffvalue" -a "$c1" -gt "$c0"
tb_docker rm -f ffrt-cli >/dev/null

# a container in another's network namespace (--network container:X)
# uses X's registration: accelerated, nothing registered for it
n0=$(nlisted)
c0=$(conns)
out=$(tb_docker run --rm --pull never --label "$LABEL" --runtime ffnet --network container:ffrt-iperf \
	"$IMG" redis-cli -h "$rip" get ffkey 2>&1)
c1=$(conns)
ff_check "--network container:X: '$(flat "$out")', router connections $c0 -> $c1, still $n0 registered" \
	test "$(flat "$out")" = ffvalue -a "$c1" -gt "$c0" -a "$(nlisted)" = "$n0"

# ---- curl against a static server (ffexec's route; curl takes the shim's)
if [[ -n $go ]]; then
	tb_docker run -d --name ffrt-http "${run[@]}" "$IMG" gonet serve :8080 >/dev/null
else
	tb_docker run -d --name ffrt-http "${run[@]}" "$IMG" sh -c \
		'mkdir -p /tmp/www && echo "server remote=busybox" >/tmp/www/whoami && exec busybox httpd -f -p 8080 -h /tmp/www' >/dev/null
fi
hip=$(ip_of ffrt-http)
wait_listen ffrt-http 8080 || ff_log "the http server did not listen: $(tb_docker logs ffrt-http 2>&1 | tail -3)"
c0=$(conns)
out=$(cli -- curl -sS --max-time 20 "http://$hip:8080/whoami")
c1=$(conns)
ff_check "curl -> static server: '$(flat "$out")', router connections $c0 -> $c1" \
	test "$c1" -gt "$c0" -a -n "$(grep 'server remote=' <<<"$out")"
if [[ -n $go ]]; then
	# the client's overlay address as the server saw it: the client
	# container's Docker IP, in the network's subnet
	ff_check "the Go server saw a client from the network's subnet" grep -q 'remote=10\.77\.15\.' <<<"$out"
fi
ff_check "the three servers are listed ($(nlisted) containers)" test "$(nlisted)" = 3

# ---- gone with the container
tb_docker rm -f ffrt-iperf >/dev/null
ff_check "docker rm -f: iperf3's registration is gone" test "$(nlisted)" = 2
tb_docker kill ffrt-redis >/dev/null
for ((i = 0; i < 100; i++)); do [[ $(nlisted) == 1 ]] && break; sleep 0.05; done
ff_check "docker kill: redis's registration is gone without an rm" test "$(nlisted)" = 1
tb_docker rm -f ffrt-redis ffrt-http >/dev/null
ff_check "all gone: ffctl list is empty" test "$(nlisted)" = 0

# ---- left alone, and still running
out=$(cli -e FFNET=off -- sh -c 'echo "preload=${LD_PRELOAD:-none}"; ls /opt/ffnet 2>&1 | head -1')
ff_check "FFNET=off: runs untouched ($(flat "$out"))" grep -q 'preload=none' <<<"$out"
out=$(cli --annotation io.ffnet.enable=false -- sh -c 'echo "preload=${LD_PRELOAD:-none}"' 2>&1) ||
	true
if grep -q 'unknown flag: --annotation' <<<"$out"; then
	echo "# this docker CLI has no --annotation (Docker >= 24): the annotation is checked by the unit test"
else
	ff_check "annotation io.ffnet.enable=false: runs untouched ($(flat "$out"))" grep -q 'preload=none' <<<"$out"
fi
out=$(tb_docker run --rm --pull never --label "$LABEL" --runtime ffnet --network none "$IMG" \
	sh -c 'echo ran' 2>&1)
ff_check "--network none: runs ($(flat "$out")), nothing registered" \
	test "$(flat "$out")" = ran -a "$(nlisted)" = 0
ff_router_stop
out=$(cli -- sh -c 'echo "ran preload=${LD_PRELOAD:-none}"')
ff_check "no router: the container runs unaccelerated ($(flat "$out"))" grep -q 'ran preload=none' <<<"$out"
ff_check "no router: the runtime said why in its log" grep -q "not accelerated: cannot reach ffrouter" "$rtlog"

# ---- nothing left behind, the image unchanged
left=$(find "$FF_RUNDIR/c" "$FF_RUNDIR/oci" -mindepth 1 2>/dev/null | head -5)
ff_check "nothing left in $FF_RUNDIR/c and /oci ($(flat "$left"))" test -z "$left"
ff_check "the image is the same" test "$(img_id)" = "$img_before"
echo "# runtime log:"
sed 's/^/#   /' "$rtlog" | tail -n 30
ff_summary
