# shellcheck shell=bash
# Load and faults through ffnet (issue 10), shared by bench/load.sh,
# bench/faults.sh and tests/integ/t-load.sh. Needs ffenv.sh, a router
# (ff_router_start) and ff_pair's containers: servers run in c1, clients in
# c2, all of them bench/loadgen under the shim (every byte checked).
#
#   load_run     LOAD_CONNS connections open at once, then a churn of
#                LOAD_RATE connects/s for LOAD_SECS; the router sampled
#                (RSS, fds, memfds, its connection table) along the way
#   faults_run   FAULT_ROUNDS connect storms, each with a kill -9 of the
#                router, a storm client and a storm server at random
#                moments, while a long-lived flow runs; after each round
#                the router must be back to its reference figures
#
# Results go to the associative arrays LR (load_run) and FR (faults_run)
# and to the sample rows LS_* (load_run); tables go to stdout, progress
# to stderr. Neither function fails the caller on a bad figure: the callers
# judge (bench scripts print a verdict, t-load.sh asserts).

: "${LOAD_CONNS:=10000}"  # concurrent connections
: "${LOAD_BYTES:=4096}"   # bytes each connection sends and gets back
: "${LOAD_HOLD:=3}"       # seconds the concurrent connections stay open
: "${LOAD_RATE:=1000}"    # churn: new connections per second
: "${LOAD_SECS:=600}"     # churn: seconds
: "${LOAD_INFLIGHT:=1000}" # churn: connections in flight at most
: "${LOAD_SAMPLES:=10}"   # churn: router samples (start, middle and end among them)
: "${FAULT_ROUNDS:=5}"
: "${FAULT_SECS:=12}"     # one round's storm
: "${FAULT_RATE:=300}"    # the storm's connects/s
: "${FAULT_FLOWS:=4}"     # long-lived connections of the flow
: "${FAULT_BPS:=262144}"  # each one's bytes/s
LOADGEN=/usr/bin/loadgen
LOAD_PORT=7001
FLOW_PORT=7100
STORM_PORT=7200

