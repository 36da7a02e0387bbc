#!/usr/bin/env bash
# ffnet-runtime under Debian's podman (4.3, as root) as a user sets it up:
# the runtime named in containers.conf and containers started with
# `--runtime ffnet`, from an image with nothing of ffnet in it, on a network
# of podman's own (`podman network create`, podman's IPAM: no --ip, no -v,
# no -e): no ffctl register by hand. iperf3, redis and curl between them:
# bytes right, the router counts the connections, ffctl list shows the
# containers (the ID's first 63 characters) with podman's IPs, and after
# `podman rm -f` (or `podman kill`) they are gone. A client started the
# other way, `podman --runtime PATH --runtime-flag ffnet-...`, works too;
# one started while no router runs runs unaccelerated; the image is the
# same at the end.
#
# How podman reaches the runtime's options: podman 4.3's [engine.runtimes]
# takes paths, no arguments, and passes the runtime no runtimeArgs. A user
# whose paths are not the defaults writes a two-line wrapper that execs
# ffnet-runtime with its --ffnet-* options first and names the wrapper
# there (done below; the wrapper also logs podman's argv). The other way,
# `--runtime-flag ffnet-rundir=DIR` (podman prefixes "--"), is a global
# option every podman command that starts a container must repeat.
#
# The podman here is isolated: its containers.conf and storage.conf of its
# own (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF) put storage, run state,
# locks (file locks, not /dev/shm), events, network configs and runc's
# state under $FF_WORK/podman, all removed at the end, as are the network,
# the host state CNI/netavark and podman leave outside it (/var/lib/cni/
# networks/NET, their iptables chains, podman's blob cache, the /run/netns
# bind mount) when they were not there before. Checked at the end.
#
# What podman needs here, set in its containers.conf, each a fix a user of
# such a host makes: cgroup_manager "cgroupfs" and events_logger "file"
# (PID 1 need not be systemd, and is not on the CI VMs); default_ulimits
# no higher than this shell's hard limits (podman asks runc for nofile and
# nproc 1048576, and podman 4.3 drops its own nproc to 32768 first: without
# CAP_SYS_RESOURCE, runc's prlimit then fails with EPERM, "error setting
# rlimit type 7/6"); storage driver overlay, else vfs. The network
# backend: FF_PODMAN_NET=cni|netavark, by default the CNI plugins when
# installed, else netavark; the network has no DNS (--disable-dns: no
# aardvark-dns needed, the clients use IPs).
# Exits 77, saying why, without root, podman, a network backend (the CNI
# plugins or netavark), or when podman cannot run a container here.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib/ffenv.sh"

FF_NAME=runtime-podman
FF_RUNDIR=${FF_RUNDIR:-/run/ffnet-t}
FF_WORK=${FF_WORK:-/var/tmp/ffnet-testbed/$FF_NAME}
PM=$FF_WORK/podman
IMG=localhost/ffrtplain
NET=ffrtp
SUBNET=10.77.17.0/24
LABEL=ffnet.test=$FF_NAME
IMG_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

skip() { echo "SKIP: $*"; exit 77; }
pm() { CONTAINERS_CONF=$PM/containers.conf CONTAINERS_STORAGE_CONF=$PM/storage.conf podman "$@"; }

((EUID == 0)) || skip "podman as root: run this as root"
for f in ffrouter/ffrouter ffctl/ffctl ffexec/ffexec runtime/ffnet-runtime libffshim/libffshim.so; do
	[[ -e $FF_BUILD/$f ]] || { ff_log "build first: $FF_BUILD/$f is missing"; exit 1; }
done
rt=$(realpath -e "$FF_BUILD/runtime/ffnet-runtime")
shim=$(realpath -e "$FF_BUILD/libffshim/libffshim.so")
ffexec=$(realpath -e "$FF_BUILD/ffexec/ffexec")
rtlog=$FF_WORK/runtime.log

# ---- what podman and its network stack leave outside $PM, before and after
HOST_DIRS=(/var/lib/cni /var/lib/containers /dev/shm/libpod_lock /run/runc /run/libpod /run/containers
	/run/podman /run/netns)
