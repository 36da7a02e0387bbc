/* Requests from shims: Hello, Listen, Connect, Lookup. The caller's
 * identity is the container whose socket it reached (ch->c); nothing a shim
 * says about who it is is believed.
 * Every piece of new work is charged before it starts, whichever path it
 * takes: the router's fd budget (a shim's Hello, a listen, a connect), the
 * container's connection quota (every connect: same host, across hosts,
 * outside the overlay; conns plus connects in flight), and the channel's
 * cap on connects handed to a feature and not answered yet. */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "sdoor.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether n more fds fit in the router's budget; if not, says so on ch. */
static bool fds_fit(struct ffr_chan *ch, uint64_t id, unsigned n)
{
	unsigned open, limit;

	if (ffr_fd_budget(ch->r, n) == 0)
		return true;
	ffr_fd_usage(ch->r, &open, &limit, NULL);
	ffr_reply_status(ch, id, FF__STATUS__ST_QUOTA,
			 "router out of file descriptors (%u open, limit %u): try later", open,
			 limit);
	return false;
}

static void op_hello(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__HelloReply hr = FF__HELLO_REPLY__INIT;
	Ff__Addr addrs[FFR_MAX_IPS], *addrp[FFR_MAX_IPS];
	uint8_t ipbuf[FFR_MAX_IPS][16];
	const Ff__Hello *h = req->hello;
	int sfds[2];

	if (ch->hello) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "Hello sent twice");
		return;
	}
	if (h->version != FF_PROTO_VERSION) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_VERSION,
				 "protocol version %u, router speaks %u", h->version,
				 FF_PROTO_VERSION);
		return;
	}
	/* a new shim is new work (its first connect, at least); ffctl must
	 * always get in */
	if (ch->c && !fds_fit(ch, req->id, 2)) {
		ffr_chan_kill(ch, NULL);
		return;
	}
	ch->hello = true;
	ch->caps = h->caps;
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_HELLO;
	rep.hello = &hr;
	hr.version = FF_PROTO_VERSION;
	hr.caps = FF_CAP_LISTEN | FF_CAP_CONNECT | FF_CAP_LOOKUP;
	if (!ch->c) {
		ffr_reply(ch, &rep, NULL, 0);
		return;
	}
	hr.container = ch->c->name;
	hr.stat_slots = FF_STAT_SLOTS;
	hr.policy = (char *)(ch->c->policy == FFR_POLICY_HOST ? "host" : "container");
	for (int i = 0; i < ch->c->nips; i++) {
		struct ff_sa sa = {.ip = ch->c->ips[i]};

		ff_sa_to_proto(&sa, &addrs[i], ipbuf[i]);
		addrp[i] = &addrs[i];
	}
	hr.n_ips = (size_t)ch->c->nips;
	hr.ips = addrp;
	sfds[0] = ch->r->map_rofd;
	sfds[1] = ch->c->st->fd;
	ffr_reply(ch, &rep, sfds, 2);
}

static int listen_args(const Ff__Listen *m, struct ffr_listen_args *a)
{
	memset(a, 0, sizeof(*a));
	if (!m || ff_sa_from_proto(&a->addr, m->addr) < 0)
		return -EINVAL;
	a->v6only = m->v6only;
	a->backlog = m->backlog;
	a->shim_ino = (ino_t)m->queue_inode;
	return 0;
}

static void listen_reply(struct ffr_chan *ch, uint64_t id, struct ffr_listener *l, int shim_fd)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__ListenReply lr = FF__LISTEN_REPLY__INIT;
	int fds[2] = {shim_fd, l->qfd};
	char a[FF_ADDRSTRLEN];

	rep.id = id;
	rep.body_case = FF__REPLY__BODY_LISTEN;
	rep.listen = &lr;
	lr.listener_id = l->id;
	/* the app's end, and a copy of ours: the shim keeps it so that the
	 * queue outlives a router crash (no EOF, no false readiness) */
	if (ffr_reply(ch, &rep, fds, shim_fd >= 0 ? 2 : 0) < 0)
		ffr_listener_free(l);
	else
		ff_info("%s: listening on %s (listener %llu)", ch->c->name,
			ff_sa_fmt(&l->addr, a, sizeof(a)), (unsigned long long)l->id);
}