# lg_field LINE KEY: KEY's value in a loadgen line (0 if absent)
lg_field() {
	local v
	v=$(sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1" | head -n 1)
	echo "${v:-0}"
}

# lg_line ID: the last result line (final or progress) of a background loadgen
lg_line() {
	tb_bg_log "$1" | grep -E '^loadgen(-progress)? ' | tail -n 1
}

# lg_running ID: the background job is still running
lg_running() {
	local d
	d=$(_tb_bg_dir "$1") && [[ ! -f $d/status ]]
}

# lg_final ID: its final result line, empty if it never printed one (killed)
lg_final() {
	tb_bg_log "$1" | grep -E '^loadgen mode=' | tail -n 1
}

# router_fds PID: "FDS MEMFDS" of a process
router_fds() {
	printf '%s %s\n' "$(find "/proc/$1/fd" -mindepth 1 2>/dev/null | wc -l)" \
		"$(find "/proc/$1/fd" -mindepth 1 -lname '/memfd:*' 2>/dev/null | wc -l)"
}

router_rss() { # PID: VmRSS in KiB
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# status_count PORT KIND: the router's listeners or conns (KIND) on PORT
status_count() {
	ff_status_json | jq --arg p ":$1" "[.$2[]? | select((.addr // .server_addr) | endswith(\$p))] | length"
}

# ---------------------------------------------------------------- load

LS_label=() LS_t=() LS_rss=() LS_fds=() LS_memfds=() LS_conns=()
_load_t0=$EPOCHSECONDS

# load_sample LABEL: one row of the router's figures
load_sample() {
	local fds memfds conns
	read -r fds memfds < <(router_fds "$FF_ROUTER_PID")
	conns=$(ff_status_json | jq '.conns | length')
	LS_label+=("$1")
	LS_t+=("$((EPOCHSECONDS - _load_t0))")
	LS_rss+=("$(router_rss "$FF_ROUTER_PID")")
	LS_fds+=("$fds")
	LS_memfds+=("$memfds")
	LS_conns+=("$conns")
	ff_log "sample '$1': rss ${LS_rss[-1]} KiB, $fds fds, $memfds memfds, $conns conns in the router"
}

# wait_conns_gone PORT SECS: until the router lists no connection to PORT
# (it forgets a closed one at its next sweep, every 2 s); false on timeout
wait_conns_gone() {
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		(($(status_count "$1" conns) == 0)) && return 0
		sleep 0.2
	done
	return 1
}

# lg_wait_open ID N SECS: until loadgen ID reports N connections open at once
lg_wait_open() {
	local i line
	for ((i = 0; i < $3 * 5; i++)); do
		line=$(lg_line "$1")
		(($(lg_field "$line" open_max) >= $2)) 2>/dev/null && return 0
		[[ $line == "loadgen mode="* ]] && return 1
		sleep 0.2
	done
	return 1
}

_load_phase() { # NAME LINE: the loadgen figures of a phase into LR[NAME.*]
	local k
	for k in conns_ok conns_failed bytes_verified mismatches open_max started secs rate; do
		LR[${1}_$k]=$(lg_field "$2" "$k")
		: "${LR[${1}_$k]:=0}"
	done
}

# load_run: fills LR and LS_*; false if a phase could not run at all
load_run() {
	local srv cli line total0 fb0 i mid next step
	_load_t0=$EPOCHSECONDS
	srv=$(ff_x_bg c1 -- "$LOADGEN" server "$LOAD_PORT") || return 1
	tb_wait_port c1 "$LOAD_PORT" || return 1
	total0=$(ff_status_json | jq '.conns_total')
	fb0=$(ff_status_json | jq '.fallbacks')
	load_sample start

	ff_log "concurrent: $LOAD_CONNS connections, $LOAD_BYTES bytes each, held ${LOAD_HOLD}s"
	cli=$(ff_x_bg c2 -- "$LOADGEN" client "$FF_IP1" "$LOAD_PORT" -n "$LOAD_CONNS" \
		-b "$LOAD_BYTES" -t "$LOAD_HOLD" -p) || return 1
	if lg_wait_open "$cli" "$LOAD_CONNS" 300; then
		load_sample "concurrent, all open"
	else
		ff_log "concurrent: never $LOAD_CONNS open at once: $(lg_line "$cli")"
	fi
	tb_wait "$cli" 600 || true
	line=$(lg_final "$cli")
	_load_phase conc "$line"
	ff_log "concurrent: $line"
	[[ -n $line ]] || ff_log "concurrent: no result: $(tb_bg_log "$cli" | tail -n 5)"
	wait_conns_gone "$LOAD_PORT" 20 || ff_log "concurrent: the router still lists connections"
	load_sample "concurrent, closed"

	ff_log "churn: $LOAD_RATE connects/s for ${LOAD_SECS}s, at most $LOAD_INFLIGHT in flight"
	cli=$(ff_x_bg c2 -- "$LOADGEN" client "$FF_IP1" "$LOAD_PORT" -r "$LOAD_RATE" \
		-t "$LOAD_SECS" -n "$LOAD_INFLIGHT" -b "$LOAD_BYTES" -p) || return 1
	load_sample "churn start"
	# LOAD_SAMPLES - 2 samples during the churn, the middle one among them
	step=$((LOAD_SECS / (LOAD_SAMPLES - 1)))
	((step > 0)) || step=1
	mid=$((LOAD_SECS / 2))
	next=$step
	for ((i = 1; i <= LOAD_SECS; i++)); do
		sleep 1
		if ((i == mid)); then
			load_sample "churn middle"
		elif ((i == next && i < LOAD_SECS)); then
			load_sample "churn ${i}s"
		fi
		((i < next)) || next=$((next + step))
	done
	tb_wait "$cli" 120 || true
	line=$(lg_final "$cli")
	_load_phase churn "$line"
	ff_log "churn: $line"
	[[ -n $line ]] || ff_log "churn: no result: $(tb_bg_log "$cli" | tail -n 5)"
	wait_conns_gone "$LOAD_PORT" 20 || ff_log "churn: the router still lists connections"
	load_sample end

	LR[accelerated]=$(($(ff_status_json | jq '.conns_total') - total0))
	LR[fallbacks]=$(($(ff_status_json | jq '.fallbacks') - fb0))
	tb_kill "$srv"
	tb_wait "$srv" 10 || true
	LR[server]=$(lg_final "$srv")
	return 0
}

# load_table: the samples as a table
load_table() {
	local i
	printf '%-22s %6s %10s %6s %7s %8s\n' sample t_s rss_kib fds memfds conns
	for i in "${!LS_label[@]}"; do
		printf '%-22s %6s %10s %6s %7s %8s\n' "${LS_label[i]}" "${LS_t[i]}" "${LS_rss[i]}" \
			"${LS_fds[i]}" "${LS_memfds[i]}" "${LS_conns[i]}"
	done
}

# load_samples_json: the samples as a JSON array
load_samples_json() {
	local i sep=
	printf '['
	for i in "${!LS_label[@]}"; do
		printf '%s\n  {"label": "%s", "t_s": %s, "rss_kib": %s, "fds": %s, "memfds": %s, "conns": %s}' \
			"$sep" "${LS_label[i]}" "${LS_t[i]}" "${LS_rss[i]}" "${LS_fds[i]}" "${LS_memfds[i]}" \
			"${LS_conns[i]}"
		sep=,
	done
	printf ']'
}

# ---------------------------------------------------------------- faults

# router_fds_settled: "FDS MEMFDS" of the router once they hold still:
# the least of three looks 0.3 s apart (a sweep holds a netlink socket for
# a moment), taken again until two such triples agree (10 s at most).
# Processes of a container reconnect to a restarted router a moment after
# it is back (their watchers), so one early triple read too few fds and a
# round that was back to the same state failed against it.
router_fds_settled() {
	local i k f m best_f best_m last=''
	for ((k = 0; k < 10; k++)); do
		best_f='' best_m=''
		for ((i = 0; i < 3; i++)); do
			read -r f m < <(router_fds "$FF_ROUTER_PID")
			[[ -n $best_f ]] && ((f >= best_f)) || best_f=$f
			[[ -n $best_m ]] && ((m >= best_m)) || best_m=$m
			sleep 0.3
		done
		[[ $last == "$best_f $best_m" ]] && break
		last="$best_f $best_m"
	done
	echo "$last"
}

# wait_listeners PORT N SECS: until the router lists N listeners on PORT
wait_listeners() {
	local i
	for ((i = 0; i < $3 * 5; i++)); do
		(($(status_count "$1" listeners) == $2)) && return 0
		sleep 0.2
	done
	return 1
}

flow_bytes() { # the flow's bytes checked so far (its last line)
	lg_field "$(lg_line "$_flow_cli")" bytes_verified
}

# _storm_add ID: a storm client's figures (final line, else the last
# progress line of one that was killed) added to FR[R.*]
_storm_add() {
	local line k
	line=$(lg_line "$1")
	tb_bg_log "$1" | grep -E '^loadgen: ' | head -n 3 | while read -r k; do ff_log "round $_round: $k"; done
	for k in started conns_ok conns_failed mismatches; do
		FR[${_round}_$k]=$((${FR[${_round}_$k]:-0} + $(lg_field "$line" "$k")))
	done
}

# _fault VICTIM: kill -9 the victim at this moment, and bring it back
_fault() {
	local b0
	case $1 in
	router)
		b0=$(flow_bytes)
		ff_router_kill
		sleep "${FAULT_DOWN:-1}"
		FR[${_round}_flow_while_down]=$(($(flow_bytes) - b0))
		ff_router_start || return 1
		;;
	client)
		tb_kill "$_storm_cli" KILL
		tb_wait "$_storm_cli" 10 || true
		_storm_add "$_storm_cli"
		_storm_cli=$(ff_x_bg c2 -- "$LOADGEN" client "$FF_IP1" "$STORM_PORT" -r "$FAULT_RATE" \
			-t "$(((_round_end - EPOCHSECONDS) > 1 ? _round_end - EPOCHSECONDS : 1))" -n 200 -k -p) ||
			return 1
		;;
	server)
		# it must have lived until now: only we kill it
		if lg_running "$_storm_srv"; then
			FR[${_round}_server_died]=0
		else
			FR[${_round}_server_died]=1
			ff_log "round $_round: the storm server died on its own: $(tb_bg_log "$_storm_srv" | grep -v '^loadgen' | tail -n 2)"
		fi
		tb_kill "$_storm_srv" KILL
		tb_wait "$_storm_srv" 10 || true
		_storm_srv=$(ff_x_bg c1 -- "$LOADGEN" server "$STORM_PORT") || return 1
		tb_wait_port c1 "$STORM_PORT" || return 1
		# the dead server's listener is gone, the new one registered
		wait_listeners "$STORM_PORT" 1 5 || true
		FR[${_round}_storm_listeners]=$(status_count "$STORM_PORT" listeners)
		;;
	esac
	ff_log "round $_round: killed the $1 at +$((EPOCHSECONDS - _round_start))s"
}

