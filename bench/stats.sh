# shellcheck shell=bash
# What the benchmarks share: small arithmetic, reading the tools' output,
# and the runs, JSON and chart of the network benchmarks (same-host.sh,
# cross-host.sh), which measure the same figures in different places.

median() { # numbers...: the middle of the sorted values
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { # A B: A/B with two decimals ("-" if A is missing or B is 0)
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

iperf_gbps() { # OUTPUT of iperf3 -J: the received Gbit/s, two decimals (0 if unreadable)
	jq -r '(.end.sum_received.bits_per_second // 0) / 1e9 | . * 100 | round / 100' <<<"$1" 2>/dev/null || echo 0
}

sockperf_pcts() { # OUTPUT of sockperf pp: "P50 P99" in microseconds (empty where missing)
	printf '%s %s\n' \
		"$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' <<<"$1" | head -n 1)" \
		"$(sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' <<<"$1" | head -n 1)"
}

# net_run WHERE: one run of the figures both network benchmarks take,
# appended to the caller's v[FIGURE.WHERE]: iperf1, iperf4 (Gbit/s with 1
# and 4 streams) and p50, p99 (sockperf, us), from the caller's
# measure_iperf WHERE STREAMS and measure_sockperf WHERE ("P50 P99").
# shellcheck disable=SC2154 # v is the caller's, associative
net_run() {
	local p50 p99
	v[iperf1.$1]+=" $(measure_iperf "$1" 1)"
	v[iperf4.$1]+=" $(measure_iperf "$1" 4)"
	read -r p50 p99 < <(measure_sockperf "$1")
	v[p50.$1]+=" ${p50:-0}"
	v[p99.$1]+=" ${p99:-0}"
}

# net_runs LOG MORE: BENCH_RUNS runs over the caller's wheres, interleaved
# so that drift hits every WHERE alike: each run of a WHERE is LOG saying
# so, net_run WHERE, then MORE WHERE for the benchmark's own figures.
# shellcheck disable=SC2154 # wheres is the caller's
net_runs() {
	local r w
	for ((r = 1; r <= BENCH_RUNS; r++)); do
		for w in "${wheres[@]}"; do
			"$1" "run $r/$BENCH_RUNS: $w"
			net_run "$w"
			"$2" "$w"
		done
	done
}

medians() { # fills the caller's m[KEY] with the median of each v[KEY]
	local k
	for k in "${!v[@]}"; do
		# shellcheck disable=SC2086,SC2004 # a word list; m is associative
		m[$k]=$(median ${v[$k]})
	done
}

# json_metrics [WHERE=NAME...]: the entries of a benchmark JSON's "metrics"
# object, from the caller's metrics, label, lower, wheres, m and v: for
# each metric its label, whether lower is better, and each WHERE's median
# and runs, under WHERE's own name or the NAME given for it (a WHERE that
# did not measure the metric has no entry).
# shellcheck disable=SC2154 # the caller's
json_metrics() {
	local -A name=()
	local a k w sep=
	for a; do name[${a%%=*}]=${a#*=}; done
	for k in "${metrics[@]}"; do
		printf '%s\n  "%s": {"label": "%s", "lower_is_better": %s' "$sep" "$k" "${label[$k]}" \
			"$([[ -n ${lower[$k]:-} ]] && echo true || echo false)"
		for w in "${wheres[@]}"; do
			[[ -n ${v[$k.$w]:-} ]] || continue
			# shellcheck disable=SC2086
			printf ', "%s": {"median": %s, "runs": [%s]}' "${name[$w]:-$w}" "${m[$k.$w]}" \
				"$(echo ${v[$k.$w]} | tr ' ' ',')"
		done
		printf '}'
		sep=,
	done
}

chart() { # JSON PNG: draws the bar charts of JSON (plot.py) and says where, or why not
	local err
	err=$(dirname "$2")/plot.err
	# Debian's python3 (python3-matplotlib), not whatever python3 comes first in PATH
	if /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/plot.py" "$1" "$2" 2>"$err"; then
		echo "chart: $2"
	else
		echo "chart: not drawn ($(tail -n 1 "$err"))"
	fi
}
