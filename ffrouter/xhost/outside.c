/* Where a container whose policy is host may have the router connect it
 * (bypass4netns-style host sockets: connect.c with no target container).
 * The router connects as root in the host's namespaces, so by default it
 * refuses what only the host itself could reach, or what is the cluster's
 * own:
 *   - loopback, unspecified, link-local (so the cloud metadata service at
 *     169.254.169.254, and fd00:ec2::254), multicast and reserved addresses
 *     (IPv4-mapped IPv6 is IPv4 here: ff_sa normalises it);
 *   - every address of the host's own interfaces, whatever the port (read
 *     again at most once a second, LOCAL_MS);
 *   - the cluster: the other routers' ingresses (the hosts of the map), this
 *     router's own --ingress and --advertise, and the etcd store.
 * --host-allow CIDR[:PORT] entries (repeatable) are allowed whatever the
 * above says: to let containers reach, say, a database on the host.
 * Invariant: the check is a pure function of the destination, the
 * options, the map and the host's addresses; it runs before any socket. */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCAL_MS 1000

static const struct ffr_cidr special[] = {
	{{AF_INET, {0}}, 8, 0},                  /* "this network": 0.0.0.0 is the host */
	{{AF_INET, {127}}, 8, 0},                /* loopback */
	{{AF_INET, {169, 254}}, 16, 0},          /* link-local, cloud metadata */
	{{AF_INET, {224}}, 4, 0},                /* multicast */
	{{AF_INET, {240}}, 4, 0},                /* reserved, broadcast */
	{{AF_INET6, {0}}, 128, 0},               /* :: */
	{{AF_INET6, {[15] = 1}}, 128, 0},        /* ::1 */
	{{AF_INET6, {0xfe, 0x80}}, 10, 0},       /* link-local */
	{{AF_INET6, {0xff}}, 8, 0},              /* multicast */
	{{AF_INET6, {0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, 0x54}}, 128, 0}, /* fd00:ec2::254 */
};

static bool prefix_match(const struct ff_ip *a, const struct ff_ip *net, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (a->family != net->family || memcmp(a->ip, net->ip, full) != 0)
		return false;
	return !rest || ((a->ip[full] ^ net->ip[full]) & (0xff << (8 - rest))) == 0;
}

static bool cidr_match(const struct ffr_cidr *c, const struct ff_sa *sa)
{
	return (!c->port || c->port == sa->port) && prefix_match(&sa->ip, &c->ip, c->bits);
}

