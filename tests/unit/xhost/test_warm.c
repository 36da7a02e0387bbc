/* Connection set-up across hosts (ffrouter/xhost/warm.c, connect.c,
 * ingress.c), with two in-process routers A and B on 127.0.0.1:
 * - warm: after a1's first connect to b1, A keeps FFR_WARM_CONNS warm
 *   connections to B, B keeps them past its preamble deadline, and the
 *   next connects take them (no connect of their own) and carry bytes;
 * - rules: B keeps a warm connection only from a host of its map, naming no
 *   connection; its next preamble must be from the same host and not warm
 *   again; anything else is refused, and the connection never reaches b1;
 * - answer here: a connect that reads the other router's answer itself is
 *   handed over before it, with the exact bytes B then sends for an OK (and
 *   not those when B refuses);
 * - off: --warm-conns 0 opens none. */
#include "xhtest.h"

#define A1 "10.200.1.2"
#define B1 "10.200.2.2"

static struct event_base *base;
static struct ffr_router *ra, *rb;
static struct ff_sa ib;
static int cha, chb, qb = -1;
static uint16_t pb;

static void setup(const struct ffr_xhost_config *xa)
{
	struct ffr_xhost_config xb = {.preamble_ms = 300};

	base = event_base_new();
	ra = xt_router(base, "A", "127.0.0.1", xa);
	rb = xt_router(base, "B", "127.0.0.1", &xb);
	CU_ASSERT_FATAL(ra && rb);
	ib = xt_ingress(rb);
	xt_host(ra, "B", ib);
	xt_host(rb, "A", xt_ingress(ra));
	cha = xt_shim(base, xt_container(ra, "a1", A1, NULL, FFR_POLICY_CONTAINER));
	xt_container(ra, "b1", B1, "B", FFR_POLICY_CONTAINER);
	chb = xt_shim(base, xt_container(rb, "b1", B1, NULL, FFR_POLICY_CONTAINER));
	xt_container(rb, "a1", A1, "A", FFR_POLICY_CONTAINER);
	pb = xt_listen(base, chb, &qb);
}

static void teardown(void)
{
	close(cha);
	close(chb);
	close(qb);
	ip_router_free(ra);
	ip_router_free(rb);
	event_base_free(base);
	ra = rb = NULL;
}

/* b1's next accepted connection within ms, or -1. */
static int accepted(int ms)
{
	int64_t end = xt_now_ms() + ms;

	while (xt_now_ms() < end) {
		struct pollfd p = {.fd = qb, .events = POLLIN};
		Ff__Accepted *a;
		int fd = -1;

		xt_pump(base, 5);
		if (poll(&p, 1, 0) != 1)
			continue;
		a = fx_take_accepted(qb, &fd);
		if (a)
			ff__accepted__free_unpacked(a, NULL);
		return fd;
	}
	return -1;
}

/* Connects a1 to b1:port (answer_here as asked); the reply, *cfd. */
static Ff__Reply *connect_b1(uint16_t port, bool here, int *cfd)
{
	struct ff_sa dst = xt_sa(B1, port);

	return xt_connect_ex(base, cha, &dst, false, here, cfd);
}

/* One connect a1 -> b1 without answer_here: bytes both ways. */
static void connect_talk(void)
{
	Ff__Reply *rep;
	char got[3] = "";
	int cfd, sfd;

	rep = connect_b1(pb, false, &cfd);
	CU_ASSERT_FATAL(rep && rep->status == FF__STATUS__ST_OK && cfd >= 0);
	ff__reply__free_unpacked(rep, NULL);
	sfd = accepted(500);
	CU_ASSERT_FATAL(sfd >= 0);
	CU_ASSERT(send(cfd, "hi", 2, MSG_NOSIGNAL) == 2);
	CU_ASSERT(recv(sfd, got, 2, MSG_WAITALL) == 2 && !memcmp(got, "hi", 2));
	CU_ASSERT(send(sfd, "yo", 2, MSG_NOSIGNAL) == 2);
	CU_ASSERT(recv(cfd, got, 2, MSG_WAITALL) == 2 && !memcmp(got, "yo", 2));
	close(cfd);
	close(sfd);
}

