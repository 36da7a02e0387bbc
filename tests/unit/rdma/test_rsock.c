/* ffrouter/rdma/sock: sockets across hosts over RDMA, between two
 * in-process routers A and B on the fake device, with the cluster secret
 * and their ingresses on loopback. The fake device's wire
 * (fake_ibv_wire) carries each router's SENDs into the other's posted
 * receives, turned by a timer of the test's loop, so that the routers'
 * whole protocol runs: the pair's set-up through the ingress, OPEN and
 * ACCEPT, data both ways with credits and windows, FIN, RST.
 *   - a stream both ways, byte for byte, half-close and close;
 *   - a reader that does not read: the writer is stopped by the window,
 *     the router holds at most a window for it, and every byte arrives
 *     once it reads;
 *   - a connect to a port nobody listens on is refused (ECONNREFUSED's
 *     status), and an OPEN whose source is no container of the asking
 *     host reaches no listener;
 *   - a hostile peer: each malformed message (bad magic, length, credits,
 *     record length, type, a window overrun, an ACK of bytes never sent)
 *     ends the pair, never the router; its connections see EOF; and 400
 *     messages mutated at random: the router goes on, and the next
 *     connection carries its bytes;
 *   - B with sockets over RDMA off: A's connect goes over TCP instead,
 *     counted as a fallback;
 *   - either container registered with transport tcp: TCP, RDMA never
 *     tried; the stores' record line keeps it;
 *   - b1 closes with data unread (TCP's reset): a1's read fails with
 *     ECONNRESET, and its send then with EPIPE;
 *   - B's router dies: A's app reads ECONNRESET at once, nothing hangs. */
#include "../xhost/xhtest.h"
#include "fake-ibv.h"
#include "rdma/sock/internal.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>

#define A1 "10.210.1.2"
#define B1 "10.210.2.2"
#define C1 "10.210.3.2"

static struct event_base *base;
static struct ffr_router *ra, *rb;
static struct event *wire_ev;
static int cha, chb, qb = -1; /* a1's and b1's shim channels, b1's accept queue */
static uint16_t pb;

/* ---- the wire ---- */

static struct fake_qp *fqp(const struct rs_pair *p)
{
	return p->qp ? fake_ibv_qp(p->qp->qp_num) : NULL;
}

static void wire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rs *sa = ra ? ffr_rsock_of(ra) : NULL, *sb = rb ? ffr_rsock_of(rb) : NULL;
	struct rs_pair *p, *q;

	if (!sa || !sb)
		return;
	TAILQ_FOREACH (p, &sa->pairs, link)
		TAILQ_FOREACH (q, &sb->pairs, link) {
			struct fake_qp *x = fqp(p), *y = fqp(q);

			if (!x || !y || p->peer_qpn != y->qp.qp_num || q->peer_qpn != x->qp.qp_num)
				continue;
			fake_ibv_wire(x, y);
			fake_ibv_wire(y, x);
		}
}

