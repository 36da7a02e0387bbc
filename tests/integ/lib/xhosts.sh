# shellcheck shell=bash
# Two emulated hosts for the cross-host tests, demo and benchmark:
#
#   host A (netns ffxh-A, 10.10.0.1) ==veth== host B (netns ffxh-B, 10.10.0.2)
#     bridge 10.200.1.1/24, NAT out          bridge 10.200.2.1/24, NAT out
#     container a1 (netns) 10.200.1.2         container b1 (netns) 10.200.2.2
#     ffrouter: host A, ingress :7946         ffrouter: host B, ingress :7946
#
# Containers share the host filesystem (programs are the host's binaries) and
# reach their router through FFNET_SOCK. Everything lives in namespaces this
# file creates; xh_cleanup removes them (safe to call twice, from a trap).
#
#   . tests/integ/lib/xhosts.sh
#   xh_init || exit $?            # 77 when namespaces cannot be made here
#   xh_router A; xh_router B      # routers, file store, shared secret
#   xh_static_map                  # hosts and containers registered on both
#   xh_x b1 -- iperf3 -s -1 &      # with the shim (xh_plain: without)
#   xh_x a1 -- iperf3 -c 10.200.2.2

[[ -n ${_XH_LOADED:-} ]] && return 0
_XH_LOADED=1
XH_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
XH_BUILD=${FF_BUILD:-$XH_TOP/build}
XH_PFX=ffxh
XH_WORK=${XH_WORK:-/tmp/ffxh.$$}
XH_SHIM=$XH_BUILD/libffshim/libffshim.so
XH_PORT=7946
declare -A XH_HOSTIP=([A]=10.10.0.1 [B]=10.10.0.2)
declare -A XH_NET=([A]=10.200.1 [B]=10.200.2)
declare -A XH_CHOST=([a1]=A [b1]=B [a2]=A)
declare -A XH_CIP=([a1]=10.200.1.2 [b1]=10.200.2.2 [a2]=10.200.1.3)
declare -A XH_ROUTER=()

xh_log() { printf 'xhosts: %s\n' "$*" >&2; }
xh_ns() { echo "$XH_PFX-$1"; } # host or container name -> netns

_xh_veth_pair() { # NS1 IF1 NS2 IF2 (made under temporary names: eth0 exists here)
	local t1=xh$$a$RANDOM t2=xh$$b$RANDOM
	ip link add "$t1" type veth peer name "$t2" &&
		ip link set "$t1" netns "$1" && ip link set "$t2" netns "$3" &&
		ip -n "$1" link set "$t1" name "$2" && ip -n "$3" link set "$t2" name "$4"
}

_xh_host() { # H: the host namespace, its bridge and NAT
	local h=$1 ns net=${XH_NET[$1]}
	ns=$(xh_ns "$h")
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up
	ip -n "$ns" link add br0 type bridge
	ip -n "$ns" addr add "$net.1/24" dev br0
	ip -n "$ns" link set br0 up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$ns" iptables -w -t nat -A POSTROUTING -s "$net.0/24" ! -o br0 -j MASQUERADE
}

_xh_container() { # C
	local c=$1 h=${XH_CHOST[$1]} ns hns
	ns=$(xh_ns "$c")
	hns=$(xh_ns "$h")
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up
	_xh_veth_pair "$ns" eth0 "$hns" "v$c" || return 1
	ip -n "$hns" link set "v$c" master br0
	ip -n "$hns" link set "v$c" up
	ip -n "$ns" addr add "${XH_CIP[$c]}/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "${XH_NET[$h]}.1"
}

# xh_init: the two hosts, their link and containers a1, a2, b1.
xh_init() {
	if ((EUID != 0)) || ! command -v ip >/dev/null || ! command -v iptables >/dev/null; then
		echo "SKIP: needs root, iproute2 and iptables"
		return 77
	fi
	# a run that was killed leaves its namespaces, and the next one would
	# fail to create them: take them down first (the vm and integ tests
	# never run in parallel)
	for c in a1 a2 b1 A B; do
		if ip netns pids "$(xh_ns "$c")" >/dev/null 2>&1; then
			echo "note: removing namespace $(xh_ns "$c") left by an earlier run"
			ip netns pids "$(xh_ns "$c")" | xargs -r kill -KILL 2>/dev/null
			ip netns del "$(xh_ns "$c")"
		fi
	done
	trap xh_cleanup EXIT
	mkdir -p "$XH_WORK"
	if ! _xh_host A 2>"$XH_WORK/init.err"; then
		echo "SKIP: cannot create network namespaces here: $(tail -n 1 "$XH_WORK/init.err")"
		return 77
	fi
	_xh_host B || return 1
	_xh_veth_pair "$(xh_ns A)" eth0 "$(xh_ns B)" eth0 || return 1
	ip -n "$(xh_ns A)" addr add "${XH_HOSTIP[A]}/24" dev eth0
	ip -n "$(xh_ns B)" addr add "${XH_HOSTIP[B]}/24" dev eth0
	ip -n "$(xh_ns A)" link set eth0 up
	ip -n "$(xh_ns B)" link set eth0 up
	for c in a1 a2 b1; do _xh_container "$c" || return 1; done
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$XH_WORK/secret"
	chmod 600 "$XH_WORK/secret"
}

xh_cleanup() {
	local h c
	for h in "${!XH_ROUTER[@]}"; do xh_router_stop "$h"; done
	declare -F xh_etcd_stop >/dev/null && xh_etcd_stop
	# whatever still runs in our namespaces goes with them
	for c in a1 a2 b1 A B; do
		ip netns pids "$(xh_ns "$c")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "$(xh_ns "$c")" 2>/dev/null
	done
	[[ -n ${XH_KEEP:-} ]] || rm -rf "$XH_WORK"
	return 0
}