static void test_warm(void)
{
	const struct ffr_xhost_stats *sa;

	setup(NULL);
	sa = ffr_xhost_stats(ra);
	CU_ASSERT_EQUAL(ffr_xh(ra)->warm_open, 0); /* none before a container needs B */
	connect_talk();
	CU_ASSERT_EQUAL(sa->warm_cold, 1);
	CU_ASSERT_EQUAL(sa->warm_taken, 0);
	/* the pool fills; B keeps them past its 300 ms preamble deadline */
	xt_pump(base, 600);
	CU_ASSERT_EQUAL(ffr_xh(ra)->warm_open, FFR_WARM_CONNS);
	CU_ASSERT_EQUAL(ffr_xh(rb)->nwarm, FFR_WARM_CONNS);
	CU_ASSERT_EQUAL(ffr_xhost_stats(rb)->ingress_timeouts, 0);
	for (int i = 0; i < 3; i++)
		connect_talk();
	CU_ASSERT_EQUAL(sa->warm_taken, 3);
	CU_ASSERT_EQUAL(sa->warm_cold, 1);
	xt_pump(base, 100); /* topped up again */
	CU_ASSERT_EQUAL(ffr_xh(ra)->warm_open, FFR_WARM_CONNS);
	CU_ASSERT_EQUAL(ffr_xh(rb)->nwarm, FFR_WARM_CONNS);
	teardown();
}

/* A's warm preamble on fd (src_host A), or with what breaks its rules. */
static int warm_frame(int fd, bool with_src, uint8_t *buf, size_t cap)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT;
	struct ffr_xbind b;
	struct ff_sa s = xt_sa(A1, 40000);
	Ff__Addr sm;
	uint8_t sb[16];

	CU_ASSERT_FATAL(ffr_preamble_bind(&p, &b, "B", fd, &ib) == 0);
	p.src_host = (char *)"A";
	p.src_container = (char *)"";
	p.warm = true;
	if (with_src) {
		ff_sa_to_proto(&s, &sm, sb);
		p.src = &sm;
	}
	return ffr_preamble_seal(ra, &p, buf, cap);
}

/* A's preamble for a1 -> b1 on fd. */
static int conn_frame(int fd, uint8_t *buf, size_t cap)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT;
	struct ffr_xbind b;
	struct ff_sa s = xt_sa(A1, 40000), d = xt_sa(B1, pb);
	Ff__Addr sm, dm;
	uint8_t sb[16], db[16];

	CU_ASSERT_FATAL(ffr_preamble_bind(&p, &b, "B", fd, &ib) == 0);
	ff_sa_to_proto(&s, &sm, sb);
	ff_sa_to_proto(&d, &dm, db);
	p.src_host = (char *)"A";
	p.src_container = (char *)"a1";
	p.src = &sm;
	p.dst = &dm;
	return ffr_preamble_seal(ra, &p, buf, cap);
}

/* Whether B answered fd and closed it within 500 ms (the answer read). */
static bool answered_closed(int fd)
{
	int64_t end = xt_now_ms() + 500;
	char c[256];

	while (xt_now_ms() < end) {
		xt_pump(base, 5);
		while (xt_closed(fd) == 2 && recv(fd, c, sizeof(c), MSG_DONTWAIT) > 0)
			;
		if (xt_closed(fd) == 1)
			return true;
	}
	return false;
}

static void send_frame(int fd, const uint8_t *buf, int n)
{
	CU_ASSERT_FATAL(n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL) == n);
}

