#!/usr/bin/env bash
# The ffnet demo, from a fresh Debian 12 machine: installs what it needs,
# builds, starts ffrouter and two containers (Docker, started here; network
# namespaces if no engine can run), registers them, and runs iperf3 and
# sockperf between them over the normal container network and over ffnet.
# Prints a side-by-side table and what the router saw; then, on Docker, the
# same pair started with `docker run --runtime ffnet` (ffnet-runtime: no
# registration, mount or preload by hand) against plain `docker run`.
#   scripts/demo.sh          (root)
# DEMO_SECS (default 5) sets the length of each measurement.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
if ((EUID != 0)); then
	echo "demo.sh: run as root (it installs packages, starts dockerd and the router)" >&2
	exit 1
fi
"$top/scripts/deps.sh"
"$top/scripts/build.sh" >/dev/null
export BENCH_SECS=${DEMO_SECS:-5}
. "$top/bench/lib.sh"
# the private dockerd knows ffnet-runtime, as a user's would (README: three steps)
FF_RUNDIR=${FF_RUNDIR:-/run/ffnet-t}
TB_DOCKERD_JSON=$(ff_runtime_json)
export TB_DOCKERD_JSON

say() { printf '\n== %s\n' "$*"; }
say "starting the test bed, ffrouter and two containers"
rc=0
bench_setup demo 10.77.7.0/24 || rc=$?
if ((rc == 77)); then
	echo "demo: no container backend can run on this machine (see above)" >&2
	exit 1
elif ((rc)); then
	exit "$rc"
fi
say "registered containers (ffctl list)"
ffctl list

say "measuring: container network (no shim) vs ffnet (LD_PRELOAD=libffshim.so), ${BENCH_SECS}s each"
declare -A r=()
for w in bridge ffnet; do
	echo "  $w: iperf3 1 stream..."
	r[i1.$w]=$(measure_iperf "$w" 1)
	echo "  $w: iperf3 4 streams..."
	r[i4.$w]=$(measure_iperf "$w" 4)
	echo "  $w: sockperf ping-pong..."
	read -r r[p50.$w] r[p99.$w] < <(measure_sockperf "$w")
done

say "while ffnet ran, the router showed (ffctl status, connections):"
srv=$(bx_bg ffnet c1 "$BENCH_SRV_CPU" -- iperf3 -s -1 -p 5302)
bx_wait_port ffnet 5302
cli=$(bx_bg ffnet c2 "$BENCH_CLI_CPU" -- iperf3 -c "$FF_IP1" -p 5302 -t 3)
sleep 1.5
ffctl status | sed -n '/^ID .*PATH/,$p'
tb_wait "$cli" 30 >/dev/null 2>&1 || true
bx_stop "$srv"

say "results ($(tb_backend) containers; throughput: server CPU $BENCH_SRV_CPU, client CPU $BENCH_CLI_CPU; latency: both on CPU $BENCH_SRV_CPU)"
printf '%-28s %18s %12s %10s\n' "" "container network" ffnet "ffnet is"
printf '%-28s %18s %12s %9sx\n' "iperf3 1 stream (Gbit/s)" "${r[i1.bridge]}" "${r[i1.ffnet]}" "$(ratio "${r[i1.ffnet]}" "${r[i1.bridge]}")"
printf '%-28s %18s %12s %9sx\n' "iperf3 4 streams (Gbit/s)" "${r[i4.bridge]}" "${r[i4.ffnet]}" "$(ratio "${r[i4.ffnet]}" "${r[i4.bridge]}")"
printf '%-28s %18s %12s %9sx\n' "sockperf p50 latency (us)" "${r[p50.bridge]}" "${r[p50.ffnet]}" "$(ratio "${r[p50.bridge]}" "${r[p50.ffnet]}")"
printf '%-28s %18s %12s %9sx\n' "sockperf p99 latency (us)" "${r[p99.bridge]}" "${r[p99.ffnet]}" "$(ratio "${r[p99.bridge]}" "${r[p99.ffnet]}")"
echo "(\"ffnet is Nx\": N times the throughput, or 1/N of the latency; one run each —"
echo " bench/same-host.sh takes medians of 3 and adds host loopback and redis)"

# The same measurements with containers started the way a user starts them:
# `docker run --runtime ffnet` (nothing registered, mounted or preloaded by
# hand) against `docker run` on runc, same image, same network.
if [[ $(tb_backend) == docker ]]; then
	say "through ffnet-runtime: docker run --runtime ffnet vs plain docker run (runc), ${BENCH_SECS}s each"
	rt_pair() { # RUNTIME-OPTS...: start server rs, print its IP
		tb_docker rm -f rs >/dev/null 2>&1 || true
		tb_docker run -d --name rs --label ffnet.demo=1 "$@" --network ffn --cpuset-cpus "$BENCH_SRV_CPU" \
			"$FF_IMAGE" sh -c 'iperf3 -s -D -p 5401 && exec sockperf sr --tcp -i 0.0.0.0 -p 11411' >/dev/null &&
			sleep 1 && tb_docker inspect -f '{{(index .NetworkSettings.Networks "ffn").IPAddress}}' rs
	}
	rt_cli() { # CPU RUNTIME-OPTS... -- PROGRAM...
		local cpu=$1 o=()
		shift
		while [[ $1 != -- ]]; do o+=("$1"); shift; done
		shift
		tb_docker run --rm --label ffnet.demo=1 "${o[@]}" --network ffn --cpuset-cpus "$cpu" "$FF_IMAGE" "$@" 2>/dev/null
	}
	declare -A q=()
	for w in runc ffnet; do
		o=()
		[[ $w == ffnet ]] && o=(--runtime ffnet)
		ip=$(rt_pair "${o[@]}") || { echo "  could not start the $w server"; continue; }
		q[i1.$w]=$(iperf_gbps "$(rt_cli "$BENCH_CLI_CPU" "${o[@]}" -- iperf3 -c "$ip" -p 5401 -t "$BENCH_SECS" -J || true)")
		read -r q[p50.$w] q[p99.$w] < <(sockperf_pcts "$(rt_cli "$BENCH_SRV_CPU" "${o[@]}" -- \
			sockperf pp --tcp -i "$ip" -p 11411 -t "$BENCH_SECS" 2>&1 || true)")
		[[ $w == ffnet ]] && { echo "  registered by the runtime while it ran (ffctl list):"; ffctl list | sed 's/^/    /'; }
		tb_docker rm -f rs >/dev/null 2>&1 || true
	done
	printf '%-28s %18s %14s %10s\n' "" "docker run (runc)" "--runtime ffnet" "ffnet is"
	printf '%-28s %18s %14s %9sx\n' "iperf3 1 stream (Gbit/s)" "${q[i1.runc]:-}" "${q[i1.ffnet]:-}" "$(ratio "${q[i1.ffnet]:-}" "${q[i1.runc]:-}")"
	printf '%-28s %18s %14s %9sx\n' "sockperf p50 latency (us)" "${q[p50.runc]:-}" "${q[p50.ffnet]:-}" "$(ratio "${q[p50.runc]:-}" "${q[p50.ffnet]:-}")"
	printf '%-28s %18s %14s %9sx\n' "sockperf p99 latency (us)" "${q[p99.runc]:-}" "${q[p99.ffnet]:-}" "$(ratio "${q[p99.runc]:-}" "${q[p99.ffnet]:-}")"
else
	say "ffnet-runtime needs Docker; this machine ran the demo on $(tb_backend) containers"
fi
ff_router_stop
