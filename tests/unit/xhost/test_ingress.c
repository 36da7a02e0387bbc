/* ffrouter/xhost/ingress.c against connections that never finish their
 * preamble: a client dribbling a byte every 100 ms is cut at the deadline
 * (counted from accept, not from its last byte); one source cannot hold
 * more than its share of the connections waiting for a preamble, nor all
 * sources more than the total, and one over the cap is closed at once
 * while another source still gets in. What it counts reaches ffctl status. */
#include "xhtest.h"

static struct event_base *base;

/* Waits up to ms for the router to close fd; the time it took, or -1. */
static int closed_within(int fd, int ms)
{
	int64_t t0 = xt_now_ms();

	while (xt_now_ms() - t0 < ms) {
		xt_pump(base, 10);
		if (xt_closed(fd) == 1)
			return (int)(xt_now_ms() - t0);
	}
	return -1;
}

static void test_deadline(void)
{
	struct ffr_xhost_config xc = {.preamble_ms = 1000};
	struct ffr_router *r;
	struct ff_sa in;
	int64_t t0, cut = -1;
	uint8_t len[2] = {0x03, 0xe8}; /* a 1000-byte preamble is coming */
	int fd;

	base = event_base_new();
	r = xt_router(base, "B", "127.0.0.1", &xc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	in = xt_ingress(r);
	fd = xt_tcp(NULL, &in);
	CU_ASSERT_FATAL(fd >= 0);
	t0 = xt_now_ms();
	CU_ASSERT(send(fd, len, 2, MSG_NOSIGNAL) == 2);
	/* one byte every 100 ms, for up to three deadlines */
	while (xt_now_ms() - t0 < 3000) {
		xt_pump(base, 100);
		if (xt_closed(fd) == 1) {
			cut = xt_now_ms() - t0;
			break;
		}
		send(fd, "x", 1, MSG_NOSIGNAL);
	}
	CU_ASSERT(cut >= 900 && cut <= 1500);
	if (cut < 0)
		fprintf(stderr, "a dribbling client was never cut\n");
	else
		fprintf(stderr, "cut after %d ms (deadline 1000)\n", (int)cut);
	CU_ASSERT_EQUAL(ffr_xhost_stats(r)->ingress_timeouts, 1);
	/* a silent one: the same deadline */
	close(fd);
	fd = xt_tcp(NULL, &in);
	CU_ASSERT_FATAL(fd >= 0);
	cut = closed_within(fd, 2000);
	CU_ASSERT(cut >= 900 && cut <= 1500);
	CU_ASSERT_EQUAL(ffr_xhost_stats(r)->ingress_timeouts, 2);
	close(fd);
	ip_router_free(r);
	event_base_free(base);
}

static void test_caps(void)
{
	struct ffr_xhost_config xc = {.ingress_pending = 5, .ingress_per_source = 3};
	struct ffr_router *r;
	struct ff_sa in;
	int one[4], two, three, four, again;

	base = event_base_new();
	r = xt_router(base, "B", "127.0.0.1", &xc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	in = xt_ingress(r);
	/* three idle connections from 127.0.0.1: all wait */
	for (int i = 0; i < 3; i++) {
		one[i] = xt_tcp("127.0.0.1", &in);
		CU_ASSERT_FATAL(one[i] >= 0);
	}
	xt_pump(base, 50);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(xt_closed(one[i]), 0);
	/* the fourth is closed at once, far before any deadline */
	one[3] = xt_tcp("127.0.0.1", &in);
	CU_ASSERT_FATAL(one[3] >= 0);
	CU_ASSERT(closed_within(one[3], 500) >= 0);
	CU_ASSERT_EQUAL(ffr_xhost_stats(r)->ingress_overcap, 1);
	/* another source still gets in, and a third: five wait in all */
	two = xt_tcp("127.0.0.2", &in);
	three = xt_tcp("127.0.0.3", &in);
	CU_ASSERT_FATAL(two >= 0 && three >= 0);
	xt_pump(base, 50);
	CU_ASSERT_EQUAL(xt_closed(two), 0);
	CU_ASSERT_EQUAL(xt_closed(three), 0);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(xt_closed(one[i]), 0);
	/* the total is reached: a fourth source is closed at once */
	four = xt_tcp("127.0.0.4", &in);
	CU_ASSERT_FATAL(four >= 0);
	CU_ASSERT(closed_within(four, 500) >= 0);
	CU_ASSERT_EQUAL(ffr_xhost_stats(r)->ingress_overcap, 2);
	/* slots come back as connections go */
	for (int i = 0; i < 3; i++)
		close(one[i]);
	xt_pump(base, 50);
	again = xt_tcp("127.0.0.1", &in);
	CU_ASSERT_FATAL(again >= 0);
	xt_pump(base, 50);
	CU_ASSERT_EQUAL(xt_closed(again), 0);
	CU_ASSERT_EQUAL(ffr_xhost_stats(r)->ingress_overcap, 2);
	close(one[3]);
	close(two);
	close(three);
	close(four);
	close(again);
	ip_router_free(r);
	event_base_free(base);
}

/* ffctl status on r's admin socket: the reply (to be freed). */
static Ff__Reply *status(struct ffr_router *r)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__GetStatus m = FF__GET_STATUS__INIT;
	char path[PATH_MAX];
	Ff__Reply *rep;
	int fd, rfds[FF_MAX_FDS], nr;

	snprintf(path, sizeof(path), "%s/%s", r->rundir, FF_SOCK_NAME);
	fd = fx_connect(path);
	CU_ASSERT_FATAL(fd >= 0);
	h.version = FF_PROTO_VERSION;
	h.role = (char *)"ctl";
	req.id = 1;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	rep = xt_call(base, fd, &req, rfds, &nr);
	CU_ASSERT_FATAL(rep && rep->status == FF__STATUS__ST_OK);
	ff__reply__free_unpacked(rep, NULL);
	req.id = 2;
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &m;
	rep = xt_call(base, fd, &req, rfds, &nr);
	ff_close_fds(rfds, nr);
	close(fd);
	CU_ASSERT_FATAL(rep && rep->status_reply);
	return rep;
}

/* What the cluster part counts reaches ffctl status, each in its place. */
static void test_status_counters(void)
{
	struct ffr_router *r;
	Ff__ClusterHealth *c;
	Ff__Reply *rep;

	base = event_base_new();
	r = xt_router(base, "B", NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	rep = status(r);
	c = rep->status_reply->cluster;
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(!c->ingress_timeouts && !c->ingress_overcap && !c->preambles_refused &&
		  !c->replies_refused && !c->outside_refused);
	ff__reply__free_unpacked(rep, NULL);
	ffr_xh(r)->stats = (struct ffr_xhost_stats){
		.ingress_timeouts = 1, .ingress_overcap = 2, .preambles_refused = 3,
		.replies_refused = 4, .outside_refused = 5};
	rep = status(r);
	c = rep->status_reply->cluster;
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->ingress_timeouts, 1);
	CU_ASSERT_EQUAL(c->ingress_overcap, 2);
	CU_ASSERT_EQUAL(c->preambles_refused, 3);
	CU_ASSERT_EQUAL(c->replies_refused, 4);
	CU_ASSERT_EQUAL(c->outside_refused, 5);
	ff__reply__free_unpacked(rep, NULL);
	ip_router_free(r);
	event_base_free(base);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"deadline", test_deadline},
		{"caps", test_caps},
		{"status_counters", test_status_counters},
		{0},
	};

	return cu_run("ingress", tests);
}