static void test_rules(void)
{
	uint8_t buf[FFR_XFRAME_MAX + 2];
	uint64_t refused;
	int fd, sfd;

	setup(&(struct ffr_xhost_config){.warm_set = true, .warm_conns = 0});
	/* genuine: kept (no answer, open past the deadline), then serves one
	 * connection */
	fd = xt_tcp("127.0.0.1", &ib);
	CU_ASSERT_FATAL(fd >= 0);
	send_frame(fd, buf, warm_frame(fd, false, buf, sizeof(buf)));
	xt_pump(base, 500);
	CU_ASSERT_EQUAL(xt_closed(fd), 0);
	CU_ASSERT_EQUAL(ffr_xh(rb)->nwarm, 1);
	send_frame(fd, buf, conn_frame(fd, buf, sizeof(buf)));
	sfd = accepted(500);
	CU_ASSERT(sfd >= 0);
	CU_ASSERT_EQUAL(ffr_xh(rb)->nwarm, 0);
	if (sfd >= 0)
		close(sfd);
	close(fd);
	/* warm again on a warm connection: refused, nothing reaches b1 */
	refused = ffr_xhost_stats(rb)->preambles_refused;
	fd = xt_tcp("127.0.0.1", &ib);
	CU_ASSERT_FATAL(fd >= 0);
	send_frame(fd, buf, warm_frame(fd, false, buf, sizeof(buf)));
	xt_pump(base, 50);
	send_frame(fd, buf, warm_frame(fd, false, buf, sizeof(buf)));
	CU_ASSERT(accepted(200) < 0);
	CU_ASSERT(answered_closed(fd));
	CU_ASSERT(ffr_xhost_stats(rb)->preambles_refused > refused);
	close(fd);
	/* a warm preamble that names a connection: not kept */
	refused = ffr_xhost_stats(rb)->warm_refused;
	fd = xt_tcp("127.0.0.1", &ib);
	CU_ASSERT_FATAL(fd >= 0);
	send_frame(fd, buf, warm_frame(fd, true, buf, sizeof(buf)));
	CU_ASSERT(answered_closed(fd));
	CU_ASSERT_EQUAL(ffr_xhost_stats(rb)->warm_refused, refused + 1);
	CU_ASSERT_EQUAL(ffr_xh(rb)->nwarm, 0);
	close(fd);
	/* --warm-conns 0: A opens none */
	connect_talk();
	xt_pump(base, 100);
	CU_ASSERT_EQUAL(ffr_xh(ra)->warm_open, 0);
	CU_ASSERT_EQUAL(ffr_xhost_stats(ra)->warm_taken, 0);
	teardown();
}

/* Reads n bytes from fd within 1 s (pumping both routers); how many came. */
static size_t read_n(int fd, uint8_t *buf, size_t n)
{
	int64_t end = xt_now_ms() + 1000;
	size_t got = 0;

	while (got < n && xt_now_ms() < end) {
		ssize_t r;

		xt_pump(base, 5);
		r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (r == 0)
			break;
		if (r > 0)
			got += (size_t)r;
	}
	return got;
}

static void test_answer_here(void)
{
	uint8_t got[256];
	Ff__Reply *rep;
	char b[3] = "";
	int cfd, sfd;
	size_t n;

	setup(NULL);
	for (int i = 0; i < 2; i++) { /* cold, then warm */
		rep = connect_b1(pb, true, &cfd);
		CU_ASSERT_FATAL(rep && rep->status == FF__STATUS__ST_OK && cfd >= 0);
		CU_ASSERT_FATAL(rep->connect->answer.len > 0 && rep->connect->answer.len < sizeof(got));
		CU_ASSERT(rep->connect->answer_ms > 0);
		n = read_n(cfd, got, rep->connect->answer.len);
		CU_ASSERT_EQUAL(n, rep->connect->answer.len);
		CU_ASSERT(!memcmp(got, rep->connect->answer.data, rep->connect->answer.len));
		ff__reply__free_unpacked(rep, NULL);
		sfd = accepted(500);
		CU_ASSERT_FATAL(sfd >= 0);
		CU_ASSERT(send(sfd, "ok", 2, MSG_NOSIGNAL) == 2);
		CU_ASSERT(recv(cfd, b, 2, MSG_WAITALL) == 2 && !memcmp(b, "ok", 2));
		close(cfd);
		close(sfd);
		xt_pump(base, 50);
	}
	CU_ASSERT(ffr_xhost_stats(ra)->answered_early >= 2);
	/* nothing listens on pb + 1: B's answer is not the OK one */
	rep = connect_b1((uint16_t)(pb + 1), true, &cfd);
	CU_ASSERT_FATAL(rep && rep->status == FF__STATUS__ST_OK && cfd >= 0);
	n = read_n(cfd, got, rep->connect->answer.len);
	CU_ASSERT(n < rep->connect->answer.len ||
		  memcmp(got, rep->connect->answer.data, rep->connect->answer.len) != 0);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT(accepted(100) < 0);
	close(cfd);
	teardown();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"warm", test_warm},
		{"rules", test_rules},
		{"answer_here", test_answer_here},
		{0},
	};

	return cu_run("warm", tests);
}
