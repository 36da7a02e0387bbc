#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2016 # single-quoted eval and sh -c bodies expand later, on purpose
# Self-test of the container test bed (testbed.sh), with no ffnet involved:
# two containers on one network run iperf3, sockperf, nginx + curl/wrk and
# redis-server + redis-benchmark across the bridge; then everything must be
# gone again (containers, networks, bridges, netns, iptables rules, dockerd).
#
#   selftest.sh [auto|docker|netns|both]     (default: $TB_BACKEND or auto)
#
# Exits 77 (skip) when no backend can work here, saying why. Prints one
# "ok"/"not ok" line per check, measurements, and "N passed, N failed".
# Env: TB_SELFTEST_DIR (work dir, kept between runs as an image cache),
# TB_SELFTEST_SUBNET (default 10.231.7.0/24).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
mode=${1:-${TB_BACKEND:-auto}}

if [[ $mode == both ]]; then
	# The host-wide lock is taken once, for both runs: one wait for another
	# test bed (not two) within meson's timeout, and none in between. Each
	# run still takes and keeps a lock of its own, a private one.
	# shellcheck source=testbed.sh
	. "$here/testbed.sh"
	trap tb_cleanup EXIT
	((EUID != 0)) || tb_lock || exit 1
	rc_all=0 ran=0
	# Each run traces itself into a file, whose end is printed if it fails:
	# twice a CI run lost the netns run after the redis checks with status
	# 1 and no message at all, not even its EXIT trap's.
	trace=$(mktemp /tmp/ffnet-selftest-trace.XXXXXX)
	for b in docker netns; do
		rc=0
		TB_BACKEND=$b TB_LOCK_FILE=$TB_LOCK_FILE.selftest TB_SELFTEST_TRACE=$trace \
			"$0" "$b" || rc=$?
		((rc == 0 || rc == 77)) || { echo "# the end of its trace:"; tail -n 80 "$trace" | sed 's/^/#   /'; }
		case $rc in
		0) ran=$((ran + 1)) ;;
		77) echo "selftest: backend $b skipped" ;;
		*)
			rc_all=1
			if ((rc > 128)); then
				echo "selftest: backend $b killed by SIG$(kill -l "$rc")"
			else
				echo "selftest: backend $b failed (status $rc)"
			fi
			;;
		esac
	done
	rm -f "$TB_LOCK_FILE.selftest" "$trace"
	((rc_all == 0 && ran == 0)) && exit 77
	exit $rc_all
fi
export TB_BACKEND=$mode

# shellcheck source=testbed.sh
. "$here/testbed.sh"

wd=${TB_SELFTEST_DIR:-/var/tmp/ffnet-testbed/selftest}
subnet=${TB_SELFTEST_SUBNET:-10.231.7.0/24}
base=${subnet%.*/*}
ip1=$base.2 ip2=$base.3
# shellcheck disable=SC2034 # used in evals below
ip3=$base.4 subnet2=${base%.*}.$(((${base##*.} + 1) % 256)).0/24
cpu=$(($(nproc) - 1)) # server and client for the pinned runs
cpu2=$((cpu > 0 ? cpu - 1 : cpu))
npass=0 nfail=0
declare -A res=()

ok() { npass=$((npass + 1)); echo "ok - $*"; }
nok() { nfail=$((nfail + 1)); echo "not ok - $*"; }
last_check="(none yet)"
check() { # DESCRIPTION CMD...: pass if CMD succeeds
	local d=$1
	shift
	last_check=$d
	if "$@"; then ok "$d"; else nok "$d"; fi
}

# host state that must be the same afterwards, seen under the test bed lock
((EUID != 0)) || tb_lock || exit 1
ipfwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
# (/run/netns, iproute2's own mount point, may appear and is left alone)
# /run/netns and /run/mount (libmount's utab, made by the first mount(8) on
# a fresh machine) belong to the system, not to a test bed.
run_entries() { find /run /etc/docker -maxdepth 1 ! -path /run/netns ! -path /run/mount 2>/dev/null | sort; }
run_before=$(run_entries)
fwpol_before=$(iptables -w -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3 }' || true)
docker_chains_before=$(iptables -w -S 2>/dev/null | grep -c '^-N DOCKER' || true)

# An exit by set -e or a signal is otherwise silent: say where. (A CI run
# once lost the netns run after the redis checks, status 1, no message.)
last_err="none"
if [[ -n ${TB_SELFTEST_TRACE:-} ]]; then
	exec {_xfd}>"$TB_SELFTEST_TRACE"
	BASH_XTRACEFD=$_xfd
	PS4='+ ${BASH_SOURCE[0]##*/}:$LINENO: '
	set -x