static void listen_refused(struct ffr_chan *ch, uint64_t id, const struct ff_sa *addr, int err)
{
	char a[FF_ADDRSTRLEN];

	ff_warn("%s: listen on %s refused: %s", ch->c->name, ff_sa_fmt(addr, a, sizeof(a)),
		strerror(-err));
	ffr_reply_status(ch, id, ffr_errno_status(err), "listen refused: %s", strerror(-err));
}

static void op_listen(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_listen_args a;
	struct ffr_listener *l;
	int shim_fd, err;

	if (listen_args(req->listen, &a) < 0) {
		close(fds[0]);
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "bad listen address");
		return;
	}
	a.shim_ino = 0;
	if (!fds_fit(ch, req->id, 3)) { /* kfd, the queue's two ends */
		close(fds[0]);
		return;
	}
	err = ffr_listener_new(ch->c, &a, fds[0], -1, &shim_fd, &l);
	if (err) {
		listen_refused(ch, req->id, &a.addr, err);
		return;
	}
	l->rings = ch->caps & FF_CAP_RINGS;
	listen_reply(ch, req->id, l, shim_fd);
	close(shim_fd);
}

/* After a router restart a shim hands back a listener it kept alive:
 * fds[0] the kernel listener, fds[1] the router's end of its queue. Several
 * processes may hand back the same queue: the first one wins. */
static void op_relisten(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_listen_args a;
	struct ffr_listener *l;
	struct stat st;
	int shim_fd, err;
	uint64_t id;

	if (listen_args(req->relisten, &a) < 0 || fstat(fds[1], &st) < 0) {
		ff_close_fds(fds, nfds);
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "bad listen address");
		return;
	}
	l = ffr_listener_by_queue(ch->r, st.st_ino);
	if (l) {
		ff_close_fds(fds, nfds);
		if (l->c == ch->c) {
			ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
			if (ch->keeper)
				ffr_listener_keep(ch, l->id);
		} else
			ffr_reply_status(ch, req->id, FF__STATUS__ST_PERM, "not your queue");
		return;
	}
	if (!fds_fit(ch, req->id, 2)) {
		ff_close_fds(fds, nfds);
		return;
	}
	err = ffr_listener_new(ch->c, &a, fds[0], fds[1], &shim_fd, &l);
	if (err) {
		listen_refused(ch, req->id, &a.addr, err);
		return;
	}
	l->rings = ch->caps & FF_CAP_RINGS;
	id = l->id;
	listen_reply(ch, req->id, l, -1); /* (l is freed if it fails) */
	if (ch->keeper) /* a keeper let its copies go: it keeps the new ones */
		ffr_listener_keep(ch, id);
}

/* Picks the client's address: the port it bound if it bound one to an
 * address it owns; port 0 means "allocate one from the container's range". */
static int client_addr(struct ffr_container *c, const Ff__Connect *m, int family,
		       struct ff_sa *src)
{
	const struct ff_ip *ip = ffr_container_ip(c, family);
	struct ff_sa bound;

	if (!ip)
		return -ENOENT;
	src->ip = *ip;
	src->port = 0;
	if (m->src && ff_sa_from_proto(&bound, m->src) == 0 && bound.port &&
	    (ff_ip_is_any(&bound.ip) || ffr_container_owns_ip(c, &bound.ip))) {
		if (!ff_ip_is_any(&bound.ip))
			src->ip = bound.ip;
		src->port = bound.port;
	}
	return 0;
}

ino_t ffr_fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

int ffr_conn_pair(struct ffr_router *r, int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* The kernel's default (~200 KiB) makes a bulk sender wait for the
	 * receiver every write or two; where a wake-up crosses CPUs that caps
	 * one stream far below TCP with its autotuned buffers. */
	for (int i = 0; r->sockbuf > 0 && i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &r->sockbuf, sizeof(r->sockbuf));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUFFORCE, &r->sockbuf, sizeof(r->sockbuf));
	}
	return 0;
}

void ffr_connect_reply(struct ffr_chan *ch, uint64_t id, const struct ffr_conn *cn, int fd)
{
	ffr_connect_reply_answer(ch, id, cn, fd, NULL, 0, 0);
}

/* A sealed memfd of len bytes, its first page formatted by fmt: -1 if
 * the fds or the memory are not there. Sealed to its size: a shim that
 * could shrink it would kill the other with SIGBUS. */
