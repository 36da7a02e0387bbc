# shellcheck shell=bash
# Docker backend of the test bed (sourced by testbed.sh).
#
# tb_init starts a private dockerd (daemon.json from TB_DOCKERD_JSON, data-root
# $TB_WORKDIR/docker, sockets and
# exec-root under a short /run/ffnet-tb-HASH so unix socket paths stay far
# below 108 bytes), unless TB_DOCKER_HOST names an engine to use as it is.
# dockerd runs with --bridge=none (no docker0) and --ip-forward=false (the test
# networks are single bridges, nothing is routed), so it changes as little of
# the host as it can; whatever it still leaves (DOCKER* iptables chains, a
# FORWARD policy of DROP, /etc/docker/key.json, /run/containerd, /run/docker) is undone by
# _tb_docker_stop once no other dockerd runs.
#
# State files: docker_host (the -H address), dockerd (the /run dir of a dockerd
# we started, or "external"), dockerd_pid, saved/* (host settings to restore).

: "${TB_DOCKERD_TIMEOUT:=30}"

_tb_docker_cli() {
	# the CLI shipped with the engine first: a newer CLI in /usr/local/bin may
	# want buildx or a newer API
	if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker; fi
}

_tb_d() {
	local cli host
	cli=${_TB_DOCKER_CLI:-$(_tb_docker_cli)}
	host=$(cat "$TB_STATE/docker_host" 2>/dev/null) || { _tb_err "no docker engine in this test bed"; return 1; }
	"$cli" -H "$host" "$@"
}

# tb_docker ARGS...: the docker CLI, talking to the test bed's engine.
tb_docker() {
	_tb_need_init || return 1
	[[ $TB_BACKEND == docker ]] || { _tb_err "tb_docker: backend is $TB_BACKEND"; return 1; }
	_tb_d "$@"
}

_tb_other_dockerd() { # print the pids of live dockerd processes
	local c p
	for c in /proc/[0-9]*/comm; do
		[[ $(cat "$c" 2>/dev/null) == dockerd ]] || continue
		p=${c#/proc/}
		p=${p%/comm}
		_tb_alive "$p" && echo "$p"
	done
	return 0
}

_tb_docker_save_host() { # record the host settings dockerd may change
	local s=$TB_STATE/saved
	[[ -d $s ]] && return 0
	mkdir -p "$s"
	cat /proc/sys/net/ipv4/ip_forward >"$s/ip_forward"
	iptables -w -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3 }' >"$s/forward_policy"
	[[ -e /etc/docker ]] || touch "$s/no_etc_docker"
	[[ -e /etc/docker/key.json ]] || touch "$s/no_key_json"
	[[ -e /run/containerd ]] || touch "$s/no_run_containerd"
	[[ -e /run/docker ]] || touch "$s/no_run_docker" # dockerd makes /run/docker/plugins
}

_tb_docker_start() {
	local run host drv t0 pid ver i log
	_TB_DOCKER_CLI=$(_tb_docker_cli)
	if [[ -n ${TB_DOCKER_HOST:-} ]]; then
		echo "$TB_DOCKER_HOST" >"$TB_STATE/docker_host"
		echo external >"$TB_STATE/dockerd"
		if ! ver=$(_tb_d version -f '{{.Server.Version}}' 2>&1); then
			_tb_err "no docker engine answers at TB_DOCKER_HOST=$TB_DOCKER_HOST: $ver"
			return 2
		fi
		_tb_log "using the docker engine at $TB_DOCKER_HOST ($ver); it will be left running"
		return 0
	fi
	if ! command -v dockerd >/dev/null || [[ -z $_TB_DOCKER_CLI ]]; then
		tb_ensure dockerd:docker.io || return 2
		_TB_DOCKER_CLI=$(_tb_docker_cli)
	fi
	run=/run/ffnet-tb-$(printf '%s' "$TB_WORKDIR" | md5sum | cut -c1-8)
	host=unix://$run/docker.sock
	echo "$host" >"$TB_STATE/docker_host"
	echo "$run" >"$TB_STATE/dockerd"
	if ver=$(_tb_d version -f '{{.Server.Version}}' 2>/dev/null); then
		_tb_log "reusing dockerd $ver already running at $host"
		return 0
	fi
	_tb_docker_save_host
	# TB_DOCKERD_JSON: the engine's daemon.json (runtimes, say), {} if unset
	mkdir -p "$run" && printf '%s\n' "${TB_DOCKERD_JSON:-"{}"}" >"$run/daemon.json" || return 2
	log=$TB_WORKDIR/dockerd.log
	for drv in ${TB_STORAGE_DRIVER:-overlay2 vfs}; do
		t0=$EPOCHREALTIME
		echo "=== $(date -Is) starting dockerd (storage $drv)" >>"$log"
		(
			exec setsid dockerd --config-file "$run/daemon.json" --data-root "$TB_WORKDIR/docker" \
				--exec-root "$run/x" -H "$host" --pidfile "$run/dockerd.pid" \
				--iptables=true --ip-forward=false --bridge=none --userland-proxy=false \
				--storage-driver="$drv"
		) </dev/null >>"$log" 2>&1 &
		pid=$!
		echo "$pid $(_tb_proc_start "$pid")" >"$TB_STATE/dockerd_pid"
		ver=""
		for ((i = 0; i < TB_DOCKERD_TIMEOUT * 20; i++)); do
			ver=$(_tb_d version -f '{{.Server.Version}}' 2>/dev/null) && break
			ver=""
			_tb_alive "$pid" || break
			sleep 0.05
		done
		if [[ -n $ver ]]; then
			_tb_time dockerd "$(_tb_since "$t0")"
			_tb_log "dockerd $ver ready in $(_tb_since "$t0") s (storage $drv, socket $host)"
			return 0
		fi
		_tb_log "dockerd with storage $drv did not come up: $(grep -v '^===' "$log" | tail -n 2)"
		_tb_docker_kill "$TB_STATE"
	done
	_tb_err "dockerd would not start (log: $log)"
	return 2
}

