#!/usr/bin/env bash
# The router is on the control path only:
# 1. an established same-host connection (iperf3, 6 s) keeps flowing while
#    the router is killed (SIGKILL, as a crash) and down;
# 2. connects during the outage fall back to the container network
#    (redis-cli against a redis-server whose listener was accelerated);
# 3. after the router restarts (registrations from its state file), new
#    connections are accelerated again.
set -euo pipefail
. "$(dirname "$0")/lib/ffenv.sh"

ff_init restart || exit $?
ff_router_start
ff_pair 10.77.3.0/24

redis_up() { # PORT: a redis-server in c1
	local id
	id=$(ff_x_bg c1 -- redis-server --port "$1" --save '' --appendonly no --protected-mode no)
	tb_wait_port c1 "$1"
	echo "$id"
}
# accelerated_within N PORT: one of N fresh redis-cli connections is accelerated
accelerated_within() {
	local i n0 v
	for ((i = 1; i <= $1; i++)); do
		n0=$(ff_conns_total)
		v=$(ff_x c2 -- redis-cli -h "$FF_IP1" -p "$2" get k || true)
		[[ $v == before ]] || { echo "redis :$2 answered '$v'" >&2; return 1; }
		(($(ff_conns_total) > n0)) && { echo "$i"; return 0; }
		sleep 0.3
	done
	return 1
}

# ---- 1. established connection through a router crash
redis=$(redis_up 6379)
ff_x c2 -- redis-cli -h "$FF_IP1" set k before >/dev/null
srv=$(ff_x_bg c1 -- iperf3 -s -1 -p 5201)
tb_wait_port c1 5201
cli=$(ff_x_bg c2 -- iperf3 -c "$FF_IP1" -p 5201 -t 6 -i 1 -J)
sleep 1.5
ff_check "iperf3 flow accelerated before the crash" ff_same_host_flow c2 c1 5201
ff_router_kill
tb_wait "$cli" 30 || true
tb_wait "$srv" 10 || true
out=$(tb_bg_log "$cli")
# every 1 s interval, including the ~4 after the crash, moved data
n=$(jq '[.intervals[].sum.bytes | select(. > 0)] | length' <<<"$out" 2>/dev/null || echo 0)
err=$(jq -r '.error // empty' <<<"$out" 2>/dev/null || echo "unparsable output")
if ((n >= 6)) && [[ -z $err ]]; then
	ff_ok "iperf3 kept flowing through the crash: $n of 6 intervals moved data"
else
	ff_nok "iperf3 through the crash: $n intervals with data, error '$err'"
fi

# ---- 2. connects while the router is down
[[ $(ff_x c2 -- redis-cli -h "$FF_IP1" get k) == before ]] &&
	ff_ok "redis (listening since before the crash) reachable while the router is down" ||
	ff_nok "redis not reachable while the router is down"
redis2=$(redis_up 6380)
ff_x c2 -- redis-cli -h "$FF_IP1" -p 6380 set k before >/dev/null || true
[[ $(ff_x c2 -- redis-cli -h "$FF_IP1" -p 6380 get k) == before ]] &&
	ff_ok "redis started during the outage reachable (container network)" ||
	ff_nok "redis started during the outage not reachable"
ffctl status >/dev/null 2>&1 && ff_nok "router still answering" || ff_ok "router is down"

# ---- 3. restart: registrations come back, acceleration resumes
ff_router_start
[[ $(ffctl list --json | jq -r '[.[].name] | sort | join(",")') == c1,c2 ]] &&
	ff_ok "registrations restored from the state file" || ff_nok "registrations lost"
# A listener from before the crash is handed back by its shim's watcher
# within 0.2 s: the first connection is accelerated.
sleep 0.5
if i=$(accelerated_within 1 6379); then
	ff_ok "listener kept through the crash: first connection after the restart accelerated"
else
	ff_nok "listener kept through the crash: not accelerated after the restart"
fi
# One created during the outage offers itself from its next accept(), at
# most once a second: a connection or two may take the container network.
if i=$(accelerated_within 8 6380); then
	ff_ok "listener created during the outage: accelerated from connection $i after the restart"
else
	ff_nok "listener created during the outage: never accelerated"
fi
[[ $(ffctl status --json | jq '[.listeners[] | select(.container == "c1")] | length') -ge 2 ]] &&
	ff_ok "both redis listeners registered again" || ff_nok "redis listeners not registered again"
for id in "$redis" "$redis2"; do
	tb_kill "$id"
	tb_wait "$id" 10 || true
done
ff_check "router stops cleanly" ff_router_stop
ff_summary