xh_rundir() { echo "$XH_WORK/run-$1"; }

# xh_router H [ffrouter args...]: starts host H's router (state kept in its
# run directory across restarts). XH_ROUTER_WRAP runs it under a wrapper.
xh_router() {
	local h=$1 i rd
	shift
	rd=$(xh_rundir "$h")
	# shellcheck disable=SC2086 # a word list on purpose
	xh_spawn in "$h" -- ${XH_ROUTER_WRAP:-} "$XH_BUILD/ffrouter/ffrouter" \
		--rundir "$rd" --host-id "$h" --ingress "${XH_HOSTIP[$h]}:$XH_PORT" \
		--secret-file "$XH_WORK/secret" --log-level info "$@" >>"$XH_WORK/router-$h.log" 2>&1
	XH_ROUTER[$h]=$XH_PID
	for ((i = 0; i < 500; i++)); do
		[[ -S $rd/ffrouter.sock ]] && xh_ctl "$h" list >/dev/null 2>&1 && return 0
		kill -0 "${XH_ROUTER[$h]}" 2>/dev/null || break
		sleep 0.02
	done
	xh_log "router $h did not start: $(tail -n 5 "$XH_WORK/router-$h.log")"
	return 1
}

xh_router_stop() { # H [KILL]
	local pid=${XH_ROUTER[$1]:-} rc=0
	[[ -n $pid ]] || return 0
	kill "-${2:-TERM}" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || rc=$?
	unset "XH_ROUTER[$1]"
	[[ ${2:-TERM} == KILL ]] && return 0
	return $rc
}

xh_ctl() { # H ARGS...: ffctl against host H's router
	local h=$1
	shift
	"$XH_BUILD/ffctl/ffctl" --rundir "$(xh_rundir "$h")" "$@"
}

# xh_static_map: the file store: every router knows both hosts and all
# containers (its own ones as local).
xh_static_map() {
	local h o c
	for h in A B; do
		o=$([[ $h == A ]] && echo B || echo A)
		xh_ctl "$h" host add "$o" --addr "${XH_HOSTIP[$o]}:$XH_PORT" >/dev/null || return 1
		for c in a1 a2 b1; do
			if [[ ${XH_CHOST[$c]} == "$h" ]]; then
				xh_ctl "$h" register "$c" --ip "${XH_CIP[$c]}" >/dev/null || return 1
			else
				xh_ctl "$h" register "$c" --ip "${XH_CIP[$c]}" --host "$o" >/dev/null || return 1
			fi
		done
	done
}

# xh_x C -- CMD...: run CMD in container C with the shim (xh_plain: without).
xh_x() {
	local c=$1
	shift 2
	ip netns exec "$(xh_ns "$c")" env LD_PRELOAD="$XH_SHIM" \
		FFNET_SOCK="$(xh_rundir "${XH_CHOST[$c]}")/c/$c/ffrouter.sock" "$@"
}

xh_plain() {
	local c=$1
	shift 2
	ip netns exec "$(xh_ns "$c")" "$@"
}

# xh_in NS -- CMD...: run in a host's namespace (A, B) or a container's.
xh_in() {
	local n=$1
	shift 2
	ip netns exec "$(xh_ns "$n")" "$@"
}

# xh_wait_port NS PORT: until something listens on TCP PORT there.
xh_wait_port() {
	local i
	for ((i = 0; i < 250; i++)); do
		xh_in "$1" -- ss -ltn 2>/dev/null | grep -q ":$2 " && return 0
		sleep 0.02
	done
	return 1
}

# xh_dnat H PORT C [CPORT]: the container network's way in: host H's PORT
# forwarded to container C's CPORT (default PORT), as `docker -p` does.
xh_dnat() {
	xh_in "$1" -- iptables -w -t nat -A PREROUTING -d "${XH_HOSTIP[$1]}" -p tcp --dport "$2" \
		-j DNAT --to-destination "${XH_CIP[$3]}:${4:-$2}"
}

# xh_route_direct: route the container subnets between the hosts without
# NAT (like a host-gw overlay), so a container on A reaches one on B under
# its own address: the baseline for comparing ffnet with the kernel.
xh_route_direct() {
	xh_in A -- ip route replace "${XH_NET[B]}.0/24" via "${XH_HOSTIP[B]}"
	xh_in B -- ip route replace "${XH_NET[A]}.0/24" via "${XH_HOSTIP[A]}"
	for h in A B; do
		xh_in "$h" -- iptables -w -t nat -C POSTROUTING -d 10.200.0.0/16 -j RETURN 2>/dev/null ||
			xh_in "$h" -- iptables -w -t nat -I POSTROUTING -d 10.200.0.0/16 -j RETURN
	done
}

# xh_spawn WHO NAME -- CMD...: start CMD in the background (WHO: x = with
# the shim, plain = container without it, in = host namespace) and set
# XH_PID to CMD's own pid (the subshell execs it, so a kill reaches it).
# Output goes where the caller redirected xh_spawn's.
xh_spawn() {
	local who=$1 name=$2
	shift 3
	case $who in
	x) (exec ip netns exec "$(xh_ns "$name")" env LD_PRELOAD="$XH_SHIM" \
		FFNET_SOCK="$(xh_rundir "${XH_CHOST[$name]}")/c/$name/ffrouter.sock" "$@") & ;;
	*) (exec ip netns exec "$(xh_ns "$name")" "$@") & ;;
	esac
	XH_PID=$!
}
