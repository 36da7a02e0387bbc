/* ffverbs-wire: see ffverbs-wire.h. Every reply is parsed defensively
 * (this is a test of the router, which may be broken). */
#include "ffverbs-wire.h"
#include "ffverbs.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void pb_varint(struct pb *p, uint64_t v)
{
	do {
		p->b[p->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
}

void pb_u(struct pb *p, unsigned f, uint64_t v)
{
	pb_varint(p, (uint64_t)f << 3);
	pb_varint(p, v);
}

void pb_bytes(struct pb *p, unsigned f, const void *d, size_t n)
{
	pb_varint(p, (uint64_t)f << 3 | 2);
	pb_varint(p, n);
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

void pb_sub(struct pb *p, unsigned f, const struct pb *s)
{
	pb_bytes(p, f, s->b, s->n);
}

static const uint8_t *pb_read_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int s = 0; p < end && s < 64; s += 7) {
		*v |= (uint64_t)(*p & 0x7f) << s;
		if (!(*p++ & 0x80))
			return p;
	}
	return NULL;
}

/* Calls fn for each field of [p, end); -1 if malformed. */
static int pb_walk(const uint8_t *p, const uint8_t *end,
		   void (*fn)(void *arg, unsigned f, uint64_t v, const uint8_t *d, size_t n),
		   void *arg)
{
	while (p < end) {
		uint64_t key, v = 0;
		const uint8_t *d = NULL;

		p = pb_read_varint(p, end, &key);
		if (!p)
			return -1;
		if ((key & 7) == 0) {
			p = pb_read_varint(p, end, &v);
		} else if ((key & 7) == 2) {
			p = pb_read_varint(p, end, &v);
			if (!p || v > (uint64_t)(end - p))
				return -1;
			d = p;
			p += v;
		} else {
			return -1;
		}
		if (!p)
			return -1;
		fn(arg, (unsigned)(key >> 3), v, d, (size_t)v);
	}
	return 0;
}

static void gid_field(void *arg, unsigned f, uint64_t v, const uint8_t *d, size_t n)
{
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (f == 1 && d && n == 16 && !memcmp(d, mapped, 12))
		memcpy(arg, d, 16);
}

static void open_field(void *arg, unsigned f, uint64_t v, const uint8_t *d, size_t n)
{
	if (f == 5 && d)
		pb_walk(d, d + n, gid_field, arg);
}

static void obj_field(void *arg, unsigned f, uint64_t v, const uint8_t *d, size_t n)
{
	if (f >= 1 && f <= 10 && !d)
		((uint64_t *)arg)[f] = v;
}

static void reply_field(void *arg, unsigned f, uint64_t v, const uint8_t *d, size_t n)
{
	struct reply *r = arg;

	if (f == 1 && !d)
		r->id = v;
	else if (f == 2 && !d)
		r->status = (uint32_t)v;
	else if (f == 3 && d)
		snprintf(r->error, sizeof(r->error), "%.*s", (int)n, (const char *)d);
	else if (f >= 10 && d) {
		r->body = f;
		if (f == 42)
			pb_walk(d, d + n, obj_field, r->obj);
		else if (f == B_VOPEN)
			pb_walk(d, d + n, open_field, r->gid4);
	}
}

/* ---- datagrams ---- */

int fw_send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* 1: a reply in r; 0: the router closed the socket. Fails on silence. */
int fw_recv(int sock, struct reply *r)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cm;
	static uint8_t buf[65536];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	struct pollfd p = {.fd = sock, .events = POLLIN};
	ssize_t n;

	memset(r, 0, sizeof(*r));
	FFV_CHECK(poll(&p, 1, FFV_TIMEOUT_MS) == 1, "the router did not answer in %d ms",
		  FFV_TIMEOUT_MS);
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	FFV_CHECK(n > 0, "recvmsg: %s", strerror(errno));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			r->nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(r->fds, CMSG_DATA(c), sizeof(int) * (size_t)r->nfds);
		}
	FFV_CHECK(buf[0] == FRAME && !pb_walk(buf + 1, buf + n, reply_field, r),
		  "a malformed reply from the router");
	return 1;
}

