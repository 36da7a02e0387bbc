/* Connection records. The router never holds a connection's fds, so it
 * learns that a connection ended by asking the kernel which sockets still
 * exist (sock_diag: AF_UNIX for same-host pairs, TCP for connections across
 * hosts; /proc/net/unix where sock_diag is missing): a connection is gone
 * when none of its socket inodes on this host is alive. */
#include "internal.h"
#include "sring.h"

#include "log.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct ino_vec {
	ino_t *v;
	size_t n, cap;
};

static int ino_push(struct ino_vec *iv, ino_t ino)
{
	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 1024;
		ino_t *v = realloc(iv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		iv->v = v;
		iv->cap = cap;
	}
	iv->v[iv->n++] = ino;
	return 0;
}

static int ino_cmp(const void *a, const void *b)
{
	ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;

	return x < y ? -1 : x > y;
}

/* Walks one netlink reply buffer; returns 1 when the dump is complete. */
static int diag_parse(struct ino_vec *iv, const char *buf, size_t len, bool inet)
{
	for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, len);
	     h = NLMSG_NEXT(h, len)) {
		size_t need = inet ? sizeof(struct inet_diag_msg) : sizeof(struct unix_diag_msg);
		ino_t ino;

		if (h->nlmsg_type == NLMSG_DONE)
			return 1;
		if (h->nlmsg_type == NLMSG_ERROR)
			return -EIO;
		if (h->nlmsg_len < NLMSG_LENGTH(need))
			continue;
		ino = inet ? ((const struct inet_diag_msg *)NLMSG_DATA(h))->idiag_inode
			   : ((const struct unix_diag_msg *)NLMSG_DATA(h))->udiag_ino;
		if (ino_push(iv, ino) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Dumps the inodes of one family's sockets (AF_UNIX, or TCP over AF_INET/6). */
static int diag_dump(struct ino_vec *iv, int family)
{
	union {
		struct unix_diag_req u;
		struct inet_diag_req_v2 i;
	} req = {0};
	struct {
		struct nlmsghdr nlh;
		char req[sizeof(req)];
	} msg = {
		.nlh = {.nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
	};
	static char buf[32768] __attribute__((aligned(8)));
	bool inet = family != AF_UNIX;
	int fd, done = 0;

	if (inet) {
		req.i.sdiag_family = (uint8_t)family;
		req.i.sdiag_protocol = IPPROTO_TCP;
		req.i.idiag_states = ~0u;
		memcpy(msg.req, &req.i, sizeof(req.i));
		msg.nlh.nlmsg_len = NLMSG_LENGTH(sizeof(req.i));
	} else {
		req.u.sdiag_family = AF_UNIX;
		req.u.udiag_states = ~0u;
		memcpy(msg.req, &req.u, sizeof(req.u));
		msg.nlh.nlmsg_len = NLMSG_LENGTH(sizeof(req.u));
	}
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	if (send(fd, &msg, msg.nlh.nlmsg_len, 0) < 0) {
		done = -errno;
		goto out_close;
	}
	while (!done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			done = n < 0 ? -errno : -EIO;
			break;
		}
		done = diag_parse(iv, buf, (size_t)n, inet);
	}
out_close:
	close(fd);
	return done < 0 ? done : 0;
}

/* The same from a /proc/net table (where sock_diag, or its module, is
 * missing): the inode is the field after the first skip ones. */
static int proc_dump(struct ino_vec *iv, const char *path, int skip)
{
	FILE *f = fopen(path, "re");
	char line[512];
	int err = 0;

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) /* header */
		goto out_close;
	while (!err && fgets(line, sizeof(line), f)) {
		char *p = line, *end;
		unsigned long long ino;

		for (int i = 0; i < skip && p; i++) {
			p += strspn(p, " ");
			p = strchr(p, ' ');
		}
		if (!p)
			continue;
		ino = strtoull(p, &end, 10);
		if (end != p)
			err = ino_push(iv, (ino_t)ino);
	}
out_close:
	fclose(f);
	return err;
}

int ffr_unix_inodes(ino_t **out, size_t *n)
{
	struct ino_vec iv = {0};
	int err = diag_dump(&iv, AF_UNIX);

	if (err) {
		iv.n = 0;
		err = proc_dump(&iv, "/proc/net/unix", 6);
	}
	/* TCP connections across hosts (no IPv6 here is not an error); a
	 * kernel without inet_diag has the tables in /proc, and a live
	 * connection missed here would be dropped from the records */
	if (!err && diag_dump(&iv, AF_INET) == 0) {
		diag_dump(&iv, AF_INET6);
	} else if (!err) {
		err = proc_dump(&iv, "/proc/net/tcp", 9);
		if (!err)
			proc_dump(&iv, "/proc/net/tcp6", 9);
	}
	if (err) {
		free(iv.v);
		return err;
	}
	qsort(iv.v, iv.n, sizeof(*iv.v), ino_cmp);
	*out = iv.v;
	*n = iv.n;
	return 0;
}

static bool ino_alive(const ino_t *v, size_t n, ino_t ino)
{
	return ino && bsearch(&ino, v, n, sizeof(*v), ino_cmp);
}

/* Gone once none of its sockets on this host exists (a side on another
 * host has no inode here). */
static bool conn_alive(const struct ffr_conn *cn, const ino_t *v, size_t n)
{
	return ino_alive(v, n, cn->cli.ino) || ino_alive(v, n, cn->srv.ino);
}

void ffr_conn_sweep(struct ffr_router *r)
{
	struct ffr_conn *cn, *next;
	ino_t *v;
	size_t n;

	if (!r->nconns || ffr_unix_inodes(&v, &n) < 0)
		return;
	for (cn = TAILQ_FIRST(&r->conns); cn; cn = next) {
		next = TAILQ_NEXT(cn, link);
		if (!conn_alive(cn, v, n))
			ffr_conn_free(r, cn);
	}
	free(v);
}

struct ffr_conn *ffr_conn_new(struct ffr_router *r, Ff__Path path)
{
	struct ffr_conn *cn = calloc(1, sizeof(*cn));

	if (!cn)
		return NULL;
	cn->id = r->next_id++;
	cn->path = path;
	cn->cli.slot = cn->srv.slot = UINT32_MAX;
	cn->ring_fd = cn->end_fd[0] = cn->end_fd[1] = -1;
	cn->cli.cn = cn->srv.cn = cn;
	TAILQ_INSERT_TAIL(&r->conns, cn, link);
	r->nconns++;
	return cn;
}

uint64_t ffr_conn_side_bytes(const struct ffr_conn_side *s, bool tx)
{
	const struct ff_stat_slot *sl;

	if (!s->st || s->slot >= FF_STAT_SLOTS)
		return 0;
	sl = &s->st->hdr->slot[s->slot];
	return __atomic_load_n(tx ? &sl->tx : &sl->rx, __ATOMIC_RELAXED);
}

void ffr_conn_established(struct ffr_router *r, const struct ffr_conn *cn)
{
	r->conns_total++;
	if ((unsigned)cn->path < FFR_PATHS)
		r->conns_path[cn->path]++;
	ffr_sweep_arm(r);
}

/* ---- the sides by inode: chained hash, doubled as it fills ---- */

static uint32_t ino_hash(ino_t ino, uint32_t cap)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(h >> 32) & (cap - 1);
}