# _fault_round R: one storm with its three kills; figures into FR[R.*]
_fault_round() {
	local third=$((FAULT_SECS / 3)) t_router t_cli t_srv b0 ev f m evs
	_round=$1
	b0=$(flow_bytes)
	_storm_srv=$(ff_x_bg c1 -- "$LOADGEN" server "$STORM_PORT") || return 1
	tb_wait_port c1 "$STORM_PORT" || return 1
	wait_listeners "$STORM_PORT" 1 5 || ff_log "round $_round: storm listener not registered"
	_round_start=$EPOCHSECONDS
	_round_end=$((_round_start + FAULT_SECS))
	_storm_cli=$(ff_x_bg c2 -- "$LOADGEN" client "$FF_IP1" "$STORM_PORT" -r "$FAULT_RATE" \
		-t "$FAULT_SECS" -n 200 -k -p) || return 1
	# random moments (tenths of a second): the router in the first third,
	# so that the client's and server's deaths reach the router that is
	# checked afterwards; the client and the server in the rest, either first
	t_router=$((10 + RANDOM % (third * 10 - 10)))
	t_cli=$((third * 10 + RANDOM % ((FAULT_SECS - third - 1) * 10)))
	t_srv=$((third * 10 + RANDOM % ((FAULT_SECS - third - 1) * 10)))
	FR[${_round}_moments]="router +$((t_router / 10)).$((t_router % 10))s, client +$((t_cli / 10)).$((t_cli % 10))s, server +$((t_srv / 10)).$((t_srv % 10))s"
	mapfile -t evs < <(printf '%s:%s\n' "$t_router" router "$t_cli" client "$t_srv" server | sort -n)
	for ev in "${evs[@]}"; do
		_sleep_until "$_round_start" "${ev%:*}"
		_fault "${ev#*:}" || return 1
	done
	tb_wait "$_storm_cli" $((FAULT_SECS + 60)) || true
	_storm_add "$_storm_cli"
	tb_kill "$_storm_srv"
	tb_wait "$_storm_srv" 10 || true
	wait_conns_gone "$STORM_PORT" 20 || true
	wait_listeners "$STORM_PORT" 0 5 || true
	read -r f m < <(router_fds_settled)
	FR[${_round}_fds]=$f
	FR[${_round}_memfds]=$m
	FR[${_round}_listeners_left]=$(status_count "$STORM_PORT" listeners)
	FR[${_round}_conns_left]=$(status_count "$STORM_PORT" conns)
	FR[${_round}_flow_listener]=$(status_count "$FLOW_PORT" listeners)
	FR[${_round}_flow_bytes]=$(($(flow_bytes) - b0))
}

