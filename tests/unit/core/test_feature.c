/* ffrouter/core/feature.c: how features plug into the core. A core-only
 * router (ffr_router_new) runs in the test's own thread, with small fake
 * features registered on it; requests go through its real sockets and the
 * test runs the loop until the answer is there. The fakes write what their
 * hooks saw, in order, to one log ("A.registered(c1) B.registered(c1) "),
 * which each test compares as a whole. */
#include "cu.h"
#include "fixture.h"

#include "core.h"
#include "fdpass.h"
#include "map.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct event_base *base;
static struct ffr_router *r;
static char dir[64];

/* ---- a router in this thread ---- */

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

/* A core with no feature, host id "here". */
static void core_up(void)
{
	struct ffr_config cfg = {
		.quota = {.channels = 64, .listeners = 64, .conns = 1024, .pending = 256},
		.host_id = "here",
	};
	int err;

	core_down(); /* what a test that failed half-way left */
	snprintf(dir, sizeof(dir), "/tmp/fffeature.XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	cfg.rundir = dir;
	base = event_base_new();
	r = ffr_router_new(base, &cfg, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
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

/* Runs the loop a while, for closes the router has to notice. */
static void settle(void)
{
	for (int i = 0; i < 20; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static char said[256]; /* the error text of the last answer */

/* Sends req with fds (not consumed); the status of the answer, or -1 when
 * none came (the channel closed). Received fds are closed. */
static int ask(int fd, Ff__Request *req, const int *fds, int nfds)
{
	int rfds[FF_MAX_FDS], nr = 0, st = -1;
	Ff__Reply *rep = NULL;

	*said = 0;
	if (ff_msg_send(fd, &req->base, fds, nfds) == 0 && pump_until_readable(fd))
		rep = fx_recv(fd, rfds, &nr);
	ff_close_fds(rfds, nr);
	if (rep) {
		st = (int)rep->status;
		snprintf(said, sizeof(said), "%s", rep->error);
		ff__reply__free_unpacked(rep, NULL);
	}
	return st;
}

/* A channel to the admin socket (name NULL) or to container name's. */
static int chan_open(const char *name, bool hello)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	char path[PATH_MAX];
	int fd;

	if (name)
		snprintf(path, sizeof(path), "%s/c/%s/%s", dir, name, FF_SOCK_NAME);
	else
		snprintf(path, sizeof(path), "%s/%s", dir, FF_SOCK_NAME);
	fd = fx_connect(path);
	h.version = FF_PROTO_VERSION;
	h.role = (char *)(name ? "shim" : "ctl");
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	if (fd >= 0 && hello && ask(fd, &req, NULL, 0) != FF__STATUS__ST_OK) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

/* Register on admin channel fd; host and policy may be NULL. */
static int reg(int fd, const char *name, const char *ip, const char *host, const char *policy)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Register m = FF__REGISTER__INIT;
	char *ips[1] = {(char *)ip};

	m.name = (char *)name;
	m.n_ips = 1;
	m.ips = ips;
	if (host)
		m.host = (char *)host;
	if (policy)
		m.policy = (char *)policy;
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &m;
	return ask(fd, &req, NULL, 0);
}

static int unreg(int fd, const char *name)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister m = FF__UNREGISTER__INIT;

	m.name = (char *)name;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &m;
	return ask(fd, &req, NULL, 0);
}

/* Whether ffctl list on admin channel fd shows name (with host, if given). */
static bool listed(int fd, const char *name, const char *host)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__ListContainers m = FF__LIST_CONTAINERS__INIT;
	int rfds[FF_MAX_FDS], nr;
	bool found = false;
	Ff__Reply *rep;

	req.body_case = FF__REQUEST__BODY_LIST;
	req.list = &m;
	if (ff_msg_send(fd, &req.base, NULL, 0) < 0 || !pump_until_readable(fd))
		return false;
	rep = fx_recv(fd, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_FALSE(rep->more);
	for (size_t i = 0; rep->list && i < rep->list->n_containers; i++)
		if (!strcmp(rep->list->containers[i]->name, name))
			found = !host || !strcmp(rep->list->containers[i]->host, host);
	ff__reply__free_unpacked(rep, NULL);
	return found;
}

/* A request whose body is case body (an empty message of its type), with
 * id id and fds (not consumed); the status of the answer. */
static int ask_body(int fd, uint32_t body, uint64_t id, const int *fds, int nfds)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsOpen vo = FF__VERBS_OPEN__INIT;
	Ff__VerbsStatus vs = FF__VERBS_STATUS__INIT;
	Ff__VerbsMemAdd vm = FF__VERBS_MEM_ADD__INIT;
	Ff__HostAdd ha = FF__HOST_ADD__INIT;
	Ff__ListHosts lh = FF__LIST_HOSTS__INIT;
	Ff__RdmaConnect rc = FF__RDMA_CONNECT__INIT;
	Ff__RdmaResolveAddr ra = FF__RDMA_RESOLVE_ADDR__INIT;

	req.id = id;
	req.body_case = body;
	switch (body) {
	case FF__REQUEST__BODY_VERBS_OPEN:
		req.verbs_open = &vo;
		break;
	case FF__REQUEST__BODY_VERBS_STATUS:
		req.verbs_status = &vs;
		break;
	case FF__REQUEST__BODY_VERBS_MEM_ADD:
		req.verbs_mem_add = &vm;
		break;
	case FF__REQUEST__BODY_HOST_ADD:
		req.host_add = &ha;
		break;
	case FF__REQUEST__BODY_LIST_HOSTS:
		req.list_hosts = &lh;
		break;
	case FF__REQUEST__BODY_RDMA_CONNECT:
		req.rdma_connect = &rc;
		break;
	case FF__REQUEST__BODY_RDMA_RESOLVE_ADDR:
		req.rdma_resolve_addr = &ra;
		break;
	default:
		CU_FAIL_FATAL("ask_body: no message for that body");
	}
	return ask(fd, &req, fds, nfds);
}

/* A shim's Connect to ip:port (outside: a destination outside the overlay). */
static int ask_connect(int fd, const char *ip, uint16_t port, bool outside)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Addr a;
	uint8_t ab[16];

	fx_addr(&a, ab, ip, port);
	m.dst = &a;
	m.outside = outside;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &m;
	return ask(fd, &req, NULL, 0);
}

/* ---- fake features ---- */

static char hooks[2048]; /* what the fakes' hooks did, in order */

struct fake {
	const struct ffr_feature *f;
	char tag;
	int fail_registered; /* registered returns it for the container "bad" */
	const char *host;    /* the one other host it knows (NULL: none) */
	bool connects;       /* its connect hook answers instead of declining */
	bool hot, more;      /* what hot and poll return */
};

static void note(const struct fake *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(const struct fake *p, const char *fmt, ...)
{
	char what[256];
	size_t n = strlen(hooks);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(hooks + n, sizeof(hooks) - n, "%c.%s ", p->tag, what);
}

static const struct ffr_feature feat_a, feat_b, feat_c;

/* The free hook says which of the fakes' privs the core still finds. */
static void fake_free(void *priv)
{
	struct fake *p = priv;

	note(p, "free[%s%s%s]", ffr_feature_priv(r, &feat_a) ? "A" : "",
	     ffr_feature_priv(r, &feat_b) ? "B" : "", ffr_feature_priv(r, &feat_c) ? "C" : "");
	if (ffr_feature_priv(r, p->f) != p)
		note(p, "lost-own-priv");
	free(p);
}

static void fake_container_free(void *priv, struct ffr_container *c)
{
	note(priv, "container_free(%s)", c->name);
}

static void fake_chan_free(void *priv, struct ffr_chan *ch)
{
	note(priv, "chan_free(%s)", ch->c ? ch->c->name : "-");
}

static int fake_registered(void *priv, struct ffr_container *c)
{
	struct fake *p = priv;

	note(p, "registered(%s)", c->name);
	return strcmp(c->name, "bad") ? 0 : p->fail_registered;
}

static void fake_unregistered(void *priv, const char *name, bool remote)
{
	note(priv, "unregistered(%s%s)", name, remote ? " remote" : "");
}

static bool fake_host_known(void *priv, const char *host)
{
	struct fake *p = priv;

	note(p, "host_known(%s)", host);
	return p->host && !strcmp(p->host, host);
}

static bool fake_connect(void *priv, struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
			 const struct ff_sa *src, const struct ff_sa *dst)
{
	struct fake *p = priv;
	char s[FF_ADDRSTRLEN] = "-", d[FF_ADDRSTRLEN];

	if (src)
		ff_sa_fmt(src, s, sizeof(s));
	note(p, "connect(%s %s %s)", t ? t->name : "-", s, ff_sa_fmt(dst, d, sizeof(d)));
	if (p->connects)
		ffr_reply_status(ch, id, FF__STATUS__ST_OK, "%c", p->tag);
	return p->connects;
}

/* Adds one publish, named after the feature, to the status reply. */
static void *fake_status(void *priv, Ff__StatusReply *sr)
{
	struct fake *p = priv;
	struct part {
		Ff__PublishInfo pi, *pp[1];
		char name[8];
	} *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	ff__publish_info__init(&m->pi);
	snprintf(m->name, sizeof(m->name), "fake-%c", p->tag);
	m->pi.container = m->name;
	m->pp[0] = &m->pi;
	sr->n_publishes = 1;
	sr->publishes = m->pp;
	return m;
}

static bool fake_hot(void *priv)
{
	return ((struct fake *)priv)->hot;
}

static bool fake_poll(void *priv)
{
	struct fake *p = priv;

	note(p, "poll");
	return p->more;
}

#define FAKE_HOOKS                                                                                 \
	.free = fake_free, .container_free = fake_container_free, .chan_free = fake_chan_free,     \
	.registered = fake_registered, .unregistered = fake_unregistered,                          \
	.host_known = fake_host_known, .connect = fake_connect
static const struct ffr_feature feat_a = {.name = "A", FAKE_HOOKS};
static const struct ffr_feature feat_b = {.name = "B", FAKE_HOOKS};
static const struct ffr_feature feat_c = {.name = "C", FAKE_HOOKS};
/* Only what host_known needs: no connect hook. */
static const struct ffr_feature feat_hosts = {
	.name = "hosts", .free = fake_free, .host_known = fake_host_known};
static const struct ffr_feature feat_status = {
	.name = "status", .free = fake_free, .status = fake_status};
static const struct ffr_feature feat_poll = {
	.name = "poll", .free = fake_free, .hot = fake_hot, .poll = fake_poll};
static const struct ffr_feature feat_poll2 = {
	.name = "poll2", .free = fake_free, .hot = fake_hot, .poll = fake_poll};

/* Registers a fake of feature f, tagged tag; returns it. */
static struct fake *fake_add(const struct ffr_feature *f, char tag)
{
	struct fake *p = calloc(1, sizeof(*p));

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	p->f = f;
	p->tag = tag;
	if (ffr_feature_add(r, f, p) < 0) {
		free(p);
		CU_FAIL_FATAL("ffr_feature_add");
	}
	return p;
}

/* ---- request handlers of a fake feature ---- */

static struct {
	int calls;
	bool from_shim; /* ch->c was set: the request came from a container */
	int nfds;
	ino_t ino; /* of the first fd */
} seen;

static void op_fake(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct stat st;

	seen.calls++;
	seen.from_shim = ch->c != NULL;
	seen.nfds = nfds;
	seen.ino = nfds > 0 && fstat(fds[0], &st) == 0 ? st.st_ino : 0;
	ff_close_fds(fds, nfds);
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, "fake");
}

static ino_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* ---- tests ---- */

/* Slots are handed out in order, up to FFR_FEATURES_MAX; a descriptor is
 * registered once; each feature's priv is found by its descriptor, a
 * feature never added has none. */
static void test_feature_slots(void)
{
	static struct ffr_feature many[FFR_FEATURES_MAX + 1];
	static int privs[FFR_FEATURES_MAX + 1];

	core_up();
	for (int i = 0; i <= FFR_FEATURES_MAX; i++)
		many[i].name = "many";
	for (int i = 0; i < FFR_FEATURES_MAX; i++) {
		CU_ASSERT_EQUAL(ffr_feature_add(r, &many[i], &privs[i]), i);
		CU_ASSERT_EQUAL(ffr_feature_add(r, &many[i], &privs[i]), -EEXIST);
	}
	CU_ASSERT_EQUAL(ffr_feature_add(r, &many[FFR_FEATURES_MAX], &privs[FFR_FEATURES_MAX]),
			-ENOSPC);
	for (int i = 0; i < FFR_FEATURES_MAX; i++)
		CU_ASSERT_PTR_EQUAL(ffr_feature_priv(r, &many[i]), &privs[i]);
	CU_ASSERT_PTR_NULL(ffr_feature_priv(r, &many[FFR_FEATURES_MAX]));
	CU_ASSERT_PTR_NULL(ffr_feature_priv(r, &feat_a));
	core_down();
}

/* ffr_ops_add refuses a case the table has, a case past it, a NULL
 * handler and a batch naming one case twice; a refused batch adds none of
 * its entries, even the good ones. */
static void test_ops_add_refusals(void)
{
	const uint32_t vo = FF__REQUEST__BODY_VERBS_OPEN, vs = FF__REQUEST__BODY_VERBS_STATUS;
	const struct ffr_op good = {vo, op_fake, 0, true, false};
	const struct ffr_op taken = {FF__REQUEST__BODY_HELLO, op_fake, 0, true, true};
	const struct ffr_op past = {FFR_OPS_MAX, op_fake, 0, true, true};
	const struct ffr_op far_past = {UINT32_MAX, op_fake, 0, true, true};
	const struct ffr_op no_fn = {vs, NULL, 0, true, false};
	const struct ffr_op good2 = {vs, op_fake, 0, true, false};
	const struct ffr_op batches[][2] = {
		{good, taken}, {good, past}, {good, no_fn}, {good, good}, {good2, taken},
	};
	const int errs[] = {-EEXIST, -EINVAL, -EINVAL, -EEXIST, -EEXIST};
	ffr_handler hello;
	int adm, c1;

	core_up();
	hello = r->ops[FF__REQUEST__BODY_HELLO].fn;
	CU_ASSERT_PTR_NOT_NULL_FATAL(hello);
	CU_ASSERT_EQUAL(ffr_ops_add(r, &taken, 1), -EEXIST);
	CU_ASSERT_EQUAL(ffr_ops_add(r, &past, 1), -EINVAL);
	CU_ASSERT_EQUAL(ffr_ops_add(r, &far_past, 1), -EINVAL);
	CU_ASSERT_EQUAL(ffr_ops_add(r, &no_fn, 1), -EINVAL);
	CU_ASSERT_PTR_EQUAL(r->ops[FF__REQUEST__BODY_HELLO].fn, hello);
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		CU_ASSERT_EQUAL(ffr_ops_add(r, batches[i], 2), errs[i]);
		CU_ASSERT_PTR_NULL(r->ops[vo].fn);
		CU_ASSERT_PTR_NULL(r->ops[vs].fn);
	}
	CU_ASSERT_PTR_EQUAL(r->ops[FF__REQUEST__BODY_HELLO].fn, hello);
	CU_ASSERT_EQUAL(ffr_ops_add(r, &good, 0), 0);
	/* what the dispatch sees: still nothing for VerbsOpen */
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "c1", "10.99.0.1", NULL, NULL), FF__STATUS__ST_OK);
	c1 = chan_open("c1", true);
	CU_ASSERT_FATAL(c1 >= 0);
	memset(&seen, 0, sizeof(seen));
	CU_ASSERT_EQUAL(ask_body(c1, vo, 7, NULL, 0), FF__STATUS__ST_UNSUPPORTED);
	CU_ASSERT_EQUAL(seen.calls, 0);
	/* a good batch is added whole, and its cases are then taken */
	CU_ASSERT_EQUAL(ffr_ops_add(r, (const struct ffr_op[]){good, good2}, 2), 0);
	CU_ASSERT_EQUAL(ask_body(c1, vo, 8, NULL, 0), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(ask_body(c1, vs, 9, NULL, 0), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(seen.calls, 2);
	CU_ASSERT_EQUAL(ffr_ops_add(r, &good2, 1), -EEXIST);
	close(c1);
	close(adm);
	core_down();
}

/* With no handler for a request, the core answers ST_UNSUPPORTED with the
 * request's id, closes the fds that came with it, and keeps serving. A
 * feature that registered no handler changes nothing. */
static void test_no_handler_unsupported(void)
{
	int adm, c1, p[2];

	core_up();
	fake_add(&feat_hosts, 'H');
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "c1", "10.99.0.1", NULL, NULL), FF__STATUS__ST_OK);
	c1 = chan_open("c1", true);
	CU_ASSERT_FATAL(c1 >= 0);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	/* a feature's request (no feature here), from a shim and from ffctl */
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_VERBS_OPEN, 41, NULL, 0),
			FF__STATUS__ST_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(said, "unknown request 40"));
	CU_ASSERT_EQUAL(ask_body(adm, FF__REQUEST__BODY_HOST_ADD, 42, NULL, 0),
			FF__STATUS__ST_UNSUPPORTED);
	/* rdma_cm's own cases, which nothing registers */
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_RDMA_RESOLVE_ADDR, 43, NULL, 0),
			FF__STATUS__ST_UNSUPPORTED);
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_RDMA_CONNECT, 43, NULL, 0),
			FF__STATUS__ST_UNSUPPORTED);
	/* with an fd: closed */
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_VERBS_MEM_ADD, 44, &p[0], 1),
			FF__STATUS__ST_UNSUPPORTED);
	close(p[0]);
	CU_ASSERT(fx_pipe_orphaned(p[1]));
	close(p[1]);
	/* both channels still serve */
	CU_ASSERT(listed(adm, "c1", "here"));
	CU_ASSERT_EQUAL(ask_connect(c1, "10.99.0.1", 80, false), FF__STATUS__ST_NO_LISTENER);
	close(c1);
	close(adm);
	core_down();
}

