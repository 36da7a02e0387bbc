# shellcheck shell=bash
# netns backend of the test bed (sourced by testbed.sh): used when no Docker
# engine can start.
#
# A "container" is a named network namespace tb-NAME (veth eth0, peer tbv-NAME
# on the network's bridge) plus an init process started with
# `unshare --mount --pid --uts --ipc --fork` inside it. The init mounts an
# overlay (lower: the image tree, upper: $TB_STATE/ctrs/NAME/upper) on
# $TB_STATE/ctrs/NAME/root, then /proc, /sys, a small /dev and the bind mounts,
# all in its private mount namespace (the host sees none of them), chroots and
# becomes a busybox sh that only waits. tb_exec joins it with nsenter
# (net, mount, pid, uts, ipc, root). Killing the init tears the whole thing
# down; state files: ctrs/NAME/{pid,netns,veth}.

_tb_netns_check() {
	local c probe=tbprobe$$
	for c in ip unshare nsenter iptables chroot; do
		command -v "$c" >/dev/null || { _tb_err "netns backend: $c is missing"; return 2; }
	done
	if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
		_tb_err "netns backend: the kernel has no overlayfs"
		return 2
	fi
	if ! ip netns add "$probe" 2>/dev/null; then
		_tb_err "netns backend: cannot create network namespaces here"
		return 2
	fi
	ip netns del "$probe"
	if ! unshare --mount --pid --fork --propagation private true 2>/dev/null; then
		_tb_err "netns backend: cannot create mount/pid namespaces here"
		return 2
	fi
	return 0
}

_tb_netns_net() { # NAME BRIDGE SUBNET GW PREFIX
	if ip link show "$2" >/dev/null 2>&1; then
		_tb_err "bridge $2 already exists (left by another run? ip link del $2)"
		return 1
	fi
	ip link add "$2" type bridge &&
		ip addr add "$4/$5" dev "$2" &&
		ip link set "$2" up
}

_tb_netns_net_rm() { # NAME BRIDGE
	[[ -n ${2:-} ]] && ip link del "$2" 2>/dev/null
	return 0
}

