/* The router targets' shared parts (harness.h): the in-process router
 * with containers a and b, and the oracles. */
#include "harness.h"

#include "fdpass.h"
#include "fixture.h"
#include "log.h"
#include "msg.h"
#include "vt.h"
#include "xhost/internal.h"

#include <ff/wire.h>

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <rdma/rdma_cma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SETTLE_TURNS 4096 /* a loop still busy after this many turns spins */

/* vt.c and fixture.c assert with CUnit; here a failed assertion is a
 * broken harness, and stops the run. */
CU_BOOL CU_assertImplementation(CU_BOOL value, unsigned int line, const char *cond,
				const char *file, const char *func, CU_BOOL fatal)
{
	(void)func;
	(void)fatal;
	if (!value) {
		fprintf(stderr, "harness: %s:%u: %s\n", file, line, cond);
		abort();
	}
	return value;
}


bool fh_check_b = true;
static int admin = -1;
static uint8_t *b_base;
static size_t b_base_len;
static int fds_base;
static struct {
	int ch, lq, cmq, cmev;
	struct vt_ctx x;
} b;

const char *fh_sock_path(const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/c/%s/%s", vt_r->rundir, name, FF_SOCK_NAME);
	return path;
}

static int say_hello(int fd, const char *role)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__Reply *rep;
	int st;

	h.version = FF_PROTO_VERSION;
	h.role = (char *)role;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	rep = vt_call(fd, &req, NULL, 0, NULL, NULL);
	st = rep ? (int)rep->status : -1;
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	return st;
}

int fh_shim(const char *name, bool hello)
{
	int fd = fx_connect(fh_sock_path(name));

	if (fd < 0)
		abort();
	vt_loop();
	if (hello && say_hello(fd, "shim") != FF__STATUS__ST_OK)
		abort();
	return fd;
}

/* A request whose reply must be OK; the reply's fds go to rfds. */
static Ff__Reply *must(int fd, Ff__Request *req, int *rfds, int *n)
{
	Ff__Reply *rep = vt_call(fd, req, NULL, 0, rfds, n);

	if (!rep || rep->status != FF__STATUS__ST_OK) {
		fprintf(stderr, "harness: request %d refused: %s\n", (int)req->body_case,
			rep ? rep->error : "no reply");
		abort();
	}
	return rep;
}

/* b's kernel listener: FH_PORT_B on any address (SO_REUSEPORT, so that
 * several fuzzers may run at once). */
static int b_kernel_listener(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(FH_PORT_B)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 16) < 0) {
		perror("harness: b's listener");
		abort();
	}
	return fd;
}

static void b_listen(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Listen l = FF__LISTEN__INIT;
	Ff__Addr a;
	uint8_t ip[16];
	int kfd = b_kernel_listener(), rfds[FF_MAX_FDS], n = 0;
	Ff__Reply *rep;

	fx_addr(&a, ip, "0.0.0.0", FH_PORT_B);
	l.addr = &a;
	l.backlog = 16;
	req.body_case = FF__REQUEST__BODY_LISTEN;
	req.listen = &l;
	rep = vt_call(b.ch, &req, &kfd, 1, rfds, &n);
	close(kfd);
	if (!rep || rep->status || n < 1) {
		fprintf(stderr, "harness: b's Listen: %s\n", rep ? rep->error : "no reply");
		abort();
	}
	b.lq = rfds[0];
	ff_close_fds(rfds + 1, n - 1);
	ff__reply__free_unpacked(rep, NULL);
}

static uint32_t cm_call(Ff__Request *req)
{
	Ff__Reply *rep = must(b.cmq, req, NULL, NULL);
	uint32_t id = rep->body_case == FF__REPLY__BODY_RDMA_CM ? rep->rdma_cm->id : 0;

	ff__reply__free_unpacked(rep, NULL);
	return id;
}