static int ino_grow(struct ffr_router *r)
{
	uint32_t cap = r->ino_cap ? r->ino_cap * 2 : 256;
	struct ffr_conn_side **t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < r->ino_cap; i++) {
		struct ffr_conn_side *s = r->ino_tab[i], *next;

		for (; s; s = next) {
			uint32_t h = ino_hash(s->ino, cap);

			next = s->hnext;
			s->hnext = t[h];
			t[h] = s;
		}
	}
	free(r->ino_tab);
	r->ino_tab = t;
	r->ino_cap = cap;
	return 0;
}

static void ino_del(struct ffr_router *r, struct ffr_conn_side *s)
{
	struct ffr_conn_side **pp;

	if (!s->hashed)
		return;
	for (pp = &r->ino_tab[ino_hash(s->ino, r->ino_cap)]; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	s->hnext = NULL;
	s->hashed = false;
	r->ino_n--;
}

static void ino_add(struct ffr_router *r, struct ffr_conn_side *s)
{
	uint32_t h;

	if (!s->ino || (r->ino_n >= r->ino_cap && ino_grow(r) < 0 && !r->ino_cap))
		return; /* no table: not found by inode (what a lookup of it answers) */
	h = ino_hash(s->ino, r->ino_cap);
	s->hnext = r->ino_tab[h];
	r->ino_tab[h] = s;
	s->hashed = true;
	r->ino_n++;
}

void ffr_conn_ino_free(struct ffr_router *r)
{
	free(r->ino_tab);
	r->ino_tab = NULL;
	r->ino_cap = r->ino_n = 0;
}

int ffr_conn_side_set(struct ffr_conn_side *s, struct ffr_container *c, const struct ff_sa *addr,
		      ino_t ino)
{
	snprintf(s->name, sizeof(s->name), "%s", c->name);
	s->c = c;
	s->addr = *addr;
	ino_del(c->r, s);
	s->ino = ino;
	ino_add(c->r, s);
	s->st = ffr_stats_ref(c->st);
	s->slot = ffr_stats_alloc(s->st);
	c->nconns++;
	return s->slot == UINT32_MAX ? -ENOBUFS : 0;
}

static void side_clear(struct ffr_conn_side *s)
{
	if (s->st) {
		ffr_stats_release(s->st, s->slot);
		ffr_stats_unref(s->st);
		s->st = NULL;
	}
	if (s->c)
		s->c->nconns--;
	s->c = NULL;
}

/* The rings' memory, counted against both containers while cn lives. */
static void ring_count(struct ffr_conn *cn, bool add)
{
	uint64_t len = ff_sring_len(cn->ring);
	struct ffr_container *c[2] = {cn->cli.c, cn->srv.c};

	for (int i = 0; i < 2; i++) {
		if (!c[i])
			continue;
		if (add)
			c[i]->ring_bytes += len;
		else
			c[i]->ring_bytes -= len < c[i]->ring_bytes ? len : c[i]->ring_bytes;
	}
}

void ffr_conn_ring_charge(struct ffr_router *r, struct ffr_conn *cn)
{
	ring_count(cn, true);
	r->rings_total++;
	r->ring_bytes += ff_sring_len(cn->ring);
}

void ffr_conn_free(struct ffr_router *r, struct ffr_conn *cn)
{
	if (!cn)
		return;
	if (cn->ring_fd >= 0) {
		ring_count(cn, false);
		r->ring_bytes -= ff_sring_len(cn->ring);
		close(cn->ring_fd);
		close(cn->end_fd[0]);
		close(cn->end_fd[1]);
	}
	if (cn->cli.own_port)
		ffr_port_put(cn->cli.c, cn->cli.addr.port);
	side_clear(&cn->cli);
	side_clear(&cn->srv);
	ino_del(r, &cn->cli);
	ino_del(r, &cn->srv);
	TAILQ_REMOVE(&r->conns, cn, link);
	r->nconns--;
	free(cn);
}

void ffr_conn_detach_container(struct ffr_router *r, struct ffr_container *c)
{
	struct ffr_conn *cn;

	TAILQ_FOREACH (cn, &r->conns, link) {
		if (cn->cli.c == c)
			cn->cli.c = NULL;
		if (cn->srv.c == c)
			cn->srv.c = NULL;
	}
}

struct ffr_conn *ffr_conn_by_ino(struct ffr_router *r, ino_t ino, struct ffr_conn_side **side,
				 struct ffr_conn_side **other)
{
	struct ffr_conn_side *s;

	if (!ino || !r->ino_cap)
		return NULL;
	for (s = r->ino_tab[ino_hash(ino, r->ino_cap)]; s; s = s->hnext) {
		if (s->ino != ino)
			continue;
		*side = s;
		*other = s == &s->cn->cli ? &s->cn->srv : &s->cn->cli;
		return s->cn;
	}
	return NULL;
}
