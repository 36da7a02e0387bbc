/* The edit of a bundle's config.json at `create`. For a container with a
 * network namespace of its own, while a router runs, unless it opts out
 * (annotation io.ffnet.enable=false, or FFNET=off in its environment):
 *   - RUNDIR/c/NAME (made now, empty; the router puts its socket there when
 *     the hook registers the container) bind-mounted read-only at
 *     /run/ffnet, the shim and ffexec at /opt/ffnet: the image needs
 *     nothing;
 *   - the program started as `/opt/ffnet/ffexec -- PROGRAM...` (static and
 *     Go programs, musl, raw syscalls), and LD_PRELOAD of the shim when the
 *     image's glibc has every symbol version the shim needs (a glibc
 *     program is then served by the shim alone; an older glibc, or musl,
 *     would refuse to start with it);
 *   - a createRuntime hook (registers the container with the addresses its
 *     namespace has by then: Docker's and podman's IPAM both done) and a
 *     poststop hook (unregisters it, also after a crash or a kill);
 *   - but a container that joins a network namespace already registered
 *     (by this runtime or the CNI plugin: a Kubernetes pod's sandbox, a
 *     podman pod, Docker's --network container:X) gets that registration's
 *     directory and no hooks: one namespace, one registration.
 * Everything else of the spec is left as it was. The new file replaces the
 * old through a rename: on any failure the bundle is untouched. */
#include "oci.h"

#include "json-read.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CONFIG_MAX (16 << 20)
#define LIBC_MAX   (64 << 20)

/* The whole of a file opened as fd (closed), at most cap bytes; NULL if
 * larger or unreadable. */
static char *slurp_fd(int fd, size_t cap, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= cap)
		buf = malloc((size_t)st.st_size + 1);
	while (buf && n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);

		if (r <= 0) {
			free(buf);
			buf = NULL;
		} else {
			n += (size_t)r;
		}
	}
	close(fd);
	if (buf) {
		buf[n] = 0;
		*len = n;
	}
	return buf;
}

/* Whether every "GLIBC_x.y" the shim needs is a version libc defines:
 * both files' strings of that shape, compared as sets. */
static bool has_versions(const char *libc, size_t nlibc, const char *shim, size_t nshim)
{
	for (const char *p = shim; (p = memmem(p, nshim - (size_t)(p - shim), "GLIBC_2.", 8));
	     p += 8) {
		size_t k = 8;
		const char *q;
		bool found = false;

		while (p + k < shim + nshim && ((p[k] >= '0' && p[k] <= '9') || p[k] == '.'))
			k++;
		if (p + k >= shim + nshim || p[k] != 0 || (p > shim && p[-1] != 0))
			continue; /* not a whole string of the string table */
		for (q = libc; !found && (q = memmem(q, nlibc - (size_t)(q - libc), p, k + 1)); q++)
			found = q == libc || q[-1] == 0;
		if (!found)
			return false;
	}
	return true;
}

/* A regular file of the image, opened for reading: its path resolved
 * inside the image (symlinks included), and only opened once it is known
 * to be a regular file (the image's, so a FIFO there would block us, a
 * device act on open). -1 otherwise. */
static int open_in_image(int root, const char *path)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
	int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how)), rfd = -1;
	char self[64];
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		rfd = open(self, O_RDONLY | O_CLOEXEC);
	}
	close(fd);
	return rfd;
}

/* Whether the image at rootfs can preload the shim: it has a glibc
 * libc.so.6 (looked up inside the image: its symlinks resolve in it) with
 * the shim's symbol versions. */
static bool image_takes_shim(const struct ffo_conf *cf, const char *rootfs)
{
	static const char *const libcs[] = {
		"lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6",
		"lib/aarch64-linux-gnu/libc.so.6", "usr/lib/aarch64-linux-gnu/libc.so.6",
		"lib64/libc.so.6", "usr/lib64/libc.so.6", "lib/libc.so.6", "usr/lib/libc.so.6",
	};
	int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	char *libc = NULL, *shim;
	size_t nlibc = 0, nshim = 0;
	bool ok;

	for (size_t i = 0; root >= 0 && !libc && i < sizeof(libcs) / sizeof(libcs[0]); i++)
		libc = slurp_fd(open_in_image(root, libcs[i]), LIBC_MAX, &nlibc);
	if (root >= 0)
		close(root);
	if (!libc)
		return false;
	shim = slurp_fd(open(cf->shim, O_RDONLY | O_CLOEXEC), LIBC_MAX, &nshim);
	ok = shim && has_versions(libc, nlibc, shim, nshim);
	free(libc);
	free(shim);
	return ok;
}