# _tb_netns_init NAME ROOT LOWER UPPER WORK READYFILE MOUNT...: PID 1 of the
# container. Runs in the new namespaces with the host's root; exec's the
# container's init in the chroot. Serialised with declare -f: self-contained.
_tb_netns_init() {
	set -eu
	local name=$1 root=$2 lower=$3 upper=$4 work=$5 ready=$6 m h c o d hostpid
	shift 6
	hostname "$name"
	mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
	mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
	mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
	mount -t tmpfs -o nosuid,mode=755,size=256k tmpfs "$root/dev"
	for d in null zero full random urandom tty; do
		: >"$root/dev/$d"
		mount --bind "/dev/$d" "$root/dev/$d"
	done
	mkdir -p "$root/dev/pts" "$root/dev/shm" "$root/dev/mqueue"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts "$root/dev/pts"
	ln -s pts/ptmx "$root/dev/ptmx"
	mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
	mount -t mqueue mqueue "$root/dev/mqueue" 2>/dev/null || true
	ln -s /proc/self/fd "$root/dev/fd"
	ln -s /proc/self/fd/0 "$root/dev/stdin"
	ln -s /proc/self/fd/1 "$root/dev/stdout"
	ln -s /proc/self/fd/2 "$root/dev/stderr"
	for m in "$@"; do
		h=${m%%:*}
		c=${m#*:}
		o=""
		[[ $c == *:* ]] && o=${c#*:} && c=${c%%:*}
		if [[ -d $h ]]; then mkdir -p "$root$c"; else mkdir -p "$(dirname "$root$c")" && : >>"$root$c"; fi
		mount --rbind "$h" "$root$c"
		[[ $o == ro ]] && mount -o remount,bind,ro "$root$c"
	done
	echo "$name" >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n' \
		"$(ip -4 -o addr show dev eth0 | awk '{ split($4, a, "/"); print a[1] }')" "$name" >"$root/etc/hosts"
	read -r hostpid _ </proc/self/stat # this /proc is still the host's
	echo "$hostpid" >"$ready.tmp"
	mv "$ready.tmp" "$ready"
	cd "$root"
	exec chroot "$root" /bin/sh -c 'trap "exit 0" TERM INT HUP; while :; do sleep infinity & wait $!; done'
}

# _tb_netns_run NAME IMAGE IP NET CPUS NMOUNTS MOUNT... NENVS ENV... NCAPS CAP...
_tb_netns_run() {
	local name=$1 image=$2 ip=$3 net=$4 cpus=$5 n lower d ns veth br gw p i pid launcher
	local mounts=() pre=()
	shift 5
	n=$1; shift
	while ((n-- > 0)); do mounts+=("$1"); shift; done
	# envs are read back from ctrs/NAME/env by tb_exec; capabilities: all (root)
	d=$TB_STATE/ctrs/$name
	lower=$(realpath -e "$TB_WORKDIR/images/${image%:latest}" 2>/dev/null)
	if [[ -z $lower || ! -f $lower/.tb-complete ]]; then
		_tb_err "no image '$image' (tb_image it first)"
		return 1
	fi
	br=$(<"$TB_STATE/nets/$net/bridge")
	gw=$(<"$TB_STATE/nets/$net/gw")
	p=$(<"$TB_STATE/nets/$net/prefix")
	ns=tb-$name
	veth=$(_tb_ifname tbv- "$name")
	echo "$ns" >"$d/netns"
	echo "$veth" >"$d/veth"
	mkdir -p "$d/upper" "$d/work" "$d/root" || return 1
	if [[ -e /run/netns/$ns ]] || ip link show "$veth" >/dev/null 2>&1; then
		_tb_err "netns $ns or link $veth already exists (left by another run?)"
		rm -f "$d/netns" "$d/veth"
		return 1
	fi
	ip netns add "$ns" || return 1
	ip link add "$veth" type veth peer name eth0 netns "$ns" &&
		ip link set "$veth" master "$br" up &&
		ip -n "$ns" link set lo up &&
		ip -n "$ns" addr add "$ip/$p" dev eth0 &&
		ip -n "$ns" link set eth0 up &&
		ip -n "$ns" route add default via "$gw" || return 1
	[[ -n $cpus ]] && pre=(taskset -c "$cpus")
	(
		exec setsid "${pre[@]}" nsenter --net="/run/netns/$ns" \
			unshare --mount --pid --uts --ipc --fork --propagation private -- \
			bash -c "$(declare -f _tb_netns_init)"'; _tb_netns_init "$@"' tb-init \
			"$name" "$d/root" "$lower" "$d/upper" "$d/work" "$d/ready" "${mounts[@]}"
	) </dev/null >"$d/init.log" 2>&1 &
	launcher=$!
	for ((i = 0; i < 500; i++)); do
		if [[ -s $d/ready ]]; then
			pid=$(<"$d/ready")
			echo "$pid $(_tb_proc_start "$pid")" >"$d/pid"
			# wait for the exec into the chroot
			[[ $(cat "/proc/$pid/comm" 2>/dev/null) == sh ]] && return 0
		fi
		_tb_alive "$launcher" || break
		sleep 0.02
	done
	_tb_err "container $name did not come up: $(tail -n 5 "$d/init.log")"
	return 1
}

_tb_netns_pid() { local p; read -r p _ <"$TB_STATE/ctrs/$1/pid" && echo "$p"; }

# _tb_netns_exec NAME CPU NENVS ENV... CMD...
_tb_netns_exec() {
	local name=$1 cpu=$2 n=$3 d pid cpus
	local envs=(PATH="$_TB_PATH" HOME=/root HOSTNAME="$name") pre=() st
	shift 3
	d=$TB_STATE/ctrs/$name
	read -r pid st <"$d/pid"
	# a dead init's pid is soon another process's: nsenter would then run CMD
	# in that process's namespaces (the host's, as like as not)
	if ! _tb_alive "$pid" "$st"; then
		_tb_err "container $name is not running (its init, pid $pid, is gone)"
		return 125
	fi
	[[ -s $d/env ]] && mapfile -t -O 3 envs <"$d/env"
	while ((n-- > 0)); do envs+=("$1"); shift; done
	cpus=$(<"$d/cpus")
	[[ -n $cpu ]] && cpus=$cpu
	[[ -n $cpus ]] && pre=(taskset -c "$cpus")
	# the container's environment is set inside (by the image's env), so host
	# programs (taskset, nsenter) never see e.g. the container's LD_PRELOAD
	env -i PATH="$_TB_PATH" "${pre[@]}" nsenter -t "$pid" -n -m -p -u -i -r -w -- \
		/usr/bin/env -i "${envs[@]}" "$@"
}

_tb_netns_rm() { # STATE NAME
	local d=$1/ctrs/$2 pid st i
	if [[ -f $d/pid ]]; then
		read -r pid st <"$d/pid"
		if _tb_alive "$pid" "$st"; then
			kill -KILL "$pid" 2>/dev/null # ends every process of its pid namespace
			for ((i = 0; i < 250; i++)); do _tb_alive "$pid" "$st" || break; sleep 0.02; done
		fi
	fi
	[[ -f $d/veth ]] && ip link del "$(<"$d/veth")" 2>/dev/null
	[[ -f $d/netns ]] && ip netns del "$(<"$d/netns")" 2>/dev/null
	rm -rf "$d/upper" "$d/work"
	return 0
}
