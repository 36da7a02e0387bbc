# shellcheck shell=bash
# Images for the test bed: a root tree made of host files, their ldd closure,
# busybox-static and a few /etc files (sourced by testbed.sh).
#
# The tree is laid out merged-/usr like the host (/bin, /sbin, /lib, /lib64 are
# links into /usr), so host paths keep working. An image is named by a hash of
# everything that goes into it; the docker backend imports the tree as a
# single-layer image NAME:HASH (+ NAME:latest), the netns backend keeps the
# tree as $TB_WORKDIR/images/NAME-HASH (+ link NAME) for overlay mounts.

# Bump when the generated content (layout, /etc files) changes.
_TB_IMAGE_FORMAT=4

# Files every image gets, besides the caller's.
_TB_IMAGE_BASE=(/bin/busybox=/usr/bin/busybox /usr/bin/taskset)

# _tb_is_elf FILE
_tb_is_elf() {
	local m
	[[ -f $1 && -r $1 ]] || return 1
	m=$(head -c 4 -- "$1" 2>/dev/null) || return 1
	[[ $m == $'\x7fELF' ]]
}

# _tb_ldd FILE: print the libraries FILE needs (absolute host paths), the
# dynamic loader included. Fails if one is not found.
_tb_ldd() {
	local out line
	out=$(LC_ALL=C ldd -- "$1" 2>&1) || {
		[[ $out == *"not a dynamic executable"* || $out == *"statically linked"* ]] && return 0
		_tb_err "ldd $1: $out"
		return 1
	}
	while read -r line; do
		case $line in
		*"=> not found"*) _tb_err "$1 needs ${line%% *}, which is not found"; return 1 ;;
		*"=> /"*) line=${line#*=> }; printf '%s\n' "${line%% (*}" ;;
		/*) printf '%s\n' "${line%% (*}" ;;
		esac
	done <<<"$out"
}

# _tb_image_plan SPEC...: fill _tbi_src/_tbi_dst (files), _tbi_dsrc/_tbi_ddst
# (directories) and _tbi_mkdir from "FILE", "DIR", "SRC=DST" and "--mkdir DIR".
_tb_image_plan() {
	local spec src dst f l libs=() elfs=()
	local -A seen=()
	_tbi_src=() _tbi_dst=() _tbi_dsrc=() _tbi_ddst=() _tbi_mkdir=()
	while (($#)); do
		spec=$1
		shift
		if [[ $spec == --mkdir ]]; then
			[[ ${1:-} == /* ]] || { _tb_err "tb_image: --mkdir wants an absolute path"; return 1; }
			_tbi_mkdir+=("$1")
			shift
			continue
		fi
		src=${spec%%=*}
		dst=""
		[[ $spec == *=* ]] && dst=${spec#*=}
		if [[ ! -e $src ]]; then
			_tb_err "tb_image: $src does not exist"
			return 1
		fi
		src=$(realpath -e -- "$src") || return 1
		if [[ -n $dst && $dst != /* ]]; then
			_tb_err "tb_image: destination '$dst' must be absolute"
			return 1
		fi
		if [[ -z $dst ]]; then
			# keep the path the caller named (symlinks such as /bin/x stay as named)
			dst=${spec%%=*}
			[[ $dst == /* ]] || dst=$(realpath -s -- "$dst")
		fi
		if [[ -d $src ]]; then
			_tbi_dsrc+=("$src")
			_tbi_ddst+=("$dst")
			while IFS= read -r -d '' f; do
				_tb_is_elf "$f" && elfs+=("$f")
			done < <(find "$src" -type f \( -perm -u+x -o -name '*.so*' \) -print0)
			continue
		fi
		[[ -n ${seen[$dst]:-} ]] && continue
		seen[$dst]=1
		_tbi_src+=("$src")
		_tbi_dst+=("$dst")
		_tb_is_elf "$src" && elfs+=("$src")
	done
	for f in "${elfs[@]}"; do
		libs=()
		mapfile -t libs < <(_tb_ldd "$f"; echo "rc=$?")
		[[ ${libs[-1]} == rc=0 ]] || return 1
		unset 'libs[-1]'
		for l in "${libs[@]}"; do
			[[ -n ${seen[$l]:-} ]] && continue
			seen[$l]=1
			_tbi_src+=("$(realpath -e -- "$l")") || return 1
			_tbi_dst+=("$l")
		done
	done
	# glibc dlopen()s libgcc_s for pthread_cancel/pthread_exit unwinding
	for l in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
		[[ -e $l ]] || continue
		if [[ -z ${seen[/lib/x86_64-linux-gnu/libgcc_s.so.1]:-} && -z ${seen[/usr/lib/x86_64-linux-gnu/libgcc_s.so.1]:-} ]]; then
			seen[$l]=1
			_tbi_src+=("$(realpath -e -- "$l")")
			_tbi_dst+=("$l")
		fi
		break
	done
}

# _tb_image_hash: hash of the plan (content, modes, destinations).
_tb_image_hash() {
	local i
	{
		echo "format $_TB_IMAGE_FORMAT"
		printf 'mkdir %s\n' "${_tbi_mkdir[@]}"
		# one stat and one sha256sum for all files, in plan order
		paste -d ' ' <(printf 'file %s\n' "${_tbi_dst[@]}") \
			<(stat -c %a -- "${_tbi_src[@]}") \
			<(sha256sum -- "${_tbi_src[@]}" | cut -d' ' -f1)
		for i in "${!_tbi_dsrc[@]}"; do
			echo "dir ${_tbi_ddst[i]}"
			(cd "${_tbi_dsrc[i]}" && find . -printf '%y %P %m %l\n' | LC_ALL=C sort &&
				find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
		done
	} | sha256sum | cut -c1-12
}

# _tb_image_tree ROOT: build the planned tree in ROOT (which must not exist).
_tb_image_tree() {
	local r=$1 i d
	mkdir -p "$r"/usr/{bin,sbin,lib,lib64,local/bin} "$r"/{etc,proc,sys,dev,run/ffnet,root,srv,mnt,home,opt,tmp} \
		"$r"/var/{log,lib,cache,tmp,lib/nginx,log/nginx,cache/nginx,lib/redis,log/redis} || return 1
	ln -s usr/bin "$r/bin" && ln -s usr/sbin "$r/sbin" && ln -s usr/lib "$r/lib" && ln -s usr/lib64 "$r/lib64" || return 1
	ln -s /run "$r/var/run"
	chmod 1777 "$r/tmp" "$r/var/tmp" && chmod 700 "$r/root" || return 1
	for d in "${_tbi_mkdir[@]}"; do mkdir -p "$r$d" || return 1; done
	for i in "${!_tbi_src[@]}"; do
		mkdir -p "$r$(dirname "${_tbi_dst[i]}")" &&
			cp -L --preserve=mode,timestamps -- "${_tbi_src[i]}" "$r${_tbi_dst[i]}" || return 1
	done
	for i in "${!_tbi_dsrc[@]}"; do
		mkdir -p "$r${_tbi_ddst[i]}" && cp -a -- "${_tbi_dsrc[i]}/." "$r${_tbi_ddst[i]}/" || return 1
	done
	# links to /usr/bin/busybox for every applet; existing files win
	/bin/busybox --install -s "$r/usr/bin" || return 1
	_tb_image_etc "$r"
}

_tb_image_etc() { # ROOT
	local r=$1 d
	cat >"$r/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
		www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
		redis:x:100:101::/var/lib/redis:/usr/sbin/nologin
		nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
	EOF
	cat >"$r/etc/group" <<-'EOF'
		root:x:0:
		daemon:x:1:
		www-data:x:33:
		redis:x:101:
		nogroup:x:65534:
	EOF
	cat >"$r/etc/nsswitch.conf" <<-'EOF'
		passwd:    files
		group:     files
		shadow:    files
		hosts:     files dns
		networks:  files
		protocols: files
		services:  files
	EOF
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	: >"$r/etc/resolv.conf"
	for d in services protocols; do [[ -f /etc/$d ]] && cp "/etc/$d" "$r/etc/$d"; done
	# let the loader find libraries in every directory we copied some into
	{
		echo /usr/local/lib
		echo /usr/lib/x86_64-linux-gnu
		printf '%s\n' "${_tbi_dst[@]}" | grep -E '\.so(\.|$)' | xargs -r -n1 dirname
	} | awk '!s[$0]++' >"$r/etc/ld.so.conf"
	ldconfig -r "$r" 2>/dev/null || _tb_log "ldconfig -r failed (the loader's default paths still apply)"
	return 0
}

# tb_rootfs DIR SPEC...: build an image tree into DIR without a test bed
# (docker/app-image.sh --rootfs).
tb_rootfs() {
	local dir=${1:-}
	shift || true
	[[ -n $dir && ! -e $dir ]] || { _tb_err "usage: tb_rootfs NEWDIR SPEC... (NEWDIR must not exist)"; return 1; }
	local _tbi_src _tbi_dst _tbi_dsrc _tbi_ddst _tbi_mkdir
	_tb_image_plan "${_TB_IMAGE_BASE[@]}" "$@" || return 1
	_tb_image_tree "$dir" || { rm -rf "$dir"; return 1; }
}

# tb_image NAME SPEC...: build (or reuse) image NAME. SPEC is FILE, DIR (copied
# recursively), SRC=DST (placed at DST) or --mkdir DIR. ELF files bring their
# ldd closure. Rebuilds only when the content hash changes.
tb_image() {
	local name=${1:-} t0=$EPOCHREALTIME hash tmp dir="" size
	local _tbi_src _tbi_dst _tbi_dsrc _tbi_ddst _tbi_mkdir
	_tb_need_init || return 1
	[[ -n $name ]] || { _tb_err "usage: tb_image NAME FILE|DIR|SRC=DST..."; return 1; }
	_tb_valid_name image "$name" || return 1
	shift
	_tb_image_plan "${_TB_IMAGE_BASE[@]}" "$@" || return 1
	hash=$(_tb_image_hash) || return 1
	mkdir -p "$TB_WORKDIR/images" || return 1
	if [[ $TB_BACKEND == docker ]]; then
		if _tb_d image inspect "$name:$hash" >/dev/null 2>&1; then
			_tb_d tag "$name:$hash" "$name:latest" || return 1
			_tb_log "image $name:$hash is up to date"
			return 0
		fi
	else
		dir=$TB_WORKDIR/images/$name-$hash
		if [[ -f $dir/.tb-complete ]]; then
			ln -sfn "$name-$hash" "$TB_WORKDIR/images/$name"
			_tb_log "image $name:$hash is up to date"
			return 0
		fi
	fi
	tmp=$(mktemp -d "$TB_WORKDIR/images/.build-$name.XXXXXX") || return 1
	if ! _tb_image_tree "$tmp/root"; then
		rm -rf "$tmp"
		_tb_err "tb_image: building the tree for $name failed"
		return 1
	fi
	size=$(du -sh --apparent-size "$tmp/root" | cut -f1)
	if [[ $TB_BACKEND == docker ]]; then
		if ! tar -C "$tmp/root" --numeric-owner -cf - . |
			_tb_d import -c "ENV PATH=$_TB_PATH" -c 'CMD ["/bin/sleep", "infinity"]' \
				-m "testbed image $name" - "$name:$hash" >/dev/null; then
			rm -rf "$tmp"
			_tb_err "tb_image: docker import of $name failed"
			return 1
		fi
		rm -rf "$tmp"
		_tb_d tag "$name:$hash" "$name:latest" || return 1
	else
		touch "$tmp/root/.tb-complete"
		rm -rf "$dir"
		mv "$tmp/root" "$dir" && rmdir "$tmp" || return 1
		ln -sfn "$name-$hash" "$TB_WORKDIR/images/$name"
	fi
	_tb_time "image:$name" "$(_tb_since "$t0")"
	_tb_log "image $name:$hash built in $(_tb_since "$t0") s ($size, ${#_tbi_src[@]} files + ${#_tbi_dsrc[@]} dirs)"
}