/* An rdma_cm channel of b with one id listening on FH_IP_B:7471. */
static void b_cm_listen(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaCmOpen o = FF__RDMA_CM_OPEN__INIT;
	Ff__RdmaCreateId c = FF__RDMA_CREATE_ID__INIT;
	Ff__RdmaBind bd = FF__RDMA_BIND__INIT;
	Ff__RdmaListen l = FF__RDMA_LISTEN__INIT;
	Ff__Addr a;
	uint8_t ip[16];
	int rfds[FF_MAX_FDS], n = 0;
	Ff__Reply *rep;

	req.body_case = FF__REQUEST__BODY_RDMA_CM_OPEN;
	req.rdma_cm_open = &o;
	rep = must(b.ch, &req, rfds, &n);
	ff__reply__free_unpacked(rep, NULL);
	if (n != 2)
		abort();
	b.cmq = rfds[0];
	b.cmev = rfds[1];
	c.ps = RDMA_PS_TCP;
	c.qp_type = IBV_QPT_RC;
	req.body_case = FF__REQUEST__BODY_RDMA_CREATE_ID;
	req.rdma_create_id = &c;
	bd.id = cm_call(&req);
	fx_addr(&a, ip, FH_IP_B, 7471);
	bd.addr = &a;
	req.body_case = FF__REQUEST__BODY_RDMA_BIND;
	req.rdma_bind = &bd;
	cm_call(&req);
	l.id = bd.id;
	l.backlog = 4;
	req.body_case = FF__REQUEST__BODY_RDMA_LISTEN;
	req.rdma_listen = &l;
	cm_call(&req);
}

void fh_router_up(void)
{
	struct vt_qp q;
	char path[PATH_MAX];

	ff_log_level = -1; /* bad input is logged; here there is nothing else */
	vt_up();
	snprintf(path, sizeof(path), "%s/%s", vt_r->rundir, FF_SOCK_NAME);
	admin = fx_connect(path);
	if (admin < 0 || say_hello(admin, "ctl") != FF__STATUS__ST_OK)
		abort();
	if (vt_register("a", FH_IP_A, NULL) || vt_register("b", FH_IP_B, NULL))
		abort();
	b.ch = fh_shim("b", true);
	b_listen();
	if (vt_open("b", &b.x) || vt_qp_new(&b.x, &q))
		abort();
	b_cm_listen();
	fh_settle();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fh_seeds_if_asked(fh_target.seeds);
	fh_check_b = fh_target.keep_b;
	fh_router_up();
	if (fh_target.init)
		fh_target.init();
	return 0;
}

void fh_router_down(void)
{
	ff_close_fds(&b.lq, 1);
	ff_close_fds(&b.cmq, 1);
	ff_close_fds(&b.cmev, 1);
	ff_close_fds(&b.ch, 1);
	vt_close(&b.x);
	ff_close_fds(&admin, 1);
	vt_down();
	free(b_base);
	b_base = NULL;
}

bool fh_restore(void)
{
	struct ffr_container *c, *next;
	uint8_t *now = NULL;
	size_t len;
	bool same;

	fh_settle();
	/* published ports outlive their container by design: drop them all */
	while (!TAILQ_EMPTY(&ffr_xh(vt_r)->publishes))
		ffr_publish_free(TAILQ_FIRST(&ffr_xh(vt_r)->publishes));
	for (c = TAILQ_FIRST(&vt_r->containers); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (strcmp(c->name, "a") && strcmp(c->name, "b"))
			vt_unregister(c->name);
	}
	len = fh_b_view(&now);
	c = ffr_container_find(vt_r, "a");
	same = len == b_base_len && !memcmp(now, b_base, len) && c && !c->remote &&
	       c->nips == 1;
	free(now);
	if (!same) {
		fh_router_down();
		fh_router_up();
		fh_begin();
	}
	return same;
}

void fh_settle(void)
{
	for (int i = 0; i < SETTLE_TURNS; i++) {
		event_base_loop(vt_base, EVLOOP_NONBLOCK);
		if (!event_base_get_num_events(vt_base, EVENT_BASE_COUNT_ACTIVE))
			return;
	}
	fprintf(stderr, "harness: the router's loop is still busy after %d turns\n", SETTLE_TURNS);
	abort();
}