fi
set -E # (the ERR trap in functions too; it only records)
trap 'last_err="line $LINENO: \"$BASH_COMMAND\" (status $?)"' ERR
trap 'rc=$?; ((rc == 0)) || echo "selftest ($mode): exit status $rc; last check begun: $last_check; last failed command: $last_err" >&2; tb_cleanup' EXIT
rc=0
tb_init "$wd" || rc=$?
if ((rc == 2)); then
	echo "SKIP: no container backend can run here (TB_BACKEND=$mode; reasons above)"
	exit 77
elif ((rc != 0)); then
	echo "Bail out! tb_init failed"
	exit 1
fi
backend=$(tb_backend)
echo "# backend: $backend"

tb_ensure iperf3 sockperf nginx:nginx-light redis-server redis-benchmark:redis-tools curl wrk jq

files=(/usr/bin/iperf3 /usr/bin/sockperf /usr/sbin/nginx /etc/nginx/mime.types
	"$here/nginx.conf=/etc/nginx/nginx.conf" /usr/bin/redis-server /usr/bin/redis-benchmark
	/usr/bin/redis-cli /usr/bin/curl /usr/bin/wrk)
check "tb_image builds the app image" tb_image tbself "${files[@]}"
t0=$EPOCHREALTIME
check "tb_image again is a no-op" tb_image tbself "${files[@]}"
res[image_rebuild_noop_s]=$(_tb_since "$t0")
check "tb_net creates $subnet" tb_net sn "$subnet"
check "tb_net is idempotent" tb_net sn "$subnet"

www=$TB_WORKDIR/www
rm -rf "$www"
mkdir -p "$www"
echo "hello from the host $$" >"$www/index.html"
head -c 1048576 /dev/urandom >"$www/blob.bin"
check "tb_run c1" tb_run c1 tbself "$ip1" --mount "$www:/srv/www" --env TB_SELFTEST=c1
check "tb_run c2" tb_run c2 tbself "$ip2"
check "tb_run refuses a duplicate name" eval '! tb_run c2 tbself "$ip2" 2>/dev/null'

# ---- basics
check "tb_ip" test "$(tb_ip c1)" = "$ip1"
check "tb_pid is a live host pid" test -d "/proc/$(tb_pid c1)"
check "container has its IP on eth0" eval 'tb_exec c1 -- ip -4 -o addr show dev eth0 | grep -qF " $ip1/"'
check "bind mount visible inside" test "$(tb_exec c1 -- cat /srv/www/index.html)" = "$(cat "$www/index.html")"
tb_exec c1 -- sh -c 'echo written-inside >/srv/www/from-c1'
check "bind mount writable from inside" test "$(cat "$www/from-c1" 2>/dev/null)" = written-inside
check "tb_run --env" test "$(tb_exec c1 -- sh -c 'echo $TB_SELFTEST')" = c1
check "tb_exec --env" test "$(tb_exec c2 --env A=b -- sh -c 'echo $A')" = b
check "tb_exec passes stdin" test "$(echo piped | tb_exec c2 -- cat)" = piped
rc=0
tb_exec c2 -- sh -c 'exit 3' || rc=$?
check "tb_exec returns the status" test "$rc" = 3
# shellcheck disable=SC2034 # used in the eval below
mask=$(printf '%x' $((1 << cpu2)))
check "tb_exec --cpu pins" eval 'tb_exec c2 --cpu "$cpu2" -- sh -c "taskset -p \$\$" | grep -q "mask: $mask\$"'
check "ping across the bridge" eval 'tb_exec c2 -- ping -c 1 -W 2 "$ip1" >/dev/null'