static struct ffr_router *router(const char *host)
{
	struct ffr_rdma_config rc = {.path = FFR_VPATH_RING};
	struct ffr_rsock_config sc = {0};
	struct ffr_router *r = xt_router(base, host, "127.0.0.1", NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL_FATAL(ffr_rdma_attach_ibv(r, &rc, &fake_ibv), 0);
	CU_ASSERT_EQUAL_FATAL(ffr_rsock_attach(r, &sc), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ffr_rsock_of(r));
	return r;
}

static void rhost(struct ffr_router *r, const char *name, struct ff_sa addr)
{
	CU_ASSERT_FATAL(ffr_host_add(r, name, &addr, true, NULL) == 0);
}

static void setup(void)
{
	struct timeval ms = {0, 1000};

	if (ra)
		return;
	base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	fake_ibv_reset();
	ra = router("A");
	rb = router("B");
	rhost(ra, "B", xt_ingress(rb));
	rhost(rb, "A", xt_ingress(ra));
	rhost(rb, "C", xt_sa("127.0.0.3", 7946));
	cha = xt_shim(base, xt_container(ra, "a1", A1, NULL, FFR_POLICY_CONTAINER));
	xt_container(ra, "b1", B1, "B", FFR_POLICY_CONTAINER);
	chb = xt_shim(base, xt_container(rb, "b1", B1, NULL, FFR_POLICY_CONTAINER));
	xt_container(rb, "a1", A1, "A", FFR_POLICY_CONTAINER);
	xt_container(rb, "c1", C1, "C", FFR_POLICY_CONTAINER);
	pb = xt_listen(base, chb, &qb);
	wire_ev = event_new(base, -1, EV_PERSIST, wire_cb, NULL);
	CU_ASSERT_FATAL(wire_ev && event_add(wire_ev, &ms) == 0);
}

/* ---- helpers ---- */

/* a1 connects to b1:port; *cfd its end, *sfd b1's (if one reached the
 * queue within 2 s). Returns the reply's status; *path the path. */
static int connect_b1(uint16_t port, int *cfd, int *sfd, Ff__Path *path)
{
	struct ff_sa dst = xt_sa(B1, port);
	Ff__Reply *rep = xt_connect(base, cha, &dst, false, cfd);
	int st = rep ? (int)rep->status : -1;
	int64_t end = xt_now_ms() + 2000;

	*path = rep && rep->connect ? rep->connect->path : FF__PATH__PATH_NONE;
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	*sfd = -1;
	while (st == 0 && xt_now_ms() < end) {
		struct pollfd p = {.fd = qb, .events = POLLIN};
		Ff__Accepted *acc;

		xt_pump(base, 2);
		if (poll(&p, 1, 0) != 1)
			continue;
		acc = fx_take_accepted(qb, sfd);
		CU_ASSERT_PTR_NOT_NULL(acc);
		if (acc) {
			CU_ASSERT_EQUAL(acc->path, *path);
			ff__accepted__free_unpacked(acc, NULL);
		}
		break;
	}
	return st;
}

static struct rs_pair *pair_of(struct ffr_router *r)
{
	return TAILQ_FIRST(&ffr_rsock_of(r)->pairs);
}

/* Pumps until fd reads EOF (or ms pass); what it read before is dropped.
 * Returns true at EOF. */
static bool reads_eof(int fd, int ms)
{
	int64_t end = xt_now_ms() + ms;
	char buf[4096];

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (xt_now_ms() < end) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return true;
		if (n < 0 && errno != EAGAIN)
			return true; /* ECONNRESET: an end too */
		xt_pump(base, 2);
	}
	return false;
}

/* Whether this process may take a file of a process by pidfd_getfd, as
 * the router does to reset an app (not under valgrind 3.19: ENOSYS). The
 * router then closes its end plainly: the app reads EOF. */
static bool can_getfd(void)
{
	int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0), fd = -1;

	if (pfd >= 0)
		fd = (int)syscall(SYS_pidfd_getfd, pfd, 0, 0);
	if (pfd >= 0)
		close(pfd);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* Pumps until a read of fd fails with ECONNRESET (true), or reads EOF or
 * ms pass (false). Without pidfd_getfd, EOF is what the router can give
 * (true), said once. */
static bool reads_reset(int fd, int ms)
{
	static int can = -1;
	int64_t end = xt_now_ms() + ms;
	char buf[4096];

	if (can < 0) {
		can = can_getfd();
		if (!can)
			fprintf(stderr, "no pidfd_getfd here: a reset is an EOF\n");
	}
	if (!can)
		return reads_eof(fd, ms);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (xt_now_ms() < end) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return false;
		if (n < 0 && errno != EAGAIN)
			return errno == ECONNRESET;
		xt_pump(base, 2);
	}
	return false;
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 11));
}

/* Moves len bytes of the pattern from wfd to rfd (both non-blocking),
 * pumping the routers, reading as it goes unless slow. Returns how many
 * arrived, checking each. */