/* A feature's handlers get the core's checks: who may send the request
 * (shim, ffctl), Hello first, and exactly as many fds as the entry says;
 * a refused request never reaches the handler, and its fds are closed. */
static void test_dispatch_checks(void)
{
	static const struct ffr_op ops[] = {
		{FF__REQUEST__BODY_VERBS_OPEN, op_fake, 0, true, false},
		{FF__REQUEST__BODY_HOST_ADD, op_fake, 0, false, true},
		{FF__REQUEST__BODY_LIST_HOSTS, op_fake, 0, true, true},
		{FF__REQUEST__BODY_VERBS_MEM_ADD, op_fake, 1, true, false},
	};
	int adm, c1, early, p[2], two[2];

	core_up();
	CU_ASSERT_EQUAL_FATAL(ffr_ops_add(r, ops, 4), 0);
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "c1", "10.99.0.1", NULL, NULL), FF__STATUS__ST_OK);
	c1 = chan_open("c1", true);
	CU_ASSERT_FATAL(c1 >= 0);
	memset(&seen, 0, sizeof(seen));
	/* shim only */
	CU_ASSERT_EQUAL(ask_body(adm, FF__REQUEST__BODY_VERBS_OPEN, 1, NULL, 0),
			FF__STATUS__ST_PERM);
	CU_ASSERT_EQUAL(seen.calls, 0);
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_VERBS_OPEN, 2, NULL, 0), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(said, "fake");
	CU_ASSERT_EQUAL(seen.calls, 1);
	CU_ASSERT(seen.from_shim);
	/* ffctl only */
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_HOST_ADD, 3, NULL, 0), FF__STATUS__ST_PERM);
	CU_ASSERT_EQUAL(seen.calls, 1);
	CU_ASSERT_EQUAL(ask_body(adm, FF__REQUEST__BODY_HOST_ADD, 4, NULL, 0), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(seen.calls, 2);
	CU_ASSERT_FALSE(seen.from_shim);
	/* both */
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_LIST_HOSTS, 5, NULL, 0), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(ask_body(adm, FF__REQUEST__BODY_LIST_HOSTS, 6, NULL, 0), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(seen.calls, 4);
	/* exactly one fd: not none, not two (both closed), and not from ffctl */
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_VERBS_MEM_ADD, 7, NULL, 0),
			FF__STATUS__ST_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(said, "expected 1 fds, got 0"));
	two[0] = two[1] = p[0];
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_VERBS_MEM_ADD, 8, two, 2),
			FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(ask_body(adm, FF__REQUEST__BODY_VERBS_MEM_ADD, 9, &p[0], 1),
			FF__STATUS__ST_PERM);
	CU_ASSERT_EQUAL(seen.calls, 4);
	CU_ASSERT_EQUAL(ask_body(c1, FF__REQUEST__BODY_VERBS_MEM_ADD, 10, &p[0], 1),
			FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(seen.calls, 5);
	CU_ASSERT_EQUAL(seen.nfds, 1);
	CU_ASSERT_EQUAL(seen.ino, fd_ino(p[0]));
	close(p[0]);
	CU_ASSERT(fx_pipe_orphaned(p[1])); /* the router kept no copy */
	close(p[1]);
	/* Hello first, for a feature's requests too */
	early = chan_open("c1", false);
	CU_ASSERT_FATAL(early >= 0);
	CU_ASSERT_EQUAL(ask_body(early, FF__REQUEST__BODY_VERBS_OPEN, 11, NULL, 0),
			FF__STATUS__ST_NOT_HELLO);
	CU_ASSERT_EQUAL(seen.calls, 5);
	close(early);
	close(c1);
	close(adm);
	core_down();
}