# ---- docker takes a name it does not know as an ID prefix (`docker rm -f c2`
# with no c2 removes the container whose ID starts with "c2"): names that are
# prefixes of c1's and of sn's IDs must leave c1 and sn alone
if [[ $backend == docker ]]; then
	p=$(tb_docker inspect -f '{{.Id}}' c1) q=$(tb_docker network inspect -f '{{.Id}}' sn)
	p=${p:0:12} q=${q:0:12}
	check "a failed tb_run $p (a prefix of c1's ID) leaves c1 alone" \
		eval '! tb_run "$p" tbself-none "$ip3" 2>/dev/null && tb_exec c1 -- true'
	check "tb_run + tb_rm $p: that container, c1 left alone" \
		eval 'tb_run "$p" tbself "$ip3" && test "$(tb_exec "$p" -- cat /etc/hostname)" = "$p" &&
			tb_rm "$p" && tb_exec c1 -- true'
	check "tb_net + tb_net_rm $q (a prefix of sn's ID): sn left alone" \
		eval 'tb_net "$q" "$subnet2" && tb_net_rm "$q" && tb_exec c2 -- ping -c 1 -W 2 "$ip1" >/dev/null'
fi

# ---- iperf3 (server and client pinned to the same CPU: on these VMs an idle
# vCPU halts, and a ping-pong across two vCPUs costs several times more)
id=$(tb_exec_bg c1 --cpu "$cpu" -- iperf3 -s -1)
tb_wait_port c1 5201
json=$(tb_exec c2 --cpu "$cpu" -- iperf3 -c "$ip1" -t 2 -J) || true
bps=$(jq -r '.end.sum_received.bits_per_second // 0' <<<"$json" 2>/dev/null || echo 0)
check "iperf3 reports bits_per_second > 0 ($bps)" awk -v b="$bps" 'BEGIN { exit !(b > 0) }'
res[iperf3_gbit_s]=$(awk -v b="$bps" 'BEGIN { printf "%.2f", b / 1e9 }')
check "iperf3 -s -1 ended by itself with status 0" tb_wait "$id" 10

