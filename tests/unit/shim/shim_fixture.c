/* The shim tests' fake router and fake kernel connect (shim_fixture.h).
 * The router thread owns the channel sockets; everything the tests read
 * or script is under fr.lock. */
#include "shim_fixture.h"

#include "real.h"
#include "sock/sock.h"

#include "fdpass.h"
#include "map.h"
#include "msg.h"
#include "sdoor.h"
#include "sring.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS  64
#define MAX_QUEUED 16
#define MAX_MAP	   16

static struct {
	pthread_mutex_t lock;
	pthread_t thr;
	int lfd, stop[2];
	char dir[64], path[108];
	int map_fd, stat_fd;
	struct ff_map_hdr *map;
	struct ff_stat_hdr *stats;
	char policy[16];
	enum sf_answer q[MAX_QUEUED];
	Ff__Status qst[MAX_QUEUED];
	int qhead, qn;
	int hellos, connects;
	struct ff_sa dst;
	bool outside;
	int peer, ring;
} fr = {.lock = PTHREAD_MUTEX_INITIALIZER, .peer = -1, .ring = -1, .policy = "container"};

struct sf_kernel sf_kernel;
static int (*real_connect)(int, const struct sockaddr *, socklen_t);

static void die(const char *what)
{
	fprintf(stderr, "shim fixture: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- replies ---- */

static int send_status(int c, uint64_t id, Ff__Status st)
{
	Ff__Reply rep = FF__REPLY__INIT;

	rep.id = id;
	rep.status = st;
	return ff_msg_send(c, &rep.base, NULL, 0);
}

static int reply_hello(int c, uint64_t id)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__HelloReply h = FF__HELLO_REPLY__INIT;
	Ff__Addr a, *ips[1] = {&a};
	uint8_t ip[16];
	struct ff_sa own = {0};
	int fds[2] = {fr.map_fd, fr.stat_fd};
	char policy[sizeof(fr.policy)];

	ff_ip_parse(SF_OWN_IP, &own.ip);
	ff_sa_to_proto(&own, &a, ip);
	pthread_mutex_lock(&fr.lock);
	memcpy(policy, fr.policy, sizeof(policy));
	fr.hellos++;
	pthread_mutex_unlock(&fr.lock);
	h.version = FF_PROTO_VERSION;
	h.policy = policy;
	h.n_ips = 1;
	h.ips = ips;
	h.stat_slots = FF_STAT_SLOTS;
	rep.id = id;
	rep.body_case = FF__REPLY__BODY_HELLO;
	rep.hello = &h;
	return ff_msg_send(c, &rep.base, fds, 2);
}

/* A connected loopback TCP pair. */
static int tcp_pair(int sv[2])
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(in);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || sv[0] < 0 || bind(l, (struct sockaddr *)&in, len) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&in, &len) < 0 ||
	    connect(sv[0], (struct sockaddr *)&in, len) < 0)
		die("loopback pair");
	sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (sv[1] < 0)
		die("loopback accept");
	close(l);
	return 0;
}

/* A sealed memfd of len bytes (the router's ring_new), formatted as
 * rings of size bytes, or (size 0) as an end's page. */
