# shellcheck shell=bash
# Small arithmetic the benchmarks share.

median() { # numbers...: the middle of the sorted values
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { # A B: A/B with two decimals ("-" if B is 0)
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