# ---- sockperf ping-pong: both on one CPU, then on two CPUs
id=$(tb_exec_bg c1 --cpu "$cpu" -- sockperf sr --tcp -i "$ip1" -p 11111)
tb_wait_port c1 11111
for c in "$cpu" "$cpu2"; do
	out=$(tb_exec c2 --cpu "$c" -- sockperf pp --tcp -i "$ip1" -p 11111 -t 2 2>&1) || true
	p50=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' <<<"$out")
	p99=$(sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' <<<"$out")
	where=same_cpu
	[[ $c == "$cpu" ]] || where=cross_cpu
	check "sockperf pp ($where) prints latency percentiles (p50 $p50 us)" test -n "$p50"
	res[sockperf_${where}_p50_us]=$p50
	res[sockperf_${where}_p99_us]=$p99
	[[ $cpu2 == "$cpu" ]] && break
done
tb_kill "$id"
rc=0
tb_wait "$id" 10 || rc=$?
check "tb_kill + tb_wait on sockperf sr (status $rc)" test "$rc" -ne 124

# ---- nginx + curl + wrk
id=$(tb_exec_bg c1 -- nginx)
if tb_wait_port c1 80; then
	got=$(tb_exec c2 -- curl -sf "http://$ip1/blob.bin" | sha256sum | cut -d' ' -f1)
	check "curl gets a 1 MiB file from nginx in c1" test "$got" = "$(sha256sum <"$www/blob.bin" | cut -d' ' -f1)"
	check "curl gets index.html" test "$(tb_exec c2 -- curl -sf "http://$ip1/")" = "$(cat "$www/index.html")"
	out=$(tb_exec c2 --cpu "$cpu2" -- wrk -t 1 -c 8 -d 1s "http://$ip1/index.html" 2>&1) || true
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	check "wrk measures requests/sec ($rps)" awk -v r="${rps:-0}" 'BEGIN { exit !(r > 0) }'
	res[nginx_wrk_req_s]=${rps:-0}
else
	nok "nginx listens on port 80"
	tb_bg_log "$id" | tail -n 5
fi
tb_kill "$id" QUIT
check "nginx exits on SIGQUIT" tb_wait "$id" 10

# ---- redis
id=$(tb_exec_bg c1 -- redis-server --save '' --appendonly no --protected-mode no)
if tb_wait_port c1 6379; then
	out=$(tb_exec c2 -- redis-benchmark -h "$ip1" -t set,get -n 10000 -q 2>&1 | tr '\r' '\n') || true
	set_rps=$(sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)
	get_rps=$(sed -n 's/^GET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)
	check "redis-benchmark SET across containers ($set_rps req/s)" test -n "$set_rps"
	check "redis-benchmark GET across containers ($get_rps req/s)" test -n "$get_rps"
	res[redis_set_req_s]=$set_rps
	res[redis_get_req_s]=$get_rps
else
	nok "redis-server listens on port 6379"
	tb_bg_log "$id" | tail -n 5
fi
tb_kill "$id"
check "redis-server exits on SIGTERM" tb_wait "$id" 10

# ---- removal
check "tb_rm c2" tb_rm c2
check "tb_rm c2 again is fine" tb_rm c2
check "c2 is gone" eval '! tb_ip c2 2>/dev/null'

# ---- timings measured by the library
while read -r k v; do res[t_${k}_s]=$v; done < <(tb_times)

# ---- cleanup must leave nothing behind (checked before another test bed may
# take the lock)
tb_cleanup --keep-lock
tb_cleanup --keep-lock
if [[ ${TB_LOCK:-1} != 0 ]]; then
	check "tb_cleanup --keep-lock (twice) kept the test bed lock" eval '! flock -n "$TB_LOCK_FILE" true'
fi
leftover=$(ip netns list 2>/dev/null | grep -E '^tb-' || true)
check "no netns left${leftover:+: $leftover}" test -z "$leftover"
leftover=$(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | grep -E '^tbv?-' || true)
check "no bridges or veths left${leftover:+: $leftover}" test -z "$leftover"
leftover=$(iptables-save 2>/dev/null | grep -E -- '-[io] tb-' || true)
check "no iptables rules left${leftover:+: $leftover}" test -z "$leftover"
if [[ $docker_chains_before == 0 && -z $(_tb_other_dockerd) ]]; then
	check "no DOCKER chains left" test "$(iptables -w -S | grep -c '^-N DOCKER' || true)" = 0
fi
check "FORWARD policy restored" test "$(iptables -w -S FORWARD | awk '$1 == "-P" { print $3 }')" = "$fwpol_before"
check "ip_forward restored" test "$(cat /proc/sys/net/ipv4/ip_forward)" = "$ipfwd_before"
leftover=""
for p in /proc/[0-9]*; do
	cl=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
	[[ $cl == *"/run/ffnet-tb-"* || $cl == *"tb-init "* || $cl == *"$wd/"* ]] && leftover+=" ${p#/proc/}"
done
check "no test bed processes left${leftover:+:$leftover}" test -z "$leftover"
check "no private dockerd dir left" eval '! compgen -G "/run/ffnet-tb-*" >/dev/null'
leftover=$(comm -13 <(echo "$run_before") <(run_entries) | tr '\n' ' ')
check "nothing new in /run or /etc/docker${leftover:+: $leftover}" test -z "$leftover"
check "no mounts left under the work dir" eval '! grep -qF " $wd/" /proc/self/mountinfo'

tb_cleanup # releases the lock
echo "# measurements ($backend):"
for k in $(printf '%s\n' "${!res[@]}" | sort); do echo "#   $k = ${res[$k]}"; done
echo "$npass passed, $nfail failed"
((nfail == 0))
