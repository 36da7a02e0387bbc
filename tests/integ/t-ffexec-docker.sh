#!/usr/bin/env bash
# The programs LD_PRELOAD cannot reach, in real Docker containers whose
# image was not changed for ffnet: a plain image (ffplain) holds only the
# programs, and every container gets ffexec bind-mounted from the host and
# set as its entrypoint, and its router directory at /run/ffnet, as a user
# would run them:
#   docker run -v .../ffexec:/opt/ffnet/ffexec:ro -v RUNDIR/c/d1:/run/ffnet \
#       --entrypoint /opt/ffnet/ffexec --network NET --ip IP ffplain PROGRAM ARGS...
# Static Go (net/http), static glibc with raw syscalls (rawnet), musl
# (muslnet) and static busybox (nc, httpd + wget), server in a container
# registered as d1, client in one registered as d2: bytes intact, overlay
# addresses as the peers see them, each connection counted by the router.
# Then, with the router stopped, the same entrypoint runs the programs over
# the container network, untouched. The image is the same at the end.
# Docker only: exits 77 on the netns backend or without a backend.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib/ffenv.sh"

FF_NAME=ffexec-docker
FF_RUNDIR=${FF_RUNDIR:-/run/ffnet-t}
FF_WORK=${FF_WORK:-/var/tmp/ffnet-testbed/$FF_NAME}
# the test needs Docker: no point starting the netns fallback
TB_BACKEND=${TB_BACKEND:-docker}
export TB_BACKEND
IMG=ffplain
NET=ffdock
LABEL=ffnet.test=$FF_NAME
EXEC_IN=/opt/ffnet/ffexec
ip1=10.77.14.2 ip2=10.77.14.3

for f in ffrouter/ffrouter ffctl/ffctl ffexec/ffexec; do
	[[ -x $FF_BUILD/$f ]] || { ff_log "build first: $FF_BUILD/$f is missing"; exit 1; }
done
exe=$(realpath -e "$FF_BUILD/ffexec/ffexec")

