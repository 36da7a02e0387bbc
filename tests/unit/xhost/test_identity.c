/* Who may speak for whom across hosts (ffrouter/xhost/ingress.c, auth.c,
 * connect.c), with two in-process routers A and B whose ingresses listen
 * on 127.0.0.1, and a host C known to B only:
 * - genuine: a1 on A connects to b1 on B through the routers, and the two
 *   ends talk;
 * - source: a preamble that A sealed but whose source is not one of A's
 *   containers in B's map (C's, B's own, nobody's) reaches no listener;
 * - peer address: a preamble of A's sent from another address than the one
 *   B's map has for A reaches no listener (unless the check is off);
 * - reply MAC: A takes an OK only with a MAC bound to its preamble, from a
 *   fake router F that answers without one, with a wrong one, then right;
 * - race: a captured preamble sent first on another connection, or to
 *   another host than the one it was sealed for, reaches no listener, and
 *   the genuine connection still gets in.
 * Whether a connection got in is seen where it matters: b1's accept
 * queue. */
#include "xhtest.h"

#include "mac.h"

#define A1 "10.200.1.2"
#define B1 "10.200.2.2"
#define C1 "10.200.3.2"
#define F1 "10.200.6.2"

static struct event_base *base;
static struct ffr_router *ra, *rb;
static struct ff_sa ia, ib;        /* their ingresses */
static int cha, chb, qb = -1;     /* a1's and b1's shim channels, b1's accept queue on pb */
static uint16_t pb;

static void setup(void)
{
	if (ra)
		return;
	base = event_base_new();
	/* no warm connections: the fake router F below serves one connection
	 * at a time (warm ones are test_warm's) */
	ra = xt_router(base, "A", "127.0.0.1",
		       &(struct ffr_xhost_config){.warm_set = true, .warm_conns = 0});
	rb = xt_router(base, "B", "127.0.0.1", NULL);
	CU_ASSERT_FATAL(ra && rb);
	ia = xt_ingress(ra);
	ib = xt_ingress(rb);
	xt_host(ra, "B", ib);
	xt_host(rb, "A", ia);
	xt_host(rb, "C", xt_sa("127.0.0.3", 7946));
	cha = xt_shim(base, xt_container(ra, "a1", A1, NULL, FFR_POLICY_CONTAINER));
	xt_container(ra, "b1", B1, "B", FFR_POLICY_CONTAINER);
	chb = xt_shim(base, xt_container(rb, "b1", B1, NULL, FFR_POLICY_CONTAINER));
	xt_container(rb, "a1", A1, "A", FFR_POLICY_CONTAINER);
	xt_container(rb, "c1", C1, "C", FFR_POLICY_CONTAINER);
	pb = xt_listen(base, chb, &qb);
}

/* Whether a connection reached b1's accept queue within ms (taken, closed). */
static bool got_in(int ms)
{
	int64_t end = xt_now_ms() + ms;

	while (xt_now_ms() < end) {
		struct pollfd p = {.fd = qb, .events = POLLIN};
		Ff__Accepted *a;
		int fd;

		xt_pump(base, 5);
		if (poll(&p, 1, 0) != 1)
			continue;
		a = fx_take_accepted(qb, &fd);
		if (a)
			ff__accepted__free_unpacked(a, NULL);
		if (fd >= 0)
			close(fd);
		return true;
	}
	return false;
}

/* A preamble as router A seals it for a1 (unless src_ip says otherwise)
 * to b1 on host dst_host, bound to the connection fd makes to B's
 * ingress. Its frame's length, in buf. */
static int preamble(int fd, const char *src_ip, const char *dst_host, uint8_t *buf, size_t cap)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ff_sa s = xt_sa(src_ip, 40000), d = xt_sa(B1, pb), mine;
	Ff__Addr sm, dm, vs, vd;
	uint8_t sb[16], db[16], vsb[16], vdb[16];

	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
	CU_ASSERT_FATAL(ff_sa_from_sockaddr(&mine, (struct sockaddr *)&ss, len) == 0);
	ff_sa_to_proto(&s, &sm, sb);
	ff_sa_to_proto(&d, &dm, db);
	ff_sa_to_proto(&mine, &vs, vsb);
	ff_sa_to_proto(&ib, &vd, vdb);
	p.src_host = (char *)"A";
	p.src_container = (char *)"a1";
	p.src = &sm;
	p.dst = &dm;
	p.dst_host = (char *)dst_host;
	p.via_src = &vs;
	p.via_dst = &vd;
	return ffr_preamble_seal(ra, &p, buf, cap);
}