static bool falsy(const char *v)
{
	return v && (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"));
}

/* Why the container is left alone, or NULL. */
static const char *opted_out(struct json_object *spec)
{
	struct json_object *env = ff_json_arr(ff_json_obj(spec, "process"), "env");
	struct json_object *ns = ff_json_arr(ff_json_obj(spec, "linux"), "namespaces");
	struct json_object *mounts = ff_json_arr(spec, "mounts");
	bool netns = false;

	if (falsy(ff_json_str(ff_json_obj(spec, "annotations"), "io.ffnet.enable")))
		return "annotation io.ffnet.enable";
	for (size_t i = 0; env && i < json_object_array_length(env); i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(env, i));

		if (e && !strncmp(e, "FFNET=", 6) && falsy(e + 6))
			return "FFNET in its environment";
	}
	for (size_t i = 0; ns && i < json_object_array_length(ns); i++) {
		const char *t = ff_json_str(json_object_array_get_idx(ns, i), "type");

		netns |= t && !strcmp(t, "network");
	}
	if (!netns)
		return "it shares the host's network";
	for (size_t i = 0; mounts && i < json_object_array_length(mounts); i++) {
		const char *d = ff_json_str(json_object_array_get_idx(mounts, i), "destination");

		if (d && !strcmp(d, FFO_RUN_IN))
			return "it mounts " FFO_RUN_IN " itself";
	}
	return NULL;
}

/* The network namespace's path, if the spec joins an existing one. */
static const char *netns_path(struct json_object *spec)
{
	struct json_object *ns = ff_json_arr(ff_json_obj(spec, "linux"), "namespaces");

	for (size_t i = 0; ns && i < json_object_array_length(ns); i++) {
		struct json_object *e = json_object_array_get_idx(ns, i);
		const char *t = ff_json_str(e, "type"), *path = ff_json_str(e, "path");

		if (t && !strcmp(t, "network") && path && *path)
			return path;
	}
	return NULL;
}

struct owner {
	const char *marks;
	struct stat ns;
	char name[FFN_NAME_MAX + 1];
};

static int owns(const char *name, void *arg)
{
	struct owner *o = arg;
	struct ffn_mark m;

	if (ffn_mark_read(o->marks, name, &m) < 0 || m.dev != o->ns.st_dev || m.ino != o->ns.st_ino ||
	    ffn_mark_stale(&m))
		return 0;
	snprintf(o->name, sizeof(o->name), "%s", name);
	return 1;
}

/* The registration, by this runtime (RUNDIR/oci) or by the CNI plugin
 * (RUNDIR/cni), of the network namespace at path: a Kubernetes pod's
 * sandbox, a podman pod's infra container, Docker's --network
 * container:X. Its name in owner, or false. */
static bool netns_owner(const struct ffo_conf *cf, const char *path, char *owner, size_t cap)
{
	static const char *const kinds[] = {"oci", "cni"};
	char marks[PATH_MAX];
	struct owner o;

	if (stat(path, &o.ns) < 0)
		return false;
	for (size_t k = 0; k < 2; k++) {
		snprintf(marks, sizeof(marks), "%s/%s", cf->rundir, kinds[k]);
		o.marks = marks;
		if (ffn_mark_each(marks, owns, &o) > 0) {
			snprintf(owner, cap, "%s", o.name);
			return true;
		}
	}
	return false;
}

static struct json_object *strings(const char *const *v, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

/* Read-only, all three: connecting to a socket needs no write access to
 * its mount, and the container has nothing to write in its router
 * directory, which the router owns. */
static void add_mount(struct json_object *mounts, const char *src, const char *dst, bool exec)
{
	static const char *const opts[] = {"rbind", "ro", "nosuid", "nodev", "noexec"};
	struct json_object *m = json_object_new_object();

	json_object_object_add(m, "destination", json_object_new_string(dst));
	json_object_object_add(m, "type", json_object_new_string("bind"));
	json_object_object_add(m, "source", json_object_new_string(src));
	json_object_object_add(m, "options", strings(opts, exec ? 4 : 5));
	json_object_array_add(mounts, m);
}

/* obj[key] as an array/object, made if missing; NULL if it is something
 * else. */
static struct json_object *member(struct json_object *obj, const char *key, enum json_type t)
{
	struct json_object *v;

	if (!json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &v)) {
		v = t == json_type_array ? json_object_new_array() : json_object_new_object();
		json_object_object_add(obj, key, v);
	}
	return json_object_is_type(v, t) ? v : NULL;
}