host_state() {
	local d
	ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print "link " $2 }' |
		grep -E '^link (cni|podman|netavark)' || true
	iptables-save 2>/dev/null | grep -E 'CNI|NETAVARK|10\.77\.17\.' | sed 's/ \[[0-9]*:[0-9]*\]$//' || true
	awk -v w="$FF_WORK" '$2 == "/run/netns" || index($2, w) == 1 || $2 ~ /containers/ { print "mount " $2 }' \
		/proc/self/mounts
	for d in "${HOST_DIRS[@]}"; do [[ -e $d ]] && echo "path $d"; done
	# (podman's namespaces only: other tests' are named otherwise)
	find /run/netns -mindepth 1 -name 'netns-*' 2>/dev/null | sed 's/^/path /'
	find /var/lib/cni -mindepth 1 2>/dev/null | sed 's/^/path /'
	echo "ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
}

# host_restore: undo what differs from the state before (HOST_BEFORE).
host_restore() {
	local - c t r line
	set +e
	[[ -n ${HOST_BEFORE:-} ]] || return 0
	# iptables chains the CNI firewall plugin or netavark made: their jumps, then them
	for t in filter nat; do
		for c in $(iptables-save -t "$t" | sed -n 's/^:\(\(CNI\|NETAVARK\)[^ ]*\) .*/\1/p'); do
			grep -qx "$c" <<<"$HOST_CHAINS" && continue
			iptables-save -t "$t" | grep -E -- "-j $c( |$)" | grep '^-A ' | while read -r line; do
				eval "r=($line)"
				iptables -w -t "$t" -D "${r[@]:1}" 2>/dev/null || true
			done
			iptables -w -t "$t" -F "$c" 2>/dev/null || true
		done
		for c in $(iptables-save -t "$t" | sed -n 's/^:\(\(CNI\|NETAVARK\)[^ ]*\) .*/\1/p'); do
			grep -qx "$c" <<<"$HOST_CHAINS" || iptables -w -t "$t" -X "$c" 2>/dev/null || true
		done
	done
	rm -rf "/var/lib/cni/networks/$NET"
	for c in "${HOST_DIRS[@]}"; do
		grep -qx "path $c" <<<"$HOST_BEFORE" && continue
		[[ $c == /run/netns ]] && continue
		rm -rf "$c"
	done
	# podman bind-mounts /run/netns on itself (shared) when it is no mount point
	if ! grep -qx "mount /run/netns" <<<"$HOST_BEFORE" && mountpoint -q /run/netns &&
		[[ -z $(ls -A /run/netns) ]]; then
		umount /run/netns
	fi
	grep -qx "path /run/netns" <<<"$HOST_BEFORE" || rmdir /run/netns 2>/dev/null || true
	echo "$HOST_FORWARD" >/proc/sys/net/ipv4/ip_forward
}

pm_cleanup() {
	local - m
	set +e
	[[ -f $PM/containers.conf ]] || return 0
	pm rm -a -f -t 0 >/dev/null 2>&1
	pm network rm -f "$NET" >/dev/null 2>&1
	pm rmi -a -f >/dev/null 2>&1
	# whatever podman left mounted (nothing when all went well)
	awk -v w="$PM/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "$PM"
}
on_exit() {
	set +e
	pm_cleanup
	host_restore
	ff_router_stop quiet
	rm -rf "$FF_RUNDIR"
	ff_cleanup
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# the test bed lock: FF_RUNDIR, iptables and /run/netns are shared with the other tests
tb_lock || exit 1
tb_ensure podman jq || skip "podman is not installed and apt-get could not install it (see above)"
# the network backend: FF_PODMAN_NET, else the CNI plugins, else netavark
cni_ok() { [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]]; }
nv_ok() { [[ -x /usr/lib/podman/netavark ]]; }
if [[ -z ${FF_PODMAN_NET:-} ]]; then
	if cni_ok; then FF_PODMAN_NET=cni; elif nv_ok; then FF_PODMAN_NET=netavark; else
		skip "no network backend for podman: neither the CNI plugins (/usr/lib/cni, package" \
			"containernetworking-plugins) nor netavark (/usr/lib/podman/netavark, package netavark)"
	fi