void fw_close_fds(struct reply *r)
{
	for (int i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	r->nfds = 0;
}

static uint64_t next_id;

static int fw_send(int sock, unsigned body, const struct pb *sub, const int *fds, int nfds)
{
	static struct pb req;

	req.n = 0;
	req.b[req.n++] = FRAME;
	pb_u(&req, 1, ++next_id);
	pb_sub(&req, body, sub);
	return fw_send_raw(sock, req.b, req.n, fds, nfds);
}

/* One request and its reply (fds of other replies are closed). A reply
 * with id 0 answers a request the router could not read. */
void fw_call(int sock, unsigned body, const struct pb *sub, const int *fds, int nfds,
	     struct reply *r)
{
	int err = fw_send(sock, body, sub, fds, nfds);

	FFV_CHECK(!err, "send: %s", strerror(-err));
	for (;;) {
		FFV_CHECK(fw_recv(sock, r) == 1, "the router closed the socket (request %u)", body);
		if (r->id == next_id || r->id == 0)
			return;
		fw_close_fds(r);
	}
}

const char *fw_status_str(uint32_t st)
{
	static const char *const n[] = {"OK",	       "INVALID",     "NOT_FOUND", "EXISTS",
					"ADDR_IN_USE", "NO_LISTENER", "BUSY",	   "PERM",
					"QUOTA",       "UNSUPPORTED", "VERSION",   "INTERNAL"};

	return st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

/* The request must be refused; with want, the errno must be want. */
void fw_refused(int sock, const char *what, unsigned body, const struct pb *sub, const int *fds,
		int nfds, int want)
{
	struct reply r;
	int err;

	fw_call(sock, body, sub, fds, nfds, &r);
	fw_close_fds(&r);
	err = (int)r.obj[10];
	FFV_CHECK(r.status != 0, "%s was accepted", what);
	FFV_CHECK(!want || err == want, "%s: refused with %s (%s), wanted %s", what,
		  err ? strerror(err) : fw_status_str(r.status), r.error, strerror(want));
	ffv_ok("%s: refused, %s%s%s", what, fw_status_str(r.status), err ? " " : "",
	       err ? strerror(err) : "");
}

void fw_accepted(int sock, const char *what, unsigned body, const struct pb *sub, const int *fds,
		 int nfds, struct reply *r)
{
	fw_call(sock, body, sub, fds, nfds, r);
	FFV_CHECK(r->status == 0, "%s: refused: %s %s", what, fw_status_str(r->status), r->error);
}

/* ---- message builders ---- */

struct pb *fw_msg(void)
{
	static struct pb ring[8];
	static unsigned k;
	struct pb *p = &ring[k++ % 8];

	p->n = 0;
	return p;
}

/* Any message of two numbers (fields 1 and 2): VerbsDestroy, VerbsQueryQp... */
struct pb *m_two(uint32_t kind, uint32_t h)
{
	struct pb *p = fw_msg();

	pb_u(p, 1, kind);
	pb_u(p, 2, h);
	return p;
}

struct pb *m_reg_mr(uint32_t pd, uint64_t addr, uint64_t len, uint32_t access)
{
	struct pb *p = fw_msg();

	pb_u(p, 1, pd);
	pb_u(p, 2, addr);
	pb_u(p, 3, len);
	pb_u(p, 4, addr);
	pb_u(p, 5, access);
	return p;
}

struct pb *m_mem(uint64_t addr, uint64_t len, bool remove)
{
	struct pb *p = fw_msg();

	pb_u(p, 1, addr);
	pb_u(p, 2, len);
	pb_u(p, 3, remove);
	return p;
}

struct pb *m_cq(uint32_t cqe, uint32_t channel)
{
	struct pb *p = fw_msg();

	pb_u(p, 1, cqe);
	pb_u(p, 2, channel);
	pb_u(p, 4, 0x1234);
	return p;
}

struct pb *m_qp(uint32_t pd, uint32_t cq, uint32_t srq, uint32_t type, const struct qp_caps *c)
{
	struct pb *p = fw_msg(), *caps = fw_msg();

	pb_u(p, 1, pd);
	pb_u(p, 2, cq);
	pb_u(p, 3, cq);
	pb_u(p, 4, srq);
	pb_u(p, 5, type);
	if (c) {
		pb_u(caps, 1, c->swr);
		pb_u(caps, 2, c->rwr);
		pb_u(caps, 3, c->ssge);
		pb_u(caps, 4, c->rsge);
		pb_u(caps, 5, c->inl);
		pb_sub(p, 7, caps);
	}
	pb_u(p, 8, 0x5678);
	return p;
}

struct pb *m_ah(const uint8_t *gid, size_t len, bool global, uint32_t port)
{
	struct pb *p = fw_msg();

	pb_bytes(p, 1, gid, len);
	pb_u(p, 3, 1);
	pb_u(p, 4, 64);
	pb_u(p, 10, global);
	pb_u(p, 11, port);
	return p;
}

/* VerbsModifyQp: attr holds VerbsQpAttr fields (mask first). */
struct pb *m_modify(uint32_t qp, const struct pb *attr)
{
	struct pb *p = fw_msg();

	pb_u(p, 1, qp);
	pb_sub(p, 2, attr);
	return p;
}

struct pb *a_init(void)
{
	struct pb *a = fw_msg();

	pb_u(a, 1, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	pb_u(a, 2, IBV_QPS_INIT);
	pb_u(a, 10, IBV_ACCESS_LOCAL_WRITE);
	pb_u(a, 19, 1);
	return a;
}

/* RTR towards qpn at gid (the AV is a VerbsAh). */
struct pb *a_rtr(const struct pb *ah, uint32_t qpn)
{
	struct pb *a = fw_msg();

	pb_u(a, 1,
	     IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
		 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	pb_u(a, 2, IBV_QPS_RTR);
	pb_u(a, 4, IBV_MTU_1024);
	pb_u(a, 7, 0);
	pb_u(a, 9, qpn);
	pb_sub(a, 12, ah);
	pb_u(a, 17, 1);
	pb_u(a, 18, 12);
	return a;
}

struct pb *a_rts(void)
{
	struct pb *a = fw_msg();

	pb_u(a, 1,
	     IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
		 IBV_QP_MAX_QP_RD_ATOMIC);
	pb_u(a, 2, IBV_QPS_RTS);
	pb_u(a, 8, 0);
	pb_u(a, 16, 1);
	pb_u(a, 20, 14);
	pb_u(a, 21, 7);
	pb_u(a, 22, 7);
	return a;
}

struct pb *a_one(uint32_t mask, unsigned f, uint64_t v)
{
	struct pb *a = fw_msg();

	pb_u(a, 1, mask);
	pb_u(a, f, v);
	return a;
}