/* Hooks run in registration order, free hooks in reverse; a feature's
 * priv is found inside its own free hook and not after it, and none of its
 * hooks runs once it is freed (the core frees containers and channels
 * after the features). */
static void test_hook_order(void)
{
	int adm, c1;

	core_up();
	fake_add(&feat_a, 'A');
	fake_add(&feat_b, 'B');
	fake_add(&feat_c, 'C');
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "c1", "10.99.0.1", NULL, NULL), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(hooks, "A.registered(c1) B.registered(c1) C.registered(c1) ");
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "r1", "10.99.0.9", "far", NULL), FF__STATUS__ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(hooks, "A.host_known(far) B.host_known(far) C.host_known(far) ");
	c1 = chan_open("c1", true);
	CU_ASSERT_FATAL(c1 >= 0);
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "c2", "10.99.0.2", NULL, NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(unreg(adm, "c2"), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(hooks,
			       "A.registered(c2) B.registered(c2) C.registered(c2) "
			       "A.container_free(c2) B.container_free(c2) C.container_free(c2) "
			       "A.unregistered(c2) B.unregistered(c2) C.unregistered(c2) ");
	/* the router stops with c1, its channel and ours still there */
	*hooks = 0;
	ffr_router_free(r);
	r = NULL;
	CU_ASSERT_STRING_EQUAL(hooks, "C.free[ABC] B.free[AB] A.free[A] ");
	close(c1);
	close(adm);
	core_down();
}