_sleep_until() { # START TENTHS: sleep until START + TENTHS/10 s
	local d
	d=$(awk -v s="$1" -v t="$2" -v n="$EPOCHREALTIME" 'BEGIN { d = s + t / 10 - n; print (d > 0 ? d : 0) }')
	sleep "$d"
}

# faults_run: a long-lived flow (FAULT_FLOWS connections at FAULT_BPS each)
# runs across FAULT_ROUNDS storms. The reference figures are those of a
# router killed and restarted once with only the flow alive (its server's
# listener handed back by the shim's watcher; the flow's client makes no
# call to the router any more, so it holds no channel to a restarted one):
# every round kills the router too, and must end with the same figures.
faults_run() {
	local r fsrv seed=${FAULT_SEED:-$RANDOM}
	RANDOM=$seed
	FR[seed]=$seed
	fsrv=$(ff_x_bg c1 -- "$LOADGEN" server "$FLOW_PORT") || return 1
	tb_wait_port c1 "$FLOW_PORT" || return 1
	wait_listeners "$FLOW_PORT" 1 5 || return 1
	_flow_cli=$(ff_x_bg c2 -- "$LOADGEN" client "$FF_IP1" "$FLOW_PORT" -f -n "$FAULT_FLOWS" \
		-B "$FAULT_BPS" -t 86400 -p) || return 1
	FR[flow_accelerated]=0
	for ((r = 0; r < 50; r++)); do
		ff_same_host_flow c2 c1 "$FLOW_PORT" && { FR[flow_accelerated]=1; break; }
		sleep 0.2
	done
	ff_router_kill
	ff_router_start || return 1
	wait_listeners "$FLOW_PORT" 1 5 || ff_log "the flow's listener did not come back"
	read -r 'FR[ref_fds]' 'FR[ref_memfds]' < <(router_fds_settled)
	ff_log "reference: ${FR[ref_fds]} fds, ${FR[ref_memfds]} memfds (seed $seed)"
	for ((r = 1; r <= FAULT_ROUNDS; r++)); do
		_fault_round "$r" || { ff_log "round $r could not run"; return 1; }
		ff_log "round $r: ${FR[${r}_fds]} fds, ${FR[${r}_memfds]} memfds, flow +${FR[${r}_flow_bytes]} B"
	done
	tb_kill "$_flow_cli"
	tb_wait "$_flow_cli" 60 || true
	FR[flow]=$(lg_final "$_flow_cli")
	tb_kill "$fsrv"
	tb_wait "$fsrv" 10 || true
	return 0
}