fi
case $FF_PODMAN_NET in
cni) cni_ok || skip "network backend cni: no CNI plugins in /usr/lib/cni (package containernetworking-plugins)" ;;
netavark) nv_ok || skip "network backend netavark: no /usr/lib/podman/netavark (package netavark)" ;;
*) ff_log "FF_PODMAN_NET must be cni or netavark"; exit 1 ;;
esac
HOST_BEFORE=$(host_state)
HOST_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
HOST_CHAINS=$(iptables-save | sed -n 's/^:\([^ ]*\) .*/\1/p' | sort -u)
pm_cleanup
rm -rf "$FF_RUNDIR"
mkdir -p "$PM"/{net,tmp,runc}
: >"$rtlog"

# ---- the runtime as a user names it (see the top of this file)
cat >"$PM/ffnet-runtime" <<-EOF
	#!/bin/sh
	printf '%s\n' "\$*" >>"$PM/argv.log"
	exec "$rt" --ffnet-rundir="$FF_RUNDIR" --ffnet-shim="$shim" --ffnet-exec="$ffexec" \\
		--ffnet-log="$rtlog" --root "$PM/runc" "\$@"
EOF
chmod +x "$PM/ffnet-runtime"
nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
if [[ $nofile == unlimited ]] || ((nofile > 1048576)); then nofile=1048576; fi
if [[ $nproc == unlimited ]] || ((nproc > 32768)); then nproc=32768; fi
cat >"$PM/containers.conf" <<-EOF
	[containers]
	default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
	[engine]
	cgroup_manager = "cgroupfs"
	events_logger = "file"
	events_logfile_path = "$PM/tmp/events.log"
	tmp_dir = "$PM/tmp"
	lock_type = "file"
	static_dir = "$PM/storage/libpod"
	volume_path = "$PM/storage/volumes"
	[engine.runtimes]
	ffnet = ["$PM/ffnet-runtime"]
	runc = ["$(command -v runc || echo /usr/sbin/runc)"]
	[network]
	network_backend = "$FF_PODMAN_NET"
	network_config_dir = "$PM/net"
EOF
why=()
for drv in overlay vfs; do
	printf '[storage]\ndriver = "%s"\ngraphroot = "%s"\nrunroot = "%s"\n' "$drv" "$PM/storage" "$PM/run" \
		>"$PM/storage.conf"
	if out=$(pm info --format '{{.Store.GraphDriverName}}' 2>&1); then
		why=()
		break
	fi
	why+=("storage driver $drv: $(ff_flat "$(tail -n 2 <<<"$out")")")
	rm -rf "$PM/storage" "$PM/run"
