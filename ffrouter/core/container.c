/* Containers: a name, its overlay addresses, the directory and socket its
 * shims reach, its byte-counter page, its client port allocator.
 * Invariant: names and addresses are unique among registered containers. */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_LO 32768
#define PORT_HI 60999

int ffr_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > FFR_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || (i > 0 && (ch == '-' || ch == '_' || ch == '.'));

		if (!ok)
			return 0;
	}
	return 1;
}

struct ffr_stats *ffr_stats_new(void)
{
	struct ffr_stats *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->refs = 1;
	st->fd = memfd_create("ffnet-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (st->fd < 0)
		goto out_free;
	/* Sealed: a shim cannot shrink the page under the router (SIGBUS). */
	if (ftruncate(st->fd, FF_STAT_SIZE) < 0 ||
	    fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto out_close;
	st->hdr = mmap(NULL, FF_STAT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, st->fd, 0);
	if (st->hdr == MAP_FAILED)
		goto out_close;
	st->hdr->magic = FF_STAT_MAGIC;
	st->hdr->slots = FF_STAT_SLOTS;
	return st;
out_close:
	close(st->fd);
out_free:
	free(st);
	return NULL;
}

struct ffr_stats *ffr_stats_ref(struct ffr_stats *st)
{
	st->refs++;
	return st;
}

void ffr_stats_unref(struct ffr_stats *st)
{
	if (!st || --st->refs > 0)
		return;
	munmap(st->hdr, FF_STAT_SIZE);
	close(st->fd);
	free(st);
}

uint32_t ffr_stats_alloc(struct ffr_stats *st)
{
	for (uint32_t k = 0; k < FF_STAT_SLOTS; k++) {
		uint32_t i = (st->next + k) % FF_STAT_SLOTS;

		if (st->used[i / 8] & (1u << (i % 8)))
			continue;
		st->used[i / 8] |= (uint8_t)(1u << (i % 8));
		st->next = i + 1;
		__atomic_store_n(&st->hdr->slot[i].tx, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->hdr->slot[i].rx, 0, __ATOMIC_RELAXED);
		return i;
	}
	return UINT32_MAX;
}

void ffr_stats_release(struct ffr_stats *st, uint32_t slot)
{
	if (st && slot < FF_STAT_SLOTS)
		st->used[slot / 8] &= (uint8_t)~(1u << (slot % 8));
}

uint16_t ffr_port_get(struct ffr_container *c)
{
	const unsigned span = PORT_HI - PORT_LO + 1;

	for (unsigned k = 0; k < span; k++) {
		unsigned p = PORT_LO + (c->next_port - PORT_LO + k) % span;

		if (c->ports[p / 8] & (1u << (p % 8)))
			continue;
		c->ports[p / 8] |= (uint8_t)(1u << (p % 8));
		c->next_port = (uint16_t)(p + 1 > PORT_HI ? PORT_LO : p + 1);
		return (uint16_t)p;
	}
	return 0;
}

void ffr_port_put(struct ffr_container *c, uint16_t port)
{
	if (c && port)
		c->ports[port / 8] &= (uint8_t)~(1u << (port % 8));
}

struct ffr_container *ffr_container_find(struct ffr_router *r, const char *name)
{
	struct ffr_container *c;

	TAILQ_FOREACH (c, &r->containers, link)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

bool ffr_container_owns_ip(const struct ffr_container *c, const struct ff_ip *ip)
{
	for (int i = 0; i < c->nips; i++)
		if (ff_ip_equal(&c->ips[i], ip))
			return true;
	return false;
}

const struct ff_ip *ffr_container_ip(const struct ffr_container *c, int family)
{
	for (int i = 0; i < c->nips; i++)
		if (c->ips[i].family == family)
			return &c->ips[i];
	return NULL;
}

struct ffr_container *ffr_container_by_ip(struct ffr_router *r, const struct ff_ip *ip)
{
	struct ffr_container *c;

	TAILQ_FOREACH (c, &r->containers, link)
		if (ffr_container_owns_ip(c, ip))
			return c;
	return NULL;
}

static int container_socket(struct ffr_container *c)
{
	char path[PATH_MAX];

	if (mkdir(c->dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (chmod(c->dir, 0755) < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s", c->dir, FF_SOCK_NAME);
	/* Any user inside the container may use it: the mount is the boundary. */
	c->lfd = ffr_listen_unix(path, 0666);
	if (c->lfd < 0)
		return c->lfd;
	c->lev = event_new(c->r->base, c->lfd, EV_READ | EV_PERSIST, ffr_accept_cb, c);
	if (!c->lev || event_add(c->lev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

int ffr_container_new(struct ffr_router *r, const char *name, const struct ff_ip *ips, int nips,
		      const char *host, enum ffr_policy policy, dev_t ns_dev, ino_t ns_ino,
		      struct ffr_container **out)
{
	struct ffr_container *c;
	char path[PATH_MAX];
	int err = -EINVAL;

	if (!ffr_name_valid(name) || nips < 1 || nips > FFR_MAX_IPS)
		return -EINVAL;
	if (ffr_is_self(r, host) &&
	    snprintf(path, sizeof(path), "%s/c/%s/%s", r->rundir, name, FF_SOCK_NAME) >= 108)
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->r = r;
	c->lfd = -1;
	TAILQ_INIT(&c->chans);
	snprintf(c->name, sizeof(c->name), "%s", name);
	memcpy(c->ips, ips, sizeof(*ips) * (size_t)nips);
	c->nips = nips;
	c->remote = !ffr_is_self(r, host);
	snprintf(c->host, sizeof(c->host), "%s", c->remote ? host : r->host_id);
	c->policy = policy;
	c->ns_dev = ns_dev;
	c->ns_ino = ns_ino;
	c->next_port = PORT_LO;
	if (c->remote) { /* only its addresses, for the map */
		TAILQ_INSERT_TAIL(&r->containers, c, link);
		*out = c;
		return 0;
	}
	c->ports = calloc(65536 / 8, 1);
	c->st = ffr_stats_new();
	if (asprintf(&c->dir, "%s/c/%s", r->rundir, name) < 0)
		c->dir = NULL;
	err = -ENOMEM;
	if (!c->ports || !c->st || !c->dir)
		goto out_free;
	TAILQ_INSERT_TAIL(&r->containers, c, link);
	err = container_socket(c);
	if (err)
		goto out_free;
	*out = c;
	return 0;
out_free:
	ffr_container_free(c);
	return err;
}

/* Removes the container and everything it holds except its directory. */
void ffr_container_free(struct ffr_container *c)
{
	struct ffr_listener *l, *ltmp;
	struct ffr_chan *ch;
	char path[PATH_MAX];

	if (!c)
		return;
	while ((ch = TAILQ_FIRST(&c->chans)))
		ffr_chan_free(ch);
	for (l = TAILQ_FIRST(&c->r->listeners); l; l = ltmp) {
		ltmp = TAILQ_NEXT(l, link);
		if (l->c == c)
			ffr_listener_free(l);
	}
	ffr_conn_detach_container(c->r, c);
	ffr_features_container_free(c);
	if (c->lev)
		event_free(c->lev);
	if (c->lfd >= 0) {
		snprintf(path, sizeof(path), "%s/%s", c->dir, FF_SOCK_NAME);
		unlink(path);
		close(c->lfd);
	}
	if (c->link.tqe_prev) /* inserted */
		TAILQ_REMOVE(&c->r->containers, c, link);
	ffr_stats_unref(c->st);
	free(c->ports);
	free(c->dir);
	free(c);
}
