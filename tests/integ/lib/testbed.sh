# shellcheck shell=bash source-path=SCRIPTDIR
# Container test bed for ffnet's integration tests, demo and benchmarks.
#
# Source this file, then:
#   trap tb_cleanup EXIT
#   tb_init WORKDIR || { [ $? = 2 ] && exit 77; exit 1; }
#   tb_image app /usr/bin/iperf3 build/libffshim/libffshim.so=/usr/lib/ffnet/libffshim.so
#   tb_net n1 10.231.0.0/24
#   tb_run c1 app 10.231.0.2 --mount "$rundir/c/c1:/run/ffnet"
#   tb_exec c1 --cpu 0 -- iperf3 -s -1
#
# Two backends share this API: "docker" (a private dockerd that tb_init starts
# and tb_cleanup stops) and "netns" (network namespace + veth + bridge, with a
# pid/mount/uts/ipc namespace and an overlayfs root per "container"). TB_BACKEND
# forces one; otherwise docker is tried first.
#
# Invariants:
# - Everything the test bed creates is recorded under $TB_STATE (files, not
#   shell variables), before or right after it is created, so tb_cleanup works
#   from any shell, after a partial tb_init, twice, or for a run that crashed.
# - Only one test bed runs on a host at a time (flock on TB_LOCK_FILE, held for
#   the shell that called tb_init); names, subnets and CPUs are then not shared.
#   TB_LOCK=0 turns that off.
# - Functions never rely on the caller's `set -e`: every failure is checked,
#   reported on stderr as "testbed: ..." and returned as a non-zero status.
#   tb_init returns 2 when no backend can work here (callers exit 77).

[[ -n ${_TB_LOADED:-} ]] && return 0
_TB_LOADED=1
_TB_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

: "${TB_LOCK_FILE:=/run/lock/ffnet-testbed.lock}"
: "${TB_LOCK_TIMEOUT:=900}"
_TB_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ---------------------------------------------------------------- messages

_tb_log() { [[ -n ${TB_QUIET:-} ]] || printf 'testbed: %s\n' "$*" >&2; }
_tb_err() { printf 'testbed: error: %s\n' "$*" >&2; }

