/* What the xhost unit tests share: in-process routers (driven from the
 * test's own thread, internals in reach) with a cluster secret, the
 * cluster options a test chooses and an ingress on a loopback port; a pump
 * for their event loop; shim channels and raw TCP clients to play apps and
 * other routers with. Header-only: every test binary is one source file. */
#pragma once

#include "cu.h"

#include "fdpass.h"
#include "fixture.h"
#include "inproc.h"
#include "msg.h"
#include "xhost/internal.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define XT_SECRET "0123456789abcdef-the-cluster"

static inline int64_t xt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop of base for ms milliseconds. */
static inline void xt_pump(struct event_base *base, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* A TCP port nothing uses on ip right now. */
static inline uint16_t xt_free_port(const char *ip)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* A router named host with the cluster secret and the options of xc (NULL:
 * the defaults); with ingress_ip, an ingress on a free port of it. */
static inline struct ffr_router *xt_router(struct event_base *base, const char *host,
					   const char *ingress_ip,
					   const struct ffr_xhost_config *xc)
{
	struct ffr_config cfg = {
		.quota = {.channels = 64, .listeners = 64, .conns = 1024, .pending = 256},
		.host_id = host,
	};
	struct ffr_xhost_config x = xc ? *xc : (struct ffr_xhost_config){.state = NULL};
	char dir[64] = "/tmp/ffxhunit.XXXXXX", secret[PATH_MAX], ingress[64];
	struct ffr_router *r = NULL;
	int fd, err = -EIO;

	if (!mkdtemp(dir))
		return NULL;
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	fd = open(secret, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && write(fd, XT_SECRET, strlen(XT_SECRET)) == (ssize_t)strlen(XT_SECRET))
		err = 0;
	if (fd >= 0)
		close(fd);
	x.secret_file = secret;
	if (ingress_ip) {
		snprintf(ingress, sizeof(ingress), "%s:%u", ingress_ip, xt_free_port(ingress_ip));
		x.ingress = ingress;
	}
	cfg.rundir = dir;
	if (!err)
		r = ffr_router_new(base, &cfg, &err);
	if (r)
		err = ffr_xhost_attach(r, &x);
	if (err) {
		fprintf(stderr, "xt_router %s: %s\n", host, strerror(-err));
		ffr_router_free(r);
		fx_rmtree(dir);
		return NULL;
	}
	return r;
}

/* Where r's ingress listens. */
static inline struct ff_sa xt_ingress(struct ffr_router *r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ff_sa sa = {.port = 0};

	if (getsockname(ffr_xh(r)->ifd, (struct sockaddr *)&ss, &len) == 0)
		ff_sa_from_sockaddr(&sa, (struct sockaddr *)&ss, len);
	return sa;
}

/* Declares host name at addr on r. */
static inline void xt_host(struct ffr_router *r, const char *name, struct ff_sa addr)
{
	CU_ASSERT_FATAL(ffr_host_add(r, name, &addr, false, NULL) == 0);
}

/* Registers container name with ip on r: here (host NULL) or on host. */
static inline struct ffr_container *xt_container(struct ffr_router *r, const char *name,
						 const char *ip, const char *host,
						 enum ffr_policy policy)
{
	struct ffr_container *c = NULL;
	struct ff_ip a;

	CU_ASSERT_FATAL(ff_ip_parse(ip, &a) == 0);
	CU_ASSERT_FATAL(ffr_container_new(r, name, &a, 1, host, policy, 0, 0, &c) == 0);
	return c;
}

static inline struct ff_sa xt_sa(const char *ip, uint16_t port)
{
	struct ff_sa sa = {.port = port};

	CU_ASSERT_FATAL(ff_ip_parse(ip, &sa.ip) == 0);
	return sa;
}

/* A TCP connection from from_ip (NULL: any) to to; blocking connect, then
 * non-blocking. -1 on failure. */
static inline int xt_tcp(const char *from_ip, const struct ff_sa *to)
{
	struct sockaddr_storage ss;
	struct sockaddr_in a = {.sin_family = AF_INET};
	int len = ff_sa_to_sockaddr(to, AF_INET, &ss);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (from_ip) {
		inet_pton(AF_INET, from_ip, &a.sin_addr);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			goto out_close;
	}
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0)
		goto out_close;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
out_close:
	close(fd);
	return -1;
}