static uint64_t stream(int wfd, int rfd, uint64_t len)
{
	static uint8_t buf[65536];
	uint64_t sent = 0, got = 0;
	int64_t end = xt_now_ms() + 20000;
	bool bad = false;

	fcntl(wfd, F_SETFL, O_NONBLOCK);
	fcntl(rfd, F_SETFL, O_NONBLOCK);
	while (got < len && xt_now_ms() < end) {
		if (sent < len) {
			size_t n = len - sent < sizeof(buf) ? (size_t)(len - sent) : sizeof(buf);
			ssize_t w;

			for (size_t i = 0; i < n; i++)
				buf[i] = pattern(sent + i);
			w = send(wfd, buf, n, MSG_NOSIGNAL);
			if (w > 0)
				sent += (uint64_t)w;
		}
		for (;;) {
			ssize_t r = read(rfd, buf, sizeof(buf));

			if (r <= 0)
				break;
			for (ssize_t i = 0; i < r; i++)
				bad |= buf[i] != pattern(got + (uint64_t)i);
			got += (uint64_t)r;
		}
		xt_pump(base, 1);
	}
	CU_ASSERT(!bad);
	return got;
}

/* ---- tests ---- */

static void test_stream(void)
{
	struct rs *sa, *sb;
	int cfd, sfd;
	Ff__Path path;
	char bye[4] = "";

	setup();
	CU_ASSERT_EQUAL_FATAL(connect_b1(pb, &cfd, &sfd, &path), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(path, FF__PATH__PATH_RDMA);
	CU_ASSERT_FATAL(cfd >= 0 && sfd >= 0);
	sa = ffr_rsock_of(ra);
	sb = ffr_rsock_of(rb);
	CU_ASSERT_EQUAL(sa->conns, 1);
	CU_ASSERT_EQUAL(sb->conns, 1);
	CU_ASSERT_EQUAL(stream(cfd, sfd, 3u << 20), 3u << 20);
	CU_ASSERT_EQUAL(stream(sfd, cfd, 100000), 100000);
	CU_ASSERT(pair_of(ra)->tx_bytes >= 3u << 20);
	CU_ASSERT(pair_of(rb)->rx_bytes >= 3u << 20);
	/* half-close: b1 reads EOF, and may still answer */
	CU_ASSERT_EQUAL(shutdown(cfd, SHUT_WR), 0);
	CU_ASSERT(reads_eof(sfd, 2000));
	CU_ASSERT_EQUAL(send(sfd, "bye", 3, MSG_NOSIGNAL), 3);
	close(sfd);
	for (int64_t end = xt_now_ms() + 2000; xt_now_ms() < end;) {
		if (recv(cfd, bye, 3, MSG_DONTWAIT | MSG_PEEK) == 3)
			break;
		xt_pump(base, 2);
	}
	CU_ASSERT(recv(cfd, bye, 3, MSG_DONTWAIT) == 3 && !memcmp(bye, "bye", 3));
	CU_ASSERT(reads_eof(cfd, 2000));
	close(cfd);
	xt_pump(base, 50);
	CU_ASSERT_EQUAL(sa->conns, 0);
	CU_ASSERT_EQUAL(sb->conns, 0);
	CU_ASSERT_EQUAL(pair_of(ra)->nconns, 0);
	CU_ASSERT_EQUAL(pair_of(rb)->nconns, 0);
	CU_ASSERT_EQUAL(sa->conns_total, 1);
}

static void test_slow_reader(void)
{
	static uint8_t buf[65536];
	uint64_t sent = 0;
	int cfd, sfd, idle = 0;
	Ff__Path path;

	setup();
	CU_ASSERT_EQUAL_FATAL(connect_b1(pb, &cfd, &sfd, &path), FF__STATUS__ST_OK);
	CU_ASSERT_FATAL(cfd >= 0 && sfd >= 0);
	fcntl(cfd, F_SETFL, O_NONBLOCK);
	/* b1 does not read: a1 writes until nothing more goes for a while */
	while (idle < 100) {
		ssize_t w;

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(sent + i);
		w = send(cfd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (w > 0) {
			sent += (uint64_t)w;
			idle = 0;
		} else {
			idle++;
		}
		xt_pump(base, 1);
		CU_ASSERT_FATAL(sent < (256u << 20));
	}
	/* what B holds for the reader is one window at most */
	CU_ASSERT(pair_of(rb)->staged <= pair_of(rb)->window);
	CU_ASSERT(sent > pair_of(rb)->window);
	{
		uint64_t n = 0;
		bool bad = false;
		int64_t end = xt_now_ms() + 10000;

		fcntl(sfd, F_SETFL, O_NONBLOCK);
		while (n < sent && xt_now_ms() < end) {
			ssize_t r = read(sfd, buf, sizeof(buf));

			for (ssize_t i = 0; i < r; i++)
				bad |= buf[i] != pattern(n + (uint64_t)i);
			if (r > 0)
				n += (uint64_t)r;
			xt_pump(base, 1);
		}
		CU_ASSERT(!bad);
		CU_ASSERT_EQUAL(n, sent);
	}
	CU_ASSERT_EQUAL(pair_of(rb)->staged, 0);
	close(cfd);
	close(sfd);
	xt_pump(base, 50);
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->conns, 0);
	CU_ASSERT_EQUAL(ffr_rsock_of(rb)->conns, 0);
}

/* b1 closes with bytes unread: a1 sees TCP's reset */
static void test_reset(void)
{
	int cfd, sfd, rc;
	Ff__Path path;

	setup();
	CU_ASSERT_EQUAL_FATAL(connect_b1(pb, &cfd, &sfd, &path), FF__STATUS__ST_OK);
	CU_ASSERT_FATAL(cfd >= 0 && sfd >= 0);
	CU_ASSERT_EQUAL(send(cfd, "0123456789", 10, MSG_NOSIGNAL), 10);
	for (int64_t end = xt_now_ms() + 2000; xt_now_ms() < end;) {
		int q = 0;

		if (ioctl(sfd, FIONREAD, &q) == 0 && q == 10)
			break;
		xt_pump(base, 2);
	}
	close(sfd); /* 10 bytes unread */
	CU_ASSERT(reads_reset(cfd, 3000));
	rc = (int)send(cfd, "x", 1, MSG_NOSIGNAL);
	CU_ASSERT(rc == -1 && errno == EPIPE);
	close(cfd);
	xt_pump(base, 50);
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->conns, 0);
	CU_ASSERT_EQUAL(ffr_rsock_of(rb)->conns, 0);
}

