#!/usr/bin/env bash
# bench/faults: kill -9 during a connect storm between two containers on one
# host (issue 10). A long-lived flow (FAULT_FLOWS connections, FAULT_BPS
# bytes/s each, every byte checked by loadgen) runs throughout. Each of
# FAULT_ROUNDS rounds is a storm of FAULT_RATE connects/s for FAULT_SECS
# against a storm server, during which the router, the storm client and the
# storm server are each killed with SIGKILL at a random moment (the router
# in the first third of the round, down FAULT_DOWN s, then restarted as
# t-restart.sh does; the client and the server in the rest, restarted at
# once). After each round (storm over, storm server stopped):
#   - the router's fds and memfds equal the reference (a router killed and
#     restarted once with only the flow alive): nothing left of a dead
#     client's channel, a dead server's listener or the storm's connections;
#   - `ffctl status --json` lists no listener and no connection on the
#     storm's port, and the restarted server's listener was the only one;
#   - the flow's listener is back, the flow moved bytes in the round and
#     while the router was down; no storm connection saw a wrong byte
#     (storm connections cut by a kill fail, as they must); the storm
#     server was alive when its kill came (nothing else killed it).
# At the end the flow ends with every connection ok and every byte checked.
# Prints per-round figures and writes bench/out/faults.json.
#   bench/faults.sh                    (root; FAULT_SEED=N repeats a run)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
. "$here/lib.sh"
. "$here/../tests/integ/lib/load.sh"
out=${BENCH_OUT:-$here/out}
mkdir -p "$out"

tb_ensure jq || exit 1
ff_init bench-faults || exit $?
ff_router_start
ff_pair 10.77.11.0/24
declare -A FR=()
faults_run || { ff_log "the fault rounds could not run"; exit 1; }
ok=NO
faults_ok && ok=yes

printf '\nffnet faults: %s rounds of %s connects/s for %ss, seed %s; %s containers, %s CPUs (load average %s)\n' \
	"$FAULT_ROUNDS" "$FAULT_RATE" "$FAULT_SECS" "${FR[seed]}" "$(tb_backend)" "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
printf '(fds, memfds: after the round / reference; lst/conn: listeners and connections left on the\n'
printf ' storm port; relist: listeners on it after the server restart; flowl: the flow'"'"'s listener;\n'
printf ' flow_bytes: checked in the round; flow_rtr_down: checked while the router was down)\n\n'
faults_table
printf '\nflow: %s\n' "${FR[flow]:-no result}"
printf 'nothing leaked, flows kept their bytes, no mismatch: %s\n' "$ok"

json=$out/faults.json
{
	printf '{"backend": "%s", "cpus": %d, "loadavg": "%s", "seed": %s,\n' "$(tb_backend)" "$(nproc)" \
		"$(cut -d' ' -f1-3 /proc/loadavg)" "${FR[seed]}"
	printf ' "params": {"rounds": %s, "rate": %s, "secs": %s, "flows": %s, "bps": %s},\n' \
		"$FAULT_ROUNDS" "$FAULT_RATE" "$FAULT_SECS" "$FAULT_FLOWS" "$FAULT_BPS"
	printf ' "reference": {"fds": %s, "memfds": %s},\n "rounds": [' "${FR[ref_fds]}" "${FR[ref_memfds]}"
	for ((r = 1; r <= FAULT_ROUNDS; r++)); do
		printf '%s\n  {"round": %d, "moments": "%s", "started": %s, "ok": %s, "failed": %s, "mismatches": %s, "fds": %s, "memfds": %s, "listeners_left": %s, "conns_left": %s, "listeners_after_server_restart": %s, "flow_listener": %s, "flow_bytes": %s, "flow_bytes_router_down": %s, "server_died_on_its_own": %s}' \
			"$([[ $r == 1 ]] || echo ,)" "$r" "${FR[${r}_moments]}" "${FR[${r}_started]:-0}" \
			"${FR[${r}_conns_ok]:-0}" "${FR[${r}_conns_failed]:-0}" "${FR[${r}_mismatches]:-0}" \
			"${FR[${r}_fds]}" "${FR[${r}_memfds]}" "${FR[${r}_listeners_left]}" "${FR[${r}_conns_left]}" \
			"${FR[${r}_storm_listeners]:-null}" "${FR[${r}_flow_listener]}" "${FR[${r}_flow_bytes]}" \
			"${FR[${r}_flow_while_down]:-0}" "${FR[${r}_server_died]:-0}"
	done
	printf '],\n "flow": {"ok": %s, "failed": %s, "bytes_verified": %s, "mismatches": %s},\n' \
		"$(lg_field "${FR[flow]}" conns_ok)" "$(lg_field "${FR[flow]}" conns_failed)" \
		"$(lg_field "${FR[flow]}" bytes_verified)" "$(lg_field "${FR[flow]}" mismatches)"
	printf ' "verdict": "%s"}\n' "$ok"
} >"$json"
jq . "$json" >/dev/null
echo "JSON: $json"
ff_router_stop
[[ $ok == yes ]]
