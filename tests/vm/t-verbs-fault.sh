#!/bin/bash
# vm-verbs-fault: what perftest leaves out, isolation, and faults, through
# ffnet between two containers on one host (single layout, rxe0, RDMA
# namespaces exclusive). The programs are this build's ffverbs (tests/vm)
# and perftest.
#   - coverage (ffverbs server/client): query_device/port/gid/pkey,
#     ibv_reg_mr and ibv_reg_mr_iova2 (an RDMA_WRITE addressed by iova), a
#     CQ on a completion channel, an SRQ shared by two QPs (limit event),
#     SEND (2 SGEs), SEND_WITH_IMM, inline SEND, RDMA_WRITE(_WITH_IMM),
#     RDMA_READ, atomics, query_qp, EBUSY for objects in use, EOPNOTSUPP for
#     what the virtual device lacks: each completion's status, opcode,
#     byte_len and imm_data and every byte are checked by the program, and
#     the test checks what it printed;
#   - isolation: container b posts with a's lkey and rkey, outside its own
#     MR, into a's receive buffers, connects to a's QP (ffverbs steal), and
#     forges raw requests on its own context socket naming a's handles,
#     bad memfds, sizes, rings and datagrams (ffverbs forge, no shim):
#     error completions or refusals, a's MR keeps its bytes and its objects
#     keep working (ffverbs hold);
#   - faults: kill -9 of the ib_write_bw client, then of the server, in the
#     middle of a transfer: the router drops the dead process's context
#     (ffctl status), its fds and memfd mappings return to their baseline,
#     and a new perftest pair runs.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	FFVM_RDMA_NETNS=exclusive run_vm --layout single --timeout 580 -- "$0" "$@"
	exit
fi
# shellcheck source=verbs-lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/verbs-lib.sh"

FV=$VB_BUILD/tests/vm/ffverbs
if [[ ! -x $FV ]]; then
	echo "SKIP: $FV was not built (no libibverbs development files)" >&2
	exit 77
fi

# on failure, the router's view of it
on_exit() {
	local rc=$?
	if ((rc != 0 && rc != 77)) && [[ -f $VB_LOGS/router-h1.log ]]; then
		echo "----- router log (last 40 lines)"
		tail -40 "$VB_LOGS/router-h1.log"
	fi
	vb_cleanup
}
trap on_exit EXIT

vb_one_host
RPID=${VB_PID[h1]}
PT=(-d ffnet0 -x 1 -F)

router_fds() { find "/proc/$RPID/fd" -mindepth 1 | wc -l; }
router_memfds() { grep -c 'memfd:ffnet' "/proc/$RPID/maps" || true; }
contexts() { vb_status h1 --json | jq -c "[.rdma.contexts[] | select(${1:-true})]"; }
alive() { kill -0 "$RPID" 2>/dev/null || fail "the router died (log: $(tail -5 "$VB_LOGS/router-h1.log"))"; }

# wait_ctxs FILTER N: until N contexts match FILTER (jq), 30 s at most.
wait_ctxs() {
	local i
	for ((i = 0; i < 300; i++)); do
		[[ $(contexts "$1" | jq length) == "$2" ]] && return 0
		sleep 0.1
	done
	fail "$2 contexts matching $1 expected, have: $(contexts "$1")"
}

# baseline WHAT: the router holds no context and its fds and memfd
# mappings are back where they were before any program ran.
baseline() {
	local i fds maps
	alive
	wait_ctxs true 0
	for ((i = 0; i < 50; i++)); do
		fds=$(router_fds)
		maps=$(router_memfds)
		((fds == BASE_FDS && maps == BASE_MAPS)) && break
		sleep 0.1
	done
	((fds == BASE_FDS)) || { ls -l "/proc/$RPID/fd" >&2; fail "$1: the router has $fds fds, $BASE_FDS before"; }
	((maps == BASE_MAPS)) || fail "$1: the router maps $maps memfd ranges, $BASE_MAPS before"
	pass "$1: no context left, router fds $fds and memfd mappings $maps as before"
}

# expect NAME FILE REGEX...: every REGEX matches a line of FILE.
expect() {
	local name=$1 file=$2 re
	shift 2
	for re in "$@"; do
		grep -Eq -- "$re" "$file" || fail "$name did not print /$re/"
	done
}

BASE_FDS=$(router_fds)
BASE_MAPS=$(router_memfds)
echo "router pid $RPID: $BASE_FDS fds, $BASE_MAPS memfd mappings"