static int add_hooks(const struct ffo_conf *cf, struct json_object *spec)
{
	struct json_object *hooks = member(spec, "hooks", json_type_object);
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *which[] = {"createRuntime", "poststop"};
	const char *arg[] = {"create", "poststop"};

	if (n <= 0 || !hooks)
		return -1;
	self[n] = 0;
	for (int w = 0; w < 2; w++) {
		struct json_object *list = member(hooks, which[w], json_type_array);
		struct json_object *h = json_object_new_object(), *args = json_object_new_array();

		if (!list) {
			json_object_put(h);
			json_object_put(args);
			return -1;
		}
		json_object_array_add(args, json_object_new_string("ffnet-runtime"));
		for (int i = 0; i < cf->nargs; i++)
			json_object_array_add(args, json_object_new_string(cf->args[i]));
		json_object_array_add(args, json_object_new_string("hook"));
		json_object_array_add(args, json_object_new_string(arg[w]));
		json_object_object_add(h, "path", json_object_new_string(self));
		json_object_object_add(h, "args", args);
		json_object_object_add(h, "timeout", json_object_new_int(15));
		json_object_array_add(list, h);
	}
	return 0;
}

/* A process (the spec's, or one runc exec starts): args behind ffexec;
 * LD_PRELOAD if the image takes the shim. */
static int edit_process(struct json_object *proc, bool preload)
{
	struct json_object *args = ff_json_arr(proc, "args"), *nargs, *env;
	size_t n = args ? json_object_array_length(args) : 0;
	bool had = false;

	if (!n)
		return -1;
	nargs = json_object_new_array();
	json_object_array_add(nargs, json_object_new_string(FFO_EXEC_IN));
	json_object_array_add(nargs, json_object_new_string("--"));
	for (size_t i = 0; i < n; i++)
		json_object_array_add(nargs, json_object_get(json_object_array_get_idx(args, i)));
	json_object_object_add(proc, "args", nargs);
	env = member(proc, "env", json_type_array);
	if (!env)
		return -1;
	for (size_t i = 0; preload && i < json_object_array_length(env); i++) {
		struct json_object *e = json_object_array_get_idx(env, i);
		const char *s = json_object_get_string(e);
		char *v;

		if (!s || strncmp(s, "LD_PRELOAD=", 11))
			continue;
		if (asprintf(&v, "LD_PRELOAD=%s%s%s", FFO_SHIM_IN, s[11] ? ":" : "", s + 11) < 0)
			return -1;
		json_object_array_put_idx(env, i, json_object_new_string(v));
		free(v);
		had = true;
	}
	if (preload && !had)
		json_object_array_add(env, json_object_new_string("LD_PRELOAD=" FFO_SHIM_IN));
	return 0;
}

static int write_spec(const char *path, struct json_object *spec, mode_t mode)
{
	char tmp[PATH_MAX];
	const char *s = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN |
								      JSON_C_TO_STRING_NOSLASHESCAPE);

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.ffnet.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	return ffn_write_file(tmp, path, s, strlen(s), mode);
}

