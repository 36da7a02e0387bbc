# shellcheck shell=bash
# etcd for the cross-host tests (sourced after xhosts.sh): one etcd member in
# host A's namespace, reachable by both routers over the hosts' link.
#   xh_etcd_start || exit $?    # 77 without the etcd package
#   xh_router A --store "$XH_ETCD"
#   xh_etcd_converged            # both routers see all containers

XH_ETCD=etcd://${XH_HOSTIP[A]}:2379
XH_ETCD_PID=

xh_etcd_start() {
	local i
	if ! command -v etcd >/dev/null; then
		echo "SKIP: etcd is not installed (apt-get install etcd-server; scripts/deps.sh does)"
		return 77
	fi
	xh_spawn in A -- etcd --name ffxh --data-dir "$XH_WORK/etcd" \
		--listen-client-urls "http://${XH_HOSTIP[A]}:2379" \
		--advertise-client-urls "http://${XH_HOSTIP[A]}:2379" \
		--listen-peer-urls "http://${XH_HOSTIP[A]}:2380" \
		--initial-advertise-peer-urls "http://${XH_HOSTIP[A]}:2380" \
		--initial-cluster "ffxh=http://${XH_HOSTIP[A]}:2380" >"$XH_WORK/etcd.log" 2>&1
	XH_ETCD_PID=$XH_PID
	for ((i = 0; i < 200; i++)); do
		xh_in A -- curl -s -m 1 -X POST "http://${XH_HOSTIP[A]}:2379/v3/kv/range" \
			-d '{"key":"AA=="}' 2>/dev/null | grep -q header && return 0
		kill -0 "$XH_ETCD_PID" 2>/dev/null || break
		sleep 0.1
	done
	xh_log "etcd did not start: $(tail -n 5 "$XH_WORK/etcd.log")"
	return 1
}

xh_etcd_stop() {
	[[ -n $XH_ETCD_PID ]] || return 0
	kill "$XH_ETCD_PID" 2>/dev/null
	wait "$XH_ETCD_PID" 2>/dev/null
	XH_ETCD_PID=
}

# Both routers know all three containers (within 10 s).
xh_etcd_converged() {
	local i a b
	for ((i = 0; i < 100; i++)); do
		a=$(xh_ctl A list --json 2>/dev/null | jq -r '[.[].name] | sort | join(",")')
		b=$(xh_ctl B list --json 2>/dev/null | jq -r '[.[].name] | sort | join(",")')
		[[ $a == a1,a2,b1 && $b == a1,a2,b1 ]] && return 0
		sleep 0.1
	done
	xh_log "not converged: A sees '$a', B sees '$b'"
	return 1
}