static bool is_b(const char *name)
{
	return name && strcmp(name, "b") == 0;
}

/* Appends m packed to *buf. */
static void put(uint8_t **buf, size_t *len, const ProtobufCMessage *m)
{
	size_t n = ff_msg_size(m);

	*buf = realloc(*buf, *len + n);
	if (!*buf)
		abort();
	*len += ff_msg_pack(m, *buf + *len);
}

/* Everything of b in one status reply (the conns aside: a's connects to
 * b's listener are conns of b, and its pending and accepted counts, which
 * a may change by right). */
static void b_of_status(const Ff__StatusReply *s, uint8_t **buf, size_t *len)
{
	for (size_t i = 0; i < s->n_containers; i++) {
		if (is_b(s->containers[i]->name)) {
			Ff__Container c = *s->containers[i];

			c.conns = 0;
			put(buf, len, &c.base);
		}
	}
	for (size_t i = 0; i < s->n_listeners; i++) {
		if (is_b(s->listeners[i]->container)) {
			Ff__ListenerInfo l = *s->listeners[i];

			l.pending = 0;
			l.accepted = 0;
			put(buf, len, &l.base);
		}
	}
}

static void b_of_verbs(const Ff__VerbsStatusReply *s, uint8_t **buf, size_t *len)
{
	for (size_t i = 0; i < s->n_ctxs; i++)
		if (is_b(s->ctxs[i]->container))
			put(buf, len, &s->ctxs[i]->base);
	for (size_t i = 0; i < s->n_cm_listeners; i++)
		if (is_b(s->cm_listeners[i]->container))
			put(buf, len, &s->cm_listeners[i]->base);
}

size_t fh_b_view(uint8_t **buf)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus gs = FF__GET_STATUS__INIT;
	Ff__VerbsStatus vs = FF__VERBS_STATUS__INIT;
	static uint8_t rbuf[FF_MSG_MAX];
	size_t len = 0;
	Ff__Reply *rep;

	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &gs;
	rep = must(admin, &req, NULL, NULL);
	for (;;) {
		bool more = rep->more;

		if (rep->body_case == FF__REPLY__BODY_STATUS_REPLY)
			b_of_status(rep->status_reply, buf, &len);
		ff__reply__free_unpacked(rep, NULL);
		if (!more)
			break;
		rep = NULL;
		if (ff_msg_recv(admin, &ff__reply__descriptor, rbuf, sizeof(rbuf),
				(ProtobufCMessage **)&rep, NULL, 0, NULL, MSG_DONTWAIT) <= 0)
			abort();
	}
	req.body_case = FF__REQUEST__BODY_VERBS_STATUS;
	req.verbs_status = &vs;
	rep = must(admin, &req, NULL, NULL);
	if (rep->body_case == FF__REPLY__BODY_VERBS_STATUS)
		b_of_verbs(rep->verbs_status, buf, &len);
	ff__reply__free_unpacked(rep, NULL);
	return len;
}

/* Accepts and drops what reached b's listener and b's rdma_cm channel. */
static void b_take(void)
{
	fh_drain(b.lq);
	fh_drain(b.cmev);
}

void fh_begin(void)
{
	fh_settle();
	b_take();
	if (!b_base)
		b_base_len = fh_b_view(&b_base);
	fds_base = fh_nfds();
}

void fh_end(void)
{
	uint8_t *now = NULL;
	size_t len;
	int fds;

	fh_settle();
	b_take();
	fh_settle();
	len = fh_b_view(&now);
	if (fh_check_b && len != b_base_len || memcmp(now, b_base, len) != 0) {
		fprintf(stderr, "oracle: container b's state changed (%zu bytes, was %zu)\n", len,
			b_base_len);
		abort();
	}
	free(now);
	fds = fh_nfds();
	if (fds != fds_base) {
		fprintf(stderr, "oracle: %d fds open after the input, %d before\n", fds, fds_base);
		fh_list_fds();
		abort();
	}
}
