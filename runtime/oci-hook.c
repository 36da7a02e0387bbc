/* The hooks ffnet-runtime puts in a container's spec; the container's
 * state (id, pid) comes on stdin.
 *   create   (createRuntime: the namespaces exist and the engine's network
 *            setup, a prestart hook for Docker, has run): reads the
 *            addresses of the container's network namespace and registers
 *            it with /proc/PID/ns/net as its identity; a registration
 *            standing in the way whose container is gone (its poststop
 *            missed the router) is cleared first. Recorded in RUNDIR/oci.
 *   poststop (after the container is gone, whatever ended it): unregisters
 *            it. A router that is down then leaves a stale registration,
 *            cleared by the next create (first if it needs its name or
 *            address, else after registering).
 *            The directory made for a container that was never registered
 *            (no address, no router) goes too.
 * A failure is a log line and exit 0 (the container runs unaccelerated),
 * or with --ffnet-strict exit 1 at create, which fails the container. */
#include "oci.h"

#include "json-read.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_MAX (1 << 20)

/* The container's addresses: IPv4 but loopback, IPv6 global ones. */
static int netns_ips(const char *netns, struct ffn_ips *ips, char *err, size_t cap)
{
	struct ifaddrs *ifa, *p;
	int fd = open(netns, O_RDONLY | O_CLOEXEC);

	ips->n = 0;
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0 || getifaddrs(&ifa) < 0) {
		snprintf(err, cap, "%s: %s", netns, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	for (p = ifa; p && ips->n < FFN_MAX_IPS; p = p->ifa_next) {
		const struct sockaddr *sa = p->ifa_addr;

		if (!sa)
			continue;
		if (sa->sa_family == AF_INET) {
			const struct in_addr *a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;

			if ((ntohl(a->s_addr) >> 24) != 127)
				inet_ntop(AF_INET, a, ips->v[ips->n++], sizeof(ips->v[0]));
		} else if (sa->sa_family == AF_INET6) {
			const struct in6_addr *a =
				&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

			if (!IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_LINKLOCAL(a) &&
			    !IN6_IS_ADDR_MULTICAST(a) && !IN6_IS_ADDR_UNSPECIFIED(a))
				inet_ntop(AF_INET6, a, ips->v[ips->n++], sizeof(ips->v[0]));
		}
	}
	freeifaddrs(ifa);
	return 0;
}

static int hook_create(const struct ffo_conf *cf, const char *name, long pid, const char *marks)
{
	char netns[64], err[512];
	struct ffn_ips ips;
	struct ff_admin a;
	int st;

	snprintf(netns, sizeof(netns), "/proc/%ld/ns/net", pid);
	if (netns_ips(netns, &ips, err, sizeof(err)) < 0) {
		ffo_log(cf, "%s: not registered: cannot read its addresses: %s", name, err);
		return -1;
	}
	if (!ips.n) {
		ffo_log(cf, "%s: not registered: its network namespace has no address", name);
		return 0;
	}
	if (ff_admin_open(&a, cf->rundir) < 0) {
		ffo_log(cf, "%s: not registered: %s", name, a.err);
		return -1;
	}
	st = ffn_register(&a, marks, name, &ips, netns, "ffnet-runtime");
	if (st) {
		ffo_log(cf, "%s: not registered: %s", name, a.err);
		ff_admin_close(&a);
		return -1;
	}
	st = ffn_mark_write(marks, name, "-", netns);
	if (st < 0) {
		ffo_log(cf, "%s: not registered: cannot record it in %s: %s", name, marks,
			strerror(-st));
		ffn_unregister(&a, name);
		ff_admin_close(&a);
		return -1;
	}
	ffo_log(cf, "%s: registered with %s%s (%s)", name, ips.v[0], ips.n > 1 ? " and more" : "",
		netns);
	/* and any other whose container went while the router was down */
	st = ffn_clear_stale(&a, marks, NULL, NULL, "ffnet-runtime");
	if (st > 0)
		ffo_log(cf, "%s: removed %d stale registration%s", name, st, st > 1 ? "s" : "");
	ff_admin_close(&a);
	return 0;
}

/* RUNDIR/c/NAME, which the edit made for the mount, if still empty. */
static void rm_dir(const struct ffo_conf *cf, const char *name)
{
	char dir[PATH_MAX];

	if ((size_t)snprintf(dir, sizeof(dir), "%s/c/%s", cf->rundir, name) < sizeof(dir))
		rmdir(dir);
}

static int hook_poststop(const struct ffo_conf *cf, const char *name, const char *marks)
{
	struct ffn_mark m;
	struct ff_admin a;
	int st;

	if (ffn_mark_read(marks, name, &m) < 0) {
		rm_dir(cf, name); /* set up, never registered: no router will remove it */
		return 0;
	}
	if (ff_admin_open(&a, cf->rundir) < 0) {
		ffo_log(cf, "%s: not unregistered: %s; the next create that needs it clears it", name,
			a.err);
		return 0;
	}
	st = ffn_unregister(&a, name);
	ff_admin_close(&a);
	if (st && st != FF__STATUS__ST_NOT_FOUND) {
		ffo_log(cf, "%s: not unregistered: %s", name, a.err);
		return 0;
	}
	ffn_mark_remove(marks, name);
	ffo_log(cf, "%s: unregistered", name);
	return 0;
}

int ffo_hook(const struct ffo_conf *cf, const char *which)
{
	char *buf = malloc(STATE_MAX + 1), name[FFN_NAME_MAX + 1], marks[PATH_MAX];
	struct json_object *state = NULL;
	const char *id, *pid;
	size_t n = 0;
	ssize_t r = 1;
	long p = 0;
	int rc = -1;

	while (buf && r > 0 && n <= STATE_MAX) {
		r = read(0, buf + n, STATE_MAX + 1 - n);
		if (r > 0)
			n += (size_t)r;
		else if (r < 0 && errno == EINTR)
			r = 1;
	}
	if (buf && r == 0 && n <= STATE_MAX)
		state = ff_json_parse(buf, n);
	free(buf);
	id = ff_json_str(state, "id");
	pid = ff_json_str(state, "pid");
	if (pid)
		p = strtol(pid, NULL, 10);
	if (!id || ffn_name_of(id, name, sizeof(name)) < 0 ||
	    (size_t)snprintf(marks, sizeof(marks), "%s/oci", cf->rundir) >= sizeof(marks))
		ffo_log(cf, "hook %s: the state on stdin has no valid container id", which);
	else if (!strcmp(which, "poststop"))
		rc = hook_poststop(cf, name, marks);
	else if (p <= 0)
		ffo_log(cf, "hook create: %s: the state on stdin has no pid", name);
	else
		rc = hook_create(cf, name, p, marks);
	if (state)
		json_object_put(state);
	return rc < 0 && cf->strict ? 1 : 0;
}