/* Sends the frame on fd; whether the connection then reaches b1. */
static bool sent_gets_in(int fd, const uint8_t *buf, int n)
{
	CU_ASSERT_FATAL(n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL) == n);
	return got_in(200);
}

/* A raw connection from from_ip with A's genuine preamble for it. */
static bool raw_gets_in(const char *from_ip, const char *src_ip)
{
	uint8_t buf[FFR_XFRAME_MAX + 2];
	int fd = xt_tcp(from_ip, &ib);
	bool in;

	CU_ASSERT_FATAL(fd >= 0);
	in = sent_gets_in(fd, buf, preamble(fd, src_ip, "B", buf, sizeof(buf)));
	close(fd);
	return in;
}

static void test_genuine(void)
{
	struct ff_sa dst;
	Ff__Reply *rep;
	Ff__Accepted *acc;
	char got[3] = "";
	int cfd, sfd = -1;

	setup();
	dst = xt_sa(B1, pb);
	rep = xt_connect(base, cha, &dst, false, &cfd);
	CU_ASSERT_FATAL(rep != NULL);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_OK);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_FATAL(cfd >= 0);
	xt_pump(base, 20);
	acc = fx_take_accepted(qb, &sfd);
	CU_ASSERT_PTR_NOT_NULL(acc);
	CU_ASSERT_FATAL(sfd >= 0);
	if (acc)
		ff__accepted__free_unpacked(acc, NULL);
	CU_ASSERT(send(cfd, "hi", 2, MSG_NOSIGNAL) == 2);
	CU_ASSERT(recv(sfd, got, 2, MSG_WAITALL) == 2 && !memcmp(got, "hi", 2));
	close(cfd);
	close(sfd);
	/* and a raw connection of the test's with A's genuine preamble */
	CU_ASSERT(raw_gets_in("127.0.0.1", A1));
}

/* 7a: the source must be a container of the sending host */
static void test_source(void)
{
	uint64_t refused;

	setup();
	refused = ffr_xhost_stats(rb)->preambles_refused;
	CU_ASSERT(!raw_gets_in("127.0.0.1", C1));        /* C's */
	CU_ASSERT(!raw_gets_in("127.0.0.1", B1));        /* B's own */
	CU_ASSERT(!raw_gets_in("127.0.0.1", "10.9.9.9")); /* nobody's */
	CU_ASSERT_EQUAL(ffr_xhost_stats(rb)->preambles_refused, refused + 3);
	CU_ASSERT(raw_gets_in("127.0.0.1", A1));
}

/* 7b: from the address B's map has for A */
static void test_peer_address(void)
{
	setup();
	CU_ASSERT(!raw_gets_in("127.0.0.2", A1));
	/* with the check off (NAT between the hosts), the source address is
	 * not checked */
	ffr_xh(rb)->addr_check = false;
	CU_ASSERT(raw_gets_in("127.0.0.2", A1));
	ffr_xh(rb)->addr_check = true;
}

/* ---- 7c: a fake router F answers A's preambles as the test says */

enum { F_NO_MAC, F_WRONG_TAG, F_RIGHT, F_REFUSED_BAD_MAC };

struct fake {
	int lfd, cfd, mode;
	struct event *lev, *cev;
	uint8_t in[FFR_XFRAME_MAX + 2];
	size_t inlen, inwant;
};

static void fake_answer(struct fake *f)
{
	Ff__XReply rep = FF__XREPLY__INIT;
	uint8_t out[512], key[FF_KEY_LEN], macin[FFR_MAC_LEN + 256];
	size_t len;

	rep.status = f->mode == F_REFUSED_BAD_MAC ? FF__STATUS__ST_REFUSED : FF__STATUS__ST_OK;
	rep.error = (char *)"";
	len = ff_msg_pack(&rep.base, out + 2);
	if (f->mode != F_NO_MAC) {
		/* HMAC(reply key, preamble MAC || reply) */
		ff_kdf(XT_SECRET, strlen(XT_SECRET), FFR_KEY_REPLY + 1, key);
		memcpy(macin, f->in + f->inlen - FFR_MAC_LEN, FFR_MAC_LEN);
		if (f->mode != F_RIGHT)
			macin[0] ^= 1; /* for another preamble */
		memcpy(macin + FFR_MAC_LEN, out + 2, len);
		ff_mac(key, sizeof(key), macin, FFR_MAC_LEN + len, out + 2 + len);
		len += FFR_MAC_LEN;
	}
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	CU_ASSERT(send(f->cfd, out, 2 + len, MSG_NOSIGNAL) == (ssize_t)(2 + len));
}

