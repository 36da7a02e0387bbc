/* Router-in-a-thread fixture. The loop stops when a byte arrives on a pipe,
 * so no libevent threading support is needed. */
#include "fixture.h"

#include "addr.h"
#include "fdpass.h"
#include "msg.h"
#include "ffrouter.h"

#include <ff/wire.h>

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct priv {
	struct event_base *base;
	struct ffr_router *r;
	struct event *stop_ev;
	int stop[2];
	pthread_t th;
};

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

static void *loop(void *arg)
{
	struct priv *p = arg;

	event_base_dispatch(p->base);
	return NULL;
}

static int start_in(struct fx_router *fx)
{
	struct priv *p = calloc(1, sizeof(*p));
	struct ffr_options o;
	int err;

	ffr_options_default(&o);
	o.core.rundir = fx->dir;
	o.core.quota = (struct ffr_quota){.channels = 64, .listeners = 64,
					  .conns = fx->max_conns ? fx->max_conns : 1024,
					  .pending = 256};
	o.rdma.dev = "none";
	o.core.metrics = fx->metrics;
	o.core.ring = fx->ring;
	o.core.quota.ring_mib = fx->ring_mib;
	if (!p)
		return -ENOMEM;
	if (pipe2(p->stop, O_CLOEXEC) < 0) {
		free(p);
		return -errno;
	}
	p->base = event_base_new();
	p->r = ffr_start(p->base, &o, &err);
	if (!p->r) {
		event_base_free(p->base);
		close(p->stop[0]);
		close(p->stop[1]);
		free(p);
		return err;
	}
	p->stop_ev = event_new(p->base, p->stop[0], EV_READ, stop_cb, p->base);
	event_add(p->stop_ev, NULL);
	fx->priv = p;
	return -pthread_create(&p->th, NULL, loop, p);
}

int fx_router_start(struct fx_router *fx)
{
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/fftest.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -errno;
	return start_in(fx);
}

static void stop_in(struct fx_router *fx)
{
	struct priv *p = fx->priv;

	if (!p)
		return;
	if (write(p->stop[1], "x", 1) != 1)
		abort();
	pthread_join(p->th, NULL);
	ffr_router_free(p->r);
	event_free(p->stop_ev);
	event_base_free(p->base);
	close(p->stop[0]);
	close(p->stop[1]);
	free(p);
	fx->priv = NULL;
}

int fx_router_restart(struct fx_router *fx)
{
	stop_in(fx);
	return start_in(fx);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void fx_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void fx_router_stop(struct fx_router *fx)
{
	stop_in(fx);
	fx_rmtree(fx->dir);
}

int fx_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

Ff__Reply *fx_recv(int fd, int *rfds, int *nrfds)
{
	static uint8_t buf[FF_MSG_MAX];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ProtobufCMessage *m = NULL;

	*nrfds = 0;
	if (poll(&p, 1, 2000) != 1)
		return NULL;
	if (ff_msg_recv(fd, &ff__reply__descriptor, buf, sizeof(buf), &m, rfds, FF_MAX_FDS, nrfds,
			0) != 1)
		return NULL;
	return (Ff__Reply *)m;
}

Ff__Reply *fx_call(int fd, Ff__Request *req, const int *fds, int nfds, int *rfds, int *nrfds)
{
	*nrfds = 0;
	if (ff_msg_send(fd, &req->base, fds, nfds) < 0)
		return NULL;
	return fx_recv(fd, rfds, nrfds);
}

static int hello_caps(int fd, const char *role, uint64_t caps)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__Reply *rep;
	int rfds[FF_MAX_FDS], n, st;

	h.version = FF_PROTO_VERSION;
	h.role = (char *)role;
	h.caps = caps;
	req.id = 1;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	rep = fx_call(fd, &req, NULL, 0, rfds, &n);
	ff_close_fds(rfds, n);
	if (!rep)
		return -EPROTO;
	st = (int)rep->status;
	ff__reply__free_unpacked(rep, NULL);
	return st ? -EPROTO : 0;
}