static int ring_memfd(size_t len, uint32_t size)
{
	int fd = memfd_create("sf-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *m;

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		die("memfd");
	m = mmap(NULL, FF_SRING_HDR, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || (size ? ff_sring_format(m, len, size) : ff_sring_end_format(m)) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		die("ring memfd");
	munmap(m, FF_SRING_HDR);
	return fd;
}

/* Hands one end of a new connection to dst over, as the router does. */
static int hand_over(int c, uint64_t id, const struct ff_sa *dst, enum sf_answer a)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__ConnectReply cr = FF__CONNECT_REPLY__INIT;
	Ff__Addr local, peer;
	uint8_t ip[16], pip[16];
	struct ff_sa sa = {0};
	int sv[2], fds[3] = {-1, -1, -1}, err;

	if ((a == SF_PAIR || a == SF_RING) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	if (a == SF_RING) {
		int sb = FF_SDOOR_SNDBUF; /* the doorbell's, as the router sizes it */

		for (int i = 0; i < 2; i++)
			setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
		fds[1] = ring_memfd(ff_sring_len(SF_RING_SIZE), SF_RING_SIZE);
		fds[2] = ring_memfd(FF_SRING_HDR, 0);
		cr.ring = SF_RING_SIZE;
	}
	if (a == SF_TCP)
		tcp_pair(sv);
	ff_ip_parse(SF_OWN_IP, &sa.ip);
	sa.port = SF_LOCAL_PORT;
	ff_sa_to_proto(&sa, &local, ip);
	ff_sa_to_proto(dst, &peer, pip);
	cr.local = &local;
	cr.peer = &peer;
	cr.slot = SF_SLOT;
	cr.conn_id = 1;
	cr.path = a == SF_TCP ? FF__PATH__PATH_TCP : FF__PATH__PATH_SAME_HOST;
	rep.id = id;
	rep.body_case = FF__REPLY__BODY_CONNECT;
	rep.connect = &cr;
	/* the test takes the peer as soon as the reply is in: keep it first */
	pthread_mutex_lock(&fr.lock);
	if (fr.peer >= 0)
		close(fr.peer);
	fr.peer = sv[1];
	if (fr.ring >= 0)
		close(fr.ring);
	fr.ring = a == SF_RING ? dup(fds[1]) : -1;
	pthread_mutex_unlock(&fr.lock);
	fds[0] = sv[0];
	err = ff_msg_send(c, &rep.base, fds, a == SF_RING ? 3 : 1);
	ff_close_fds(fds, a == SF_RING ? 3 : 1);
	return err;
}

/* A REFUSED reply, broken as a says. */
static int send_broken(int c, uint64_t id, enum sf_answer a)
{
	Ff__Reply rep = FF__REPLY__INIT;
	size_t elen = a == SF_TOO_BIG ? 5000 : 200, len;
	char *err = malloc(elen + 1);
	uint8_t *buf = malloc(elen + 64);
	int r;

	memset(err, 'x', elen);
	err[elen] = '\0';
	rep.id = id;
	rep.status = FF__STATUS__ST_REFUSED;
	rep.error = err;
	len = ff_msg_pack(&rep.base, buf);
	if (a == SF_BAD_FRAME)
		buf[0] = 0;
	if (a == SF_TRUNCATED)
		len -= 5; /* inside the error string */
	r = ff_send_fds(c, buf, len, NULL, 0);
	free(buf);
	free(err);
	return r;
}

static enum sf_answer next_answer(Ff__Status *st)
{
	enum sf_answer a = SF_STATUS;

	*st = FF__STATUS__ST_NO_LISTENER;
	pthread_mutex_lock(&fr.lock);
	if (fr.qn) {
		a = fr.q[fr.qhead];
		*st = fr.qst[fr.qhead];
		fr.qhead = (fr.qhead + 1) % MAX_QUEUED;
		fr.qn--;
	}
	pthread_mutex_unlock(&fr.lock);
	return a;
}

/* -1: close the channel. */
static int handle_connect(int c, uint64_t id, const struct ff_sa *dst, bool outside)
{
	enum sf_answer a;
	Ff__Status st;

	pthread_mutex_lock(&fr.lock);
	fr.connects++;
	fr.dst = *dst;
	fr.outside = outside;
	pthread_mutex_unlock(&fr.lock);
	a = next_answer(&st);
	if (a == SF_WRONG_ID) {
		send_status(c, id + 100, FF__STATUS__ST_REFUSED);
		a = next_answer(&st);
	}
	switch (a) {
	case SF_PAIR:
	case SF_RING:
	case SF_TCP:
		return hand_over(c, id, dst, a);
	case SF_TRUNCATED:
	case SF_BAD_FRAME:
	case SF_TOO_BIG:
		return send_broken(c, id, a);
	case SF_HANGUP:
		return -1;
	default:
		return send_status(c, id, st);
	}
}

/* One request on channel c; -1 when it is to be closed. The request is
 * freed before the answer goes out: a process the tests fork once it has
 * its answer must not inherit memory only this thread's stack points to
 * (valgrind would call it lost in the child). */
static int serve_one(int c)
{
	uint8_t buf[FF_MSG_MAX];
	ProtobufCMessage *m;
	Ff__Request *req;
	Ff__Request__BodyCase what;
	struct ff_sa dst = {0};
	bool outside = false;
	uint64_t id;
	int fds[FF_MAX_FDS], nfds = 0, r;

	r = ff_msg_recv(c, &ff__request__descriptor, buf, sizeof(buf), &m, fds, FF_MAX_FDS, &nfds,
			0);
	if (r <= 0)
		return -1;
	ff_close_fds(fds, nfds);
	req = (Ff__Request *)m;
	what = req->body_case;
	id = req->id;
	if (what == FF__REQUEST__BODY_CONNECT) {
		ff_sa_from_proto(&dst, req->connect->dst);
		outside = req->connect->outside;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	if (what == FF__REQUEST__BODY_HELLO)
		r = reply_hello(c, id);
	else if (what == FF__REQUEST__BODY_CONNECT)
		r = handle_connect(c, id, &dst, outside);
	else
		r = send_status(c, id, FF__STATUS__ST_UNSUPPORTED);
	return r < 0 ? -1 : 0;
}

static void *serve(void *arg)
{
	int conns[MAX_CONNS], n = 0;

	for (;;) {
		struct pollfd p[2 + MAX_CONNS] = {{.fd = fr.stop[0], .events = POLLIN},
						  {.fd = fr.lfd, .events = POLLIN}};

		for (int i = 0; i < n; i++)
			p[2 + i] = (struct pollfd){.fd = conns[i], .events = POLLIN};
		if (poll(p, (nfds_t)(2 + n), -1) < 0)
			continue;
		if (p[0].revents)
			break;
		for (int i = n - 1; i >= 0; i--)
			if (p[2 + i].revents && serve_one(conns[i]) < 0) {
				close(conns[i]);
				conns[i] = conns[--n];
			}
		if ((p[1].revents & POLLIN) && n < MAX_CONNS) {
			int c = accept4(fr.lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0)
				conns[n++] = c;
		}
	}
	for (int i = 0; i < n; i++)
		close(conns[i]);
	return NULL;
}

/* ---- set-up ---- */

static void *memfd_page(const char *name, size_t size, int *fd)
{
	void *p;

	*fd = memfd_create(name, MFD_CLOEXEC);
	if (*fd < 0 || ftruncate(*fd, (off_t)size) < 0)
		die("memfd");
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

void sf_start(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	signal(SIGPIPE, SIG_IGN);
	ffs_init();
	strcpy(fr.dir, "/tmp/ffshim-test.XXXXXX");
	if (!mkdtemp(fr.dir))
		die("mkdtemp");
	snprintf(fr.path, sizeof(fr.path), "%s/%s", fr.dir, FF_SOCK_NAME);
	strcpy(sun.sun_path, fr.path);
	fr.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fr.lfd < 0 || bind(fr.lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fr.lfd, 16) < 0 || pipe2(fr.stop, O_CLOEXEC) < 0)
		die("router socket");
	fr.map = memfd_page("sf-map", FF_MAP_SIZE, &fr.map_fd);
	ff_map_init(fr.map);
	fr.stats = memfd_page("sf-stats", FF_STAT_SIZE, &fr.stat_fd);
	fr.stats->magic = FF_STAT_MAGIC;
	fr.stats->slots = FF_STAT_SLOTS;
	setenv(FF_ENV_SOCK, fr.path, 1);
	if (pthread_create(&fr.thr, NULL, serve, NULL))
		die("router thread");
}

void sf_stop(void)
{
	if (write(fr.stop[1], "x", 1) != 1)
		die("stop");
	pthread_join(fr.thr, NULL);
	close(fr.lfd);
	close(fr.stop[0]);
	close(fr.stop[1]);
	if (fr.peer >= 0)
		close(fr.peer);
	if (fr.ring >= 0)
		close(fr.ring);
	unlink(fr.path);
	rmdir(fr.dir);
	/* the pages stay: the shim keeps them mapped for good */
	close(fr.map_fd);
	close(fr.stat_fd);
}

const char *sf_router_path(void)
{
	return fr.path;
}

/* ---- scripting and records ---- */

void sf_map_set(const char *const *ips)
{
	struct ff_map_ent ents[MAX_MAP];
	uint32_t n = 0;

	for (; ips && ips[n] && n < MAX_MAP; n++) {
		struct ff_ip ip;

		if (ff_ip_parse(ips[n], &ip) < 0)
			die(ips[n]);
		ff_map_ent_set(&ents[n], &ip, 0);
	}
	pthread_mutex_lock(&fr.lock);
	ff_map_write(fr.map, ents, n);
	pthread_mutex_unlock(&fr.lock);
}

void sf_policy(const char *policy)
{
	pthread_mutex_lock(&fr.lock);
	snprintf(fr.policy, sizeof(fr.policy), "%s", policy);
	pthread_mutex_unlock(&fr.lock);
}

void sf_answer(enum sf_answer a, Ff__Status st)
{
	pthread_mutex_lock(&fr.lock);
	if (fr.qn < MAX_QUEUED) {
		int i = (fr.qhead + fr.qn++) % MAX_QUEUED;

		fr.q[i] = a;
		fr.qst[i] = st;
	}
	pthread_mutex_unlock(&fr.lock);
}

void sf_answers_clear(void)
{
	pthread_mutex_lock(&fr.lock);
	fr.qn = 0;
	pthread_mutex_unlock(&fr.lock);
}

int sf_hellos(void)
{
	int n;

	pthread_mutex_lock(&fr.lock);
	n = fr.hellos;
	pthread_mutex_unlock(&fr.lock);
	return n;
}

int sf_connects(void)
{
	int n;

	pthread_mutex_lock(&fr.lock);
	n = fr.connects;
	pthread_mutex_unlock(&fr.lock);
	return n;
}

void sf_last_connect(struct ff_sa *dst, bool *outside)
{
	pthread_mutex_lock(&fr.lock);
	*dst = fr.dst;
	*outside = fr.outside;
	pthread_mutex_unlock(&fr.lock);
}

/* The fd in *slot (-1 then), under fr.lock. */
static int take(int *slot)
{
	int fd;

	pthread_mutex_lock(&fr.lock);
	fd = *slot;
	*slot = -1;
	pthread_mutex_unlock(&fr.lock);
	return fd;
}

int sf_take_peer(void)
{
	return take(&fr.peer);
}

int sf_take_ring(void)
{
	return take(&fr.ring);
}

struct ff_stat_hdr *sf_stats(void)
{
	return fr.stats;
}

/* ---- the fake kernel connect ---- */

static bool loopback(const struct sockaddr *a, socklen_t len)
{
	struct ff_sa sa;

	return ff_sa_from_sockaddr(&sa, a, len) == 0 && ff_ip_is_loopback(&sa.ip);
}

static int fake_connect(int fd, const struct sockaddr *a, socklen_t len)
{
	if (a && a->sa_family == AF_UNIX)
		return real_connect(fd, a, len);
	sf_kernel.calls++;
	memset(&sf_kernel.addr, 0, sizeof(sf_kernel.addr));
	if (a)
		memcpy(&sf_kernel.addr, a,
		       len < sizeof(sf_kernel.addr) ? len : sizeof(sf_kernel.addr));
	if (!a || loopback(a, len))
		return real_connect(fd, a, len);
	if (sf_kernel.err) {
		errno = sf_kernel.err;
		return -1;
	}
	return 0;
}

void sf_kernel_fake(bool on)
{
	if (!real_connect)
		real_connect = REAL(connect);
	ffs_real.connect = on ? fake_connect : real_connect;
	memset(&sf_kernel, 0, sizeof(sf_kernel));
}

/* ---- sockets and addresses ---- */

int sf_socket(int family, int type)
{
	int fd = socket(family, type, 0);

	if (fd < 0)
		die("socket");
	ffs_track_socket(fd, family, type, 0);
	return fd;
}

int sf_tcp_pair(int family, int *srv)
{
	struct sockaddr_storage ss;
	socklen_t len = sf_addr(family == AF_INET ? "127.0.0.1" : "::1", 0, &ss);
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &len) < 0 ||
	    connect(c, (struct sockaddr *)&ss, len) < 0 ||
	    (*srv = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		die("loopback TCP connection");
	close(l);
	return c;
}

int sf_close(int fd)
{
	return ffs_close(fd);
}

socklen_t sf_addr(const char *ip, int port, struct sockaddr_storage *ss)
{
	struct ff_sa sa = {.port = (uint16_t)port};

	if (ff_ip_parse(ip, &sa.ip) < 0)
		die(ip);
	return (socklen_t)ff_sa_to_sockaddr(&sa, sa.ip.family, ss);
}

socklen_t sf_addr_mapped(const char *ip4, int port, struct sockaddr_storage *ss)
{
	struct ff_sa sa = {.port = (uint16_t)port};

	if (ff_ip_parse(ip4, &sa.ip) < 0)
		die(ip4);
	return (socklen_t)ff_sa_to_sockaddr(&sa, AF_INET6, ss);
}

bool sf_addr_is(const struct sockaddr_storage *ss, const char *ip, int port)
{
	struct ff_sa sa, want;

	if (ff_sa_from_sockaddr(&sa, (const struct sockaddr *)ss, sizeof(*ss)) < 0 ||
	    ff_ip_parse(ip, &want.ip) < 0)
		return false;
	return ff_ip_equal(&sa.ip, &want.ip) && sa.port == port;
}