static void fake_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	if (ffr_xframe_read(fd, f->in, sizeof(f->in), &f->inlen, &f->inwant) != 0) {
		event_del(f->cev);
		if (f->inlen == f->inwant)
			fake_answer(f);
	}
}

static void fake_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	f->cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (f->cfd < 0)
		return;
	f->inlen = 0;
	f->inwant = 2;
	f->cev = event_new(base, f->cfd, EV_READ | EV_PERSIST, fake_read_cb, f);
	event_add(f->cev, NULL);
}

/* A connects a1 to f1 on F, which answers in mode; the status a1 gets. */
static Ff__Status via_fake(struct fake *f, int mode, int *cfd)
{
	struct ff_sa dst = xt_sa(F1, 80);
	Ff__Reply *rep;
	Ff__Status st;

	f->mode = mode;
	rep = xt_connect(base, cha, &dst, false, cfd);
	CU_ASSERT_FATAL(rep != NULL);
	st = rep->status;
	ff__reply__free_unpacked(rep, NULL);
	if (f->cev)
		event_free(f->cev);
	f->cev = NULL;
	if (f->cfd >= 0)
		close(f->cfd);
	f->cfd = -1;
	return st;
}

static void test_reply_mac(void)
{
	struct fake f = {.cfd = -1};
	uint16_t port;
	int cfd;

	setup();
	f.lfd = fx_tcp_listener(&port);
	CU_ASSERT_FATAL(f.lfd >= 0);
	f.lev = event_new(base, f.lfd, EV_READ | EV_PERSIST, fake_accept_cb, &f);
	event_add(f.lev, NULL);
	xt_host(ra, "F", xt_sa("127.0.0.1", port));
	xt_container(ra, "f1", F1, "F", FFR_POLICY_CONTAINER);
	/* an OK without a MAC (malformed now), or with one for another
	 * preamble: no connection */
	CU_ASSERT_NOT_EQUAL(via_fake(&f, F_NO_MAC, &cfd), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(cfd, -1);
	CU_ASSERT_NOT_EQUAL(via_fake(&f, F_WRONG_TAG, &cfd), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(cfd, -1);
	CU_ASSERT_EQUAL(ffr_xhost_stats(ra)->replies_refused, 1);
	/* the genuine OK: the connection */
	CU_ASSERT_EQUAL(via_fake(&f, F_RIGHT, &cfd), FF__STATUS__ST_OK);
	CU_ASSERT(cfd >= 0);
	if (cfd >= 0)
		close(cfd);
	/* a refusal that fails its MAC is still no connection */
	CU_ASSERT_EQUAL(via_fake(&f, F_REFUSED_BAD_MAC, &cfd), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(cfd, -1);
	event_free(f.lev);
	close(f.lfd);
}

/* 7d: a preamble belongs to its connection, and to its host */
static void test_race(void)
{
	uint8_t buf[FFR_XFRAME_MAX + 2];
	int x, y, n;

	setup();
	x = xt_tcp("127.0.0.1", &ib);
	y = xt_tcp("127.0.0.1", &ib);
	CU_ASSERT_FATAL(x >= 0 && y >= 0);
	n = preamble(x, A1, "B", buf, sizeof(buf)); /* captured on its way */
	CU_ASSERT(!sent_gets_in(y, buf, n));        /* raced onto another connection */
	CU_ASSERT(sent_gets_in(x, buf, n));         /* the genuine one still gets in */
	close(x);
	close(y);
	/* sealed for host C: refused by B on its own connection */
	x = xt_tcp("127.0.0.1", &ib);
	CU_ASSERT_FATAL(x >= 0);
	CU_ASSERT(!sent_gets_in(x, buf, preamble(x, A1, "C", buf, sizeof(buf))));
	close(x);
}

static void test_teardown(void)
{
	close(cha);
	close(chb);
	close(qb);
	ip_router_free(ra);
	ip_router_free(rb);
	event_base_free(base);
	ra = rb = NULL;
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"genuine", test_genuine},
		{"source", test_source},
		{"peer_address", test_peer_address},
		{"reply_mac", test_reply_mac},
		{"race", test_race},
		{"teardown", test_teardown},
		{0},
	};

	return cu_run("identity", tests);
}
