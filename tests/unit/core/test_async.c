/* Requests a feature answers later, and what a hostile or vanished shim can
 * do with them (issue 10): a reply that fails outside the read callback
 * must still free its channel; connects handed to features count against
 * the container's quota and a per-channel cap on requests in flight; a
 * loop that a step blocks anyway is seen by the watchdog. A core-only
 * router runs in the test's own thread with one fake feature, "late",
 * whose connect hook holds every request until the test (or a timer)
 * answers it. Its internals are in reach: the accept deadline of
 * guard.c is driven directly. */
#include "cu.h"
#include "fixture.h"

#include "core.h"
#include "fdpass.h"
#include "msg.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define INFLIGHT 4 /* the per-channel cap these tests configure */

static struct event_base *base;
static struct ffr_router *r;
static char dir[64];

static void core_down(void)
{
	ffr_router_free(r);
	r = NULL;
	if (base)
		event_base_free(base);
	base = NULL;
	if (*dir)
		fx_rmtree(dir);
	*dir = 0;
}

static void core_up_with(uint32_t conns, unsigned watchdog_ms)
{
	struct ffr_config cfg = {
		.quota = {.channels = 64, .listeners = 64, .conns = conns, .pending = 256,
			  .inflight = INFLIGHT},
		.host_id = "here",
		.watchdog_ms = watchdog_ms,
	};
	int err;

	core_down();
	snprintf(dir, sizeof(dir), "/tmp/ffasync.XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	cfg.rundir = dir;
	base = event_base_new();
	r = ffr_router_new(base, &cfg, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
}

static void core_up(void)
{
	core_up_with(1024, 0);
}

/* Runs the loop until fd is readable (or hung up); false after 2 s. */
static bool pump_until_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	for (int i = 0; i < 2000; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 1) == 1)
			return true;
	}
	return false;
}

static void settle(void)
{
	for (int i = 0; i < 30; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* One reply on fd after running the loop; its status and id, -1 if none. */
static int answer(int fd, uint64_t *id)
{
	int rfds[FF_MAX_FDS], nr = 0, st = -1;
	Ff__Reply *rep = pump_until_readable(fd) ? fx_recv(fd, rfds, &nr) : NULL;

	ff_close_fds(rfds, nr);
	if (rep) {
		st = (int)rep->status;
		if (id)
			*id = rep->id;
		ff__reply__free_unpacked(rep, NULL);
	}
	return st;
}

static int ask(int fd, Ff__Request *req)
{
	if (ff_msg_send(fd, &req->base, NULL, 0) < 0)
		return -1;
	return answer(fd, NULL);
}

static int hello(int fd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;

	h.version = FF_PROTO_VERSION;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	return ask(fd, &req);
}

static int sock_path(const char *name, char *path, size_t len)
{
	if (name)
		return snprintf(path, len, "%s/c/%s/%s", dir, name, FF_SOCK_NAME);
	return snprintf(path, len, "%s/%s", dir, FF_SOCK_NAME);
}

/* A channel to the admin socket (name NULL) or to container name's, after
 * Hello. */
static int chan_open(const char *name)
{
	char path[PATH_MAX];
	int fd;

	sock_path(name, path, sizeof(path));
	fd = fx_connect(path);
	if (fd >= 0 && hello(fd) != FF__STATUS__ST_OK) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

static int reg(int adm, const char *name, const char *ip, const char *host, const char *policy)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Register m = FF__REGISTER__INIT;
	char *ips[1] = {(char *)ip};

	m.name = (char *)name;
	m.n_ips = 1;
	m.ips = ips;
	m.host = (char *)(host ? host : "");
	m.policy = (char *)(policy ? policy : "");
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &m;
	return ask(adm, &req);
}

/* Sends a Connect with id id to ip:port without waiting for the answer. */
static int send_connect(int fd, uint64_t id, const char *ip, uint16_t port, bool outside)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Addr a;
	uint8_t ab[16];

	fx_addr(&a, ab, ip, port);
	m.dst = &a;
	m.outside = outside;
	req.id = id;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &m;
	return ff_msg_send(fd, &req.base, NULL, 0);
}

/* The channels count of container name in ffctl list, -1 if not listed. */
static int channels_of(int adm, const char *name)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__ListContainers m = FF__LIST_CONTAINERS__INIT;
	int rfds[FF_MAX_FDS], nr, n = -1;
	Ff__Reply *rep;

	req.body_case = FF__REQUEST__BODY_LIST;
	req.list = &m;
	if (ff_msg_send(adm, &req.base, NULL, 0) < 0 || !pump_until_readable(adm))
		return -1;
	rep = fx_recv(adm, rfds, &nr);
	for (size_t i = 0; rep && rep->list && i < rep->list->n_containers; i++)
		if (!strcmp(rep->list->containers[i]->name, name))
			n = (int)rep->list->containers[i]->channels;
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	return n;
}

