#!/usr/bin/env bash
# Unmodified programs between two containers on one host, all with the shim
# preloaded:
#   t-apps.sh ffnet   the router runs without rings (--same-host-rings 0,
#                     the socketpair alone): every flow must be accelerated
#                     (the router shows it as same-host while it runs)
#   t-apps.sh rings   as ffnet, the router as it runs by default, giving
#                     same-host connections shared-memory rings: every
#                     flow must also have had them
#   t-apps.sh plain   the router is absent: plain container networking,
#                     same results, and every flow over the container
#                     network (an established TCP connection in the
#                     server's namespace that carried bytes; the 100 MB
#                     crossed the server's interface), none in a router
# Programs: iperf3 (-P 1, -P 4, -R, --bidir), sockperf (ping-pong and
# throughput), redis-server + redis-benchmark (set,get), nginx serving a
# 100 MB file to curl (checksum) and loaded by wrk (no errors).
# Asserts on what the programs print. Exits 77 without a container backend.
set -euo pipefail
mode=${1:-ffnet}
case $mode in ffnet | plain | rings) ;; *) echo "usage: $0 ffnet|rings|plain" >&2; exit 2 ;; esac
. "$(dirname "$0")/lib/ffenv.sh"

ff_init "apps-$mode" || exit $?
rings=false
if [[ $mode == rings ]]; then
	rings=true
	mode=ffnet
elif [[ $mode == ffnet ]]; then
	FF_ROUTER_ARGS="${FF_ROUTER_ARGS:-} --same-host-rings 0"
fi
ff_router_start
ff_pair 10.77.1.0/24
if [[ $mode == plain ]]; then
	ff_router_stop
	[[ ! -S $FF_RUNDIR/c/c1/ffrouter.sock ]] && ff_ok "router absent" || ff_nok "router absent"
fi

# tcp_flow NETNS CLIENT-IP PORT: the network namespace NETNS (the server
# container's) holds an established TCP connection from CLIENT-IP to PORT
# that carried bytes: the flow went over the container network. (ffnet's
# same-host flows are AF_UNIX socket pairs: no such connection.)
tcp_flow() {
	nsenter --net="$1" ss -Htni state established "sport = :$3 and dst $2" 2>/dev/null |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^bytes_(received|acked):/) {
			split($i, kv, ":"); if (kv[2] > 0) found = 1 } }
		     END { exit !found }'
}

# on_path CLIENT SERVER PORT, while the flow runs: in ffnet mode the router
# shows it as a same-host flow; in plain mode it goes over the container
# network (tcp_flow, sampled first: a 2 s flow leaves little time on a
# loaded host) and no router shows it.
on_path() {
	local i ns ip
	ns=$(tb_netns "$2") ip=$(tb_ip "$1")
	for ((i = 0; i < 40; i++)); do
		if [[ $mode == ffnet ]]; then
			ff_same_host_flow "$@" && return 0
		elif tcp_flow "$ns" "$ip" "$3"; then
			if ff_same_host_flow "$@"; then return 1; else return 0; fi
		fi
		sleep 0.05
	done
	return 1
}

# ctr_tx NAME: bytes the container has sent on its interfaces (not lo).
ctr_tx() {
	awk 'NR > 2 { sub(/^[ \t]+/, ""); split($0, f, /[: \t]+/); if (f[1] != "lo") n += f[10] }
	     END { printf "%d\n", n }' "/proc/$(tb_pid "$1")/net/dev"
}

gt0() { awk -v x="$1" 'BEGIN { exit !(x + 0 > 0) }'; }