/* container_free runs when a container goes, after chan_free for each of
 * its channels; chan_free runs when a channel closes, admin ones too. */
static void test_hooks_on_close(void)
{
	int adm, c1, c1b;
	char b;

	core_up();
	fake_add(&feat_a, 'A');
	fake_add(&feat_b, 'B');
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "c1", "10.99.0.1", NULL, NULL), FF__STATUS__ST_OK);
	c1 = chan_open("c1", true);
	c1b = chan_open("c1", true);
	CU_ASSERT_FATAL(c1 >= 0 && c1b >= 0);
	/* a shim's channel closes */
	*hooks = 0;
	close(c1);
	settle();
	CU_ASSERT_STRING_EQUAL(hooks, "A.chan_free(c1) B.chan_free(c1) ");
	/* the container is unregistered with a channel still open */
	*hooks = 0;
	CU_ASSERT_EQUAL(unreg(adm, "c1"), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(hooks, "A.chan_free(c1) B.chan_free(c1) "
				      "A.container_free(c1) B.container_free(c1) "
				      "A.unregistered(c1) B.unregistered(c1) ");
	/* which the shim sees as EOF */
	CU_ASSERT(pump_until_readable(c1b));
	CU_ASSERT_EQUAL(recv(c1b, &b, 1, MSG_DONTWAIT), 0);
	close(c1b);
	/* an admin channel closes */
	*hooks = 0;
	close(adm);
	settle();
	CU_ASSERT_STRING_EQUAL(hooks, "A.chan_free(-) B.chan_free(-) ");
	*hooks = 0;
	core_down();
	CU_ASSERT_STRING_EQUAL(hooks, "B.free[AB] A.free[A] ");
}

