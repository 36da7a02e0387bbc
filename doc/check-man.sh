#!/usr/bin/env bash
# Lints a man page of doc/man/ with mandoc and checks that it cannot drift
# from the program it describes:
#   check-man.sh ffrouter PAGE FFROUTER     every long option of --help
#   check-man.sh ffctl PAGE FFCTL           every command and long option of "ffctl help"
#   check-man.sh ffexec PAGE FFEXEC         every long option of its usage text
#   check-man.sh ffnet-runtime PAGE FFNET-RUNTIME
#                                           every option of --ffnet-help
#   check-man.sh ffnet PAGE FFNET CNI_C CNI_H
#                                           its versions, CNI commands and error codes
#   check-man.sh libffshim PAGE MAP HEADER...
#                                           the socket calls MAP exports, the FF_ENV_*
#                                           variables the headers define
# For those four, every long option the page lists under OPTIONS must
# also be one the program prints (ffctl also takes --help, unlisted).
# The page is read as mandoc renders it, so roff escapes do not matter.
set -uo pipefail
kind=${1:?usage: check-man.sh KIND PAGE ARGS...} page=${2:?usage: check-man.sh KIND PAGE ARGS...}
shift 2
if ! command -v mandoc >/dev/null; then
	echo "SKIP: mandoc is missing, the linter (apt-get install mandoc)"
	exit 77
fi
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }

lint=$(mandoc -T lint -W warning "$page" 2>&1)
[[ $? == 0 && -z $lint ]] && ok "mandoc -T lint: $(basename "$page")" || nok "mandoc -T lint: $lint"

# The page as text: wide lines (no tag or option split), no overstrike.
text=$(mandoc -T ascii -O width=250 "$page" | sed 's/.\x08//g')
# The lines of section $1 (a header at column 0, up to the next one).
section() { awk -v s="$1" '/^[A-Z]/ { on = ($0 == s); next } on' <<<"$text"; }
# Whether $2 occurs in text $1 as a whole word: not inside a longer name
# or option (--host is not found in --host-allow).
has_word() {
	local w=${2//./\\.}
	grep -qE -- "(^|[^[:alnum:]_-])$w(\$|[^[:alnum:]_-])" <<<"$1"
}
# Whether $2 starts a tagged paragraph in text $1 (.TP at any depth).
has_tag() {
	local w=${2//./\\.}
	grep -qE -- "^ +$w( |\$)" <<<"$1"
}
long_opts() { grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }

# Every long option in usage text $1 is in sections $2, and every long
# option tagging a paragraph under OPTIONS is in the usage or in $3.
check_opts() {
	local usage=$1 where=$2 extra=${3:-} o
	[[ -n $(long_opts <<<"$usage") ]] || nok "no long option in the usage text: $usage"
	for o in $(long_opts <<<"$usage"); do
		has_word "$where" "$o" && ok "documents $o" || nok "does not document $o"
	done
	for o in $(section OPTIONS | grep -oE -- '^ {7}(-[A-Za-z], )?--[a-z][a-z0-9-]*' | long_opts); do
		grep -qxF -- "$o" <<<"$(long_opts <<<"$usage")$extra" && ok "$o is an option" ||
			nok "documents $o, which the usage text does not print"
	done
}

case $kind in
ffrouter)
	usage=$("$1" --help) || nok "$1 --help failed"
	check_opts "$usage" "$(section OPTIONS)"
	;;
ffctl)
	usage=$("$1" help) || nok "$1 help failed"
	check_opts "$usage" "$(section OPTIONS; section COMMANDS)" $'\n--help'
	cmds=$(sed -nE 's/^  ([a-z][a-z-]*) .*/\1/p' <<<"$usage")
	[[ -n $cmds ]] || nok "no command in the usage text"
	for c in $cmds; do
		has_tag "$(section COMMANDS)" "$c" && ok "command $c" || nok "no command $c under COMMANDS"
	done
	;;
ffnet-runtime)
	usage=$("$1" --ffnet-help) || nok "$1 --ffnet-help failed"
	check_opts "$usage" "$(section OPTIONS)"
	;;
ffexec)
	# no argument: the usage on stderr, exit 125
	usage=$("$1" 2>&1 </dev/null)
	[[ $? == 125 ]] || nok "ffexec without a program did not exit 125"
	check_opts "$usage" "$(section OPTIONS)"
	;;
ffnet)
	exe=$1 cni_c=$2 cni_h=$3
	vers=$(env -u CNI_COMMAND "$exe" 2>&1 </dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+')
	[[ -n $vers ]] || nok "ffnet printed no versions without CNI_COMMAND"
	for v in $vers; do
		has_word "$text" "$v" && ok "version $v" || nok "does not name version $v"
	done
	cmds=$(grep -oE '\{"[A-Z]+", ffn_cmd_' "$cni_c" | grep -oE '[A-Z]+')
	[[ -n $cmds ]] || nok "no command table in $cni_c"
	for c in $cmds VERSION; do
		has_tag "$(section COMMANDS)" "$c" && ok "command $c" || nok "no command $c under COMMANDS"
	done
	codes=$(sed -nE 's/^\s*FFN_E_[A-Z_]+ = ([0-9]+),.*/\1/p' "$cni_h")
	[[ -n $codes ]] || nok "no error codes in $cni_h"
	for c in $codes; do
		has_tag "$(section ERRORS)" "$c" && ok "error code $c" || nok "no error code $c under ERRORS"
	done
	;;
libffshim)
	map=$1
	shift
	calls=$(sed -n '/^global:/,/^local:/p' "$map" | tr ' \t;' '\n\n\n' |
		grep -E '^[_a-z][_a-z0-9]*$' | grep -vE '^_*(ibv|rdma)_')
	[[ -n $calls ]] || nok "no socket calls in $map"
	what=$(awk '/^   What it intercepts$/ { on = 1; next } /^[^ ]|^   [^ ]/ { on = 0 } on' <<<"$text")
	for c in $calls; do
		has_word "$what" "$c" && ok "intercepts $c" || nok "$c is not under 'What it intercepts'"
	done
	envs=$(sed -nE 's/^#define FF_ENV_[A-Z_]+ "([A-Z_]+)".*/\1/p' "$@")
	[[ -n $envs ]] || nok "no FF_ENV_ variables in $*"
	for e in $envs; do
		has_tag "$(section ENVIRONMENT)" "$e" && ok "variable $e" || nok "no $e under ENVIRONMENT"
	done
	;;
*)
	nok "unknown kind $kind"
	;;
esac
echo "# $pass passed, $fail failed"
((fail == 0))