static void test_refused(void)
{
	uint16_t nobody = (uint16_t)(pb + 1);
	int cfd, sfd;
	Ff__Path path;
	uint64_t refused;

	setup();
	refused = ffr_rsock_of(ra)->refused;
	CU_ASSERT_EQUAL(connect_b1(nobody, &cfd, &sfd, &path), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(cfd, -1);
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->refused, refused + 1);
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->conns, 0);
	CU_ASSERT_EQUAL(ffr_rsock_of(rb)->conns, 0);
}

/* One message into B's next posted receive, as if from A's router. */
static void inject(const void *msg, uint32_t len)
{
	struct rs_pair *p = pair_of(rb);
	struct fake_qp *q = p ? fqp(p) : NULL;
	struct ibv_wc wc = {.opcode = IBV_WC_RECV, .byte_len = len};

	CU_ASSERT_FATAL(q && q->nrq > 0);
	memcpy((void *)(uintptr_t)q->rq[0].addr, msg, len);
	wc.wr_id = q->rq[0].wr_id;
	memmove(q->rq, q->rq + 1, --q->nrq * sizeof(q->rq[0]));
	fake_ibv_cq_push((struct fake_cq *)q->qp.recv_cq, &wc);
}

struct msg {
	struct rs_hdr h;
	uint8_t body[256];
	uint32_t len;
};

static void msg_init(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	m->h.magic = htole32(RS_MAGIC);
	m->len = sizeof(m->h);
}

static void msg_rec(struct msg *m, uint8_t type, uint32_t id, uint32_t arg, const void *p,
		    uint32_t len)
{
	struct rs_rec r = {.type = type, .id = htole32(id), .len = htole32(len),
			   .arg = htole32(arg)};

	memcpy((uint8_t *)m + m->len, &r, sizeof(r));
	m->len += sizeof(r);
	if (len)
		memcpy((uint8_t *)m + m->len, p, len);
	m->len += len;
	m->h.nrec++;
}

static void msg_end(struct msg *m)
{
	m->h.len = htole32(m->len);
	m->h.nrec = htole32(m->h.nrec);
}