# _tb_since T0: seconds elapsed since $EPOCHREALTIME value T0, 2 decimals.
_tb_since() {
	local a=${1/[.,]/} b=${EPOCHREALTIME/[.,]/} us
	us=$((10#$b - 10#$a))
	printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}

# _tb_time KEY SECONDS: record a measurement (see tb_times).
_tb_time() {
	[[ -n ${TB_STATE:-} && -d $TB_STATE ]] && printf '%s %s\n' "$1" "$2" >>"$TB_STATE/times"
	return 0
}

# tb_times: print "what seconds" lines measured so far (dockerd start, image
# builds, container starts).
tb_times() { [[ -f ${TB_STATE:-/nonexistent}/times ]] && cat "$TB_STATE/times"; return 0; }

_tb_need_init() {
	if [[ -z ${TB_STATE:-} || ! -d ${TB_STATE:-} || -z ${TB_BACKEND:-} ]]; then
		_tb_err "${FUNCNAME[1]}: tb_init has not been called"
		return 1
	fi
}

# _tb_proc_start PID: print the start time of PID (to tell a live owner from a
# recycled pid).
_tb_proc_start() {
	local stat
	{ stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
	stat=${stat##*) }
	local f
	read -r -a f <<<"$stat"
	((${#f[@]} > 19)) || return 1 # (read as the process went away)
	printf '%s\n' "${f[19]}"
}

_tb_alive() { # PID [STARTTIME]
	[[ -n ${1:-} && -e /proc/$1 ]] || return 1
	local st s
	{ st=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]] || return 1
	[[ -z ${2:-} ]] && return 0
	s=$(_tb_proc_start "$1") || return 1
	[[ $s == "$2" ]]
}

# _tb_ifname PREFIX NAME: an interface name <= 15 bytes, stable for NAME.
_tb_ifname() {
	local p=$1 n=$2 h
	if ((${#p} + ${#n} <= 15)); then
		printf '%s%s\n' "$p" "$n"
	else
		h=$(printf '%s' "$n" | md5sum)
		printf '%s%s%s\n' "$p" "${n:0:$((10 - ${#p}))}" "${h:0:5}"
	fi
}

_tb_valid_name() { # KIND NAME
	if [[ ! $2 =~ ^[a-z0-9][a-z0-9_.-]*$ || ${#2} -gt 40 ]]; then
		_tb_err "bad $1 name '$2' (lowercase letters, digits, _ . -; at most 40)"
		return 1
	fi
}

# ------------------------------------------------------------ ip arithmetic

_tb_ip2int() {
	local IFS=. a b c d
	read -r a b c d <<<"$1"
	[[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || return 1
	((a < 256 && b < 256 && c < 256 && d < 256)) || return 1
	printf '%d\n' $(((a << 24) | (b << 16) | (c << 8) | d))
}

_tb_int2ip() {
	printf '%d.%d.%d.%d\n' $((($1 >> 24) & 255)) $((($1 >> 16) & 255)) $((($1 >> 8) & 255)) $(($1 & 255))
}

# _tb_subnet CIDR: print "NETWORK PREFIX GATEWAY" (gateway = network + 1).
_tb_subnet() {
	local ip=${1%/*} p=${1#*/} n mask
	[[ $1 == */* && $p =~ ^[0-9]+$ ]] && ((p >= 8 && p <= 30)) || return 1
	n=$(_tb_ip2int "$ip") || return 1
	mask=$(((0xffffffff << (32 - p)) & 0xffffffff))
	n=$((n & mask))
	printf '%s %s %s\n' "$(_tb_int2ip $n)" "$p" "$(_tb_int2ip $((n + 1)))"
}

_tb_in_subnet() { # IP NETWORK PREFIX
	local i n mask
	i=$(_tb_ip2int "$1") || return 1
	n=$(_tb_ip2int "$2") || return 1
	mask=$(((0xffffffff << (32 - $3)) & 0xffffffff))
	(((i & mask) == n))
}

# ---------------------------------------------------------------- packages

# tb_ensure CMD[:PACKAGE]...: install (apt-get) the packages whose command is
# missing. TB_NO_APT=1 turns installs into errors.
tb_ensure() {
	local spec cmd pkg missing=()
	for spec in "$@"; do
		cmd=${spec%%:*}
		pkg=${spec#*:}
		[[ $spec == *:* ]] || pkg=$cmd
		command -v "$cmd" >/dev/null 2>&1 || [[ -x $cmd ]] || missing+=("$pkg")
	done
	((${#missing[@]})) || return 0
	if [[ -n ${TB_NO_APT:-} || $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
		_tb_err "missing packages: ${missing[*]} (and cannot apt-get install them here)"
		return 1
	fi
	_tb_log "installing ${missing[*]} with apt-get"
	if [[ -z ${_TB_APT_UPDATED:-} ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 ||
			_tb_log "apt-get update failed; trying the install anyway"
		_TB_APT_UPDATED=1
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null 2>"${TMPDIR:-/tmp}/tb-apt.$$.err"; then
		_tb_err "apt-get install ${missing[*]} failed: $(tail -n 3 "${TMPDIR:-/tmp}/tb-apt.$$.err")"
		rm -f "${TMPDIR:-/tmp}/tb-apt.$$.err"
		return 1
	fi
	rm -f "${TMPDIR:-/tmp}/tb-apt.$$.err"
}

# ---------------------------------------------------------------- iptables

# _tb_ipt_add TABLE CHAIN RULE...: insert RULE at the top of CHAIN unless an
# identical rule exists; record it so tb_cleanup deletes it.
_tb_ipt_add() {
	local t=$1 c=$2
	shift 2
	iptables -w -t "$t" -C "$c" "$@" 2>/dev/null && return 0
	if ! iptables -w -t "$t" -I "$c" 1 "$@"; then
		_tb_err "iptables -t $t -I $c $* failed"
		return 1
	fi
	printf '%s\n' "$(printf '%q ' "$t" "$c" "$@")" >>"$TB_STATE/iptables"
}

# _tb_ipt_undo STATE [PATTERN]: delete the recorded rules (matching PATTERN),
# newest first.
_tb_ipt_undo() {
	local file=$1/iptables pat=${2:-} line keep=() i
	[[ -f $file ]] || return 0
	local lines=()
	mapfile -t lines <"$file"
	for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
		line=${lines[i]}
		if [[ -n $pat && $line != *"$pat"* ]]; then
			keep=("$line" "${keep[@]}")
			continue
		fi
		eval "set -- $line"
		local t=$1 c=$2
		shift 2
		while iptables -w -t "$t" -C "$c" "$@" 2>/dev/null; do
			iptables -w -t "$t" -D "$c" "$@" || break
		done
	done
	if ((${#keep[@]})); then printf '%s\n' "${keep[@]}" >"$file"; else rm -f "$file"; fi
}

# ---------------------------------------------------------------- init

# The lock is held by a watcher process (flock -o ... bash), not by the owner
# shell: a lock fd in the shell would be inherited by every child it starts and
# outlive a killed test. The watcher lets go once the owner exits or
# _tb_unlock removes its token file.
# tb_lock: take the lock before tb_init (which then keeps it), e.g. to look
# at the host before any test bed changes it.
tb_lock() { _tb_lock; }

_tb_lock() {
	local token i t0=$EPOCHREALTIME
	[[ ${TB_LOCK:-1} == 0 ]] && return 0
	[[ -n ${_TB_LOCK_PID:-} ]] && return 0
	mkdir -p "$(dirname "$TB_LOCK_FILE")" || return 1
	token=$TB_LOCK_FILE.token.$$
	rm -f "$token"
	# shellcheck disable=SC2016 # expanded by the watcher
	flock -o -w "$TB_LOCK_TIMEOUT" "$TB_LOCK_FILE" bash -c '
		printf "pid %s (%s)\n" "$2" "$3" >"$4.owner"; echo locked >"$1"
		while [ -e "$1" ] && kill -0 "$2" 2>/dev/null; do sleep 0.2; done
		rm -f "$1" "$4.owner"' tb-lock "$token" "$$" "${TB_WORKDIR:-?}" "$TB_LOCK_FILE" \
		</dev/null >/dev/null 2>&1 &
	_TB_LOCK_PID=$!
	# (its start time: the shell reaps it when it ends, and the pid is reused)
	_TB_LOCK_ST=$(_tb_proc_start "$_TB_LOCK_PID") || _TB_LOCK_ST=gone
	for ((i = 0; ; i++)); do
		if [[ -s $token ]]; then
			# (said: the wait counts against the caller's timeout, e.g. meson's)
			((i < 50)) || _tb_log "got the test bed lock after $(_tb_since "$t0") s"
			return 0
		fi
		if ! _tb_alive "$_TB_LOCK_PID" "$_TB_LOCK_ST"; then
			_tb_err "another test bed holds $TB_LOCK_FILE ($(cat "$TB_LOCK_FILE.owner" 2>/dev/null)); gave up after ${TB_LOCK_TIMEOUT}s"
			unset _TB_LOCK_PID _TB_LOCK_ST
			return 1
		fi
		((i == 50)) && _tb_log "waiting (up to ${TB_LOCK_TIMEOUT}s) for the test bed lock held by $(cat "$TB_LOCK_FILE.owner" 2>/dev/null || echo '?')"
		sleep 0.02
	done
}

_tb_unlock() {
	[[ -n ${_TB_LOCK_PID:-} ]] || return 0
	rm -f "$TB_LOCK_FILE.token.$$"
	while _tb_alive "$_TB_LOCK_PID" "${_TB_LOCK_ST:-gone}"; do sleep 0.05; done
	unset _TB_LOCK_PID _TB_LOCK_ST
}

_tb_install_trap() {
	local cur=""
	cur=$(trap -p EXIT)
	if [[ -z $cur ]]; then
		trap tb_cleanup EXIT
	elif [[ $cur != *tb_cleanup* ]]; then
		local a
		eval "a=($cur)"
		# shellcheck disable=SC2064
		trap "${a[2]}; tb_cleanup" EXIT
	fi
}

# tb_init WORKDIR: pick and start a backend. Returns 0, 1 on error, 2 when no
# backend can work here (not root, no engine and no namespaces...).
tb_init() {
	local wd=${1:-} want=${TB_BACKEND:-auto} t0 rc
	if [[ -z $wd ]]; then
		_tb_err "usage: tb_init WORKDIR"
		return 1
	fi
	if ((EUID != 0)); then
		_tb_err "the test bed needs root (namespaces, bridges, iptables, dockerd)"
		return 2
	fi
	mkdir -p "$wd" || return 1
	wd=$(cd "$wd" && pwd -P) || return 1
	if [[ -n ${_TB_OWNER:-} && ${TB_WORKDIR:-} == "$wd" && -f ${TB_STATE:-/nonexistent}/backend ]]; then
		return 0 # already initialised by this shell
	fi
	if [[ -n ${_TB_OWNER:-} ]]; then
		_tb_err "tb_init: already initialised with ${TB_WORKDIR:-?}; call tb_cleanup first"
		return 1
	fi
	# a script started by a test bed's owner (TB_* exported): use that test
	# bed if it names the same WORKDIR, refuse at once otherwise (waiting for
	# the lock its parent holds would never end)
	if [[ -n ${TB_STATE:-} && -f ${TB_STATE:-}/owner && -f ${TB_STATE:-}/backend ]]; then
		local parent=()
		read -r -a parent <"$TB_STATE/owner"
		if _tb_alive "${parent[@]}"; then
			if [[ ${TB_WORKDIR:-} == "$wd" ]]; then
				TB_BACKEND=$(<"$TB_STATE/backend")
				export TB_BACKEND
				return 0
			fi
			_tb_err "tb_init: pid ${parent[0]} runs a test bed in ${TB_WORKDIR:-?}; use that WORKDIR"
			return 1
		fi
	fi
	case $want in auto | docker | netns) ;; *)
		_tb_err "TB_BACKEND must be docker, netns or auto (got '$want')"
		return 1
		;;
	esac
	TB_WORKDIR=$wd
	TB_STATE=$wd/state
	export TB_WORKDIR TB_STATE
	_tb_lock || return 1
	local owner=()
	[[ -f $TB_STATE/owner ]] && read -r -a owner <"$TB_STATE/owner"
	if ((${#owner[@]})) && _tb_alive "${owner[@]}"; then
		_tb_err "tb_init: $TB_WORKDIR is in use by pid $(cut -d' ' -f1 "$TB_STATE/owner")"
		_tb_unlock
		unset TB_STATE TB_WORKDIR
		return 1
	fi
	if [[ -d $TB_STATE ]]; then
		_tb_log "cleaning up what an earlier run left in $TB_STATE"
		_tb_teardown "$TB_STATE"
	fi
	if ! mkdir -p "$TB_STATE"/{ctrs,nets,bg}; then
		_tb_unlock
		return 1
	fi
	_TB_OWNER="$$ $(_tb_proc_start $$)"
	printf '%s\n' "$_TB_OWNER" >"$TB_STATE/owner"
	_tb_install_trap
	tb_ensure /bin/busybox:busybox-static taskset:util-linux || { _tb_abort_init; return 2; }

	rc=1
	if [[ $want != netns ]]; then
		t0=$EPOCHREALTIME
		_tb_docker_start && rc=0 || rc=$?
		if ((rc == 0)); then
			TB_BACKEND=docker
		elif [[ $want == docker ]]; then
			_tb_abort_init
			return 2
		else
			_tb_log "docker backend unavailable; falling back to netns"
		fi
	fi
	if ((rc != 0)); then
		_tb_netns_check && rc=0 || rc=$?
		if ((rc != 0)); then
			_tb_err "no backend can work here (see above)"
			_tb_abort_init
			return 2
		fi
		TB_BACKEND=netns
	fi
	export TB_BACKEND
	echo "$TB_BACKEND" >"$TB_STATE/backend"
	_tb_log "backend: $TB_BACKEND (workdir $TB_WORKDIR)"
}

_tb_abort_init() {
	_tb_teardown "$TB_STATE"
	_tb_unlock
	unset TB_STATE TB_WORKDIR _TB_OWNER
	export -n TB_BACKEND 2>/dev/null || true
	return 0
}

tb_backend() { _tb_need_init || return 1; printf '%s\n' "$TB_BACKEND"; }

# ---------------------------------------------------------------- networks

# tb_net NAME SUBNET: a bridge network; the host side is the .1 address.
tb_net() {
	local name=${1:-} cidr=${2:-} net p gw br d
	_tb_need_init || return 1
	if [[ -z $name || -z $cidr ]]; then
		_tb_err "usage: tb_net NAME SUBNET (e.g. tb_net n1 10.231.0.0/24)"
		return 1
	fi
	_tb_valid_name network "$name" || return 1
	read -r net p gw < <(_tb_subnet "$cidr") || true
	if [[ -z ${gw:-} ]]; then
		_tb_err "tb_net: bad subnet '$cidr' (want A.B.C.D/8..30)"
		return 1
	fi
	d=$TB_STATE/nets/$name
	if [[ -d $d ]]; then
		[[ $(<"$d/subnet") == "$net/$p" ]] && return 0
		_tb_err "tb_net: network $name exists with subnet $(<"$d/subnet")"
		return 1
	fi
	br=$(_tb_ifname tb- "$name")
	mkdir -p "$d" && echo "$br" >"$d/bridge" && echo "$net/$p" >"$d/subnet" &&
		echo "$gw" >"$d/gw" && echo "$p" >"$d/prefix" || return 1
	if ! "_tb_${TB_BACKEND}_net" "$name" "$br" "$net/$p" "$gw" "$p"; then
		_tb_net_rm_state "$name"
		return 1
	fi
	_tb_ipt_add filter FORWARD -i "$br" -o "$br" -j ACCEPT || return 1
	_tb_log "network $name: $net/$p on bridge $br"
}

# tb_net_rm NAME: remove a network (its containers must be gone).
tb_net_rm() {
	_tb_need_init || return 1
	[[ -d $TB_STATE/nets/${1:-/} ]] || return 0
	_tb_net_rm_state "$1"
}

_tb_net_rm_state() { # NAME (uses TB_STATE, backend from state)
	local d=$TB_STATE/nets/$1 br be
	[[ -d $d ]] || return 0
	br=$(cat "$d/bridge" 2>/dev/null)
	be=$(cat "$TB_STATE/backend" 2>/dev/null || echo "${TB_BACKEND:-}")
	[[ -n $be ]] && "_tb_${be}_net_rm" "$1" "$br"
	[[ -n $br ]] && _tb_ipt_undo "$TB_STATE" " -i $br -o $br "
	rm -rf "$d"
}

_tb_net_of_ip() { # IP: print the network whose subnet holds IP
	local d s
	for d in "$TB_STATE"/nets/*/; do
		[[ -d $d ]] || continue
		s=$(<"$d/subnet")
		if _tb_in_subnet "$1" "${s%/*}" "${s#*/}"; then
			basename "$d"
			return 0
		fi
	done
	return 1
}

# ---------------------------------------------------------------- containers

# tb_run NAME IMAGE IP [--net NET] [--mount HOSTDIR:CTRDIR[:ro]]... [--env K=V]...
#        [--cpus LIST] [--cap-add CAP]...
tb_run() {
	local name=${1:-} image=${2:-} ip=${3:-} net="" cpus="" t0 d
	local mounts=() envs=() caps=()
	_tb_need_init || return 1
	if [[ -z $name || -z $image || -z $ip ]]; then
		_tb_err "usage: tb_run NAME IMAGE IP [--net NET] [--mount H:C]... [--env K=V]... [--cpus LIST]"
		return 1
	fi
	shift 3
	while (($#)); do
		case $1 in
		--mount | -v) [[ ${2:-} == ?*:/* ]] || { _tb_err "tb_run: --mount wants HOSTPATH:/CTRPATH[:ro]"; return 1; }
			local h=${2%%:*}
			[[ -e $h ]] || { _tb_err "tb_run: mount source $h does not exist"; return 1; }
			mounts+=("$(cd "$(dirname "$h")" && pwd -P)/$(basename "$h"):${2#*:}")
			shift 2 ;;
		--env | -e) [[ ${2:-} == ?*=* ]] || { _tb_err "tb_run: --env wants K=V"; return 1; }
			envs+=("$2"); shift 2 ;;
		--cpus) cpus=${2:-}; shift 2 ;;
		--net) net=${2:-}; shift 2 ;;
		--cap-add) caps+=("${2:-}"); shift 2 ;;
		*) _tb_err "tb_run: unknown option '$1'"; return 1 ;;
		esac
	done
	_tb_valid_name container "$name" || return 1
	_tb_ip2int "$ip" >/dev/null || { _tb_err "tb_run: bad IP '$ip'"; return 1; }
	if [[ -z $net ]] && ! net=$(_tb_net_of_ip "$ip"); then
		_tb_err "tb_run: no network holds $ip (tb_net first)"
		return 1
	fi
	[[ -d $TB_STATE/nets/$net ]] || { _tb_err "tb_run: no network $net"; return 1; }
	d=$TB_STATE/ctrs/$name
	if [[ -d $d ]]; then
		_tb_err "tb_run: container $name exists (tb_rm it first)"
		return 1
	fi
	mkdir -p "$d" || return 1
	echo "$ip" >"$d/ip"
	echo "$net" >"$d/net"
	echo "$image" >"$d/image"
	echo "$cpus" >"$d/cpus"
	: >"$d/env"
	((${#envs[@]} == 0)) || printf '%s\n' "${envs[@]}" >"$d/env"
	t0=$EPOCHREALTIME
	if ! "_tb_${TB_BACKEND}_run" "$name" "$image" "$ip" "$net" "$cpus" \
		"${#mounts[@]}" "${mounts[@]}" "${#envs[@]}" "${envs[@]}" "${#caps[@]}" "${caps[@]}"; then
		_tb_err "tb_run: could not start $name"
		_tb_rm_state "$TB_STATE" "$name"
		return 1
	fi
	_tb_time "run:$name" "$(_tb_since "$t0")"
	_tb_log "container $name ($ip on $net) started in $(_tb_since "$t0") s"
}

_tb_ctr_dir() { # NAME
	_tb_need_init || return 1
	if [[ -z ${1:-} || ! -d $TB_STATE/ctrs/$1 ]]; then
		_tb_err "no container '${1:-}'"
		return 1
	fi
	printf '%s\n' "$TB_STATE/ctrs/$1"
}

tb_ip() { local d; d=$(_tb_ctr_dir "${1:-}") || return 1; cat "$d/ip"; }

# tb_pid NAME: host PID of the container's init (nsenter -t, ffctl --pid).
tb_pid() {
	local d
	d=$(_tb_ctr_dir "${1:-}") || return 1
	"_tb_${TB_BACKEND}_pid" "$1"
}

# tb_netns NAME: a path naming the container's network namespace.
tb_netns() {
	local d pid
	d=$(_tb_ctr_dir "${1:-}") || return 1
	if [[ -f $d/netns ]]; then
		printf '/run/netns/%s\n' "$(<"$d/netns")"
	else
		pid=$(tb_pid "$1") || return 1
		printf '/proc/%s/ns/net\n' "$pid"
	fi
}

# tb_rm NAME...: remove containers (missing ones are not an error).
tb_rm() {
	local n
	_tb_need_init || return 1
	for n in "$@"; do _tb_rm_state "$TB_STATE" "$n"; done
}

_tb_rm_state() { # STATE NAME
	local d=$1/ctrs/$2 be id
	[[ -d $d ]] || return 0
	be=$(cat "$1/backend" 2>/dev/null || echo "${TB_BACKEND:-}")
	[[ -n $be ]] && "_tb_${be}_rm" "$1" "$2"
	for id in "$1"/bg/"$2".*; do
		[[ -d $id ]] && _tb_bg_reap "$id"
	done
	rm -rf "$d"
}

# ---------------------------------------------------------------- exec

# _tb_exec_parse NAME ARGS...: sets _tbx_name _tbx_envs _tbx_cpu _tbx_out
# _tbx_cmd from "NAME [--env K=V]... [--cpu N] [--out FILE] -- CMD...".
_tb_exec_parse() {
	_tbx_name=${1:-}
	_tbx_envs=()
	_tbx_cpu=""
	_tbx_out=""
	_tbx_cmd=()
	[[ -n $_tbx_name ]] || { _tb_err "usage: ${FUNCNAME[1]} NAME [--env K=V]... [--cpu N] -- CMD..."; return 1; }
	_tb_ctr_dir "$_tbx_name" >/dev/null || return 1
	shift
	while (($#)); do
		case $1 in
		--env | -e) [[ ${2:-} == ?*=* ]] || { _tb_err "${FUNCNAME[1]}: --env wants K=V"; return 1; }
			_tbx_envs+=("$2"); shift 2 ;;
		--cpu) [[ ${2:-} =~ ^[0-9][0-9,-]*$ ]] || { _tb_err "${FUNCNAME[1]}: --cpu wants a CPU number or list"; return 1; }
			_tbx_cpu=$2; shift 2 ;;
		--out) [[ ${FUNCNAME[1]} == tb_exec_bg ]] || { _tb_err "tb_exec: --out is for tb_exec_bg"; return 1; }
			_tbx_out=${2:-}; shift 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	(($#)) || { _tb_err "${FUNCNAME[1]}: no command given"; return 1; }
	_tbx_cmd=("$@")
}

# tb_exec NAME [--env K=V]... [--cpu N] -- CMD...: run CMD in the container in
# the foreground; stdin, stdout and stderr are the caller's; returns CMD's status.
tb_exec() {
	local _tbx_name _tbx_cpu _tbx_out _tbx_envs _tbx_cmd
	_tb_exec_parse "$@" || return 1
	"_tb_${TB_BACKEND}_exec" "$_tbx_name" "$_tbx_cpu" "${#_tbx_envs[@]}" "${_tbx_envs[@]}" "${_tbx_cmd[@]}"
}

# tb_exec_bg NAME [--env K=V]... [--cpu N] [--out FILE] -- CMD...: start CMD in
# the background and print an id for tb_kill / tb_wait / tb_bg_log. Its output
# (stdout and stderr) goes to FILE, by default a log that tb_bg_log prints: the
# caller usually runs id=$(tb_exec_bg ...), and a command substitution would
# otherwise wait for the job's end. Returns once the job runs in the container
# (a CMD that cannot be exec'd ends at once with status 126/127).
tb_exec_bg() {
	local _tbx_name _tbx_cpu _tbx_out _tbx_envs _tbx_cmd dir id log pid hpid i
	_tb_exec_parse "$@" || return 1
	dir=$(mktemp -d "$TB_STATE/bg/$_tbx_name.XXXXXX") || return 1
	id=${dir##*/}
	log=${_tbx_out:-$dir/log}
	echo "$log" >"$dir/logpath"
	(
		trap - EXIT
		set +e
		"_tb_${TB_BACKEND}_exec" "$_tbx_name" "$_tbx_cpu" "${#_tbx_envs[@]}" "${_tbx_envs[@]}" \
			/bin/sh -c 'echo $$ >/tmp/.tb-bg-'"$id"'.pid && exec "$@"' tb-bg "${_tbx_cmd[@]}" </dev/null
		echo $? >"$dir/status.tmp" && mv "$dir/status.tmp" "$dir/status"
	) >"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid $(_tb_proc_start $pid)" >"$dir/launcher"
	hpid=$(tb_pid "$_tbx_name") || return 1
	for ((i = 0; i < 1000; i++)); do
		if [[ -s /proc/$hpid/root/tmp/.tb-bg-$id.pid ]]; then
			cp "/proc/$hpid/root/tmp/.tb-bg-$id.pid" "$dir/pid"
			printf '%s\n' "$id"
			return 0
		fi
		if [[ -f $dir/status ]]; then
			_tb_err "tb_exec_bg: '${_tbx_cmd[*]}' in $_tbx_name ended at once (status $(<"$dir/status")): $(tail -n 5 "$log")"
			return 1
		fi
		sleep 0.01
	done
	_tb_err "tb_exec_bg: '${_tbx_cmd[*]}' in $_tbx_name did not start within 10 s"
	return 1
}

_tb_bg_dir() {
	_tb_need_init || return 1
	if [[ -z ${1:-} || ! -d $TB_STATE/bg/$1 ]]; then
		_tb_err "no background job '${1:-}'"
		return 1
	fi
	printf '%s\n' "$TB_STATE/bg/$1"
}

# tb_kill ID [SIGNAL]: signal a background job (default TERM). A job that has
# already ended is not an error.
tb_kill() {
	local dir sig=${2:-TERM} name
	dir=$(_tb_bg_dir "${1:-}") || return 1
	[[ -f $dir/status ]] && return 0
	name=${1%.*}
	[[ -d $TB_STATE/ctrs/$name ]] || return 0
	tb_exec "$name" -- kill "-$sig" "$(<"$dir/pid")" 2>/dev/null </dev/null
	return 0
}

# tb_wait ID [TIMEOUT]: wait for a background job, return its status (124 on
# timeout).
tb_wait() {
	local dir t=${2:-} t0=$EPOCHREALTIME l s e
	dir=$(_tb_bg_dir "${1:-}") || return 1
	while [[ ! -f $dir/status ]]; do
		read -r l s <"$dir/launcher"
		if [[ -z $s ]] || ! _tb_alive "$l" "$s"; then
			[[ -f $dir/status ]] && break
			_tb_err "tb_wait: job $1 vanished without a status"
			return 1
		fi
		e=$(_tb_since "$t0")
		if [[ -n $t ]] && ((10#${e/./} >= t * 100)); then
			_tb_err "tb_wait: job $1 still running after ${t}s"
			return 124
		fi
		sleep 0.02
	done
	return "$(<"$dir/status")"
}

# tb_bg_log ID: print a background job's output so far.
tb_bg_log() {
	local dir
	dir=$(_tb_bg_dir "${1:-}") || return 1
	cat "$(<"$dir/logpath")" 2>/dev/null
	return 0
}

_tb_bg_reap() { # BGDIR: make sure the launcher is gone
	local l s
	[[ -f $1/launcher ]] || return 0
	read -r l s <"$1/launcher"
	# no start time: the launcher was gone before it was recorded, and its
	# pid may be anyone's by now (pids wrap within minutes on a busy host)
	if [[ ! -f $1/status && -n $s ]] && _tb_alive "$l" "$s"; then
		kill -TERM "$l" 2>/dev/null
		sleep 0.05
		_tb_alive "$l" "$s" && kill -KILL "$l" 2>/dev/null
	fi
	return 0
}

# tb_wait_port NAME PORT [TIMEOUT]: wait until a TCP socket listens on PORT in
# the container (read from the host through /proc/PID/net).
tb_wait_port() {
	local name=${1:-} port=${2:-} t=${3:-10} pid hex i f
	pid=$(tb_pid "$name") || return 1
	[[ $port =~ ^[0-9]+$ ]] || { _tb_err "usage: tb_wait_port NAME PORT [TIMEOUT]"; return 1; }
	printf -v hex ':%04X ' "$port"
	for ((i = 0; i < t * 50; i++)); do
		for f in /proc/"$pid"/net/tcp /proc/"$pid"/net/tcp6; do
			awk -v p="$hex" 'index($2 " ", p) && $4 == "0A" { found = 1 } END { exit !found }' "$f" 2>/dev/null && return 0
		done
		sleep 0.02
	done
	_tb_err "tb_wait_port: nothing listens on port $port in $name after ${t}s"
	return 1
}

# ---------------------------------------------------------------- cleanup

# tb_cleanup: remove everything this test bed created and stop the dockerd it
# started. Safe to call twice, before tb_init, from a subshell of the owner,
# and from an EXIT trap; a no-op in a script that attached to its parent's
# test bed (tb_init with the parent's WORKDIR). --keep-lock keeps the host-wide
# lock until the next tb_cleanup (to check the host is clean with no other test
# bed starting meanwhile).
tb_cleanup() {
	local -
	set +e
	local t0=$EPOCHREALTIME
	if [[ -z ${TB_STATE:-} || ! -d ${TB_STATE:-} ]]; then
		# (a second tb_cleanup --keep-lock must keep it too: another test
		# bed would start while the caller still checks the host is clean)
		[[ ${1:-} == --keep-lock ]] || _tb_unlock
		return 0
	fi
	if [[ -z ${_TB_OWNER:-} ]]; then
		return 0 # a script using its parent's test bed: the parent cleans up
	fi
	_tb_teardown "$TB_STATE"
	[[ ${1:-} == --keep-lock ]] || _tb_unlock
	unset _TB_OWNER
	_tb_log "cleaned up in $(_tb_since "$t0") s"
	return 0
}

# _tb_teardown STATE: undo everything recorded in STATE.
_tb_teardown() {
	local -
	set +e
	local s=$1 d be
	local TB_STATE=$s
	[[ -d $s ]] || return 0
	be=$(cat "$s/backend" 2>/dev/null)
	[[ -z $be && -f $s/dockerd ]] && be=docker
	for d in "$s"/bg/*/; do [[ -d $d ]] && _tb_bg_reap "${d%/}"; done
	for d in "$s"/ctrs/*/; do [[ -d $d ]] && _tb_rm_state "$s" "$(basename "$d")"; done
	for d in "$s"/nets/*/; do [[ -d $d ]] && _tb_net_rm_state "$(basename "$d")"; done
	for d in "$s"/bg/*/; do [[ -d $d ]] && _tb_bg_reap "${d%/}"; done
	[[ -f $s/dockerd ]] && _tb_docker_stop "$s"
	_tb_ipt_undo "$s"
	rm -rf "$s"
	return 0
}

# shellcheck source=testbed-image.sh
. "$_TB_LIBDIR/testbed-image.sh"
# shellcheck source=testbed-docker.sh
. "$_TB_LIBDIR/testbed-docker.sh"
# shellcheck source=testbed-netns.sh
. "$_TB_LIBDIR/testbed-netns.sh"
