#!/usr/bin/env bash
# Load and faults, the short version of bench/load.sh and bench/faults.sh
# (issue 10), between two containers on one host, every byte checked by
# loadgen under the shim:
# 1. LOAD_CONNS (1000) connections open at once, then a churn of LOAD_RATE
#    (200) connects/s for LOAD_SECS (20): every connection ok, every byte
#    checked, every connection accelerated (none fell back), the router's
#    connection table held them all, and its fds and memfds at the end are
#    what they were at the start (the router holds no fd of a same-host
#    connection). RSS is printed, not judged: at this size a leak would
#    hide in malloc's slack (bench/load.sh judges it at full size).
# 2. FAULT_ROUNDS (3) connect storms, each with a kill -9 of the router, a
#    storm client and a storm server at random moments, while a long-lived
#    flow runs: after each round the router's fds and memfds equal those of
#    a freshly restarted router, ffctl status --json lists nothing on the
#    storm's port, the restarted server's listener is the only one, the
#    storm server lived until its kill, no byte was wrong, and the flow kept
#    moving (also while the router was down) and ended with every byte
#    checked.
# Counts are compared, never times. Exits 77 without a container backend.
set -euo pipefail
. "$(dirname "$0")/lib/ffenv.sh"
: "${LOAD_CONNS:=1000}" "${LOAD_RATE:=200}" "${LOAD_SECS:=20}" "${LOAD_SAMPLES:=4}"
: "${LOAD_INFLIGHT:=200}" "${FAULT_ROUNDS:=3}" "${FAULT_SECS:=9}" "${FAULT_RATE:=100}"
. "$(dirname "$0")/lib/load.sh"

ff_init load || exit $?
ff_router_start
ff_pair 10.77.12.0/24

# ---- 1. load
declare -A LR=()
load_run || ff_nok "the load could not run"
load_table
for p in conc churn; do
	want=$([[ $p == conc ]] && echo "$LOAD_CONNS" || echo "${LR[churn_started]}")
	if ((want > 0 && LR[${p}_conns_ok] == want && LR[${p}_conns_failed] == 0 &&
		LR[${p}_mismatches] == 0 && LR[${p}_bytes_verified] == want * LOAD_BYTES)); then
		ff_ok "$p: $want connections ok, ${LR[${p}_bytes_verified]} bytes checked"
	else
		ff_nok "$p: $want wanted, ${LR[${p}_conns_ok]} ok, ${LR[${p}_conns_failed]} failed, ${LR[${p}_mismatches]} mismatched, ${LR[${p}_bytes_verified]} bytes checked"
	fi
done
((LR[conc_open_max] == LOAD_CONNS)) && ff_ok "all $LOAD_CONNS connections open at once" ||
	ff_nok "at most ${LR[conc_open_max]} of $LOAD_CONNS open at once"
held=-1
for i in "${!LS_label[@]}"; do [[ ${LS_label[i]} == "concurrent, all open" ]] && held=${LS_conns[i]}; done
((held >= LOAD_CONNS)) && ff_ok "the router listed $held connections while they were open" ||
	ff_nok "the router listed $held connections while $LOAD_CONNS were open"
want=$((LOAD_CONNS + LR[churn_started]))
((LR[accelerated] == want && LR[fallbacks] == 0)) &&
	ff_ok "all $want connections accelerated, no fallback" ||
	ff_nok "${LR[accelerated]} of $want accelerated, ${LR[fallbacks]} fallbacks"
e=$((${#LS_label[@]} - 1))
((LS_fds[e] == LS_fds[0] && LS_memfds[e] == LS_memfds[0] && LS_conns[e] == 0)) &&
	ff_ok "router back to ${LS_fds[0]} fds, ${LS_memfds[0]} memfds, no connection (RSS ${LS_rss[0]} -> ${LS_rss[e]} KiB)" ||
	ff_nok "router fds ${LS_fds[0]} -> ${LS_fds[e]}, memfds ${LS_memfds[0]} -> ${LS_memfds[e]}, ${LS_conns[e]} connections left"

# ---- 2. faults
declare -A FR=()
if faults_run; then
	faults_table
	for ((r = 1; r <= FAULT_ROUNDS; r++)); do
		((FR[${r}_fds] == FR[ref_fds] && FR[${r}_memfds] == FR[ref_memfds])) &&
			ff_ok "round $r: router back to ${FR[ref_fds]} fds, ${FR[ref_memfds]} memfds" ||
			ff_nok "round $r: router has ${FR[${r}_fds]} fds, ${FR[${r}_memfds]} memfds; reference ${FR[ref_fds]}, ${FR[ref_memfds]}"
		((FR[${r}_listeners_left] == 0 && FR[${r}_conns_left] == 0 && ${FR[${r}_storm_listeners]:-0} == 1)) &&
			ff_ok "round $r: nothing left on the storm port; one listener after the server's restart" ||
			ff_nok "round $r: ${FR[${r}_listeners_left]} listeners, ${FR[${r}_conns_left]} connections left; ${FR[${r}_storm_listeners]:-?} listeners after the restart"
		((${FR[${r}_server_died]:-0} == 0)) &&
			ff_ok "round $r: the storm server lived until it was killed" ||
			ff_nok "round $r: the storm server died on its own (before its kill -9)"
		((FR[${r}_mismatches] == 0 && FR[${r}_started] > 0)) &&
			ff_ok "round $r: ${FR[${r}_started]} storm connects, no wrong byte" ||
			ff_nok "round $r: ${FR[${r}_mismatches]} storm connections saw a wrong byte (${FR[${r}_started]} started)"
		((FR[${r}_flow_listener] == 1 && FR[${r}_flow_bytes] > 0 && ${FR[${r}_flow_while_down]:-0} > 0)) &&
			ff_ok "round $r: the flow moved ${FR[${r}_flow_bytes]} bytes, ${FR[${r}_flow_while_down]} while the router was down" ||
			ff_nok "round $r: flow listener ${FR[${r}_flow_listener]}, ${FR[${r}_flow_bytes]} bytes, ${FR[${r}_flow_while_down]:-0} while the router was down"
	done
	flow=${FR[flow]:-}
	[[ ${FR[flow_accelerated]} == 1 && $(lg_field "$flow" conns_ok) == "$FAULT_FLOWS" &&
		$(lg_field "$flow" conns_failed) == 0 && $(lg_field "$flow" mismatches) == 0 ]] &&
		ff_ok "the flow (accelerated) kept its bytes: $(lg_field "$flow" bytes_verified) checked" ||
		ff_nok "the flow: accelerated=${FR[flow_accelerated]}, '$flow'"
else
	ff_nok "the fault rounds could not run"
fi
ff_check "router stops cleanly" ff_router_stop
ff_summary