/* A connection a1 -> b1 up over a fresh pair; its two ends. */
static void conn_up(int *cfd, int *sfd)
{
	Ff__Path path;

	CU_ASSERT_EQUAL_FATAL(connect_b1(pb, cfd, sfd, &path), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(path, FF__PATH__PATH_RDMA);
	CU_ASSERT_FATAL(*cfd >= 0 && *sfd >= 0);
}

/* B's id of its only connection. */
static uint32_t b_conn_id(void)
{
	struct rs_pair *p = pair_of(rb);

	for (uint32_t i = 0; i < p->cap; i++)
		if (p->tab[i])
			return p->tab[i]->id;
	CU_FAIL_FATAL("B has no connection");
	return 0;
}

enum bad {
	BAD_MAGIC,
	BAD_LEN,
	BAD_CREDITS,
	BAD_RECLEN,
	BAD_TYPE,
	BAD_WINDOW,
	BAD_ACK,
	BAD_OPENLEN,
	BAD_SHORT,
	BADS,
};

static void test_hostile(void)
{
	static uint8_t big[RS_BUF_SIZE];

	setup();
	for (int k = 0; k < BADS; k++) {
		uint64_t fails = ffr_rsock_of(rb)->pair_failures;
		struct msg m;
		int cfd, sfd;
		uint32_t id;

		conn_up(&cfd, &sfd);
		id = b_conn_id();
		msg_init(&m);
		switch (k) {
		case BAD_MAGIC:
			m.h.magic = 0x12345678;
			break;
		case BAD_LEN:
			m.len += 8;
			msg_end(&m);
			m.h.len = htole32(m.len - 4);
			inject(&m, m.len);
			goto check;
		case BAD_CREDITS:
			m.h.credits = htole32(RS_NBUF + 1);
			break;
		case BAD_RECLEN:
			msg_rec(&m, RS_ACK, id, 0, NULL, 0);
			((struct rs_rec *)m.body)->len = htole32(1000);
			break;
		case BAD_TYPE:
			msg_rec(&m, 99, id, 0, NULL, 0);
			break;
		case BAD_WINDOW: {
			struct rs_hdr h = {.magic = htole32(RS_MAGIC), .nrec = htole32(1)};
			struct rs_rec r = {.type = RS_DATA, .id = htole32(id)};
			uint32_t n = pair_of(rb)->window + 1;

			/* one more byte than the window, in messages of 60 KiB,
			 * all arriving before B can acknowledge any */
			for (uint32_t left = n; left;) {
				uint32_t len = left < 60000 ? left : 60000;

				r.len = htole32(len);
				h.len = htole32((uint32_t)(sizeof(h) + sizeof(r)) + len);
				memcpy(big, &h, sizeof(h));
				memcpy(big + sizeof(h), &r, sizeof(r));
				inject(big, le32toh(h.len)); /* all before B looks */
				left -= len;
			}
			goto check;
		}
		case BAD_ACK:
			msg_rec(&m, RS_ACK, id, 1, NULL, 0); /* nothing was sent */
			break;
		case BAD_OPENLEN:
			msg_rec(&m, RS_OPEN, 7, 0, "xy", 2);
			break;
		case BAD_SHORT:
			inject(&m, 3);
			goto check;
		}
		msg_end(&m);
		inject(&m, m.len);
check:
		CU_ASSERT(reads_eof(sfd, 2000));
		CU_ASSERT(reads_eof(cfd, 2000));
		CU_ASSERT_EQUAL(ffr_rsock_of(rb)->pair_failures, fails + 1);
		CU_ASSERT_PTR_NULL(pair_of(rb));
		close(cfd);
		close(sfd);
		xt_pump(base, 20);
		CU_ASSERT_PTR_NULL(pair_of(ra));
	}
}

/* A hostile peer at random: messages mutated from well-formed ones (the
 * header's fields, record types, ids, lengths and args, the message's
 * length), 400 of them into B, as if from A. Whatever each does (taken,
 * dropped, or the pair ended), B's router goes on: the next connection
 * comes up and carries bytes, and at the end nothing is left. Under the
 * sanitizers and valgrind every read of a peer's length is checked too. */
static void test_random_messages(void)
{
	static uint8_t m[RS_BUF_SIZE];
	unsigned seed = 1234567;
	int cfd = -1, sfd = -1;

	setup();
	for (int k = 0; k < 400; k++) {
		struct rs_hdr h = {.magic = htole32(RS_MAGIC)};
		uint32_t len = sizeof(h), nrec = 1 + rand_r(&seed) % 4, id;

		if (!pair_of(rb) || !pair_of(rb)->nconns || cfd < 0) {
			if (cfd >= 0)
				close(cfd), close(sfd);
			xt_pump(base, 5);
			conn_up(&cfd, &sfd);
		}
		id = rand_r(&seed) % 4 ? b_conn_id() : (uint32_t)rand_r(&seed);
		for (uint32_t i = 0; i < nrec; i++) {
			struct rs_rec r = {.type = (uint8_t)(1 + rand_r(&seed) % 8),
					   .id = htole32(id)};
			uint32_t plen = rand_r(&seed) % 3 ? (uint32_t)(rand_r(&seed) % 64) : 0;

			if (r.type == RS_OPEN && rand_r(&seed) % 2)
				plen = sizeof(struct rs_open);
			r.len = htole32(plen);
			r.arg = htole32(rand_r(&seed) % 3 ? (uint32_t)(rand_r(&seed) % 8)
							  : (uint32_t)rand_r(&seed));
			if (rand_r(&seed) % 16 == 0)
				r.len = htole32((uint32_t)rand_r(&seed));
			memcpy(m + len, &r, sizeof(r));
			len += sizeof(r);
			for (uint32_t j = 0; j < plen; j++)
				m[len + j] = (uint8_t)rand_r(&seed);
			len += plen;
		}
		h.nrec = htole32(rand_r(&seed) % 16 ? nrec : (uint32_t)rand_r(&seed));
		h.len = htole32(rand_r(&seed) % 16 ? len : len + 1);
		h.credits = htole32(rand_r(&seed) % 16 ? 0 : (uint32_t)rand_r(&seed) % 64);
		memcpy(m, &h, sizeof(h));
		if (rand_r(&seed) % 16 == 0)
			len = (uint32_t)rand_r(&seed) % len;
		pair_of(ra)->credits--; /* as if A had sent it */
		inject(m, len);
		xt_pump(base, 2);
	}
	close(cfd);
	close(sfd);
	xt_pump(base, 20);
	conn_up(&cfd, &sfd);
	CU_ASSERT_EQUAL(stream(cfd, sfd, 100000), 100000);
	close(cfd);
	close(sfd);
	xt_pump(base, 50);
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->conns, 0);
	CU_ASSERT_EQUAL(ffr_rsock_of(rb)->conns, 0);
}