# faults_table: one row per round
faults_table() {
	local r
	printf '%-5s %8s %7s %7s %5s %6s %8s %8s %6s %6s %11s %13s %9s\n' round started ok failed mism \
		fds memfds "lst/conn" relist flowl flow_bytes flow_rtr_down srv_died
	for ((r = 1; r <= FAULT_ROUNDS; r++)); do
		printf '%-5s %8s %7s %7s %5s %6s %8s %8s %6s %6s %11s %13s %9s\n' "$r" "${FR[${r}_started]:-0}" \
			"${FR[${r}_conns_ok]:-0}" "${FR[${r}_conns_failed]:-0}" "${FR[${r}_mismatches]:-0}" \
			"${FR[${r}_fds]}/${FR[ref_fds]}" "${FR[${r}_memfds]}/${FR[ref_memfds]}" \
			"${FR[${r}_listeners_left]}/${FR[${r}_conns_left]}" "${FR[${r}_storm_listeners]:--}" \
			"${FR[${r}_flow_listener]}" "${FR[${r}_flow_bytes]}" "${FR[${r}_flow_while_down]:-0}" \
			"${FR[${r}_server_died]:-0}"
	done
	for ((r = 1; r <= FAULT_ROUNDS; r++)); do
		printf 'round %s: %s\n' "$r" "${FR[${r}_moments]}"
	done
}

# faults_ok: every round back to the reference, nothing left for the dead,
# no mismatch, no storm server died but by our kill, the flow kept moving
# (also while the router was down) and ended with every byte checked
faults_ok() {
	local r
	[[ ${FR[flow_accelerated]} == 1 ]] || return 1
	for ((r = 1; r <= FAULT_ROUNDS; r++)); do
		((FR[${r}_fds] == FR[ref_fds] && FR[${r}_memfds] == FR[ref_memfds] &&
			FR[${r}_listeners_left] == 0 && FR[${r}_conns_left] == 0 && FR[${r}_mismatches] == 0 &&
			${FR[${r}_storm_listeners]:-1} == 1 && FR[${r}_flow_listener] == 1 &&
			${FR[${r}_server_died]:-0} == 0 &&
			FR[${r}_flow_bytes] > 0 && ${FR[${r}_flow_while_down]:-0} > 0)) || return 1
	done
	[[ $(lg_field "${FR[flow]}" conns_ok) == "$FAULT_FLOWS" &&
		$(lg_field "${FR[flow]}" conns_failed) == 0 && $(lg_field "${FR[flow]}" mismatches) == 0 ]]
}
