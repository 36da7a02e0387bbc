#!/usr/bin/env bash
# The router's systemd unit as built (ffrouter/ffrouter.service):
# - systemd-analyze verify accepts it, with no warning about it, and finds
#   the man pages its Documentation= names among MANDIR's (doc/man/);
# - it keeps the hardening the router is meant to run under: no new
#   privileges, a read-only system but for its run and state directories,
#   no /home, a private /tmp, exactly the capabilities it uses, a file limit;
# - nothing in it hides what the router needs: /proc of other processes
#   (identity checks) and /dev/infiniband (no device policy);
# - systemd-analyze security rates its exposure 5.0 or better (when this
#   systemd can review a unit file offline).
#   t-unit-file.sh UNIT ROUTER MANDIR   (ROUTER: the built ffrouter, for ExecStart)
set -uo pipefail
unit=${1:?usage: t-unit-file.sh UNIT ROUTER MANDIR} router=${2:?usage: t-unit-file.sh UNIT ROUTER MANDIR}
mandir=${3:?usage: t-unit-file.sh UNIT ROUTER MANDIR}
if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: systemd-analyze is missing (apt-get install systemd)"
	exit 77
fi
[[ -f $unit && -x $router ]] || { echo "not ok - no $unit or $router"; exit 1; }
router=$(realpath "$router")
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
u=$tmp/ffrouter.service
# ExecStart names the installed binary, which verify wants to exist
sed "s|^ExecStart=[^ ]*/ffrouter |ExecStart=$router |" "$unit" >"$u"
grep -q "^ExecStart=$router " "$u" || nok "ExecStart is not the router: $(grep ^ExecStart= "$unit")"

# verify runs man(1) for each man: page of Documentation=; the pages are
# not installed, so it looks among the source's (without man-db, no check)
mkdir -p "$tmp/man/man8"
cp "$mandir"/*.8 "$tmp/man/man8/"
man_opt=--man=yes
command -v man >/dev/null || man_opt=--man=no
if MANPATH=$tmp/man systemd-analyze verify $man_opt "$u" >"$tmp/verify" 2>&1 &&
	! grep -q ffrouter.service "$tmp/verify"; then
	ok "systemd-analyze verify $man_opt"
else
	nok "systemd-analyze verify: $(cat "$tmp/verify")"
fi

has() { grep -qx "$1" "$u"; }
for d in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
	"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_SYS_PTRACE"; do
	has "$d" && ok "$d" || nok "missing: $d"
done
rw=$(sed -n 's/^ReadWritePaths=//p' "$u" | tr ' ' '\n')
for p in /run/ffnet /var/lib/ffnet; do
	grep -qx -- "-\?$p" <<<"$rw" && ok "ReadWritePaths has $p" || nok "ReadWritePaths lacks $p"
done
nofile=$(sed -n 's/^LimitNOFILE=//p' "$u")
[[ $nofile =~ ^[0-9]+$ ]] && ((nofile >= 65536)) && ok "LimitNOFILE=$nofile" ||
	nok "LimitNOFILE='$nofile' (want 65536 or more)"
for d in PrivateDevices=yes ProtectClock=yes 'DeviceAllow=.*' 'DevicePolicy=\(closed\|strict\)' \
	'ProtectProc=.*' 'ProcSubset=pid' 'User=.*' 'DynamicUser=yes'; do
	grep -q "^$d\$" "$u" && nok "must not have $d (it hides what the router needs)" ||
		ok "no $d"
done

if systemd-analyze security --help 2>&1 | grep -q -- --offline; then
	score=$(systemd-analyze security --offline=yes "$u" 2>&1 |
		sed -n 's/.*Overall exposure level for ffrouter.service: \([0-9.]*\).*/\1/p')
	if [[ -n $score ]] && awk -v s="$score" 'BEGIN { exit !(s <= 5.0) }'; then
		ok "exposure $score (5.0 or better)"
	else
		nok "exposure '${score:-?}' (want 5.0 or better)"
	fi
else
	echo "# this systemd-analyze cannot review a unit file offline: exposure not rated"
fi
echo "# $pass passed, $fail failed"
((fail == 0))