/* A registered hook that fails undoes the registration: later features
 * are not asked, every feature's container_free runs, the admin request
 * fails, and the container is neither listed nor in the map, its address
 * free and its socket gone. */
static void test_registered_error_undoes(void)
{
	struct fake *b;
	struct ff_ip ip;
	uint8_t flags;
	char path[PATH_MAX];
	int adm;

	core_up();
	fake_add(&feat_a, 'A');
	b = fake_add(&feat_b, 'B');
	fake_add(&feat_c, 'C');
	b->fail_registered = -EIO;
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "bad", "10.99.0.5", NULL, NULL), FF__STATUS__ST_INTERNAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(said, strerror(EIO)));
	CU_ASSERT_STRING_EQUAL(hooks, "A.registered(bad) B.registered(bad) "
				      "A.container_free(bad) B.container_free(bad) "
				      "C.container_free(bad) ");
	CU_ASSERT_FALSE(listed(adm, "bad", NULL));
	ff_ip_parse("10.99.0.5", &ip);
	CU_ASSERT_EQUAL(ff_map_find(r->map, &ip, &flags), 0);
	snprintf(path, sizeof(path), "%s/c/bad/%s", dir, FF_SOCK_NAME);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	/* the same address under another name */
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "good", "10.99.0.5", NULL, NULL), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(hooks, "A.registered(good) B.registered(good) C.registered(good) ");
	CU_ASSERT(listed(adm, "good", "here"));
	CU_ASSERT_EQUAL(ff_map_find(r->map, &ip, &flags), 1);
	/* and the failing one again, once the feature accepts it */
	b->fail_registered = 0;
	CU_ASSERT_EQUAL(reg(adm, "bad", "10.99.0.6", NULL, NULL), FF__STATUS__ST_OK);
	CU_ASSERT(listed(adm, "bad", "here"));
	close(adm);
	core_down();
}

