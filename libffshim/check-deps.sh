#!/bin/bash
# libffshim.so must need nothing but libc (libdl/libpthread allowed) at run
# time, and export nothing but the names it interposes (libffshim.map).
# usage: check-deps.sh LIBFFSHIM.SO VERSION-SCRIPT
set -eu
so=$1 map=$2
fail=0
deps=$(ldd "$so" | awk '{ print $1 }' | grep -vE '^(linux-vdso\.so|/lib64/ld-linux|libc\.so|libdl\.so|libpthread\.so)' || true)
if [ -n "$deps" ]; then
	echo "not ok - libffshim.so needs more than libc: $deps"
	fail=1
else
	echo "ok - ldd libffshim.so: $(ldd "$so" | awk '{ print $1 }' | tr '\n' ' ')"
fi
want=$(sed -n '/global:/,/local:/p' "$map" | tr ' \t;' '\n\n\n' | grep -E '^[a-z_][a-z_0-9]*$' | grep -vE '^(global|local)$' | sort)
have=$(nm -D --defined-only "$so" | awk '{ print $3 }' | sed 's/@.*//' | sort)
if [ "$want" = "$have" ]; then
	echo "ok - exports exactly the $(echo "$want" | wc -l) interposed names"
else
	echo "not ok - exported names differ from libffshim.map:"
	diff <(echo "$want") <(echo "$have") 2>/dev/null || { echo "want: $want"; echo "have: $have"; }
	fail=1
fi
exit $fail
