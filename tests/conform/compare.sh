#!/bin/sh
# compare.sh NATIVE_TRANSCRIPT FFNET_TRANSCRIPT
# Compares two ffconform transcripts (stdout of a native and an ffnet run).
# Prints the differing lines and exits 1 if they differ, 0 if identical,
# 2 on usage errors.
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 NATIVE_TRANSCRIPT FFNET_TRANSCRIPT" >&2
	exit 2
fi
for f in "$1" "$2"; do
	if [ ! -r "$f" ]; then
		echo "compare.sh: cannot read $f" >&2
		exit 2
	fi
done

if cmp -s "$1" "$2"; then
	echo "transcripts identical: $(grep -c '^[CS] ok ' "$1") checks"
	exit 0
fi

# Unified diff without context: '-' lines are native, '+' lines ffnet. The
# scenario header (== NAME) above each hunk is named in the @@ line.
diff -U0 --label native --label ffnet -F '^[CS] == ' "$1" "$2"
echo "transcripts differ: $(diff "$1" "$2" | grep -c '^<') native line(s)," \
	"$(diff "$1" "$2" | grep -c '^>') ffnet line(s)"
exit 1
