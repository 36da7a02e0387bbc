#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# FUZZ_SECS seconds (default 60) from a seed corpus of valid inputs (each
# target writes its own when FUZZ_SEEDS=DIR is set). Exits 77 without
# clang/libFuzzer. A crash, a sanitizer report, a broken oracle or a leak
# fails it; the reproducer is left in FUZZ_OUT/crashes/TARGET-*.
#   fuzz/run.sh [BUILD_DIR [TARGET...]]     (no TARGET: all of them)
# Objects are built once into FUZZ_OUT/obj and reused while no source or
# header is newer; several run.sh may run at once (the build is locked).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd -P)
build=${1:-${FF_BUILD:-$top/build}}
shift || true
out=${FUZZ_OUT:-$build/fuzz}
secs=${FUZZ_SECS:-60}
mapfile -t all < <(cd "$top/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")
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
mkdir -p "$out/obj" "$out/crashes"
out=$(cd "$out" && pwd -P) # the object lists name objects by it
cflags=(-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
	-D_GNU_SOURCE -DFF_VERSION='"fuzz"' -Wno-unused-command-line-argument -Wno-gnu-variable-sized-type-not-at-end
	-I"$top/include" -I"$top/common" -I"$top/hostlib" -I"$build/proto" -I"$top/fuzz")
# every folder of the router, as ffrouter/meson.build names them: a new
# folder there must not break the fuzz build
router_inc=(-I"$top/tests/common")
while read -r d; do router_inc+=(-I"$d"); done < <(find "$top/ffrouter" -type d | sort)
shim_inc=(-I"$top/libffshim" -I"$top/libffshim/sock" -I"$top/libffshim/verbs" -I"$top/tests/unit/shim")
read -ra host < <(pkg-config --cflags --libs libsodium json-c)
libs=(-levent_core -levent_extra -lprotobuf-c -libverbs "${host[@]}" -lpthread -ldl)

# compile SRC into obj/SET/NAME.o with the extra flags after it
compile() {
	local set=$1 src=$2 o
	shift 2
	o="$out/obj/$set/$(echo "${src#"$top"/}" | tr / _).o"
	echo "$o" >>"$out/obj/$set.list"
	"$cc" "${cflags[@]}" "$@" -c "$src" -o "$o"
}
export -f compile
build_objs() {
	local stamp="$out/obj/.stamp"
	if [[ -f $stamp ]] && [[ -z $(find "$top" "$build/proto" \( -path "$top/build*" -o -path "$top/.git" \) -prune \
		-o \( -name '*.[ch]' -newer "$stamp" \) -print -quit) ]]; then
		return
	fi
	echo "building the fuzz objects"
	rm -rf "$out/obj/router" "$out/obj/shim" "$out/obj/"*.list
	mkdir -p "$out/obj/router" "$out/obj/shim"
	{
		# the router library (main.c aside), common/, hostlib/, the
		# in-process router and the fake device of tests/common, the harness
		for s in "$top"/common/*.c "$top"/hostlib/*.c "$build/proto/ff.pb-c.c" \
			$(find "$top/ffrouter" -name '*.c' ! -name main.c | sort) \
			"$top"/tests/common/{fixture,inproc,vt,fake-ibv}.c "$top"/fuzz/harness{,-router}.c; do
			echo "router $s ${router_inc[*]}"
		done
		# the shim's sources as its unit tests build them, and common/
		for s in "$top"/common/*.c "$build/proto/ff.pb-c.c" \
			$(find "$top/libffshim" -name '*.c' ! -name preload.c | sort) \
			"$top/tests/unit/shim/shim_fixture.c" "$top/fuzz/harness.c"; do
			echo "shim $s ${shim_inc[*]} -U_FILE_OFFSET_BITS"
		done
	} | cc="$cc" out="$out" top="$top" xargs -P "$(nproc)" -L1 bash -c \
		"$(declare -p cflags); compile \"\$@\"" _
	touch "$stamp"
}
(
	flock 9
	build_objs
	for t in "${targets[@]}"; do
		set_=router
		[[ $t == shim ]] && set_=shim
		src="$top/fuzz/fuzz_$t.c"
		[[ -f $src ]] || { echo "no target $t" >&2; exit 1; }
		bin="$out/fuzz_$t"
		if [[ ! -f $bin || $src -nt $bin || "$out/obj/.stamp" -nt $bin ]]; then
			inc=("${router_inc[@]}")
			[[ $set_ == shim ]] && inc=("${shim_inc[@]}")
			mapfile -t objs <"$out/obj/$set_.list"
			"$cc" "${cflags[@]}" -fsanitize=fuzzer "${inc[@]}" "$src" "${objs[@]}" "${libs[@]}" -o "$bin"
		fi
	done
) 9>"$out/.lock"

ulimit -n 4096
fail=0
for t in "${targets[@]}"; do
	bin="$out/fuzz_$t"
	mkdir -p "$out/corpus/$t"
	FUZZ_SEEDS="$out/corpus/$t" "$bin" >/dev/null 2>&1 || true
	echo "fuzzing $t for ${secs}s ($(ls "$out/corpus/$t" | wc -l) inputs in the corpus)"
	if "$bin" -max_total_time="$secs" -max_len=$((65536 + 4096)) -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$out/crashes/$t-" -print_final_stats=1 "$out/corpus/$t" 2>"$out/$t.log"; then
		grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$out/$t.log" | tr '\n' ' '
		echo
		echo "ok - fuzz_$t: no crash, no sanitizer report, no broken oracle in ${secs}s"
	else
		tail -n 40 "$out/$t.log"
		echo "not ok - fuzz_$t found a problem; reproducer in $out/crashes/$t-*"
		fail=1
	fi
done
exit $fail