static int hello(int fd, const char *role)
{
	return hello_caps(fd, role, 0);
}

int fx_admin(struct fx_router *fx, bool do_hello)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fx->dir, FF_SOCK_NAME);
	fd = fx_connect(path);
	if (fd >= 0 && do_hello && hello(fd, "ctl") < 0) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int fx_shim(struct fx_router *fx, const char *name)
{
	return fx_shim_caps(fx, name, 0);
}

int fx_shim_caps(struct fx_router *fx, const char *name, uint64_t caps)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/c/%s/%s", fx->dir, name, FF_SOCK_NAME);
	fd = fx_connect(path);
	if (fd >= 0 && hello_caps(fd, "shim", caps) < 0) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int fx_register(struct fx_router *fx, const char *name, const char *ip)
{
	return fx_register_netns(fx, name, ip, NULL);
}

int fx_register_netns(struct fx_router *fx, const char *name, const char *ip, const char *netns)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Register m = FF__REGISTER__INIT;
	char *ips[1] = {(char *)ip};
	Ff__Reply *rep;
	int fd = fx_admin(fx, true), rfds[FF_MAX_FDS], n, st;

	if (fd < 0)
		return -1;
	m.name = (char *)name;
	m.n_ips = 1;
	m.ips = ips;
	m.netns = (char *)netns;
	req.id = 2;
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &m;
	rep = fx_call(fd, &req, NULL, 0, rfds, &n);
	close(fd);
	if (!rep)
		return -1;
	st = (int)rep->status;
	ff__reply__free_unpacked(rep, NULL);
	return st;
}

int fx_status_counts(struct fx_router *fx, int *containers, int *listeners, int *conns)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus m = FF__GET_STATUS__INIT;
	int fd = fx_admin(fx, true), rfds[FF_MAX_FDS], n, more = 1, rc = 0;

	*containers = *listeners = *conns = 0;
	if (fd < 0)
		return -1;
	req.id = 3;
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &m;
	if (ff_msg_send(fd, &req.base, NULL, 0) < 0)
		rc = -1;
	while (!rc && more) {
		Ff__Reply *rep = fx_recv(fd, rfds, &n);

		if (!rep || rep->status || !rep->status_reply) {
			rc = -1;
		} else {
			*containers += (int)rep->status_reply->n_containers;
			*listeners += (int)rep->status_reply->n_listeners;
			*conns += (int)rep->status_reply->n_conns;
			more = rep->more;
		}
		if (rep)
			ff__reply__free_unpacked(rep, NULL);
	}
	close(fd);
	return rc;
}

int fx_tcp_listener(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return -1;
	*port = ntohs(sin.sin_port);
	return fd;
}

void fx_addr(Ff__Addr *a, uint8_t buf[16], const char *ip, uint16_t port)
{
	struct ff_sa sa = {.port = port};

	ff_ip_parse(ip, &sa.ip);
	ff_sa_to_proto(&sa, a, buf);
}

long fx_send_raw_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	size_t clen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
	char *cbuf = calloc(1, clen);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = clen};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	long r;

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	r = sendmsg(sock, &mh, 0);
	free(cbuf);
	return r;
}