/* A container of another host may be registered when some feature knows
 * that host: asked in order until one does. This host needs no feature. */
static void test_host_known(void)
{
	struct fake *b;
	int adm;

	core_up();
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	/* the core alone knows no other host */
	CU_ASSERT_EQUAL(reg(adm, "r1", "10.99.0.9", "far", NULL), FF__STATUS__ST_NOT_FOUND);
	CU_ASSERT_FALSE(listed(adm, "r1", NULL));
	fake_add(&feat_a, 'A');
	b = fake_add(&feat_b, 'B');
	b->host = "far";
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "r1", "10.99.0.9", "far", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(hooks, "A.host_known(far) B.host_known(far) "
				      "A.registered(r1) B.registered(r1) ");
	CU_ASSERT(listed(adm, "r1", "far"));
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "r2", "10.99.0.8", "nowhere", NULL), FF__STATUS__ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(hooks, "A.host_known(nowhere) B.host_known(nowhere) ");
	CU_ASSERT_FALSE(listed(adm, "r2", NULL));
	/* this host, by any of its names: nobody is asked */
	*hooks = 0;
	CU_ASSERT_EQUAL(reg(adm, "l1", "10.99.0.1", "here", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(reg(adm, "l2", "10.99.0.2", "local", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(reg(adm, "l3", "10.99.0.3", "", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(hooks, "A.registered(l1) B.registered(l1) A.registered(l2) "
				      "B.registered(l2) A.registered(l3) B.registered(l3) ");
	CU_ASSERT(listed(adm, "l2", "here"));
	close(adm);
	core_down();
}

/* A shim's connect to a container of another host goes to the features'
 * connect hooks in order until one takes it; with none (or none taking
 * it) the answer is ST_UNREACH. Outside the overlay (policy host), none
 * is ST_UNSUPPORTED. */
static void test_connect_hooks(void)
{
	struct fake *h, *b, *c;
	int adm, c1, h1;

	core_up();
	h = fake_add(&feat_hosts, 'H');
	h->host = "far";
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "c1", "10.99.0.1", NULL, NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "h1", "10.99.0.3", NULL, "host"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(reg(adm, "r1", "10.99.0.9", "far", NULL), FF__STATUS__ST_OK);
	c1 = chan_open("c1", true);
	h1 = chan_open("h1", true);
	CU_ASSERT_FATAL(c1 >= 0 && h1 >= 0);
	/* no connect hook at all */
	CU_ASSERT_EQUAL(ask_connect(c1, "10.99.0.9", 80, false), FF__STATUS__ST_UNREACH);
	CU_ASSERT_PTR_NOT_NULL(strstr(said, "far"));
	CU_ASSERT_EQUAL(ask_connect(h1, "192.0.2.7", 80, true), FF__STATUS__ST_UNSUPPORTED);
	/* one that declines */
	b = fake_add(&feat_b, 'B');
	*hooks = 0;
	CU_ASSERT_EQUAL(ask_connect(c1, "10.99.0.9", 80, false), FF__STATUS__ST_UNREACH);
	CU_ASSERT_STRING_EQUAL(hooks, "B.connect(r1 10.99.0.1:0 10.99.0.9:80) ");
	/* then one that takes it, after the one that declines */
	c = fake_add(&feat_c, 'C');
	c->connects = true;
	*hooks = 0;
	CU_ASSERT_EQUAL(ask_connect(c1, "10.99.0.9", 80, false), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(said, "C");
	CU_ASSERT_EQUAL(ask_connect(h1, "192.0.2.7", 80, true), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(said, "C");
	CU_ASSERT_STRING_EQUAL(hooks, "B.connect(r1 10.99.0.1:0 10.99.0.9:80) "
				      "C.connect(r1 10.99.0.1:0 10.99.0.9:80) "
				      "B.connect(- - 192.0.2.7:80) C.connect(- - 192.0.2.7:80) ");
	/* the first that takes it ends the search */
	b->connects = true;
	*hooks = 0;
	CU_ASSERT_EQUAL(ask_connect(c1, "10.99.0.9", 80, false), FF__STATUS__ST_OK);
	CU_ASSERT_STRING_EQUAL(said, "B");
	CU_ASSERT_STRING_EQUAL(hooks, "B.connect(r1 10.99.0.1:0 10.99.0.9:80) ");
	/* a local container is never the features' business */
	*hooks = 0;
	CU_ASSERT_EQUAL(ask_connect(h1, "10.99.0.1", 80, false), FF__STATUS__ST_NO_LISTENER);
	CU_ASSERT_STRING_EQUAL(hooks, "");
	close(h1);
	close(c1);
	close(adm);
	core_down();
}

/* Each feature's part of a status reply is in its first piece, in
 * registration order, and the memory it returned is freed (leak checkers
 * of the sanitize and valgrind suites); hot and poll ask every feature. */
static void test_status_hot_poll(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus m = FF__GET_STATUS__INIT;
	struct fake *p, *q;
	int adm, rfds[FF_MAX_FDS], nr;
	Ff__Reply *rep;

	core_up();
	p = fake_add(&feat_poll, 'P');
	fake_add(&feat_status, 'S');
	q = fake_add(&feat_poll2, 'Q');
	adm = chan_open(NULL, true);
	CU_ASSERT_FATAL(adm >= 0);
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &m;
	CU_ASSERT_EQUAL_FATAL(ff_msg_send(adm, &req.base, NULL, 0), 0);
	CU_ASSERT_FATAL(pump_until_readable(adm));
	rep = fx_recv(adm, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep->status_reply);
	CU_ASSERT_STRING_EQUAL(rep->status_reply->host, "here");
	CU_ASSERT_EQUAL_FATAL(rep->status_reply->n_publishes, 1);
	CU_ASSERT_STRING_EQUAL(rep->status_reply->publishes[0]->container, "fake-S");
	ff__reply__free_unpacked(rep, NULL);
	/* hot if any is */
	CU_ASSERT_FALSE(ffr_features_hot(r));
	q->hot = true;
	CU_ASSERT(ffr_features_hot(r));
	q->hot = false;
	p->hot = true;
	CU_ASSERT(ffr_features_hot(r));
	/* every poll runs, in order; more if any says so */
	*hooks = 0;
	CU_ASSERT_FALSE(ffr_features_poll(r));
	p->more = true;
	CU_ASSERT(ffr_features_poll(r));
	p->more = false;
	q->more = true;
	CU_ASSERT(ffr_features_poll(r));
	CU_ASSERT_STRING_EQUAL(hooks, "P.poll Q.poll P.poll Q.poll P.poll Q.poll ");
	close(adm);
	core_down();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"feature_slots", test_feature_slots},
		{"ops_add_refusals", test_ops_add_refusals},
		{"no_handler_unsupported", test_no_handler_unsupported},
		{"dispatch_checks", test_dispatch_checks},
		{"hook_order", test_hook_order},
		{"hooks_on_close", test_hooks_on_close},
		{"registered_error_undoes", test_registered_error_undoes},
		{"host_known", test_host_known},
		{"connect_hooks", test_connect_hooks},
		{"status_hot_poll", test_status_hot_poll},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("feature", tests);
}