# ---- coverage ----
VB_PORT=$((VB_PORT + 1))
vb_ct a timeout -k 5 300 "$FV" server -p "$VB_PORT" >"$VB_LOGS/cover.server" 2>&1 &
spid=$!
vb_wait_listen a "$VB_PORT"
crc=0 src=0
vb_ct b timeout -k 5 300 "$FV" client 10.78.0.1 -p "$VB_PORT" >"$VB_LOGS/cover.client" 2>&1 || crc=$?
wait "$spid" || src=$?
show "ffverbs server (a)" "$VB_LOGS/cover.server"
show "ffverbs client (b)" "$VB_LOGS/cover.client"
((src == 0 && crc == 0)) || fail "ffverbs server exited $src, client $crc"
expect "ffverbs server" "$VB_LOGS/cover.server" \
	'^ok: server: device ffnet0: 1 port ACTIVE Ethernet.*gid\[1\] ::ffff:10\.78\.0\.1, pkey\[0\] 0xffff$' \
	'^ok: server: MRs: ibv_reg_mr over 3 memfd ranges \(bytes kept\), ibv_reg_mr_iova2' \
	'^ok: server: SEND from 2 SGEs: RECV, 1000 bytes, data ok$' \
	'^ok: server: SEND_WITH_IMM: RECV with imm_data 0xdeadbeef, 512 bytes, data ok$' \
	'^ok: server: SEND with IBV_SEND_INLINE: RECV, 48 bytes, data ok$' \
	'^ok: server: RDMA_WRITE_WITH_IMM: RECV_RDMA_WITH_IMM with imm_data 0xcafef00d, byte_len 256, data ok$' \
	'^ok: server: RDMA_WRITE to iova 0x5a5a00000000\+1000 \(ibv_reg_mr_iova2\): 8192 bytes landed' \
	'^ok: server: completion channel: [0-9]+ event\(s\) for 4 receives' \
	'^ok: server: SRQ: one SEND on each of 2 QPs received through the SRQ' \
	'^ok: server: SRQ: IBV_EVENT_SRQ_LIMIT_REACHED on ibv_get_async_event, limit disarmed$' \
	"^ok: server: SRQ resize: .*, as the device's IBV_DEVICE_SRQ_RESIZE says$" \
	'^ok: server: ibv_query_qp: RTS, dest_qp_num 0x[0-9a-f]+, dgid ::ffff:10\.78\.0\.2' \
	'^ok: server: objects in use are not destroyed: CQ, PD, channel, SRQ -> EBUSY$' \
	'^ok: server: teardown: ' '^ok: server: all checks passed$'
expect "ffverbs client" "$VB_LOGS/cover.client" \
	'^ok: client: device ffnet0: 1 port ACTIVE Ethernet.*gid\[1\] ::ffff:10\.78\.0\.2, pkey\[0\] 0xffff$' \
	'^ok: client: (8|10) send completions: SEND x5, RDMA_WRITE x2, RDMA_READ' \
	'^ok: client: RDMA_READ: 4096 bytes, data ok$' \
	'^ok: client: RDMA_WRITE to the address instead of the iova: remote access error$' \
	'^ok: client: unsupported verbs fail with EOPNOTSUPP: UD QP, create_ah, alloc_mw, open_xrcd' \
	'^ok: client: ibv_query_qp: RTS, dest_qp_num 0x[0-9a-f]+, dgid ::ffff:10\.78\.0\.1' \
	'^ok: client: teardown: ' '^ok: client: all checks passed$'
if grep -q 'atomics yes' "$VB_LOGS/cover.server"; then
	expect "ffverbs" "$VB_LOGS/cover.client" '^ok: client: atomics: FETCH_ADD returned 1000, COMP_SWAP returned 0x5555$'
	expect "ffverbs" "$VB_LOGS/cover.server" '^ok: server: atomics: FETCH_ADD then COMP_SWAP left 0x7777'
fi
pass "ffverbs: $(grep -c '^ok:' "$VB_LOGS/cover.server") server and $(grep -c '^ok:' "$VB_LOGS/cover.client") client checks"
baseline "after ffverbs"

# ---- isolation ----
VICTIM=$VB_LOGS/victim
vb_ct a timeout -k 5 400 "$FV" hold "$VICTIM" >"$VB_LOGS/hold" 2>&1 &
hpid=$!
for ((i = 0; i < 300; i++)); do
	[[ -s $VICTIM ]] && break
	sleep 0.1