static int sealed_memfd(const char *name, size_t len, int (*fmt)(void *, size_t, uint32_t),
			uint32_t size)
{
	void *m;
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)len) < 0 ||
	    (m = mmap(NULL, FF_SRING_HDR, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		close(fd);
		return -1;
	}
	if (fmt(m, len, size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		munmap(m, FF_SRING_HDR);
		close(fd);
		return -1;
	}
	munmap(m, FF_SRING_HDR);
	return fd;
}

static int end_format(void *m, size_t len, uint32_t size)
{
	(void)len;
	(void)size;
	return ff_sring_end_format(m);
}

/* The rings of a new same-host connection between containers a and b,
 * whose shims both read rings, into cn: false (cn without rings) when
 * rings are off, one of the shims cannot, a container is past
 * --max-ring-mem, or the fds or the memory are not there (the socketpair
 * alone then, as without rings). */
static bool ring_new(struct ffr_router *r, struct ffr_conn *cn, struct ffr_container *a,
		     struct ffr_container *b, bool able)
{
	size_t len = ff_sring_len(r->ring);
	uint64_t max = (uint64_t)r->quota.ring_mib << 20;

	if (!r->ring || !able || a->ring_bytes + len > max || b->ring_bytes + len > max ||
	    ffr_fd_budget(r, 5) < 0)
		return false;
	cn->ring_fd = sealed_memfd("ffnet-ring", len, ff_sring_format, r->ring);
	for (int i = 0; i < 2 && cn->ring_fd >= 0; i++)
		cn->end_fd[i] = sealed_memfd("ffnet-ring-end", FF_SRING_HDR, end_format, 0);
	if (cn->ring_fd >= 0 && cn->end_fd[0] >= 0 && cn->end_fd[1] >= 0)
		return true;
	for (int i = 0; i < 2; i++) {
		if (cn->end_fd[i] >= 0)
			close(cn->end_fd[i]);
		cn->end_fd[i] = -1;
	}
	if (cn->ring_fd >= 0)
		close(cn->ring_fd);
	cn->ring_fd = -1;
	return false;
}

/* Both ends' send buffers sized for the doorbell (common/sdoor.h): its
 * filling must fit and leave the socket unwritable. */
static void ring_sockbuf(const int sv[2])
{
	int sb = FF_SDOOR_SNDBUF;

	for (int i = 0; i < 2; i++)
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof(sb));
}

void ffr_connect_reply_answer(struct ffr_chan *ch, uint64_t id, const struct ffr_conn *cn, int fd,
			      const uint8_t *answer, size_t len, uint32_t ms)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__ConnectReply cr = FF__CONNECT_REPLY__INIT;
	Ff__Addr local, peer;
	uint8_t lip[16], pip[16];

	ff_sa_to_proto(&cn->cli.addr, &local, lip);
	ff_sa_to_proto(&cn->srv.addr, &peer, pip);
	rep.id = id;
	rep.body_case = FF__REPLY__BODY_CONNECT;
	rep.connect = &cr;
	cr.local = &local;
	cr.peer = &peer;
	cr.conn_id = cn->id;
	cr.slot = cn->cli.slot;
	cr.path = cn->path;
	cr.answer.data = (uint8_t *)answer;
	cr.answer.len = answer ? len : 0;
	cr.answer_ms = ms;
	cr.ring = cn->ring_fd >= 0 ? cn->ring : 0;
	ffr_reply(ch, &rep, (int[]){fd, cn->ring_fd, cn->end_fd[0]}, cr.ring ? 3 : 1);
}

/* Hands the server end to the listener (with copies of the rings' memfd
 * and of its end page if any). Consumes fd. */
static int connect_deliver(struct ffr_listener *l, struct ffr_conn *cn, int fd)
{
	int fds[3] = {fd, -1, -1};

	Ff__Accepted a = FF__ACCEPTED__INIT;
	Ff__Addr local, peer;
	uint8_t lip[16], pip[16];

	ff_sa_to_proto(&cn->srv.addr, &local, lip);
	ff_sa_to_proto(&cn->cli.addr, &peer, pip);
	a.local = &local;
	a.peer = &peer;
	a.conn_id = cn->id;
	a.slot = cn->srv.slot;
	a.path = cn->path;
	if (cn->ring_fd >= 0) {
		fds[1] = fcntl(cn->ring_fd, F_DUPFD_CLOEXEC, 0);
		fds[2] = fcntl(cn->end_fd[1], F_DUPFD_CLOEXEC, 0);
		if (fds[1] < 0 || fds[2] < 0) {
			int err = -errno;

			ff_close_fds(fds, 3);
			return err;
		}
		a.ring = cn->ring;
	}
	return ffr_listener_push_fds(l, &a, fds, fds[1] >= 0 ? 3 : 1);
}

