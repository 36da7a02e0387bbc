#!/usr/bin/env bash
# Builds the router fuzz target with clang's libFuzzer (ASan + UBSan) and
# runs it for FUZZ_SECS seconds (default 60) from a seed corpus of valid
# requests. Exits 77 without clang/libFuzzer. A crash, a sanitizer report or
# a leak fails it; the reproducer is left in FUZZ_OUT.
#   fuzz/run.sh [BUILD_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd -P)
build=${1:-${FF_BUILD:-$top/build}}
out=${FUZZ_OUT:-$build/fuzz}
secs=${FUZZ_SECS:-60}
cc=$(command -v clang || command -v clang-14 || true)
if [[ -z $cc ]] || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
	"$cc" -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
	echo "SKIP: no clang with libFuzzer (apt-get install clang)"
	exit 77
fi
if [[ ! -f $build/proto/ff.pb-c.c ]]; then
	echo "build first: no $build/proto/ff.pb-c.c" >&2
	exit 1
fi
mkdir -p "$out/corpus" "$out/crashes"
# every source of the router library and of common/ (main.c aside), so the
# target follows the tree without a list to keep in step
mapfile -t srcs < <(ls "$top"/common/*.c; find "$top/ffrouter" -name '*.c' ! -path "$top/ffrouter/main.c" | sort)
incs=()
while read -r d; do incs+=("-I$d"); done < <(find "$top/ffrouter" -type d | sort)
srcs+=("$build/proto/ff.pb-c.c" "$top/fuzz/fuzz_router.c")
# hostlib/, which the router links, and the libraries it brings
srcs+=("$top"/hostlib/*.c)
read -ra host < <(pkg-config --cflags --libs libsodium json-c)
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE \
	-DFF_VERSION='"fuzz"' -I"$top/include" -I"$top/common" -I"$top/hostlib" "${incs[@]}" \
	-I"$build/proto" "${srcs[@]}" -levent_core -levent_extra -lprotobuf-c -libverbs "${host[@]}" \
	-o "$out/fuzz_router"
FUZZ_SEEDS="$out/corpus" "$out/fuzz_router" >/dev/null 2>&1 || true
echo "fuzzing the router for ${secs}s ($(ls "$out/corpus" | wc -l) inputs in the corpus)"
ulimit -n 4096
"$out/fuzz_router" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
	-artifact_prefix="$out/crashes/" -print_final_stats=1 "$out/corpus" 2>"$out/log" || {
	tail -n 40 "$out/log"
	echo "not ok - fuzz_router found a problem; reproducer in $out/crashes/"
	exit 1
}
grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|cov:' "$out/log" | tail -n 3
echo "ok - fuzz_router: no crash, no sanitizer report in ${secs}s"