/* An OPEN naming a source that is no container of A (c1 is C's) reaches
 * no listener, and B answers it with a REFUSE. */
static void test_open_source(void)
{
	struct rs_open o = {.family = AF_INET};
	struct ff_sa s = xt_sa(C1, 5000), d = xt_sa(B1, pb);
	struct msg m;
	struct pollfd p = {.fd = -1, .events = POLLIN};
	int cfd, sfd;
	uint64_t sends;

	setup();
	conn_up(&cfd, &sfd);
	o.sport = htole16(s.port);
	o.dport = htole16(d.port);
	memcpy(o.sip, s.ip.ip, 16);
	memcpy(o.dip, d.ip.ip, 16);
	msg_init(&m);
	msg_rec(&m, RS_OPEN, 77, 0, &o, sizeof(o));
	msg_end(&m);
	sends = fqp(pair_of(rb))->sends;
	/* as if A had sent it: A's count of B's buffers must agree, or B's
	 * return of that buffer would be more credits than A gave away */
	pair_of(ra)->credits--;
	inject(&m, m.len);
	xt_pump(base, 50);
	p.fd = qb;
	CU_ASSERT_EQUAL(poll(&p, 1, 0), 0);
	CU_ASSERT(fqp(pair_of(rb))->sends > sends);
	CU_ASSERT_PTR_NOT_NULL(pair_of(rb)); /* a refusal, not a broken pair */
	close(cfd);
	close(sfd);
	xt_pump(base, 50);
}