/* 1 if the other end closed fd (EOF or reset), 0 if it is open and quiet,
 * 2 if there is data. */
static inline int xt_closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);

	if (n == 0 || (n < 0 && errno != EAGAIN))
		return 1;
	return n > 0 ? 2 : 0;
}

/* Sends req on fd (NULL: sent already) and pumps base until the reply
 * comes (3 s at most); received fds go to rfds. */
static inline Ff__Reply *xt_call(struct event_base *base, int fd, Ff__Request *req, int *rfds,
				 int *nr)
{
	uint8_t buf[FF_MSG_MAX];
	ProtobufCMessage *m = NULL;
	int64_t end = xt_now_ms() + 3000;

	*nr = 0;
	if (req && ff_msg_send(fd, &req->base, NULL, 0) < 0)
		return NULL;
	while (xt_now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		xt_pump(base, 2);
		if (poll(&p, 1, 0) == 1)
			break;
	}
	if (ff_msg_recv(fd, &ff__reply__descriptor, buf, sizeof(buf), &m, rfds, FF_MAX_FDS, nr,
			MSG_DONTWAIT) != 1)
		return NULL;
	return (Ff__Reply *)m;
}

/* A shim channel of local container c, said Hello on; the test's end. */
static inline int xt_shim(struct event_base *base, struct ffr_container *c)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__Reply *rep;
	int sv[2], rfds[FF_MAX_FDS], nr;

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CU_ASSERT_FATAL(ffr_chan_new(c->r, c, sv[0]) == 0);
	h.version = FF_PROTO_VERSION;
	h.role = (char *)"shim";
	req.id = 1;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	rep = xt_call(base, sv[1], &req, rfds, &nr);
	ff_close_fds(rfds, nr);
	CU_ASSERT_FATAL(rep && rep->status == FF__STATUS__ST_OK);
	ff__reply__free_unpacked(rep, NULL);
	return sv[1];
}

/* Listens on all the container's addresses, on a port of its own, on
 * shim channel ch (with a kernel listener on 0.0.0.0:port, as an app's
 * would be); *qfd: the app's end of the accept queue. Returns the port. */
static inline uint16_t xt_listen(struct event_base *base, int ch, int *qfd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Listen m = FF__LISTEN__INIT;
	Ff__Reply *rep;
	Ff__Addr a;
	uint8_t ab[16];
	uint16_t port;
	int kfd = fx_tcp_listener(&port), rfds[FF_MAX_FDS], nr = 0;

	CU_ASSERT_FATAL(kfd >= 0);
	fx_addr(&a, ab, "0.0.0.0", port);
	m.addr = &a;
	m.backlog = 16;
	req.id = 2;
	req.body_case = FF__REQUEST__BODY_LISTEN;
	req.listen = &m;
	if (ff_msg_send(ch, &req.base, &kfd, 1) == 0)
		rep = xt_call(base, ch, NULL, rfds, &nr);
	else
		rep = NULL;
	close(kfd);
	CU_ASSERT_FATAL(rep && rep->status == FF__STATUS__ST_OK && nr == 2);
	ff__reply__free_unpacked(rep, NULL);
	*qfd = rfds[0];
	close(rfds[1]);
	return port;
}

/* Connects to dst on shim channel ch (outside: policy host; here: the
 * asker reads the other router's answer itself); the reply, *cfd the
 * connection (-1 if none came). */
static inline Ff__Reply *xt_connect_ex(struct event_base *base, int ch, const struct ff_sa *dst,
				       bool outside, bool here, int *cfd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Reply *rep;
	Ff__Addr a;
	uint8_t ab[16];
	int rfds[FF_MAX_FDS], nr;

	ff_sa_to_proto(dst, &a, ab);
	m.dst = &a;
	m.outside = outside;
	m.answer_here = here;
	req.id = 3;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &m;
	rep = xt_call(base, ch, &req, rfds, &nr);
	*cfd = nr == 1 ? rfds[0] : -1;
	if (nr != 1)
		ff_close_fds(rfds, nr);
	return rep;
}

static inline Ff__Reply *xt_connect(struct event_base *base, int ch, const struct ff_sa *dst,
				    bool outside, int *cfd)
{
	return xt_connect_ex(base, ch, dst, outside, false, cfd);
}