# every container this test started, also those of a killed earlier run
# (they would outlive tb_cleanup in the kept docker data-root)
dk_rm_all() {
	local ids=()
	[[ ${TB_BACKEND:-} == docker && -d ${TB_STATE:-/nonexistent} ]] || return 0
	mapfile -t ids < <(tb_docker ps -aq --filter "label=$LABEL" 2>/dev/null)
	((${#ids[@]} == 0)) || tb_docker rm -f -v "${ids[@]}" >/dev/null 2>&1 || true
	return 0
}
# ctr_rm NAME: remove one container (a name no ID can start with)
ctr_rm() { tb_docker rm -f -v "$1" >/dev/null 2>&1 || true; }
on_exit() {
	set +e # (a failed step must not skip the rest of the cleanup)
	dk_rm_all
	ff_cleanup
}
trap on_exit EXIT
# (a timeout's SIGTERM or a ^C: exit, so that the EXIT trap runs)
trap 'exit 143' TERM
trap 'exit 130' INT

ff_docker_init || exit $?
dk_rm_all
rm -rf "$FF_RUNDIR" # a fresh router state (the test bed lock makes it ours)
tb_ensure jq

# ---- the plain image: the programs, nothing of ffnet
progs=()
specs=(/bin/busybox)
for p in gonet rawnet muslnet; do
	if [[ -x $FF_BUILD/tests/progs/$p ]]; then
		progs+=("$p")
		specs+=("$FF_BUILD/tests/progs/$p=/usr/bin/$p")
	else
		echo "# $p is not built here (tests/progs/meson.build says what it needs): left out"
	fi
done
have() { [[ " ${progs[*]} " == *" $1 "* ]]; }
tb_image "$IMG" "${specs[@]}"
img_id() { tb_docker image inspect -f '{{.Id}}' "$IMG:latest"; }
img_before=$(img_id)

# The test bed puts an empty /run/ffnet in every image (a mount point);
# anything else named after ffnet, ffexec or the shim would be a change.
ffnet_files() {
	local id
	id=$(tb_docker create --pull never --label "$LABEL" "$IMG" 2>/dev/null) || return 1
	tb_docker export "$id" | tar -t | sed 's|^\./||' | grep -E 'ffnet|ffexec|ffshim|libff' || true
	tb_docker rm -f -v "$id" >/dev/null
}
found=$(ffnet_files) || found="(no container from $IMG to export)"
ff_check "the image has nothing of ffnet but the empty /run/ffnet ($(ff_flat "$found"))" \
	test "$found" = "run/ffnet/"
out=$(tb_docker run --rm --name ffd-noexec --pull never --label "$LABEL" --network none \
	--entrypoint "$EXEC_IN" "$IMG" /bin/busybox true 2>&1) && rc=0 || rc=$?
ff_check "without the bind mount the image has no ffexec (status $rc: $out)" \
	grep -q "$EXEC_IN: no such file or directory" <<<"$out"
ctr_rm ffd-noexec

# ---- the router, the network, the two registrations
# shellcheck disable=SC2119 # no router options
ff_router_start
tb_net "$NET" 10.77.14.0/24
ffctl register d1 --ip "$ip1" >/dev/null
ffctl register d2 --ip "$ip2" >/dev/null
# as a user runs them: ffexec from the host as the entrypoint, the
# container's router directory at /run/ffnet, a static overlay address
ctr_opts() { # REGISTRATION IP
	printf '%s\n' --pull never --label "$LABEL" --network "$NET" --ip "$2" \
		-v "$exe:$EXEC_IN:ro" -v "$FF_RUNDIR/c/$1:/run/ffnet" --entrypoint "$EXEC_IN"
}
mapfile -t srv_opts < <(ctr_opts d1 "$ip1")
mapfile -t cli_opts < <(ctr_opts d2 "$ip2")

# srv NAME [DOCKER-OPTS...] -- PROGRAM ARGS...: start the server container
# NAME (d1, at ip1) in the background
srv() {
	local name=$1 opts=()
	shift
	while [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	if ! tb_docker run -d --name "$name" "${opts[@]}" "${srv_opts[@]}" "$IMG" "$@" \
		>/dev/null 2>"$FF_WORK/run.err"; then
		ff_log "docker run $name: $(<"$FF_WORK/run.err")"
		return 1
	fi
}
# cli [DOCKER-OPTS...] -- PROGRAM ARGS...: run a client container (d2, at
# ip2) in the foreground, removed when it ends; the program's output and
# status. (Docker's warning that IPv4 forwarding is off is dropped: the
# test bed means it, nothing is routed.)
ncli=0
cli() {
	local opts=()
	while [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	ncli=$((ncli + 1))
	{ tb_docker run --rm --name "ffd-cli$ncli" "${opts[@]}" "${cli_opts[@]}" "$IMG" "$@" 2>&1 >&3 3>&- |
		{ grep -v '^WARNING: IPv4 forwarding is disabled' || true; } >&2; } 3>&1
}
# srv_end NAME [TIMEOUT]: wait until the server container exits; its status
# (124 if it still runs). slog: its output.
slog=""
srv_end() {
	local name=$1 t=${2:-20} i st=""
	for ((i = 0; i < t * 20; i++)); do
		st=$(tb_docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$name") || break
		[[ $st == exited\ * ]] && break
		sleep 0.05
	done
	slog=$(tb_docker logs "$name" 2>&1) || true
	[[ $st == exited\ * ]] || return 124
	return "${st#exited }"
}

# router_listens PORT: the router holds d1's listener on PORT (the
# server's listen was supervised)
router_listens() {
	ff_status_json | jq -e --arg p ":$1" \
		'[.listeners[]? | select(.container == "d1" and (.addr | endswith($p)))] | length > 0' >/dev/null
}
# kernel_listens NAME PORT: a TCP socket listens on PORT in container NAME
kernel_listens() {
	local pid hex
	pid=$(tb_docker inspect -f '{{.State.Pid}}' "$1" 2>/dev/null) && ((pid > 0)) || return 1
	printf -v hex ':%04X ' "$2"
	awk -v p="$hex" 'index($2 " ", p) && $4 == "0A" { f = 1 } END { exit !f }' \
		"/proc/$pid/net/tcp" 2>/dev/null
}
wait_for() { # SECONDS CMD...
	local t=$1 i
	shift
	for ((i = 0; i < t * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

n=1000000
# ---- static Go: net/http
if have gonet; then
	port=7101
	srv ffd-gonet -- gonet serve "$ip1:$port" -n 2
	ff_check "gonet serve (ffexec entrypoint): the router holds its listener" wait_for 10 router_listens "$port"
	ff_mark
	out=$(cli -e FF_LOG_LEVEL=info -- gonet get "http://$ip1:$port/bytes" -n "$n" 2>&1) || true
	ff_check "gonet get: $n bytes checked" grep -q "^ok $n\$" <<<"$out"
	ff_check "gonet get: ffexec is the entrypoint (pid 1) and the router supervises it" \
		grep -q "ffexec\[1\] info: pid 1: the router supervises" <<<"$out"
	out=$(cli -- gonet get "http://$ip1:$port/whoami" 2>&1) || true
	ff_check "gonet: the server sees the client's overlay address ($(ff_flat "$out"))" \
		grep -q "^server remote=$ip2:[0-9]* local=$ip1:$port\$" <<<"$out"
	ff_check "gonet: the client sees the overlay addresses" \
		grep -q "^client local=$ip2:[0-9]* remote=$ip1:$port\$" <<<"$out"
	ff_check "gonet http: accelerated" ff_accelerated 2
	ff_check "gonet serve ended after 2 requests" srv_end ffd-gonet
	ff_check "gonet serve said so ($(ff_flat "$slog"))" grep -q "^served 2\$" <<<"$slog"
	ctr_rm ffd-gonet
fi

# ---- static glibc with raw syscalls, and musl: an echo, non-blocking connect
port=7102
for p in rawnet muslnet; do
	have "$p" || continue
	port=$((port + 1))
	srv "ffd-$p" -- "$p" serve "$ip1" "$port"
	wait_for 10 router_listens "$port" || ff_log "$p: no listener of d1 on $port"
	ff_mark
	out=$(cli -- "$p" connect -nb "$ip1" "$port" "$n" 2>&1) || true
	ff_check "$p: bytes echoed intact ($(ff_flat "$out"))" grep -q "^ok $n local $ip2:[0-9]* peer $ip1:$port\$" <<<"$out"
	ff_check "$p: accelerated" ff_accelerated 1
	ff_check "$p serve ended after its connection" srv_end "ffd-$p"
	ff_check "$p: the server sees the client's overlay address ($(ff_flat "$slog"))" \
		grep -q "^peer $ip2:[0-9]*\$" <<<"$slog"
	ff_check "$p: the server echoed $n bytes" grep -q "^echoed $n\$" <<<"$slog"
	ctr_rm "ffd-$p"
done

# ---- static busybox: nc, then httpd + wget
blob=$FF_WORK/www/blob
mkdir -p "$FF_WORK/www"
head -c 300000 /dev/urandom >"$blob"
sum=$(sha256sum <"$blob")
port=7110
srv ffd-nc -- /bin/busybox nc -l -p "$port" -e /bin/busybox cat
wait_for 10 router_listens "$port" || ff_log "busybox nc: no listener of d1 on $port"
ff_mark
back=$(cli -i -- /bin/busybox nc -w 5 "$ip1" "$port" <"$blob" | sha256sum) || true
ff_check "busybox nc: 300000 bytes echoed intact" test "$back" = "$sum"
ff_check "busybox nc: accelerated" ff_accelerated 1
ff_check "busybox nc -l ended after its connection" srv_end ffd-nc
ctr_rm ffd-nc

port=7111
# (the file comes from a read-only volume; the image stays as it is)
srv ffd-httpd -v "$FF_WORK/www:/srv/www:ro" -- /bin/busybox httpd -f -vv -p "$ip1:$port" -h /srv/www
wait_for 10 router_listens "$port" || ff_log "busybox httpd: no listener of d1 on $port"
ff_mark
back=$(cli -- /bin/busybox wget -q -O - "http://$ip1:$port/blob" | sha256sum) || true
ff_check "busybox httpd + wget: the file intact" test "$back" = "$sum"
ff_check "busybox httpd + wget: accelerated" ff_accelerated 1
httpd_logged() { slog=$(tb_docker logs ffd-httpd 2>&1) && grep -q "^$ip2:[0-9]*: response:200\$" <<<"$slog"; }
ff_check "busybox httpd logged the client's overlay address" wait_for 5 httpd_logged
ctr_rm ffd-httpd

# ---- no router: the same entrypoint, over the container network, untouched
ff_check "the router stops cleanly" ff_router_stop
if have gonet; then
	prog=(gonet serve "$ip1:7120" -n 1)
	cmd=(gonet get "http://$ip1:7120/whoami")
	want="^server remote=$ip2:[0-9]* local=$ip1:7120\$"
else
	prog=(rawnet serve "$ip1" 7120)
	cmd=(rawnet connect -nb "$ip1" 7120 "$n")
	want="^ok $n local $ip2:[0-9]* peer $ip1:7120\$"
fi
srv ffd-norouter -- "${prog[@]}"
wait_for 10 kernel_listens ffd-norouter 7120 || ff_log "no router: nothing listens on 7120"
out=$(cli -e FF_LOG_LEVEL=info -- "${cmd[@]}" 2>&1) || true
ff_check "no router: ${prog[0]} over the container network ($(ff_flat "$out"))" grep -q "$want" <<<"$out"
ff_check "no router: ffexec found none and ran the program untouched" \
	grep -q "no router at /run/ffnet/ffrouter.sock (.*): running ${prog[0]} without the filter" <<<"$out"
ff_check "no router: the server ended after its connection" srv_end ffd-norouter
ctr_rm ffd-norouter

ff_check "the image is the one built at the start ($img_before)" test "$(img_id)" = "$img_before"
ff_summary