static int connect_same_host(struct ffr_chan *ch, uint64_t id, struct ffr_listener *l,
			     const struct ff_sa *src, const struct ff_sa *dst)
{
	struct ffr_router *r = ch->r;
	struct ffr_conn *cn;
	int sv[2], err;

	err = ffr_conn_pair(r, sv);
	if (err)
		return err;
	cn = ffr_conn_new(r, FF__PATH__PATH_SAME_HOST);
	if (!cn) {
		err = -ENOMEM;
		goto out_close;
	}
	err = ffr_conn_side_set(&cn->cli, ch->c, src, ffr_fd_ino(sv[0]));
	if (!err)
		err = ffr_conn_side_set(&cn->srv, l->c, dst, ffr_fd_ino(sv[1]));
	/* a port the app bound belongs to its kernel, not to our allocator */
	if (!err && !src->port) {
		cn->cli.addr.port = ffr_port_get(ch->c);
		cn->cli.own_port = true;
		if (!cn->cli.addr.port)
			err = -ENOBUFS;
	}
	if (err)
		goto out_free;
	if (ring_new(r, cn, ch->c, l->c, (ch->caps & FF_CAP_RINGS) && l->rings)) {
		cn->ring = r->ring;
		ffr_conn_ring_charge(r, cn);
		ring_sockbuf(sv);
	}
	err = connect_deliver(l, cn, sv[1]);
	sv[1] = -1;
	if (err)
		goto out_free;
	ffr_connect_reply(ch, id, cn, sv[0]);
	close(sv[0]);
	ffr_conn_established(r, cn);
	return 0;
out_free:
	ffr_conn_free(r, cn);
out_close:
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return err;
}

/* The client's side of any connect: its container's quota (conns and
 * connects in flight) and the fds the connect takes while it is made. */
static bool connect_admitted(struct ffr_chan *ch, uint64_t id)
{
	struct ffr_container *c = ch->c;

	if (c->nconns + c->nconnecting >= ch->r->quota.conns) {
		ch->r->fallbacks++;
		ch->r->quota_refusals++;
		ffr_reply_status(ch, id, FF__STATUS__ST_QUOTA, "connection quota reached");
		return false;
	}
	if (!fds_fit(ch, id, 2)) {
		ch->r->fallbacks++;
		return false;
	}
	return true;
}

/* Hands a connect to the features, counted in flight until its answer;
 * false if none takes it (nothing answered then). */
static bool connect_to_feature(struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
			       const struct ff_sa *src, const struct ff_sa *dst)
{
	int err = ffr_chan_inflight_add(ch, id);

	if (err == -ENOBUFS) {
		ch->r->quota_refusals++;
		ffr_reply_status(ch, id, FF__STATUS__ST_QUOTA,
				 "too many connects in flight on this channel");
		return true;
	}
	if (err) {
		ffr_reply_status(ch, id, FF__STATUS__ST_INTERNAL, "%s", strerror(-err));
		return true;
	}
	if (ffr_features_connect(ch, id, t, src, dst))
		return true;
	ffr_chan_inflight_del(ch, id);
	return false;
}

