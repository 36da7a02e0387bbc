/* Published ports: connections from anywhere to HOSTPORT on this host are
 * queued on the container's listener for PORT (like `docker -p`, without
 * NAT), as the host TCP sockets they are. Invariant: a publish owns its
 * listening socket; host ports are unique among publishes. */
#include "internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 64


static void publish_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ffr_publish *p = arg;
	struct ffr_container *c = ffr_container_find(p->r, p->container);

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = ffr_accept(p->r, lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		struct ff_sa peer, local = {.port = p->port};
		char name[FF_ADDRSTRLEN];

		if (fd < 0)
			return;
		if (!c || c->remote || ff_sa_from_sockaddr(&peer, (struct sockaddr *)&ss, len) < 0) {
			close(fd);
			continue;
		}
		/* the container's address of the client's family, else its first */
		local.ip = ffr_container_ip(c, peer.ip.family) ? *ffr_container_ip(c, peer.ip.family)
							       : c->ips[0];
		ff_sa_fmt(&peer, name, sizeof(name));
		if (ffr_ingress_queue(p->r, c, &local, &peer, name, fd, FF__PATH__PATH_TCP) == 0)
			p->accepted++;
	}
}

struct ffr_publish *ffr_publish_find(struct ffr_router *r, uint16_t host_port)
{
	struct ffr_publish *p;

	TAILQ_FOREACH (p, &ffr_xh(r)->publishes, link)
		if (p->host_port == host_port)
			return p;
	return NULL;
}

int ffr_publish_add(struct ffr_router *r, const char *container, uint16_t host_port,
		    uint16_t port, struct ffr_publish **out)
{
	struct ff_sa any = {.ip = {.family = AF_INET6}, .port = host_port};
	struct ffr_publish *p;

	if (!host_port || !port)
		return -EINVAL;
	if (ffr_publish_find(r, host_port))
		return -EADDRINUSE;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->r = r;
	snprintf(p->container, sizeof(p->container), "%s", container);
	p->host_port = host_port;
	p->port = port;
	p->fd = ffr_listen_tcp(&any, 1024, false); /* [::] takes IPv4 too */
	if (p->fd == -EAFNOSUPPORT || p->fd == -EADDRNOTAVAIL) {
		any.ip.family = AF_INET; /* no IPv6 here */
		p->fd = ffr_listen_tcp(&any, 1024, false);
	}
	if (p->fd < 0) {
		int err = p->fd;

		free(p);
		return err;
	}
	TAILQ_INSERT_TAIL(&ffr_xh(r)->publishes, p, link);
	p->ev = event_new(r->base, p->fd, EV_READ | EV_PERSIST, publish_accept_cb, p);
	if (!p->ev || event_add(p->ev, NULL) < 0) {
		ffr_publish_free(p);
		return -ENOMEM;
	}
	if (out)
		*out = p;
	return 0;
}

void ffr_publish_free(struct ffr_publish *p)
{
	if (!p)
		return;
	TAILQ_REMOVE(&ffr_xh(p->r)->publishes, p, link);
	if (p->ev)
		event_free(p->ev);
	close(p->fd);
	free(p);
}
