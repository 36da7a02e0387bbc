# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # run, NET, IMG come from the test; sip and rip go back to it
# The checks ffnet-runtime's engine tests share (t-runtime-docker.sh,
# t-runtime-podman.sh): apps started through `--runtime ffnet`, seen from
# the router. Sourced after ffenv.sh; the test sets:
#   RT_ENG      the engine's CLI as a command (tb_docker, pm)
#   RT_WHO      its name in the checks' words (Docker, podman)
#   RT_PFX      container name prefix
#   RT_RM       the options that make `rm` quick (-f; podman: -f -t 0)
#   NET, IMG    the network and the image; run=(...) the `run` options
#   and a function cli [RUN-OPTS...] -- PROGRAM...: a client container,
#   removed at its end, printing what the program printed.

rt_conns() { ffctl status --json | jq .conns_total; }
rt_cid_of() { "$RT_ENG" inspect -f '{{.Id}}' "$1"; }
rt_ip_of() { "$RT_ENG" inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1"; }
rt_listed_ip() { # CONTAINER: its IPs in ffctl list (the router's name: the ID's first 63 characters)
	local id
	id=$(rt_cid_of "$1") || return 0
	ffctl list --json | jq -r --arg n "${id:0:63}" '.[] | select(.name == $n) | .ips | join(",")'
}
rt_nlisted() { ffctl list --json | jq length; }
rt_wait_listen() { # CONTAINER PORT: until the router holds its listener (an accelerated listen)
	local i n
	n=$(rt_cid_of "$1" | cut -c1-63)
	for ((i = 0; i < 300; i++)); do
		ffctl status --json | jq -e --arg n "$n" --arg p ":$2" \
			'any(.listeners[]?; .container == $n and (.addr | endswith($p)))' >/dev/null 2>&1 &&
			return 0
		sleep 0.05
	done
	ff_log "$1 did not listen on $2: $("$RT_ENG" logs "$1" 2>&1 | tail -3)"
	return 1
}
# rt_server NAME PROGRAM...: a server container NAME (RT_PFX-NAME) that
# must be registered with its engine-given address; that address in $sip.
rt_server() {
	local what=$1 name=$RT_PFX-$1
	shift
	"$RT_ENG" run -d --name "$name" "${run[@]}" "$IMG" "$@" >/dev/null
	sip=$(rt_ip_of "$name")
	ff_check "$what server: registered as itself with $RT_WHO's IP $sip" test "$(rt_listed_ip "$name")" = "$sip"
}

# iperf3 across: bytes arrive, the router handed both connections.
rt_iperf() {
	local out bytes c0 c1 ip
	rt_server iperf iperf3 -s
	ip=$sip
	rt_wait_listen "$RT_PFX-iperf" 5201 || true
	c0=$(rt_conns)
	out=$(cli -- iperf3 -c "$ip" -t 2 -J)
	bytes=$(jq -r '.end.sum_received.bytes // 0' <<<"$out" 2>/dev/null || echo 0)
	c1=$(rt_conns)
	ff_check "iperf3 client -> server: $bytes bytes, router connections $c0 -> $c1" \
		test "${bytes:-0}" -gt 0 -a "$c1" -ge $((c0 + 2))
}

# A redis server; its address in $rip.
rt_redis_server() {
	rt_server redis redis-server --protected-mode no --save '' --appendonly no
	rip=$sip
	rt_wait_listen "$RT_PFX-redis" 6379 || true
}

# curl (the shim's route) to a static server (ffexec's route): the static
# Go server when built, else busybox httpd. SUBNET-RE: the client's
# address as the Go server must see it.
rt_http() {
	local re=$1 out c0 c1 ip
	if [[ -x $FF_BUILD/tests/progs/gonet ]]; then
		rt_server http gonet serve :8080
	else
		rt_server http sh -c 'mkdir -p /tmp/www && echo "server remote=busybox" >/tmp/www/whoami &&
			exec busybox httpd -f -p 8080 -h /tmp/www'
	fi
	ip=$sip
	rt_wait_listen "$RT_PFX-http" 8080 || true
	c0=$(rt_conns)
	out=$(cli -- curl -sS --max-time 20 "http://$ip:8080/whoami")
	c1=$(rt_conns)
	ff_check "curl -> static server: '$(ff_flat "$out")', router connections $c0 -> $c1" \
		test "$c1" -gt "$c0" -a -n "$(grep 'server remote=' <<<"$out")"
	if [[ -x $FF_BUILD/tests/progs/gonet ]]; then
		# the client's overlay address as the server saw it: the client
		# container's own, in the network's subnet
		ff_check "the Go server saw a client from the network's subnet" grep -q "remote=$re" <<<"$out"
	fi
}

# The three servers go: rm -f, kill (unregistered without an rm), rm.
rt_gone() {
	local i
	ff_check "the three servers are listed ($(rt_nlisted) containers)" test "$(rt_nlisted)" = 3
	"$RT_ENG" rm "${RT_RM[@]}" "$RT_PFX-iperf" >/dev/null
	ff_check "$RT_WHO rm -f: iperf3's registration is gone" test "$(rt_nlisted)" = 2
	"$RT_ENG" kill "$RT_PFX-redis" >/dev/null
	for ((i = 0; i < 100; i++)); do [[ $(rt_nlisted) == 1 ]] && break; sleep 0.05; done
	ff_check "$RT_WHO kill: redis's registration is gone without an rm" test "$(rt_nlisted)" = 1
	"$RT_ENG" rm "${RT_RM[@]}" "$RT_PFX-redis" "$RT_PFX-http" >/dev/null
	ff_check "all gone: ffctl list is empty" test "$(rt_nlisted)" = 0
}