void fx_up(struct fx_router *fx)
{
	CU_ASSERT_EQUAL_FATAL(fx_router_start(fx), 0);
	CU_ASSERT_EQUAL_FATAL(fx_register(fx, "c1", "10.99.0.1"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(fx_register(fx, "c2", "10.99.0.2"), FF__STATUS__ST_OK);
}

void fx_assert_serving(struct fx_router *fx, int containers)
{
	int c, l, k;

	CU_ASSERT_EQUAL(fx_status_counts(fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(c, containers);
}

bool fx_pipe_orphaned(int wfd)
{
	return write(wfd, "x", 1) < 0 && errno == EPIPE;
}

int fx_unregister(struct fx_router *fx, const char *name)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister m = FF__UNREGISTER__INIT;
	Ff__Reply *rep;
	int fd = fx_admin(fx, true), rfds[FF_MAX_FDS], nr, st;

	m.name = (char *)name;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &m;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	close(fd);
	st = rep ? (int)rep->status : -1;
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	return st;
}

Ff__Reply *fx_listen_req(int ch, int kfd, int qr_in, const char *ip, uint16_t port, int *qfd,
			 int *qr)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Listen m = FF__LISTEN__INIT;
	Ff__Addr a;
	uint8_t ab[16];
	int fds[2] = {kfd, qr_in}, rfds[FF_MAX_FDS], nr = 0;
	Ff__Reply *rep;

	fx_addr(&a, ab, ip, port);
	m.addr = &a;
	m.backlog = 16;
	if (qr_in >= 0) {
		req.body_case = FF__REQUEST__BODY_RELISTEN;
		req.relisten = &m;
	} else {
		req.body_case = FF__REQUEST__BODY_LISTEN;
		req.listen = &m;
	}
	rep = fx_call(ch, &req, fds, qr_in >= 0 ? 2 : kfd >= 0 ? 1 : 0, rfds, &nr);
	if (nr != 2)
		ff_close_fds(rfds, nr);
	if (qfd)
		*qfd = nr == 2 ? rfds[0] : -1;
	else if (nr == 2)
		close(rfds[0]);
	if (qr)
		*qr = nr == 2 ? rfds[1] : -1;
	else if (nr == 2)
		close(rfds[1]);
	return rep;
}

Ff__Reply *fx_listen(int ch, int kfd, const char *ip, uint16_t port, int *qfd)
{
	return fx_listen_req(ch, kfd, -1, ip, port, qfd, NULL);
}

Ff__Reply *fx_overlay_connect(int ch, const char *ip, uint16_t port, int *cfd)
{
	int mfd;
	Ff__Reply *rep = fx_overlay_connect2(ch, ip, port, cfd, &mfd, NULL);

	if (mfd >= 0) { /* one fd was asked for */
		close(mfd);
		if (*cfd >= 0)
			close(*cfd);
		*cfd = -1;
	}
	return rep;
}

/* The rings' fds that came after the connection (n in all): into *mfd
 * and *efd (closed if efd is NULL). */
static void ring_fds(int *fds, int n, int *mfd, int *efd)
{
	*mfd = n == 3 ? fds[1] : -1;
	if (efd)
		*efd = n == 3 ? fds[2] : -1;
	else if (n == 3)
		close(fds[2]);
}

Ff__Reply *fx_overlay_connect2(int ch, const char *ip, uint16_t port, int *cfd, int *mfd, int *efd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Addr a;
	uint8_t ab[16];
	int rfds[FF_MAX_FDS], nr = 0;
	Ff__Reply *rep;

	fx_addr(&a, ab, ip, port);
	m.dst = &a;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &m;
	rep = fx_call(ch, &req, NULL, 0, rfds, &nr);
	*cfd = nr == 1 || nr == 3 ? rfds[0] : -1;
	ring_fds(rfds, nr, mfd, efd);
	if (nr == 2)
		ff_close_fds(rfds, nr);
	return rep;
}

Ff__Accepted *fx_take_accepted(int qfd, int *fd)
{
	int mfd;
	Ff__Accepted *a = fx_take_accepted2(qfd, fd, &mfd, NULL);

	if (mfd >= 0)
		close(mfd);
	return a;
}

Ff__Accepted *fx_take_accepted2(int qfd, int *fd, int *mfd, int *efd)
{
	uint8_t buf[512];
	int fds[FF_MAX_FDS], n = 0;
	ssize_t len = ff_recv_fds(qfd, buf, sizeof(buf), fds, FF_MAX_FDS, &n, 0);

	*fd = n >= 1 ? fds[0] : -1;
	ring_fds(fds, n, mfd, efd);
	if (n == 2)
		close(fds[1]);
	return len > 0 ? (Ff__Accepted *)ff_msg_unpack(&ff__accepted__descriptor, buf, (size_t)len)
		       : NULL;
}
