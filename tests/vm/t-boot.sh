#!/bin/bash
# vm-boot: the single layout boots; rxe0 is listed, its port is ACTIVE and
# GID 1 is the IPv4-mapped 10.77.0.1; the guest sees the caller's working
# directory and FF* variables, can write through /ffvm/out, and its writes
# elsewhere stay in the overlay.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	out=$(mktemp -d)
	trap 'rm -rf -- "$out"' EXIT
	stray=ffvm-overlay-probe.$$
	export FFVM_TEST_CWD=$PWD FFVM_TEST_STRAY=$stray FF_TEST_VALUE="a 'b' \$c"
	NOT_PASSED=1 run_vm --layout single --out "$out" -- "$0"
	[[ $(<"$out/result") == "guest ok" ]] || fail "no result from the guest in --out"
	[[ ! -e $stray ]] || { rm -f -- "$stray"; fail "a guest write reached the host: $PWD/$stray"; }
	pass "host sees /ffvm/out/result; overlay kept $stray in the guest"
	exit 0
fi

[[ $PWD == "$FFVM_TEST_CWD" ]] || fail "guest cwd '$PWD', want '$FFVM_TEST_CWD'"
[[ $FF_TEST_VALUE == "a 'b' \$c" ]] || fail "FF_TEST_VALUE came through as '$FF_TEST_VALUE'"
[[ -z ${NOT_PASSED:-} ]] || fail "a non-FF variable was passed in"
[[ $FFVM_LAYOUT == single && $FFVM_HOSTS == "10.77.0.1:rxe0" ]] ||
	fail "FFVM_LAYOUT='$FFVM_LAYOUT' FFVM_HOSTS='$FFVM_HOSTS'"
pass "cwd, environment, layout variables"

devices=$(ibv_devices)
printf '%s\n' "$devices"
grep -Eq '^[[:space:]]+rxe0[[:space:]]+[0-9a-f]{16}$' <<<"$devices" || fail "ibv_devices does not list rxe0"
pass "ibv_devices lists rxe0"

info=$(ibv_devinfo -d rxe0)
printf '%s\n' "$info"
grep -Eq 'state:[[:space:]]+PORT_ACTIVE' <<<"$info" || fail "rxe0 port 1 is not PORT_ACTIVE"
grep -Eq 'link_layer:[[:space:]]+Ethernet' <<<"$info" || fail "rxe0 link layer is not Ethernet"
pass "rxe0 port 1 PORT_ACTIVE, Ethernet"

gid=$(</sys/class/infiniband/rxe0/ports/1/gids/1)
[[ $gid == 0000:0000:0000:0000:0000:ffff:0a4d:0001 ]] || fail "rxe0 GID 1 is $gid, want ::ffff:10.77.0.1"
pass "rxe0 GID 1 = $gid (::ffff:10.77.0.1)"

[[ -c /dev/infiniband/uverbs0 && -c /dev/infiniband/rdma_cm ]] || fail "no /dev/infiniband/uverbs0 or rdma_cm"
link=$(rdma link show rxe0/1)
[[ $link == *"state ACTIVE"*"netdev dummy0"* ]] || fail "rdma link: $link"
pass "/dev/infiniband nodes; $link"

touch -- "$FFVM_TEST_STRAY" || fail "the overlay root is not writable"
echo "guest ok" >/ffvm/out/result