/* "IP/BITS" or "IP" into c (the port left alone). */
static int cidr_addr(char *s, struct ffr_cidr *c)
{
	char *slash = strchr(s, '/'), *end;
	unsigned long bits;

	if (slash)
		*slash = '\0';
	if (ff_ip_parse(s, &c->ip) < 0)
		return -EINVAL;
	c->bits = c->ip.family == AF_INET ? 32 : 128;
	if (slash) {
		errno = 0;
		bits = strtoul(slash + 1, &end, 10);
		if (errno || *end || !slash[1] || bits > c->bits)
			return -EINVAL;
		c->bits = (uint8_t)bits;
	}
	/* host bits are dropped, as ip route does */
	for (unsigned i = c->bits; i < 128; i++)
		c->ip.ip[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
	return 0;
}

int ffr_cidr_parse(const char *s, struct ffr_cidr *out)
{
	char buf[FF_ADDRSTRLEN + 8], *addr = buf, *sep = NULL, *port = NULL, *end, *c;
	struct ffr_cidr r = {.port = 0};
	unsigned long p;

	if (!s || !*s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	if (buf[0] == '[') { /* [CIDR] or [CIDR]:PORT */
		c = strchr(buf, ']');
		if (!c || (c[1] && c[1] != ':'))
			return -EINVAL;
		*c = '\0';
		addr = buf + 1;
		sep = c[1] ? c + 1 : NULL;
	} else if ((c = strchr(buf, '/'))) { /* CIDR or CIDR:PORT */
		sep = strchr(c, ':');
	} else if ((c = strchr(buf, ':')) && !strchr(c + 1, ':')) { /* IPv4:PORT */
		sep = c;
	} /* else a bare address, IPv6 included: no port without brackets */
	if (sep) {
		*sep = '\0';
		port = sep + 1;
	}
	if (cidr_addr(addr, &r) < 0)
		return -EINVAL;
	if (port) {
		errno = 0;
		p = strtoul(port, &end, 10);
		if (errno || *end || !*port || !p || p > 65535)
			return -EINVAL;
		r.port = (uint16_t)p;
	}
	*out = r;
	return 0;
}

int ffr_host_allow_add(struct ffr_xhost_config *cfg, const char *s)
{
	struct ffr_cidr c;

	if (cfg->nhost_allow >= FFR_HOST_ALLOW_MAX)
		return -ENOSPC;
	if (ffr_cidr_parse(s, &c) < 0)
		return -EINVAL;
	cfg->host_allow[cfg->nhost_allow++] = s;
	return 0;
}

/* One more cluster address to refuse: "IP:PORT". */
static void cluster_add(struct ffr_xhost *xh, const char *hostport)
{
	struct ff_sa a;

	if (hostport && xh->ncluster < FFR_CLUSTER_MAX && ff_sa_parse(hostport, &a, 0) == 0)
		xh->cluster[xh->ncluster++] = a;
}

int ffr_outside_init(struct ffr_xhost *xh, const struct ffr_xhost_config *cfg)
{
	const char *etcd = cfg->store && !strncmp(cfg->store, "etcd://", 7) ? cfg->store + 7 : NULL;

	for (int i = 0; i < cfg->nhost_allow; i++)
		if (ffr_cidr_parse(cfg->host_allow[i], &xh->allow[i]) < 0) {
			ff_err("--host-allow: want CIDR[:PORT], not '%s'", cfg->host_allow[i]);
			return -EINVAL;
		}
	xh->nallow = cfg->nhost_allow;
	cluster_add(xh, cfg->ingress);
	cluster_add(xh, cfg->advertise);
	cluster_add(xh, etcd); /* a store given by name is left out */
	return 0;
}

/* The host's own addresses, read again when LOCAL_MS old. */
static void local_refresh(struct ffr_xhost *xh)
{
	struct ifaddrs *ifa, *i;
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (xh->local_ms && now - xh->local_ms < LOCAL_MS)
		return;
	if (getifaddrs(&ifa) < 0) {
		ff_warn("policy host: cannot read this host's addresses: %s", strerror(errno));
		return; /* keep the last ones */
	}
	xh->nlocal = 0;
	for (i = ifa; i && xh->nlocal < FFR_LOCAL_MAX; i = i->ifa_next) {
		struct ff_sa a;

		if (i->ifa_addr &&
		    ff_sa_from_sockaddr(&a, i->ifa_addr, i->ifa_addr->sa_family == AF_INET
								 ? sizeof(struct sockaddr_in)
								 : sizeof(struct sockaddr_in6)) == 0)
			xh->local[xh->nlocal++] = a.ip;
	}
	freeifaddrs(ifa);
	xh->local_ms = now;
}

int ffr_outside_check(struct ffr_router *r, const struct ff_sa *dst, const char **why)
{
	struct ffr_xhost *xh = ffr_xh(r);
	const struct ffr_host *h;

	for (size_t i = 0; i < xh->nallow; i++)
		if (cidr_match(&xh->allow[i], dst))
			return 0;
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (cidr_match(&special[i], dst)) {
			*why = "a loopback, link-local, multicast or reserved address";
			return -ECONNREFUSED;
		}
	local_refresh(xh);
	for (size_t i = 0; i < xh->nlocal; i++)
		if (ff_ip_equal(&xh->local[i], &dst->ip)) {
			*why = "an address of this host";
			return -ECONNREFUSED;
		}
	for (size_t i = 0; i < xh->ncluster; i++)
		if (xh->cluster[i].port == dst->port && ff_ip_equal(&xh->cluster[i].ip, &dst->ip)) {
			*why = "this router or the cluster store";
			return -ECONNREFUSED;
		}
	TAILQ_FOREACH (h, &xh->hosts, link)
		if (h->addr.port == dst->port && ff_ip_equal(&h->addr.ip, &dst->ip)) {
			*why = "another host's router";
			return -ECONNREFUSED;
		}
	return 0;
}