static void test_fallback(void)
{
	uint64_t fb;
	int cfd, sfd;
	Ff__Path path;
	struct rs_pair *p;

	setup();
	/* no pair now: the next connect asks B for one, which B refuses */
	while ((p = pair_of(ra)))
		rs_pair_down(p, "test");
	xt_pump(base, 50);
	ffr_rsock_of(rb)->enabled = false;
	fb = ffr_rsock_of(ra)->fallbacks;
	CU_ASSERT_EQUAL_FATAL(connect_b1(pb, &cfd, &sfd, &path), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(path, FF__PATH__PATH_TCP);
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->fallbacks, fb + 1);
	CU_ASSERT_FATAL(cfd >= 0 && sfd >= 0);
	CU_ASSERT(send(cfd, "hi", 2, MSG_NOSIGNAL) == 2);
	{
		char got[2];

		CU_ASSERT(recv(sfd, got, 2, MSG_WAITALL) == 2 && !memcmp(got, "hi", 2));
	}
	close(cfd);
	close(sfd);
	ffr_rsock_of(rb)->enabled = true;
	xt_pump(base, 50);
}

/* Transport tcp on either container keeps their connections off RDMA
 * (no fallback: RDMA was never tried), and the stores keep it. */
static void test_transport_tcp(void)
{
	struct ffr_container *a1, *b1;
	struct ffr_record rec;
	uint64_t fb, total;
	int cfd, sfd;
	Ff__Path path;
	char line[512];

	setup();
	a1 = ffr_container_find(ra, "a1");
	b1 = ffr_container_find(ra, "b1");
	CU_ASSERT_FATAL(a1 && b1);
	fb = ffr_rsock_of(ra)->fallbacks;
	total = ffr_rsock_of(ra)->conns_total;
	for (int k = 0; k < 2; k++) {
		a1->tcp_only = k == 0;
		b1->tcp_only = k == 1;
		CU_ASSERT_EQUAL_FATAL(connect_b1(pb, &cfd, &sfd, &path), FF__STATUS__ST_OK);
		CU_ASSERT_EQUAL(path, FF__PATH__PATH_TCP);
		CU_ASSERT_FATAL(cfd >= 0 && sfd >= 0);
		close(cfd);
		close(sfd);
	}
	a1->tcp_only = b1->tcp_only = false;
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->fallbacks, fb);
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->conns_total, total);
	/* the record line of the stores (state file, etcd) */
	b1->tcp_only = true;
	CU_ASSERT(ffr_record_format(ra, b1, line, sizeof(line)) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(line, " transport=tcp"));
	CU_ASSERT_EQUAL(ffr_record_parse(line, &rec), 1);
	CU_ASSERT(rec.tcp_only);
	b1->tcp_only = false;
	CU_ASSERT(ffr_record_format(ra, b1, line, sizeof(line)) > 0);
	CU_ASSERT_PTR_NULL(strstr(line, "transport"));
	CU_ASSERT_EQUAL(ffr_record_parse("container x ips=10.9.9.9 host=B transport=udp", &rec),
			-EINVAL);
	xt_pump(base, 50);
}

/* B's router goes: A's lifeline ends, and so does a1's connection. */
static void test_router_dies(void)
{
	int cfd, sfd;
	int64_t t0;

	setup();
	conn_up(&cfd, &sfd);
	close(chb);
	close(qb);
	close(sfd);
	ffr_router_free(rb);
	rb = NULL;
	t0 = xt_now_ms();
	/* the router found a1's end in this process and reset it */
	CU_ASSERT(reads_reset(cfd, 3000));
	CU_ASSERT(xt_now_ms() - t0 < 3000);
	CU_ASSERT_PTR_NULL(pair_of(ra));
	CU_ASSERT_EQUAL(ffr_rsock_of(ra)->conns, 0);
	close(cfd);
	close(cha);
	event_free(wire_ev);
	ffr_router_free(ra);
	ra = NULL;
	event_base_free(base);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 0);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"stream", test_stream},
		{"slow_reader", test_slow_reader},
		{"reset", test_reset},
		{"refused", test_refused},
		{"hostile", test_hostile},
		{"open_source", test_open_source},
		{"random_messages", test_random_messages},
		{"fallback", test_fallback},
		{"transport_tcp", test_transport_tcp},
		{"router_dies", test_router_dies},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("rsock", tests);
}