done
((${#why[@]} == 0)) || skip "podman cannot start here: ${why[*]}"
echo "# $(pm --version), storage $drv, network backend $FF_PODMAN_NET, cgroups $(pm info --format \
	'{{.Host.CgroupsVersion}}') via cgroupfs, ulimits nofile=$nofile nproc=$nproc"

# ---- the plain image: the programs, nothing of ffnet
tb_ensure iperf3 redis-server redis-cli:redis-tools curl || exit 1
specs=(/usr/bin/iperf3 /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/curl)
if [[ -x $FF_BUILD/tests/progs/gonet ]]; then
	specs+=("$FF_BUILD/tests/progs/gonet=/usr/bin/gonet")
else
	echo "# gonet is not built here (tests/progs/meson.build says what it needs): curl goes to busybox httpd"
fi
tb_rootfs "$PM/tree" "${specs[@]}" || exit 1
tar -C "$PM/tree" --numeric-owner -cf - . |
	pm import -q -c "ENV PATH=$IMG_PATH" -c 'CMD ["/bin/sleep", "infinity"]' - "$IMG" >/dev/null
rm -rf "$PM/tree"
img_id() { pm image inspect -f '{{.Id}}' "$IMG"; }
# img_files: a fresh container's files (runc, no network): NAME SIZE MODE
img_files() {
	local id
	id=$(pm create -q --pull never --label "$LABEL" --network none --runtime runc "$IMG" true) || return 1
	pm export "$id" | tar -tv | awk '{ print $6, $3, $1 }' | sed 's|^\./||' | LC_ALL=C sort
	pm rm -f "$id" >/dev/null
}
out=$(pm run --rm --pull never --network none --runtime runc "$IMG" sh -c 'echo ran' 2>&1) ||
	skip "podman cannot run a container here (runc, no network): $(ff_flat "$(tail -n 3 <<<"$out")")"
img_before=$(img_id)
files_before=$(img_files)
found=$(awk '{ print $1 }' <<<"$files_before" | grep -E '(^|/)(ffnet|ffexec|libffshim)' || true)
ff_check "the image has nothing of ffnet but the test bed's empty /run/ffnet ($(ff_flat "$found"))" \
	test "$found" = "run/ffnet/"

# ---- the router and a network with podman's IPAM
# shellcheck disable=SC2119
ff_router_start
out=$(pm network create --disable-dns --subnet "$SUBNET" "$NET" 2>&1) ||
	skip "podman network create ($FF_PODMAN_NET) fails here: $(ff_flat "$out")"
run=(--pull never --label "$LABEL" --runtime ffnet --network "$NET")
# cli [PODMAN-RUN-OPTS...] -- PROGRAM ARGS...: a client container, removed at its end
cli() {
	local opts=()
	while [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	pm run --rm "${run[@]}" "${opts[@]}" "$IMG" "$@" 2>&1 || true
}
# shellcheck disable=SC2034 # read by lib/runtime-apps.sh
RT_ENG=pm RT_WHO=podman RT_PFX=ffrtp RT_RM=(-f -t 0)
# shellcheck source-path=SCRIPTDIR source=lib/runtime-apps.sh
. "$(dirname "$0")/lib/runtime-apps.sh"
conns() { rt_conns; }
nlisted() { rt_nlisted; }
out=$(pm run --rm "${run[@]}" "$IMG" sh -c : 2>&1) ||
	skip "podman cannot start a container on its network $NET here: $(ff_flat "$(tail -n 3 <<<"$out")")"

# ---- iperf3; redis, the client started with --runtime-flag instead of the wrapper
rt_iperf
rt_redis_server
c0=$(conns)
out=$(pm --runtime "$rt" --runtime-flag "ffnet-rundir=$FF_RUNDIR" --runtime-flag "ffnet-shim=$shim" \
	--runtime-flag "ffnet-exec=$ffexec" --runtime-flag "ffnet-log=$rtlog" \
	run --rm --pull never --label "$LABEL" --network "$NET" "$IMG" \
	sh -c "redis-cli -h $rip set ffkey ffvalue && redis-cli -h $rip get ffkey" 2>&1) || true
c1=$(conns)
ff_check "redis-cli set/get (--runtime-flag): '$(ff_flat "$out")', router connections $c0 -> $c1" \
	test "$(ff_flat "$out")" = "OK ffvalue" -a "$c1" -ge $((c0 + 2))

# ---- curl to a static server; then all gone with their containers
rt_http '10\.77\.17\.'
rt_gone

# ---- no router: still runs
ff_router_stop
# shellcheck disable=SC2016 # expanded in the container
out=$(cli -- sh -c 'echo "ran preload=${LD_PRELOAD:-none}"')
ff_check "no router: the container runs unaccelerated ($(ff_flat "$out"))" grep -q 'ran preload=none' <<<"$out"
ff_check "no router: the runtime said why in its log" grep -q "not accelerated: cannot reach ffrouter" "$rtlog"

# ---- nothing left behind, the image unchanged
left=$(find "$FF_RUNDIR/c" "$FF_RUNDIR/oci" -mindepth 1 2>/dev/null | head -5)
ff_check "nothing left in $FF_RUNDIR/c and /oci ($(ff_flat "$left"))" test -z "$left"
ff_check "the image is the same (ID)" test "$(img_id)" = "$img_before"
ff_check "the image is the same (a fresh container's files, sizes, modes)" test "$(img_files)" = "$files_before"
left=$(find "$PM/runc" -mindepth 1 2>/dev/null | head -5)
ff_check "no runc state left ($(ff_flat "$left"))" test -z "$left"
echo "# podman's create, as the runtime got it: $(grep -m1 '^create ' "$PM/argv.log" | sed "s|$PM|\$PM|g")"
pm_cleanup
host_restore
diff=$(diff <(echo "$HOST_BEFORE") <(host_state) | grep '^[<>]' || true)
ff_check "the host is as before: links, iptables, mounts, /run, /var/lib ($(ff_flat "$diff"))" test -z "$diff"
echo "# runtime log:"
sed 's/^/#   /' "$rtlog" | tail -n 30
ff_summary