# ---- iperf3
router_ticks() { [[ -n ${FF_ROUTER_PID:-} ]] && awk '{ print $14 + $15 }' "/proc/$FF_ROUTER_PID/stat" || echo 0; }
iperf() { # LABEL ARGS...
	local label=$1 srv cli out bps sent rcvd flow=1 t0
	shift
	srv=$(ff_x_bg c1 -- iperf3 -s -1 -p 5201)
	tb_wait_port c1 5201
	t0=$(router_ticks)
	cli=$(ff_x_bg c2 -- iperf3 -c "$FF_IP1" -p 5201 -t 2 -J "$@")
	sleep 1
	on_path c2 c1 5201 || flow=0
	tb_wait "$cli" 30 || true
	tb_wait "$srv" 10 || true
	t0=$(($(router_ticks) - t0))
	# the router is not on the data path: it may not be busy meanwhile
	((t0 < 30)) || { ff_nok "iperf3 $label: router busy during the transfer ($t0 ticks)"; flow=0; }
	out=$(tb_bg_log "$cli")
	bps=$(jq -r '.end.sum_received.bits_per_second // 0' <<<"$out" 2>/dev/null || echo 0)
	sent=$(jq -r '.end.sum_sent.bytes // 0' <<<"$out" 2>/dev/null || echo 0)
	rcvd=$(jq -r '.end.sum_received.bytes // 0' <<<"$out" 2>/dev/null || echo 0)
	if gt0 "$bps" && gt0 "$rcvd" && ((flow)); then
		ff_ok "iperf3 $label: $(awk -v b="$bps" 'BEGIN { printf "%.1f", b / 1e9 }') Gbit/s, $rcvd bytes received of $sent"
	else
		ff_nok "iperf3 $label: bps=$bps received=$rcvd path=$flow: $(head -c 400 <<<"$out")"
	fi
}
iperf "-P 1"
iperf "-P 4" -P 4
iperf "-R" -R
iperf "--bidir" --bidir