static void op_connect(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_router *r = ch->r;
	struct ffr_container *t;
	struct ffr_listener *l;
	struct ff_sa dst, src;
	int err;

	if (ff_sa_from_proto(&dst, req->connect->dst) < 0 || !dst.port) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "bad destination");
		return;
	}
	if (!connect_admitted(ch, req->id))
		return;
	if (req->connect->outside) {
		/* bypass4netns-style: a host socket for a destination outside */
		if (ch->c->policy != FFR_POLICY_HOST || ffr_container_by_ip(r, &dst.ip))
			ffr_reply_status(ch, req->id, FF__STATUS__ST_PERM, "policy is not host");
		else if (!connect_to_feature(ch, req->id, NULL, NULL, &dst))
			ffr_reply_status(ch, req->id, FF__STATUS__ST_UNSUPPORTED,
					 "no host sockets on this router");
		return;
	}
	t = ffr_container_by_ip(r, &dst.ip);
	if (t && t->remote) {
		if (client_addr(ch->c, req->connect, dst.ip.family, &src) < 0)
			ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND,
					 "no address of that family");
		else {
			ch->answer_here = req->connect->answer_here;
			if (!connect_to_feature(ch, req->id, t, &src, &dst))
				ffr_reply_status(ch, req->id, FF__STATUS__ST_UNREACH,
						 "no path to host %s", t->host);
			ch->answer_here = false;
		}
		return;
	}
	l = t ? ffr_listener_find(t, &dst) : NULL;
	if (!l) {
		r->fallbacks++;
		ffr_reply_status(ch, req->id, t ? FF__STATUS__ST_NO_LISTENER : FF__STATUS__ST_NOT_FOUND,
				 NULL);
		return;
	}
	if (t->nconns + t->nconnecting >= r->quota.conns) {
		r->quota_refusals++;
		r->fallbacks++;
		ffr_reply_status(ch, req->id, FF__STATUS__ST_QUOTA, "connection quota reached");
		return;
	}
	if (client_addr(ch->c, req->connect, dst.ip.family, &src) < 0) {
		r->fallbacks++;
		ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND, "no address of that family");
		return;
	}
	err = connect_same_host(ch, req->id, l, &src, &dst);
	if (err) {
		r->fallbacks++;
		ffr_reply_status(ch, req->id,
				 err == -EPIPE ? FF__STATUS__ST_NO_LISTENER : ffr_errno_status(err),
				 "%s", strerror(-err));
	}
}

static void op_unlisten(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_listener *l = ffr_listener_by_id(ch->c, req->unlisten->listener_id);

	if (l && ffr_listener_orphaned(l))
		ffr_listener_end(l);
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
}

int ffr_sock_lookup(struct ffr_container *c, ino_t ino, struct ffr_sock_info *out)
{
	struct ffr_conn_side *side, *other;
	struct ffr_conn *cn = ino ? ffr_conn_by_ino(c->r, ino, &side, &other) : NULL;
	struct ffr_listener *l;

	memset(out, 0, sizeof(*out));
	out->kfd = -1;
	if (cn && side->c == c) {
		out->kind = FF_KIND_CONN;
		out->local = side->addr;
		out->peer = other->addr;
		out->path = cn->path;
		return 0;
	}
	TAILQ_FOREACH (l, &c->r->listeners, link) {
		if (l->c != c || !ino || l->shim_ino != ino)
			continue;
		out->kind = FF_KIND_LISTENER;
		out->local = l->addr;
		out->kfd = l->kfd;
		out->l = l;
		return 0;
	}
	return -ENOENT;
}

static void op_lookup(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__LookupReply lr = FF__LOOKUP_REPLY__INIT;
	Ff__Addr local, peer;
	uint8_t lip[16], pip[16];
	struct ffr_conn_side *side, *other;
	struct ffr_conn *cn = ffr_conn_by_ino(ch->r, (ino_t)req->lookup->inode, &side, &other);
	struct ffr_sock_info si;

	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_LOOKUP;
	rep.lookup = &lr;
	if (ffr_sock_lookup(ch->c, (ino_t)req->lookup->inode, &si) < 0) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND, NULL);
		return;
	}
	lr.kind = (uint32_t)si.kind;
	ff_sa_to_proto(&si.local, &local, lip);
	lr.local = &local;
	if (si.kind == FF_KIND_CONN) {
		ff_sa_to_proto(&si.peer, &peer, pip);
		lr.peer = &peer;
		lr.id = cn->id;
		lr.slot = side->slot;
		lr.path = cn->path;
		if (cn->ring_fd >= 0) {
			lr.ring = cn->ring;
			lr.side = side == &cn->srv;
		}
	} else {
		lr.id = si.l->id;
	}
	if (lr.ring)
		ffr_reply(ch, &rep, (int[]){cn->ring_fd, cn->end_fd[lr.side]}, 2);
	else
		ffr_reply(ch, &rep, NULL, 0);
}

const struct ffr_op ffr_sock_ops[] = {
	{FF__REQUEST__BODY_HELLO, op_hello, 0, true, true},
	{FF__REQUEST__BODY_LISTEN, op_listen, 1, true, false},
	{FF__REQUEST__BODY_CONNECT, op_connect, 0, true, false},
	{FF__REQUEST__BODY_LOOKUP, op_lookup, 0, true, false},
	{FF__REQUEST__BODY_UNLISTEN, op_unlisten, 0, true, false},
	{FF__REQUEST__BODY_RELISTEN, op_relisten, 2, true, false},
};
const size_t ffr_sock_nops = sizeof(ffr_sock_ops) / sizeof(ffr_sock_ops[0]);
