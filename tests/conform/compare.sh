#!/bin/sh
# compare.sh NATIVE_TRANSCRIPT FFNET_TRANSCRIPT
# Compares two ffconform transcripts (stdout of a native and an ffnet run).
# Either may be "-" (stdin). Prints the differing lines and exits 1 if they
# differ, 0 if identical, 2 on usage errors.
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 NATIVE_TRANSCRIPT FFNET_TRANSCRIPT" >&2
	exit 2
fi
for f in "$1" "$2"; do
	if [ "$f" != - ] && [ ! -r "$f" ]; then
		echo "compare.sh: cannot read $f" >&2
		exit 2
	fi
done

# Copies, so that pipes and process substitutions can be read more than once.
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
cat "$1" >"$tmp/native" && cat "$2" >"$tmp/ffnet" || exit 2
cd "$tmp" || exit 2

if cmp -s native ffnet; then
	echo "transcripts identical: $(grep -c '^[CS] ok ' native) checks"
	exit 0
fi

# Unified diff without context: '-' lines are native, '+' lines ffnet. The
# scenario header (== NAME) above each hunk is named in the @@ line.
diff -U0 -F '^[CS] == ' native ffnet
echo "transcripts differ: $(diff native ffnet | grep -c '^<') native line(s)," \
	"$(diff native ffnet | grep -c '^>') ffnet line(s)"
exit 1