/* ---- the fake feature ---- */

#define HELD_MAX 64

struct late {
	struct {
		struct ffr_chan *ch;
		uint64_t id;
	} held[HELD_MAX];
	int n;
	int connects;   /* connect hooks run */
	int chan_frees; /* chan_free hooks run */
	int block_ms;   /* the connect hook blocks the loop this long first */
	struct event *tev;
};

static struct late *late;

static void late_answer_all(struct late *p, Ff__Status st)
{
	int n = p->n;

	p->n = 0;
	for (int i = 0; i < n; i++)
		ffr_reply_status(p->held[i].ch, p->held[i].id, st, "late");
}

static void late_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	late_answer_all(arg, FF__STATUS__ST_REFUSED);
}

static void late_free(void *priv)
{
	struct late *p = priv;

	event_free(p->tev);
	free(p);
	late = NULL;
}

/* Like xhost: a request dies with the channel that asked for it. */
static void late_chan_free(void *priv, struct ffr_chan *ch)
{
	struct late *p = priv;
	int k = 0;

	p->chan_frees++;
	for (int i = 0; i < p->n; i++)
		if (p->held[i].ch != ch)
			p->held[k++] = p->held[i];
	p->n = k;
}

static bool late_host_known(void *priv, const char *host)
{
	return !strcmp(host, "far");
}

static bool late_connect(void *priv, struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
			 const struct ff_sa *src, const struct ff_sa *dst)
{
	struct late *p = priv;

	p->connects++;
	if (p->block_ms)
		usleep((useconds_t)p->block_ms * 1000);
	if (p->n == HELD_MAX) {
		ffr_reply_status(ch, id, FF__STATUS__ST_INTERNAL, "fake is full");
		return true;
	}
	p->held[p->n].ch = ch;
	p->held[p->n].id = id;
	p->n++;
	return true;
}

static const struct ffr_feature feat_late = {
	.name = "late",
	.free = late_free,
	.chan_free = late_chan_free,
	.host_known = late_host_known,
	.connect = late_connect,
};

static void late_add(void)
{
	late = calloc(1, sizeof(*late));
	CU_ASSERT_PTR_NOT_NULL_FATAL(late);
	late->tev = evtimer_new(base, late_timer_cb, late);
	CU_ASSERT_EQUAL_FATAL(ffr_feature_add(r, &feat_late, late), 0);
}

/* Admin channel, c1 (10.99.0.1) here, h1 (10.99.0.3, policy host) here,
 * r1 (10.99.0.9) on host "far". */
static int setup(void)
{
	int adm;

	late_add();
	adm = chan_open(NULL);
	CU_ASSERT_FATAL(adm >= 0);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "c1", "10.99.0.1", NULL, NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "h1", "10.99.0.3", NULL, "host"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "r1", "10.99.0.9", "far", NULL), FF__STATUS__ST_OK);
	return adm;
}

/* ---- tests ---- */

/* Hole 6: the shim stops reading (shutdown SHUT_RD: no EOF reaches the
 * router) before the feature answers from a timer. The failed reply must
 * free the channel; a channel that then gets the same fd number in the
 * router must be served (a half-dead channel left its fd registered with
 * libevent, so the new one was never read). */