int ffo_edit(const struct ffo_conf *cf, const char *bundle, const char *id)
{
	char path[PATH_MAX], dir[PATH_MAX], rootfs[PATH_MAX], name[FFN_NAME_MAX + 1];
	struct json_object *spec, *mounts;
	char owner[FFN_NAME_MAX + 1];
	const char *why, *root, *ns;
	struct ff_admin a;
	struct stat st;
	size_t len;
	char *buf;
	bool preload, shared;
	int err;

	if (ffn_name_of(id, name, sizeof(name)) < 0) {
		ffo_log(cf, "%.80s: not a container ID ffnet can name; left alone", id);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	buf = slurp_fd(open(path, O_RDONLY | O_CLOEXEC), CONFIG_MAX, &len);
	spec = buf ? ff_json_parse(buf, len) : NULL;
	free(buf);
	if (!spec || stat(path, &st) < 0) {
		ffo_log(cf, "%s: cannot read %s as JSON; left alone", name, path);
		if (spec)
			json_object_put(spec);
		return -1;
	}
	why = opted_out(spec);
	if (why) {
		ffo_log(cf, "%s: not accelerated: %s", name, why);
		json_object_put(spec);
		return 0;
	}
	if (ff_admin_open(&a, cf->rundir) < 0) {
		ffo_log(cf, "%s: not accelerated: %s", name, a.err);
		json_object_put(spec);
		return cf->strict ? -1 : 0;
	}
	ff_admin_close(&a);
	if (access(cf->shim, R_OK) < 0 || access(cf->exec, X_OK) < 0) {
		ffo_log(cf, "%s: not accelerated: %s or %s is missing (--ffnet-shim, --ffnet-exec)",
			name, cf->shim, cf->exec);
		json_object_put(spec);
		return -1;
	}
	root = ff_json_str(ff_json_obj(spec, "root"), "path");
	if (!root)
		root = "rootfs";
	snprintf(rootfs, sizeof(rootfs), "%s%s%s", root[0] == '/' ? "" : bundle,
		 root[0] == '/' ? "" : "/", root);
	preload = image_takes_shim(cf, rootfs);
	ns = netns_path(spec);
	shared = ns && netns_owner(cf, ns, owner, sizeof(owner));
	snprintf(dir, sizeof(dir), "%s/c/%s", cf->rundir, shared ? owner : name);
	snprintf(path, sizeof(path), "%s/c", cf->rundir);
	err = (mkdir(path, 0755) < 0 && errno != EEXIST) || (mkdir(dir, 0755) < 0 && errno != EEXIST)
		      ? -errno
		      : 0;
	mounts = err ? NULL : member(spec, "mounts", json_type_array);
	if (mounts) {
		add_mount(mounts, dir, FFO_RUN_IN, false);
		add_mount(mounts, cf->shim, FFO_SHIM_IN, true); /* mmap'd PROT_EXEC */
		add_mount(mounts, cf->exec, FFO_EXEC_IN, true);
	}
	/* a container joining a registered namespace uses that registration:
	 * no hooks of its own */
	if (!err && (!mounts || edit_process(ff_json_obj(spec, "process"), preload) < 0 ||
		     (!shared && add_hooks(cf, spec) < 0)))
		err = -EINVAL;
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	if (!err)
		err = write_spec(path, spec, st.st_mode);
	json_object_put(spec);
	if (err) {
		ffo_log(cf, "%s: cannot set it up (%s); left alone", name, strerror(-err));
		return -1;
	}
	ffo_log(cf, "%s: set up (ffexec%s)%s%s", name,
		preload ? " and the shim" : "; the image's libc takes no shim",
		shared ? "; in the network namespace of " : "", shared ? owner : "");
	return 0;
}

int ffo_edit_exec(const struct ffo_conf *cf, const char *process, const char *id)
{
	char marks[PATH_MAX], root[64], name[FFN_NAME_MAX + 1];
	struct json_object *proc;
	struct ffn_mark m;
	struct stat st;
	long pid;
	size_t len;
	char *buf;
	int err;

	if (ffn_name_of(id, name, sizeof(name)) < 0 ||
	    (size_t)snprintf(marks, sizeof(marks), "%s/oci", cf->rundir) >= sizeof(marks) ||
	    ffn_mark_read(marks, name, &m) < 0 || ffn_mark_stale(&m))
		return 0; /* not a container of ours, or not running */
	if (sscanf(m.netns, "/proc/%ld/ns/net", &pid) != 1 || pid <= 0)
		return 0;
	snprintf(root, sizeof(root), "/proc/%ld/root", pid);
	buf = slurp_fd(open(process, O_RDONLY | O_CLOEXEC), CONFIG_MAX, &len);
	proc = buf ? ff_json_parse(buf, len) : NULL;
	free(buf);
	err = proc && json_object_is_type(proc, json_type_object) && stat(process, &st) == 0 ? 0
											   : -EINVAL;
	if (!err && edit_process(proc, image_takes_shim(cf, root)) < 0)
		err = -EINVAL;
	if (!err)
		err = write_spec(process, proc, st.st_mode);
	if (proc)
		json_object_put(proc);
	if (err)
		ffo_log(cf, "%s: exec: cannot set up %s (%s); left alone", name, process, strerror(-err));
	return err ? -1 : 0;
}
