#!/bin/sh
# compare.sh [--allow FILE] NATIVE_TRANSCRIPT FFNET_TRANSCRIPT
# Compares two ffconform transcripts (stdout of a native and an ffnet run).
# Either may be "-" (stdin). Prints the differing lines and exits 1 if they
# differ, 0 if identical, 2 on usage errors.
#
# --allow FILE lists known deviations, one check name per line followed by
# the reason ("#" starts a comment). Lines of those checks may differ; they
# are printed as "known deviation" with the reason, never hidden. The
# summary lines are then not compared (they count those checks); any other
# difference still fails.
set -u

allow=
if [ "${1:-}" = --allow ]; then
	allow=${2:-}
	shift 2 || true
fi
if [ $# -ne 2 ]; then
	echo "usage: $0 [--allow FILE] NATIVE_TRANSCRIPT FFNET_TRANSCRIPT" >&2
	exit 2
fi
for f in "$1" "$2" ${allow:+"$allow"}; do
	if [ "$f" != - ] && [ ! -r "$f" ]; then
		echo "compare.sh: cannot read $f" >&2
		exit 2
	fi
done

# Copies, so that pipes and process substitutions can be read more than once.
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
cat "$1" >"$tmp/native" && cat "$2" >"$tmp/ffnet" || exit 2
[ -z "$allow" ] || grep -vE '^[[:space:]]*(#|$)' "$allow" >"$tmp/allow" || : >"$tmp/allow"
cd "$tmp" || exit 2

if cmp -s native ffnet; then
	echo "transcripts identical: $(grep -c '^[CS] ok ' native) checks"
	exit 0
fi

if [ -n "$allow" ]; then
	# one extended regex for every allowed check's lines, plus the summaries
	pat='^[CS] summary:'
	while read -r name _; do
		pat="$pat|^[CS] (ok|FAIL) $(printf '%s' "$name" | sed 's/[.[\*^$]/\\&/g'):"
	done <allow
	grep -vE "$pat" native >native.cmp
	grep -vE "$pat" ffnet >ffnet.cmp
	while read -r name reason; do
		esc=$(printf '%s' "$name" | sed 's/[.[\*^$]/\\&/g')
		grep -E "^[CS] (ok|FAIL) $esc:" native >n.1
		grep -E "^[CS] (ok|FAIL) $esc:" ffnet >f.1
		cmp -s n.1 f.1 || echo "known deviation $name ($reason): $(cat f.1 | tr '\n' ' ')"
	done <allow
else
	cp native native.cmp
	cp ffnet ffnet.cmp
fi

if cmp -s native.cmp ffnet.cmp; then
	echo "transcripts identical apart from known deviations: $(grep -c '^[CS] ok ' native.cmp) checks"
	exit 0
fi
# Unified diff without context: '-' lines are native, '+' lines ffnet. The
# scenario header (== NAME) above each hunk is named in the @@ line.
diff -U0 -F '^[CS] == ' native.cmp ffnet.cmp
echo "transcripts differ: $(diff native.cmp ffnet.cmp | grep -c '^<') native line(s)," \
	"$(diff native.cmp ffnet.cmp | grep -c '^>') ffnet line(s)"
exit 1
