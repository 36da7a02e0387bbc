/* The router object: run directory, admin socket, the map page, the
 * connection sweep timer, the metrics endpoint. Invariant: every container
 * in r->containers has its addresses in the map page after
 * ffr_map_publish(). */
#include "internal.h"

#include "log.h"
#include "map.h"
#include "sring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SWEEP_INTERVAL_S 2

int ffr_listen_unix(const char *path, mode_t mode)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		goto out_err;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto out_err;
	if (chmod(path, mode) < 0 || listen(fd, 256) < 0)
		goto out_unlink;
	return fd;
out_unlink:
	err = -errno;
	unlink(path);
	close(fd);
	return err;
out_err:
	err = -errno;
	close(fd);
	return err;
}

int ffr_listen_tcp(const struct ff_sa *addr, int backlog, bool v6only)
{
	struct sockaddr_storage ss;
	int one = 1, len = ff_sa_to_sockaddr(addr, addr->ip.family, &ss), fd, err;

	if (len < 0)
		return len;
	fd = socket(addr->ip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((v6only && addr->ip.family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0 || listen(fd, backlog) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return chmod(path, mode) < 0 ? -errno : 0;
}

/* After the router's own writable mapping exists, nobody writes the map
 * memfd another way. The fd shims get is read-only, but /proc/self/fd/N
 * reopens the file itself, with any mode the inode allows:
 *   - F_SEAL_FUTURE_WRITE: write(2), fallocate and new writable shared
 *     mappings fail for every fd of the file; the existing mapping works.
 *     F_SEAL_SEAL: no one changes the seals again.
 *   - mode 0444: an open for writing fails (EACCES) for anyone without
 *     CAP_DAC_OVERRIDE;
 *   - FS_IMMUTABLE_FL: it fails (EPERM) for root too; clearing the flag
 *     takes CAP_LINUX_IMMUTABLE, which containers do not get. Best effort:
 *     a router without the capability relies on the seal. */
static int map_seal(int fd)
{
	int fl = 0;

	if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
		return -errno;
	if (fchmod(fd, 0444) < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_GETFLAGS, &fl) < 0 ||
	    (fl |= FS_IMMUTABLE_FL, ioctl(fd, FS_IOC_SETFLAGS, &fl) < 0))
		ff_dbg("map page: not immutable (%s); the write seal still holds",
		       strerror(errno));
	return 0;
}

/* The map page: a sealed memfd the router writes; shims get a read-only fd. */
static int map_open(struct ffr_router *r)
{
	char path[64];
	int err;

	r->map_fd = memfd_create("ffnet-map", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->map_fd < 0)
		return -errno;
	if (ftruncate(r->map_fd, FF_MAP_SIZE) < 0 ||
	    fcntl(r->map_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -errno;
	r->map = mmap(NULL, FF_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->map_fd, 0);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		return -errno;
	}
	ff_map_init(r->map);
	err = map_seal(r->map_fd);
	if (err)
		return err;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->map_fd);
	r->map_rofd = open(path, O_RDONLY | O_CLOEXEC);
	return r->map_rofd < 0 ? -errno : 0;
}

int ffr_map_publish(struct ffr_router *r)
{
	struct ff_map_ent *ents;
	struct ffr_container *c;
	uint32_t n = 0;
	int err;

	ents = calloc(FF_MAP_CAP, sizeof(*ents));
	if (!ents)
		return -ENOMEM;
	TAILQ_FOREACH (c, &r->containers, link)
		for (int i = 0; i < c->nips && n < FF_MAP_CAP; i++)
			ff_map_ent_set(&ents[n++], &c->ips[i], FF_MAPF_LOCAL);
	err = ff_map_write(r->map, ents, n);
	free(ents);
	return err;
}

static void admin_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_router *r = arg;

	for (;;) {
		int cfd = ffr_accept(r, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (cfd != -EAGAIN && cfd != -EINTR)
				ff_warn("admin accept: %s", strerror(-cfd));
			return;
		}
		if (ffr_chan_new(r, NULL, cfd) < 0)
			ff_warn("admin channel refused");
	}
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_router *r = arg;

	ffr_doing(r, "connection sweep", NULL, 0);
	ffr_conn_sweep(r);
	ffr_sweep_arm(r);
}

/* The sweep runs only while there are connections to watch. */
void ffr_sweep_arm(struct ffr_router *r)
{
	struct timeval tv = {.tv_sec = SWEEP_INTERVAL_S};

	if (r->nconns && !evtimer_pending(r->sweep_ev, NULL))
		evtimer_add(r->sweep_ev, &tv);
}

bool ffr_is_self(const struct ffr_router *r, const char *host)
{
	return !host || !*host || !strcmp(host, "local") || !strcmp(host, r->host_id);
}

/* Host id: the name of this host in the locality map (default: hostname). */
static int router_identity(struct ffr_router *r, const struct ffr_config *cfg)
{
	char name[256] = "";

	if (cfg->host_id)
		snprintf(name, sizeof(name), "%s", cfg->host_id);
	else if (gethostname(name, sizeof(name) - 1) < 0 || !*name)
		snprintf(name, sizeof(name), "localhost");
	if (!ffr_name_valid(name) || strlen(name) > FFR_HOST_MAX) {
		ff_err("'%s' cannot be a host id (letters, digits, '-', '_', '.'; at most %d)", name,
		       FFR_HOST_MAX);
		return -EINVAL;
	}
	snprintf(r->host_id, sizeof(r->host_id), "%s", name);
	return 0;
}

static int router_dirs(struct ffr_router *r)
{
	char path[PATH_MAX];
	int err;

	/* c/ is root-only: a container reaches its own directory through its
	 * bind mount, nobody on the host but root reaches anyone's. */
	err = mkdir_mode(r->rundir, 0755);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/c", r->rundir);
	return mkdir_mode(path, 0700);
}

static int router_admin(struct ffr_router *r)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", r->rundir, FF_SOCK_NAME);
	r->afd = ffr_listen_unix(path, 0600);
	if (r->afd < 0)
		return r->afd;
	r->aev = event_new(r->base, r->afd, EV_READ | EV_PERSIST, admin_accept_cb, r);
	if (!r->aev || event_add(r->aev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

struct ffr_router *ffr_router_new(struct event_base *base, const struct ffr_config *cfg, int *err)
{
	struct ffr_router *r = calloc(1, sizeof(*r));

	*err = -ENOMEM;
	if (!r)
		return NULL;
	r->base = base;
	r->afd = r->map_fd = r->map_rofd = -1;
	r->quota = cfg->quota;
	r->sockbuf = cfg->sockbuf;
	r->ring = cfg->ring;
	if (r->ring && !ff_sring_len(r->ring)) {
		ff_err("--same-host-rings %u: a power of two from %u to %u, or 0", r->ring,
		       FF_SRING_MIN, FF_SRING_MAX);
		*err = -EINVAL;
		free(r);
		return NULL;
	}
	if (!r->quota.ring_mib)
		r->quota.ring_mib = 256;
	r->next_id = 1;
	TAILQ_INIT(&r->admin);
	TAILQ_INIT(&r->containers);
	TAILQ_INIT(&r->listeners);
	TAILQ_INIT(&r->conns);
	r->rundir = strdup(cfg->rundir);
	r->sweep_ev = evtimer_new(base, sweep_cb, r);
	if (!r->rundir || !r->sweep_ev)
		goto out_free;
	*err = ffr_guard_new(r, cfg);
	if (*err)
		goto out_free;
	*err = ffr_ops_add(r, ffr_sock_ops, ffr_sock_nops);
	if (!*err)
		*err = ffr_ops_add(r, ffr_admin_ops, ffr_admin_nops);
	if (*err)
		goto out_free;
	*err = router_identity(r, cfg);
	if (*err)
		goto out_free;
	*err = router_dirs(r);
	if (*err) {
		ff_err("cannot create run directory %s: %s", r->rundir, strerror(-*err));
		goto out_free;
	}
	*err = map_open(r);
	if (*err) {
		ff_err("cannot create the map page: %s", strerror(-*err));
		goto out_free;
	}
	*err = ffr_map_publish(r);
	if (*err)
		goto out_free;
	*err = router_admin(r);
	if (*err) {
		ff_err("cannot listen on %s/%s: %s", r->rundir, FF_SOCK_NAME, strerror(-*err));
		goto out_free;
	}
	*err = ffr_mserver_new(r, cfg->metrics);
	if (*err)
		goto out_free;
	return r;
out_free:
	ffr_router_free(r);
	return NULL;
}

void ffr_router_free(struct ffr_router *r)
{
	struct ffr_container *c;
	struct ffr_listener *l;
	struct ffr_conn *cn;
	struct ffr_chan *ch;
	char path[PATH_MAX];

	if (!r)
		return;
	ffr_mserver_free(r->metrics);
	ffr_features_free(r);
	while ((ch = TAILQ_FIRST(&r->admin)))
		ffr_chan_free(ch);
	while ((l = TAILQ_FIRST(&r->listeners)))
		ffr_listener_free(l);
	while ((cn = TAILQ_FIRST(&r->conns)))
		ffr_conn_free(r, cn);
	ffr_conn_ino_free(r);
	/* Keep container directories: running containers have them mounted and
	 * a restarted router recreates the sockets inside. */
	while ((c = TAILQ_FIRST(&r->containers)))
		ffr_container_free(c);
	if (r->aev)
		event_free(r->aev);
	if (r->afd >= 0) {
		snprintf(path, sizeof(path), "%s/%s", r->rundir, FF_SOCK_NAME);
		unlink(path);
		close(r->afd);
	}
	if (r->sweep_ev)
		event_free(r->sweep_ev);
	if (r->map)
		munmap(r->map, FF_MAP_SIZE);
	if (r->map_fd >= 0)
		close(r->map_fd);
	if (r->map_rofd >= 0)
		close(r->map_rofd);
	ffr_guard_free(r->guard);
	free(r->rundir);
	free(r);
}