static void test_late_reply_dead_peer(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {0, 10000};
	int adm, a, b;

	core_up();
	adm = setup();
	a = chan_open("c1");
	CU_ASSERT_FATAL(a >= 0);
	/* b exists before the router closes a's fd: the router's next accept
	 * gets that number, not the test */
	b = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(b >= 0);
	CU_ASSERT_EQUAL_FATAL(send_connect(a, 7, "10.99.0.9", 80, false), 0);
	for (int i = 0; i < 200 && late->n == 0; i++)
		settle();
	CU_ASSERT_EQUAL_FATAL(late->n, 1);
	CU_ASSERT_EQUAL(shutdown(a, SHUT_RD), 0);
	evtimer_add(late->tev, &tv);
	late->chan_frees = 0;
	for (int i = 0; i < 10 && late->n; i++)
		settle();
	settle();
	CU_ASSERT_EQUAL(late->n, 0);
	CU_ASSERT_EQUAL(late->chan_frees, 1);
	CU_ASSERT_EQUAL(channels_of(adm, "c1"), 0);
	/* a new shim of c1 */
	sock_path("c1", sun.sun_path, sizeof(sun.sun_path));
	CU_ASSERT_EQUAL_FATAL(connect(b, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CU_ASSERT_EQUAL(hello(b), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(channels_of(adm, "c1"), 1);
	close(a);
	close(b);
	close(adm);
	core_down();
}

/* Replies waiting on fd after running the loop a while: how many, and the
 * status of the one with id want_id (-1 if none). */
static int drain(int fd, uint64_t want_id, int *want_status)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n = 0;

	*want_status = -1;
	settle();
	while (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
		uint64_t id = 0;
		int st = answer(fd, &id);

		if (st < 0)
			break;
		n++;
		if (id == want_id)
			*want_status = st;
	}
	return n;
}

static int send_lookup(int fd, uint64_t id)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Lookup m = FF__LOOKUP__INIT;

	m.inode = 1;
	req.id = id;
	req.body_case = FF__REQUEST__BODY_LOOKUP;
	req.lookup = &m;
	return ff_msg_send(fd, &req.base, NULL, 0);
}

/* Hole 5: a channel firing connects to a container of another host without
 * waiting gets at most INFLIGHT of them handed to the feature; the excess
 * is refused (ST_QUOTA) by the core. Answers free the places. A request
 * reusing the id of one in flight cannot free a place by drawing an
 * answer with that id. */
static void test_inflight_cap(void)
{
	int adm, c1, st, n;

	core_up();
	adm = setup();
	c1 = chan_open("c1");
	CU_ASSERT_FATAL(c1 >= 0);
	for (uint64_t id = 1; id <= INFLIGHT + 1; id++)
		CU_ASSERT_EQUAL_FATAL(send_connect(c1, id, "10.99.0.9", 80, false), 0);
	n = drain(c1, INFLIGHT + 1, &st);
	CU_ASSERT_EQUAL(late->n, INFLIGHT);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_QUOTA);
	/* a Lookup with an id in flight: refused, and no place freed */
	CU_ASSERT_EQUAL_FATAL(send_lookup(c1, 2), 0);
	n = drain(c1, 2, &st);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL_FATAL(send_connect(c1, 20, "10.99.0.9", 80, false), 0);
	n = drain(c1, 20, &st);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_QUOTA);
	CU_ASSERT_EQUAL(late->n, INFLIGHT);
	/* the feature answers: every place is free again */
	late_answer_all(late, FF__STATUS__ST_REFUSED);
	n = drain(c1, 1, &st);
	CU_ASSERT_EQUAL(n, INFLIGHT);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_REFUSED);
	for (uint64_t id = 30; id < 30 + INFLIGHT; id++)
		CU_ASSERT_EQUAL_FATAL(send_connect(c1, id, "10.99.0.9", 80, false), 0);
	n = drain(c1, 0, &st);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(late->n, INFLIGHT);
	/* another channel of the same container has its own places */
	{
		int c1b = chan_open("c1");

		CU_ASSERT_EQUAL_FATAL(send_connect(c1b, 50, "10.99.0.9", 80, false), 0);
		n = drain(c1b, 50, &st);
		CU_ASSERT_EQUAL(n, 0);
		CU_ASSERT_EQUAL(late->n, INFLIGHT + 1);
		close(c1b);
	}
	close(c1);
	close(adm);
	core_down();
}

/* Hole 5: connects across hosts and outside the overlay count against the
 * container's connection quota like same-host ones, while in flight:
 * with a quota of 2, the third is refused by the core, never handed to a
 * feature. */
static void test_quota_before_feature(void)
{
	int adm, c1, h1, st;

	core_up_with(2, 0);
	adm = setup();
	c1 = chan_open("c1");
	h1 = chan_open("h1");
	CU_ASSERT_FATAL(c1 >= 0 && h1 >= 0);
	CU_ASSERT_EQUAL_FATAL(send_connect(c1, 1, "10.99.0.9", 80, false), 0);
	CU_ASSERT_EQUAL_FATAL(send_connect(c1, 2, "10.99.0.9", 81, false), 0);
	CU_ASSERT_EQUAL(drain(c1, 0, &st), 0);
	CU_ASSERT_EQUAL_FATAL(send_connect(c1, 3, "10.99.0.9", 82, false), 0);
	CU_ASSERT_EQUAL(drain(c1, 3, &st), 1);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_QUOTA);
	CU_ASSERT_EQUAL(late->connects, 2);
	/* outside the overlay (policy host) */
	CU_ASSERT_EQUAL_FATAL(send_connect(h1, 1, "192.0.2.1", 80, true), 0);
	CU_ASSERT_EQUAL_FATAL(send_connect(h1, 2, "192.0.2.1", 81, true), 0);
	CU_ASSERT_EQUAL(drain(h1, 0, &st), 0);
	CU_ASSERT_EQUAL_FATAL(send_connect(h1, 3, "192.0.2.1", 82, true), 0);
	CU_ASSERT_EQUAL(drain(h1, 3, &st), 1);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_QUOTA);
	CU_ASSERT_EQUAL(late->connects, 4);
	/* a channel that goes away gives its places back */
	close(c1);
	settle();
	c1 = chan_open("c1");
	CU_ASSERT_EQUAL_FATAL(send_connect(c1, 4, "10.99.0.9", 83, false), 0);
	CU_ASSERT_EQUAL(drain(c1, 0, &st), 0);
	CU_ASSERT_EQUAL(late->connects, 5);
	close(c1);
	close(h1);
	close(adm);
	core_down();
}