done
[[ -s $VICTIM ]] || { cat "$VB_LOGS/hold"; fail "ffverbs hold did not start"; }
cat "$VICTIM"
before=$(contexts '.container == "a"')
rc=0
vb_ct b timeout -k 5 300 "$FV" steal "$VICTIM" >"$VB_LOGS/steal" 2>&1 || rc=$?
show "ffverbs steal (b)" "$VB_LOGS/steal"
((rc == 0)) || fail "ffverbs steal exited $rc"
LOC='local (protection|QP operation|length) error'
expect "ffverbs steal" "$VB_LOGS/steal" \
	"^ok: steal: SEND gathering from a's lkey: $LOC, nothing moved$" \
	"^ok: steal: RDMA_WRITE gathering from a's lkey: $LOC, nothing moved$" \
	"^ok: steal: RDMA_READ scattering into a's lkey: $LOC, nothing moved$" \
	"^ok: steal: a receive into a's lkey: $LOC, nothing moved$" \
	"^ok: steal: SEND with an SGE past the end of its MR: $LOC, nothing moved$" \
	"^ok: steal: SEND with a made-up lkey: $LOC, nothing moved$" \
	"^ok: steal: RDMA_WRITE to a's memory with a's rkey: remote access error, nothing moved$" \
	"^ok: steal: RDMA_READ of a's memory with a's rkey: remote access error, nothing moved$" \
	"^ok: steal: modify_qp\(RTR\) refused: a's QP number under b's GID \(EINVAL\)" \
	"^ok: steal: connecting to a's QP 0x[0-9a-f]+, which is connected to another: EINVAL$" \
	"^ok: steal: a QP connected to a's free QP 0x[0-9a-f]+ is cut off when a connects it: RDMA_WRITE with a's rkey -> .*, nothing moved$" \
	"^ok: steal: after the attempts b's own SEND, RDMA_WRITE and RDMA_READ still work$"
pass "ffverbs steal: $(grep -c "^ok: steal: .*nothing moved" "$VB_LOGS/steal") forbidden work requests completed in error, nothing moved"
alive

# forge speaks the ring data path's protocol (ring memfds, doorbell): in
# direct mode an app's queues are the kernel's, which checks them itself
if [[ $VB_VERBS_PATH == ring ]]; then
	bad0=$(vb_status h1 --json | jq '.rdma.bad_wqes')
	rc=0
	ip netns exec ffv-b env FFNET_SOCK="${VB_RUNDIR[h1]}/c/b/ffrouter.sock" \
		timeout -k 5 300 "$FV" forge "$VICTIM" >"$VB_LOGS/forge" 2>&1 || rc=$?
	show "ffverbs forge (b, no shim)" "$VB_LOGS/forge"
	((rc == 0)) || fail "ffverbs forge exited $rc"
	expect "ffverbs forge" "$VB_LOGS/forge" \
		"^ok: forge: destroy a's PD by its handle: refused, INVALID Invalid argument$" \
		"^ok: forge: destroy a's QP by its handle: refused, INVALID Invalid argument$" \
		"^ok: forge: reg_mr on a's PD and a's buffer: refused, INVALID Invalid argument$" \
		"^ok: forge: modify_qp of a's QP to ERR: refused, INVALID Invalid argument$" \
		"^ok: forge: reg_mr of a's buffer on b's own PD: refused, INTERNAL Bad address$" \
		'^ok: forge: the router sealed the memfd it maps: ftruncate -> EPERM$' \
		'^ok: forge: reg_mr ending in the last page of the address space: refused, INVALID' \
		'^ok: forge: mem_add of 1 TiB: refused, QUOTA No buffer space available$' \
		"^ok: forge: modify_qp to a's QP under b's GID: refused, INVALID" \
		'^ok: forge: destroy a CQ a QP uses: refused, BUSY' \
		'^ok: forge: refused requests left no reference behind' \
		'^ok: forge: a receive slot with 1000 SGEs: error completion' \
		'^ok: forge: a receive producer index 100000 slots ahead: error completion' \
		'^ok: forge: a send slot with opcode 200: error completion' \
		'^ok: forge: the router closed every fd it refused$' \
		'^ok: forge: the router closed the context after 16 bad messages$' \
		'^ok: forge: a new context on the same container socket opens$' \
		'^ok: forge: memfd flood: [0-9]+ accepted, then ENOBUFS$' \
		'^ok: forge: context flood: [0-9]+ opened, then QUOTA$' \
		'^ok: forge: all forged requests refused$'
	pass "ffverbs forge: $(grep -c '^ok: forge: .*refused' "$VB_LOGS/forge") forged requests refused"
	st=$(vb_status h1 --json)
	bad=$(jq '.rdma.bad_wqes' <<<"$st")
	((bad >= bad0 + 3)) || fail "bad_wqes went from $bad0 to $bad, not up by the 3 bad ring entries"