# ---- sockperf
sockperf_run() { # LABEL MODE ARGS...
	local label=$1 sm=$2 srv cli out flow=1
	shift 2
	srv=$(ff_x_bg c1 -- sockperf sr --tcp -i 0.0.0.0 -p 11111)
	tb_wait_port c1 11111
	cli=$(ff_x_bg c2 -- sockperf "$sm" --tcp -i "$FF_IP1" -p 11111 -t 2 "$@")
	sleep 1
	on_path c2 c1 11111 || flow=0
	tb_wait "$cli" 30 || true
	tb_kill "$srv"
	tb_wait "$srv" 10 || true
	out=$(tb_bg_log "$cli")
	if [[ $sm == pp ]]; then
		local lat p50 n
		lat=$(sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/\1/p' <<<"$out")
		p50=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' <<<"$out")
		n=$(sed -n 's/.*ReceivedMessages=\([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
		if [[ -n $lat && -n $p50 ]] && gt0 "${n:-0}" && ((flow)); then
			ff_ok "sockperf $label: p50 $p50 us, $n replies"
		else
			ff_nok "sockperf $label: latency='$lat' replies='$n' path=$flow: $(tail -n 5 <<<"$out")"
		fi
	else
		local rate
		rate=$(sed -n 's/.*Summary: Message Rate is \([0-9]*\) .*/\1/p' <<<"$out")
		if gt0 "${rate:-0}" && ((flow)); then
			ff_ok "sockperf $label: $rate msg/s"
		else
			ff_nok "sockperf $label: rate='$rate' path=$flow: $(tail -n 5 <<<"$out")"
		fi
	fi
}
sockperf_run ping-pong pp
sockperf_run throughput tp --msg-size 1472

# ---- redis
srv=$(ff_x_bg c1 -- redis-server --port 6379 --save '' --appendonly no --protected-mode no)
tb_wait_port c1 6379
val=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
ff_x c2 -- redis-cli -h "$FF_IP1" set ffnet-key "$val" >/dev/null
got=$(ff_x c2 -- redis-cli -h "$FF_IP1" get ffnet-key)
[[ $got == "$val" ]] && ff_ok "redis-cli set/get round trip" || ff_nok "redis-cli get returned '$got', wanted '$val'"
cli=$(ff_x_bg c2 -- redis-benchmark -h "$FF_IP1" -p 6379 -t set,get -n 100000 -c 50 -q)
# (no pause before looking: over the rings both tests may end within 0.5 s)
flow=1
on_path c2 c1 6379 || flow=0
tb_wait "$cli" 120 || true
out=$(tb_bg_log "$cli" | tr '\r' '\n')
set_rps=$(sed -n 's/^ *SET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)
get_rps=$(sed -n 's/^ *GET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)
if gt0 "${set_rps:-0}" && gt0 "${get_rps:-0}" && ((flow)); then
	ff_ok "redis-benchmark: SET $set_rps rps, GET $get_rps rps"
else
	ff_nok "redis-benchmark: SET='$set_rps' GET='$get_rps' path=$flow: $(tail -n 4 <<<"$out")"
fi
tb_kill "$srv"
tb_wait "$srv" 10 || true

# ---- nginx + curl + wrk
www=$FF_WORK/www
mkdir -p "$www"
[[ -s $www/big.bin ]] || head -c $((100 * 1024 * 1024)) /dev/urandom >"$www/big.bin"
echo "hello from ffnet" >"$www/index.html"
want=$(sha256sum "$www/big.bin" | cut -d' ' -f1)
tb_rm c1
tb_run c1 "$FF_IMAGE" "$FF_IP1" --mount "$FF_RUNDIR/c/c1:/run/ffnet" --mount "$www:/srv/www"
srv=$(ff_x_bg c1 -- nginx -c /etc/nginx/nginx.conf)
tb_wait_port c1 80
# (a 100 MB transfer is over before the router can be sampled: count
# instead, the router's connections and the bytes c1 sent on its interface)
n0=$(ff_conns_total)
tx0=$(ctr_tx c1)
cli=$(ff_x_bg c2 -- sh -c "curl -sS -o /tmp/big.bin http://$FF_IP1/big.bin && sha256sum /tmp/big.bin && rm /tmp/big.bin")
tb_wait "$cli" 120 || true
tx=$(($(ctr_tx c1) - tx0))
flow=1
if [[ $mode == ffnet ]]; then
	(($(ff_conns_total) > n0 && tx < 10 * 1024 * 1024)) || flow=0
else
	((tx >= 100 * 1024 * 1024)) || flow=0
fi
got=$(tb_bg_log "$cli" | awk '{ print $1; exit }')
if [[ $got == "$want" ]] && ((flow)); then
	ff_ok "curl: 100 MB from nginx, sha256 matches; c1 sent $tx B on its interface"
else
	ff_nok "curl: sha256 '$got' wanted '$want' path=$flow (c1 sent $tx B on its interface): $(tb_bg_log "$cli" | tail -n 3)"
fi
# (sampling the router while wrk runs races with its 3 s on a loaded
# machine: count, as for curl, its 32 connections and what c1 sent)
n0=$(ff_conns_total)
tx0=$(ctr_tx c1)
cli=$(ff_x_bg c2 -- wrk -t 2 -c 32 -d 3s "http://$FF_IP1/index.html")
tb_wait "$cli" 60 || true
out=$(tb_bg_log "$cli")
tx=$(($(ctr_tx c1) - tx0))
read_mb=$(sed -n 's/^ *[0-9]* requests in [0-9.]*s, \([0-9.]*\)MB read.*/\1/p' <<<"$out")
flow=1
if [[ $mode == ffnet ]]; then
	(($(ff_conns_total) >= n0 + 32 && tx < 1024 * 1024)) || flow=0
else
	awk -v t="$tx" -v m="${read_mb:-0}" 'BEGIN { exit !(m > 1 && t >= m * 1e6 / 2) }' || flow=0
fi
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
if gt0 "${rps:-0}" && ! grep -qE 'Socket errors|Non-2xx' <<<"$out" && ((flow)); then
	ff_ok "wrk: $rps requests/s, no errors; c1 sent $tx B on its interface"
else
	ff_nok "wrk: rps='$rps' path=$flow (c1 sent $tx B on its interface): $out"
fi
tb_kill "$srv"
tb_wait "$srv" 10 || true

# ---- what the router saw
if [[ $mode == ffnet ]]; then
	total=$(ff_conns_total)
	((total >= 20)) && ff_ok "router accelerated $total connections" || ff_nok "router accelerated only $total connections"
	fb=$(ff_status_json | jq -r '.fallbacks')
	[[ $fb == 0 ]] && ff_ok "no connection fell back to the kernel" || ff_nok "$fb connections fell back"
	if $rings; then
		n=$(ff_status_json | jq -r '.rings.conns_total')
		((n >= total)) && ff_ok "every one had shared-memory rings ($n)" ||
			ff_nok "only $n of $total connections had rings"
	fi
	ff_check "router stops cleanly" ff_router_stop
fi
ff_summary