# _tb_docker_kill STATE: stop the dockerd recorded in STATE and whatever it
# spawned (containerd, shims), by pid.
_tb_docker_kill() {
	local s=$1 run pid st i p
	run=$(cat "$s/dockerd" 2>/dev/null)
	[[ -n $run && $run != external ]] || return 0
	if [[ -f $s/dockerd_pid ]]; then
		read -r pid st <"$s/dockerd_pid"
		if _tb_alive "$pid" "$st"; then
			kill -TERM "$pid" 2>/dev/null
			for ((i = 0; i < 400; i++)); do _tb_alive "$pid" "$st" || break; sleep 0.05; done
			_tb_alive "$pid" "$st" && kill -KILL "$pid" 2>/dev/null
		fi
	fi
	# children that outlived it: their command lines name our private paths
	for ((i = 0; i < 50; i++)); do
		local left=()
		local cl
		for p in /proc/[0-9]*; do
			cl=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
			[[ $cl == *"$run/"* ]] && left+=("${p#/proc/}")
		done
		((${#left[@]})) || break
		((i == 20)) && kill -KILL "${left[@]}" 2>/dev/null
		((i == 0)) && kill -TERM "${left[@]}" 2>/dev/null
		sleep 0.1
	done
	rm -f "$s/dockerd_pid"
}

_tb_mounts_at() { # DIR: mount points at or below DIR, deepest first
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

_tb_umount_under() { # DIR: lazily unmount DIR and every mount below it
	local m
	# (dockerd with vfs bind-mounts its data-root onto itself)
	_tb_mounts_at "$1" | while read -r m; do umount -l "$m" 2>/dev/null; done
	[[ -z $(_tb_mounts_at "$1") ]]
}

# _tb_docker_stop STATE: stop our dockerd and undo what it did to the host.
_tb_docker_stop() {
	local s=$1 run
	run=$(cat "$s/dockerd" 2>/dev/null)
	[[ -n $run && $run != external ]] || return 0
	_tb_docker_kill "$s"
	if _tb_umount_under "$run"; then rm -rf "$run"; else _tb_err "mounts left under $run; not removing it"; fi
	_tb_umount_under "$(dirname "$s")/docker" || _tb_err "mounts left under $(dirname "$s")/docker"
	_tb_docker_restore_host "$s"
	rm -f "$s/dockerd"
	_tb_log "dockerd stopped"
}

_tb_docker_restore_host() { # STATE
	local s=$1/saved t line ch v others
	[[ -d $s ]] || return 0
	others=$(_tb_other_dockerd | tr '\n' ' ')
	if [[ -n $others ]]; then
		_tb_log "another dockerd runs (pid $others); leaving the DOCKER iptables chains"
	else
		for t in filter nat; do
			iptables -w -t "$t" -S 2>/dev/null | grep -E -- '^-A [A-Z]+ .*-j DOCKER[A-Z0-9-]*( |$)' |
				grep -vE '^-A DOCKER' | while read -r line; do
				eval "iptables -w -t $t -D ${line#-A }" 2>/dev/null
			done
			for ch in $(iptables -w -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
				iptables -w -t "$t" -F "$ch" 2>/dev/null
			done
			for ch in $(iptables -w -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
				iptables -w -t "$t" -X "$ch" 2>/dev/null
			done
		done
		v=$(cat "$s/forward_policy" 2>/dev/null)
		[[ -n $v ]] && iptables -w -P FORWARD "$v"
	fi
	v=$(cat "$s/ip_forward" 2>/dev/null)
	[[ -z $others && -n $v ]] && echo "$v" >/proc/sys/net/ipv4/ip_forward
	[[ -f $s/no_key_json ]] && rm -f /etc/docker/key.json
	[[ -f $s/no_etc_docker ]] && rmdir /etc/docker 2>/dev/null
	if [[ -z $others ]]; then
		[[ -f $s/no_run_containerd && -d /run/containerd ]] &&
			find /run/containerd -depth -type d -empty -delete 2>/dev/null
		[[ -f $s/no_run_docker && -d /run/docker ]] &&
			find /run/docker -depth -type d -empty -delete 2>/dev/null
	fi
	return 0
}

# Docker resolves a container or network reference as a full ID, then an
# exact name, then a unique ID *prefix*: `docker rm -f c2` with no container
# named c2 removes the one whose ID starts with "c2" (c1's, 1 time in 256).
# So the test bed refers to what it made by the ID docker printed
# (ctrs/NAME/id, nets/NAME/id) and looks names up only with _tb_docker_id,
# which checks the name it gets back.

# _tb_docker_id container|network NAME: the ID of the one named exactly NAME.
_tb_docker_id() {
	local out want=$2
	[[ $1 == container ]] && want=/$2
	out=$(_tb_d "$1" inspect -f '{{.Id}} {{.Name}}' "$2" 2>/dev/null) || return 1
	[[ $out == *" $want" ]] || return 1
	printf '%s\n' "${out%% *}"
}

_tb_docker_net() { # NAME BRIDGE SUBNET GW PREFIX
	local id cur
	if id=$(_tb_docker_id network "$1"); then
		cur=$(_tb_d network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$id" 2>/dev/null)
		if [[ $cur == "$3" ]]; then
			echo "$id" >"$TB_STATE/nets/$1/id"
			return 0
		fi
		if [[ $(cat "$TB_STATE/dockerd") == external ]]; then
			_tb_err "docker network $1 exists with subnet $cur"
			return 1
		fi
		_tb_d network rm "$id" >/dev/null || return 1 # a leftover in our own engine
	fi
	id=$(_tb_d network create -d bridge --subnet "$3" --gateway "$4" \
		-o "com.docker.network.bridge.name=$2" "$1") || return 1
	echo "$id" >"$TB_STATE/nets/$1/id"
}

_tb_docker_net_rm() { # NAME BRIDGE
	local id
	{ read -r id <"$TB_STATE/nets/$1/id"; } 2>/dev/null || id=$(_tb_docker_id network "$1") || return 0
	_tb_d network rm "$id" >/dev/null 2>&1
	return 0
}

# _tb_docker_run NAME IMAGE IP NET CPUS NMOUNTS MOUNT... NENVS ENV... NCAPS CAP...
_tb_docker_run() {
	local name=$1 image=$2 ip=$3 net=$4 cpus=$5 n pid id out d=$TB_STATE/ctrs/$1
	local args=(create --pull never --name "$name" --hostname "$name" --network "$net" --ip "$ip")
	shift 5
	n=$1; shift
	while ((n-- > 0)); do args+=(-v "$1"); shift; done
	n=$1; shift
	while ((n-- > 0)); do args+=(-e "$1"); shift; done
	n=$1; shift
	while ((n-- > 0)); do args+=(--cap-add "$1"); shift; done
	[[ -n $cpus ]] && args+=(--cpuset-cpus "$cpus")
	command -v docker-init >/dev/null && args+=(--init)
	[[ $image == *:* ]] || image=$image:latest
	# In our own engine a container of that name is a leftover of a run whose
	# dockerd died with it (tb_run refuses names it knows): remove it.
	if [[ $(cat "$TB_STATE/dockerd") != external ]] && id=$(_tb_docker_id container "$name"); then
		_tb_d rm -f -v "$id" >/dev/null 2>&1
	fi
	# create, then start: the ID is recorded even if the start fails. stderr
	# only on failure: docker warns that IPv4 forwarding is off, which is
	# intended (nothing is routed)
	if ! id=$(_tb_d "${args[@]}" "$image" /bin/sleep infinity 2>"$d/create.err"); then
		_tb_err "docker create $name: $(<"$d/create.err")"
		return 1
	fi
	echo "$id" >"$d/id"
	if ! out=$(_tb_d start "$id" 2>&1); then
		_tb_err "docker start $name: $out"
		return 1
	fi
	pid=$(_tb_d inspect -f '{{.State.Pid}}' "$id") && [[ $pid -gt 0 ]] || return 1
	echo "$pid" >"$d/pid"
}

_tb_docker_pid() { cat "$TB_STATE/ctrs/$1/pid"; }

# _tb_docker_exec NAME CPU NENVS ENV... CMD...
_tb_docker_exec() {
	local name=$1 cpu=$2 n=$3 id
	local args=(exec -i)
	shift 3
	if ! { read -r id <"$TB_STATE/ctrs/$name/id"; } 2>/dev/null; then
		_tb_err "container $name has no docker ID (tb_run did not finish)"
		return 125
	fi
	while ((n-- > 0)); do args+=(-e "$1"); shift; done
	args+=("$id")
	[[ -n $cpu ]] && args+=(taskset -c "$cpu")
	_tb_d "${args[@]}" "$@"
}

_tb_docker_rm() { # STATE NAME
	local TB_STATE=$1 id
	if ! { read -r id <"$1/ctrs/$2/id"; } 2>/dev/null; then
		# killed between create and recording the ID: only our own engine
		# can have nothing but ours under that name
		[[ $(cat "$1/dockerd" 2>/dev/null) != external ]] || return 0
		id=$(_tb_docker_id container "$2") || return 0
	fi
	_tb_d rm -f -v "$id" >/dev/null 2>&1
	return 0
}