else
	echo "ffverbs forge: skipped, it forges the ring data path ($VB_VERBS_PATH here)"
fi
after=$(contexts '.container == "a"')
# (hold connects its free QP meanwhile: QP states may change, not objects)
[[ $(jq -c 'map(del(.completions, .qp))' <<<"$after") == "$(jq -c 'map(del(.completions, .qp))' <<<"$before")" ]] ||
	fail "a's context changed while b attacked it: $before -> $after"
[[ $(jq -c '[.[0].qp[] | .state] | unique' <<<"$after") == '["RTS"]' ]] ||
	fail "a's QPs are not all RTS after b's attempts: $after"
pass "a's context unchanged by b's attempts ($(jq -c '.[0] | {pds, mrs, cqs, qps}' <<<"$after"))"
touch "$VICTIM.go"
rc=0
wait "$hpid" || rc=$?
show "ffverbs hold (a)" "$VB_LOGS/hold"
((rc == 0)) || fail "ffverbs hold exited $rc"
expect "ffverbs hold" "$VB_LOGS/hold" '^ok: hold: the MR still holds its pattern$' \
	'^ok: hold: the free QP 0x[0-9a-f]+ is now connected to 0x[0-9a-f]+$' \
	'^ok: hold: the held PD, MR, CQ and QPs still work'
pass "a's MR kept its bytes and its objects still work"
baseline "after the attacks"

# ---- kill -9 in the middle of a transfer ----
# mid_transfer CLIENT-LOG: b's ib_write_bw is moving data. The router
# counts the work it posts on the ring path; on the direct path it never
# sees it: the client's QP is in RTS and the server's connected (RTR; a
# write_bw server never sends), which perftest does just before it starts
# (what it prints comes at the end: stdout is a file).
mid_transfer() {
	if [[ $VB_VERBS_PATH == ring ]]; then
		[[ $(contexts '.container == "b" and ([.qp[].posted] | add // 0) > 100' | jq length) == 1 ]]
	else
		[[ $(contexts '(.container == "b" and any(.qp[]; .state == "RTS")) or
			(.container == "a" and any(.qp[]; .state == "RTR" or .state == "RTS"))' |
			jq length) == 2 ]]
	fi
}
# kill_mid VICTIM(server|client): ib_write_bw for 60 s; once the client's
# QP has posted work, kill -9 VICTIM's process (its pid from ffctl status);
# its context must go at once, the other program is killed too.
kill_mid() {
	local who=$1 ct pid other spid cpid port
	VB_PORT=$((VB_PORT + 1))
	port=$VB_PORT
	vb_ct a ib_write_bw "${PT[@]}" -s 65536 -D 60 -p "$port" >"$VB_LOGS/kill-$who.server" 2>&1 &
	spid=$!
	vb_wait_listen a "$port"
	vb_ct b ib_write_bw "${PT[@]}" -s 65536 -D 60 -p "$port" 10.78.0.1 >"$VB_LOGS/kill-$who.client" 2>&1 &
	cpid=$!
	for ((i = 0; i < 600; i++)); do
		mid_transfer "$VB_LOGS/kill-$who.client" && break
		sleep 0.1
	done
	((i < 600)) || fail "the ib_write_bw client posted nothing in 60 s: $(contexts)"
	sleep 1
	[[ $who == server ]] && ct=a || ct=b
	[[ $who == server ]] && other=b || other=a
	pid=$(contexts ".container == \"$ct\"" | jq '.[0].pid')
	echo "killing ib_write_bw $who (container $ct, pid $pid) in the middle of: $(contexts ".container == \"$ct\"")"
	kill -9 "$pid"
	wait_ctxs ".container == \"$ct\"" 0
	pass "kill -9 of the ib_write_bw $who: its context is gone from the router"
	alive
	pid=$(contexts ".container == \"$other\"" | jq '.[0].pid // empty')
	[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
	wait "$spid" "$cpid" 2>/dev/null || true
	baseline "after killing the $who"
}
kill_mid client
kill_mid server

vb_perf bw write_bw_after a b 65536 200 ib_write_bw "${PT[@]}" -s 65536 -n 200
pass "a new ib_write_bw pair on the same router: 200 x 64 KiB, average $VB_AVG MB/s"
baseline "at the end"