/* A poll that says lying_fd is readable: the state the router sees when
 * the app accepts the connection between the router's poll and accept. */
int __poll(struct pollfd *fds, nfds_t n, int timeout);
static int lying_fd = -1;

/* glibc declares poll's array write-only, which it is not */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (lying_fd >= 0 && n == 1 && fds[0].fd == lying_fd) {
		fds[0].revents = POLLIN;
		return 1;
	}
	return __poll(fds, n, timeout);
}
#pragma GCC diagnostic pop

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Hole 1, accept: the app made its listener blocking (it is the same open
 * file as the router's) and took the connection the router was told
 * about. The router's accept gives up within milliseconds; a connection
 * that is really there is still taken. */
static void test_shared_accept_deadline(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int kfd, tfd, nfd;
	uint64_t t0, took;
	uint16_t port;

	core_up();
	kfd = fx_tcp_listener(&port);
	CU_ASSERT_FATAL(kfd >= 0);
	lying_fd = kfd;
	t0 = now_ms();
	nfd = ffr_shared_accept(r, kfd, NULL, NULL, SOCK_CLOEXEC);
	took = now_ms() - t0;
	lying_fd = -1;
	CU_ASSERT_EQUAL(nfd, -EAGAIN);
	CU_ASSERT(took < 1000);
	/* nothing queued, poll telling the truth: no accept at all */
	CU_ASSERT_EQUAL(ffr_shared_accept(r, kfd, NULL, NULL, SOCK_CLOEXEC), -EAGAIN);
	sin.sin_port = htons(port);
	tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_EQUAL_FATAL(connect(tfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	nfd = ffr_shared_accept(r, kfd, NULL, NULL, SOCK_CLOEXEC);
	CU_ASSERT(nfd >= 0);
	if (nfd >= 0)
		close(nfd);
	close(tfd);
	close(kfd);
	core_down();
}

/* The watchdog: a step that blocks the loop (here a feature's connect hook
 * sleeping 700 ms) past the watchdog's period (200 ms) is one stall,
 * described by the step and its container, and ffctl status shows it. */
static void test_watchdog_stall(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus m = FF__GET_STATUS__INIT;
	int adm, c1, rfds[FF_MAX_FDS], nr;
	char last[256] = "";
	Ff__Reply *rep;

	core_up_with(1024, 200);
	adm = setup();
	c1 = chan_open("c1");
	CU_ASSERT_FATAL(c1 >= 0);
	for (int i = 0; i < 5; i++)
		settle(); /* the loop's heartbeat has run */
	CU_ASSERT_EQUAL(ffr_loop_stalls(r, NULL, 0), 0);
	late->block_ms = 700;
	CU_ASSERT_EQUAL_FATAL(send_connect(c1, 5, "10.99.0.9", 80, false), 0);
	for (int i = 0; i < 100 && !late->connects; i++)
		settle();
	late->block_ms = 0;
	settle();
	CU_ASSERT(ffr_loop_stalls(r, last, sizeof(last)) >= 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(last, "request connect (c1 pid"));
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &m;
	CU_ASSERT_EQUAL_FATAL(ff_msg_send(adm, &req.base, NULL, 0), 0);
	CU_ASSERT_FATAL(pump_until_readable(adm));
	rep = fx_recv(adm, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep->status_reply);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep->status_reply->health);
	CU_ASSERT(rep->status_reply->health->loop_stalls >= 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep->status_reply->health->last_stall, "connect"));
	ff__reply__free_unpacked(rep, NULL);
	close(c1);
	close(adm);
	core_down();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"late_reply_dead_peer", test_late_reply_dead_peer},
		{"shared_accept_deadline", test_shared_accept_deadline},
		{"inflight_cap", test_inflight_cap},
		{"quota_before_feature", test_quota_before_feature},
		{"watchdog_stall", test_watchdog_stall},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("async", tests);
}
