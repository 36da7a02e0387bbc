#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq programs and container shell lines: single quotes on purpose
# ffnet-runtime without an engine: a fake "real runtime" records the
# arguments and the config.json it was given, so every edit is checked
# exactly (mounts, the entrypoint behind ffexec, LD_PRELOAD only where the
# image's glibc can load the shim, the hooks), and so is every case where
# the container must be left alone byte for byte (opt-outs, host network,
# its own /run/ffnet, no router, bad JSON) yet still started; --ffnet-strict
# refuses instead. The hooks register and unregister a process's network
# namespace with a real router. One round under valgrind.
# Needs root for the hooks' namespace (the rest runs without; 77 if jq is
# missing).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd -P)
build=${FF_BUILD:-$top/build}
rt=$build/runtime/ffnet-runtime
if ! command -v jq >/dev/null; then
	echo "SKIP: needs jq"
	exit 77
fi
work=$(mktemp -d /tmp/ffrts.XXXXXX)
rundir=$work/run
router="" holder=""
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { # DESCRIPTION CONDITION...
	local d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else nok "$d"; fi
}
cleanup() {
	[[ -n $holder ]] && kill "$holder" 2>/dev/null
	[[ -n $router ]] && kill -TERM "$router" 2>/dev/null && wait "$router" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
start() {
	"$build/ffrouter/ffrouter" --rundir "$rundir" --log-level warn 2>>"$work/router.log" &
	router=$!
	for ((i = 0; i < 200; i++)); do [[ -S $rundir/ffrouter.sock ]] && return 0; sleep 0.02; done
	return 1
}
ffctl() { "$build/ffctl/ffctl" --rundir "$rundir" "$@"; }

# the real runtime, faked: its arguments and the bundle's config.json
cat >"$work/fake-runc" <<EOF
#!/bin/sh
printf '%s\n' "\$0" "\$@" >"$work/runc.args"
b=.
while [ \$# -gt 0 ]; do [ "\$1" = --bundle ] && b=\$2; shift; done
cp "\$b/config.json" "$work/runc.config" 2>/dev/null
exit 0
EOF
chmod +x "$work/fake-runc"
shim=$(realpath -e "$build/libffshim/libffshim.so")
exe=$(realpath -e "$build/ffexec/ffexec")
opts=(--ffnet-rundir="$rundir" --ffnet-runtime="$work/fake-runc" --ffnet-shim="$shim"
	--ffnet-exec="$exe" --ffnet-log="$work/rt.log")

# A bundle as Docker hands it over (the parts that matter), with a rootfs
# whose libc is KIND: glibc (the host's), old (a glibc without the shim's
# symbol versions), musl (none), escape (an absolute symlink that would
# reach the host's libc if followed outside the rootfs), fifo (a FIFO that
# would block whoever opens it for reading).
bundle() { # DIR KIND [JQ-FILTER]
	local d=$1 kind=$2 f=${3:-.}
	rm -rf "$d"
	mkdir -p "$d/rootfs/lib/x86_64-linux-gnu" "$d/rootfs/lib64"
	case $kind in
	glibc) cp "$(readlink -f /lib/x86_64-linux-gnu/libc.so.6)" "$d/rootfs/lib/x86_64-linux-gnu/libc.so.6" ;;
	old) printf 'GNU C Library\0GLIBC_2.2.5\0GLIBC_2.17\0GLIBC_PRIVATE\0' >"$d/rootfs/lib64/libc.so.6" ;;
	musl) : >"$d/rootfs/lib/ld-musl-x86_64.so.1" ;;
	escape) ln -s /lib/x86_64-linux-gnu/libc.so.6 "$d/rootfs/lib/x86_64-linux-gnu/libc.so.6" ;;
	fifo) mkfifo "$d/rootfs/lib/x86_64-linux-gnu/libc.so.6" ;;
	esac
	jq -n "{ociVersion: \"1.0.2\", root: {path: \"rootfs\"},
		process: {args: [\"/usr/bin/app\", \"--port\", \"80\"], env: [\"PATH=/usr/bin\", \"HOME=/root\"], cwd: \"/\"},
		mounts: [{destination: \"/proc\", type: \"proc\", source: \"proc\"}],
		hooks: {prestart: [{path: \"/usr/bin/dockerd\", args: [\"libnetwork-setkey\"]}]},
		linux: {namespaces: [{type: \"pid\"}, {type: \"network\"}, {type: \"mount\"}]}} | $f" \
		>"$d/config.json"
	cp "$d/config.json" "$d/orig.json"
}
id=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
name=${id:0:63}
create() { # BUNDLE [OWN-OPTIONS...]: as Docker calls it; exit status in rc
	local b=$1
	shift
	rm -f "$work/runc.args" "$work/runc.config"
	rc=0
	"$rt" "${opts[@]}" "$@" --root /run/x --log /run/x/log --log-format json create --bundle "$b" \
		--pid-file "$b/pid" "$id" >"$work/out" 2>&1 || rc=$?
}
untouched() { # BUNDLE: the file is as it was, and the runtime ran with it
	cmp -s "$1/config.json" "$1/orig.json" && cmp -s "$1/orig.json" "$work/runc.config"
}

start || { echo "Bail out! the router did not start: $(cat "$work/router.log")"; exit 1; }
b=$work/b

# ---- a glibc image: everything
bundle "$b" glibc
create "$b"
check "create: exit $rc, the real runtime ran with the same arguments but ours" \
	test "$rc" = 0 -a "$(tr '\n' ' ' <"$work/runc.args")" = \
	"$work/fake-runc --root /run/x --log /run/x/log --log-format json create --bundle $b --pid-file $b/pid $id "
c=$work/runc.config
check "read-only: the router directory at /run/ffnet, shim and ffexec at /opt/ffnet" jq -e --arg d "$rundir/c/$name" \
	--arg s "$shim" --arg e "$exe" '.mounts | length == 4 and
	 any(.[]; .destination == "/run/ffnet" and .source == $d and .type == "bind" and (.options | index("ro"))) and
	 any(.[]; .destination == "/opt/ffnet/libffshim.so" and .source == $s and (.options | index("ro"))) and
	 any(.[]; .destination == "/opt/ffnet/ffexec" and .source == $e and (.options | index("ro")))' "$c"
check "the mount point $rundir/c/$name exists" test -d "$rundir/c/$name"
check "the program runs behind ffexec, its arguments kept" \
	jq -e '.process.args == ["/opt/ffnet/ffexec", "--", "/usr/bin/app", "--port", "80"]' "$c"
check "the image's glibc takes the shim: LD_PRELOAD set, the rest of env kept" \
	jq -e '.process.env == ["PATH=/usr/bin", "HOME=/root", "LD_PRELOAD=/opt/ffnet/libffshim.so"]' "$c"
check "hooks: Docker's prestart kept; createRuntime and poststop call this binary with our options" \
	jq -e --arg rt "$(realpath -e "$rt")" --arg rd "--ffnet-rundir=$rundir" '
	 .hooks.prestart == [{path: "/usr/bin/dockerd", args: ["libnetwork-setkey"]}] and
	 (.hooks.createRuntime | length == 1 and .[0].path == $rt and (.[0].args | index($rd)) and
	  .[0].args[-2:] == ["hook", "create"]) and
	 (.hooks.poststop | length == 1 and .[0].args[-2:] == ["hook", "poststop"])' "$c"
check "everything else is as it was" \
	test "$(jq -S 'del(.mounts, .process.args, .process.env, .hooks)' "$c")" = \
	"$(jq -S 'del(.mounts, .process.args, .process.env, .hooks)' "$b/orig.json")"
check "the file is written in place (mode kept, no temp left)" \
	test "$(stat -c %a "$b/config.json")" = "$(stat -c %a "$b/orig.json")" -a ! -e "$b/config.json.ffnet.tmp"

# conmon puts its --systemd-cgroup before podman's --runtime-flag options
bundle "$b" glibc
rm -f "$work/runc.args" "$work/runc.config"
rc=0
"$rt" --systemd-cgroup --root /run/x "${opts[@]}" --log-format json create --bundle "$b" "$id" >"$work/out" 2>&1 || rc=$?
check "our options among the engine's: taken out, the rest kept in order, the edit done (exit $rc)" \
	test "$(tr '\n' ' ' <"$work/runc.args")" = \
	"$work/fake-runc --systemd-cgroup --root /run/x --log-format json create --bundle $b $id " -a \
	"$(jq '.mounts | length' "$work/runc.config")" = 4

bundle "$b" glibc '.process.env += ["LD_PRELOAD=/usr/lib/libjemalloc.so"]'
create "$b"
check "an LD_PRELOAD of the image's own comes after the shim" \
	jq -e 'any(.process.env[]; . == "LD_PRELOAD=/opt/ffnet/libffshim.so:/usr/lib/libjemalloc.so")' "$c"
for kind in old musl escape fifo; do
	bundle "$b" "$kind"
	rm -f "$work/runc.config"
	timeout 20 "$rt" "${opts[@]}" create --bundle "$b" "$id" >"$work/out" 2>&1
	check "libc '$kind': no LD_PRELOAD (it would not start), ffexec still in front" \
		jq -e '(.process.env | all(startswith("LD_PRELOAD") | not)) and .process.args[0] == "/opt/ffnet/ffexec"' "$c"
done

# ---- left alone, byte for byte, and still started
for case in 'annotation|.annotations = {"io.ffnet.enable": "false"}' \
	'FFNET=off|.process.env += ["FFNET=off"]' \
	'host network|.linux.namespaces |= map(select(.type != "network"))' \
	'its own /run/ffnet|.mounts += [{destination: "/run/ffnet", type: "bind", source: "/x"}]'; do
	bundle "$b" glibc "${case#*|}"
	create "$b"
	check "${case%%|*}: untouched, started (exit $rc), logged: $(tail -1 "$work/rt.log" | cut -d' ' -f3-)" \
		untouched "$b"
done
bundle "$b" glibc
echo '{"ociVersion": ' >"$b/config.json"
cp "$b/config.json" "$b/orig.json"
create "$b"
check "config.json that is not JSON: untouched, left to the real runtime (exit $rc)" untouched "$b"
kill -TERM "$router" && wait "$router"
router=
bundle "$b" glibc
create "$b"
check "no router: untouched, started (exit $rc)" untouched "$b"
create "$b" --ffnet-strict
check "no router with --ffnet-strict: exit $rc, the real runtime not run" \
	test "$rc" = 1 -a ! -e "$work/runc.args"
start || { echo "Bail out! the router did not restart"; exit 1; }

# ---- the other commands go straight through
rm -f "$work/runc.args"
"$rt" "${opts[@]}" --root /run/x delete --force "$id" >/dev/null 2>&1
check "delete: passed through as it was" \
	test "$(tr '\n' ' ' <"$work/runc.args")" = "$work/fake-runc --root /run/x delete --force $id "
rc=0
"$rt" --ffnet-frob=1 state x >"$work/out" 2>&1 || rc=$?
check "an unknown --ffnet- option: exit $rc, said so" test "$rc" = 2 -a -n "$(grep "unknown option '--ffnet-frob=1'" "$work/out")"

# ---- the hooks with a real namespace
hook() { # WHICH STATE-JSON [OWN-OPTIONS...]
	local which=$1 state=$2
	shift 2
	rc=0
	printf '%s' "$state" | ${VG:-} "$rt" "${opts[@]}" "$@" hook "$which" >"$work/out" 2>&1 || rc=$?
}
hook create '{"id": 5'
check "hook create with a bad state: exit $rc (the container runs), logged" \
	test "$rc" = 0 -a -n "$(grep 'no valid container id' "$work/rt.log")"
hook create '{"id": 5' --ffnet-strict
check "hook create with a bad state and --ffnet-strict: exit $rc" test "$rc" = 1
if ((EUID == 0)) && command -v unshare >/dev/null && command -v nsenter >/dev/null; then
	unshare --net sleep 60 &
	holder=$!
	sleep 0.2
	nsenter -t "$holder" -n ip addr add 10.77.16.2/24 dev lo
	nsenter -t "$holder" -n ip link set lo up
	state=$(jq -nc --arg id "$id" --argjson pid "$holder" '{ociVersion: "1.0.2", id: $id, pid: $pid, status: "created"}')
	hook create "$state"
	check "hook create: exit $rc, registered with the namespace's address" \
		test "$rc" = 0 -a "$(ffctl list --json | jq -r --arg n "$name" '.[] | select(.name == $n) | .ips[0]')" = 10.77.16.2
	check "its record in $rundir/oci, root-only" test "$(stat -c %a "$rundir/oci/$name" 2>/dev/null)" = 600
	# a container joining that namespace (a pod's app container, Docker's
	# --network container:X): the registration's directory, no hooks
	rm -f "$work/runc.config"
	bundle "$b" glibc ".linux.namespaces |= map(if .type == \"network\" then .path = \"/proc/$holder/ns/net\" else . end)"
	rc=0
	"$rt" "${opts[@]}" create --bundle "$b" "${id/0/8}" >"$work/out" 2>&1 || rc=$?
	check "create joining the registered namespace: exit $rc, its directory c/$name, no hooks of its own" \
		jq -e --arg d "$rundir/c/$name" 'any(.mounts[]; .destination == "/run/ffnet" and .source == $d) and
		 .hooks.createRuntime == null and .hooks.poststop == null and .process.args[0] == "/opt/ffnet/ffexec"' \
		"$work/runc.config"
	# runc exec --process FILE (docker exec): edited for this container,
	# left alone for another
	printf '{"args": ["redis-cli", "ping"], "env": ["PATH=/usr/bin"], "cwd": "/"}' >"$work/proc.json"
	cp "$work/proc.json" "$work/proc.orig"
	rc=0
	"$rt" "${opts[@]}" --root /run/x exec --process "$work/proc.json" --detach "$id" >"$work/out" 2>&1 || rc=$?
	check "exec --process for a registered container: exit $rc, behind ffexec with the shim" \
		jq -e '.args == ["/opt/ffnet/ffexec", "--", "redis-cli", "ping"] and
		 .env == ["PATH=/usr/bin", "LD_PRELOAD=/opt/ffnet/libffshim.so"]' "$work/proc.json"
	cp "$work/proc.orig" "$work/proc.json"
	"$rt" "${opts[@]}" exec --process "$work/proc.json" "${id/0/9}" >"$work/out" 2>&1
	check "exec --process for a container it did not register: untouched" cmp "$work/proc.json" "$work/proc.orig"
	kill "$holder"
	wait "$holder" 2>/dev/null
	holder=
	# a poststop the router missed: the next container with that address
	# clears the stale registration
	kill -TERM "$router" && wait "$router"
	router=
	hook poststop "$state"
	check "hook poststop with no router: exit $rc, logged" \
		test "$rc" = 0 -a -n "$(grep 'not unregistered' "$work/rt.log")"
	start || { echo "Bail out! the router did not restart"; exit 1; }
	unshare --net sleep 60 &
	holder=$!
	sleep 0.2
	nsenter -t "$holder" -n ip addr add 10.77.16.2/24 dev lo
	id2=fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210
	state2=$(jq -nc --arg id "$id2" --argjson pid "$holder" '{id: $id, pid: $pid}')
	if command -v valgrind >/dev/null; then
		VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
	fi
	hook create "$state2"
	check "hook create over a stale registration of the address: exit $rc, the new one registered" \
		test "$rc" = 0 -a "$(ffctl list --json | jq -r 'map(.name) | join(",")')" = "${id2:0:63}"
	hook poststop "$state2"
	check "hook poststop: exit $rc, unregistered, nothing left in c/ and oci/" \
		test "$rc" = 0 -a "$(ffctl list --json | jq length)" = 0 -a -z "$(ls -A "$rundir/oci")"
	# a container gone without its poststop, whose registration is in no
	# one's way: the next create removes it after registering its own
	unshare --net sleep 60 &
	h3=$!
	sleep 0.2
	nsenter -t "$h3" -n ip addr add 10.77.16.9/24 dev lo
	id3=abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd
	hook create "$(jq -nc --arg id "$id3" --argjson pid "$h3" '{id: $id, pid: $pid}')"
	kill "$h3"
	wait "$h3" 2>/dev/null
	hook create "$state2"
	check "a stale registration in no one's way: removed by the next create (exit $rc), its record too" \
		test "$rc" = 0 -a "$(ffctl list --json | jq -r 'map(.name) | join(",")')" = "${id2:0:63}" -a \
		! -e "$rundir/oci/${id3:0:63}"
	hook poststop "$state2"
	VG=
else
	echo "# not root: the hooks' namespace part is left out"
fi
if command -v valgrind >/dev/null; then
	bundle "$b" glibc
	rc=0
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--trace-children=no "$rt" "${opts[@]}" create --bundle "$b" "$id" >"$work/out" 2>&1 || rc=$?
	check "create under valgrind: exit $rc, edited" test "$rc" = 0 -a -n "$(jq -r '.hooks.poststop' "$work/runc.config")"
fi
echo "# $pass passed, $fail failed"
((fail == 0))
