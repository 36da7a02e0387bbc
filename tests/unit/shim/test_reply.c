/* Router replies as the shim reads them.
 * - The process's router channel (sock/chan.c) through connect()
 *   (sock/sock-conn.c): a connection handed over, a reply for another
 *   request, broken replies, a router gone mid-request, and each status a
 *   Connect can get: the app's errno, or the kernel path.
 * - The verbs half's request/reply exchange (ffs_sockcall, verbs-ctx.c):
 *   the same cases, and the errno a refusal becomes. */
#include "cu.h"
#include "shim_fixture.h"

#include "sock/sock-internal.h"
#include "verbs/verbs-internal.h"
#include "verbs/verbs.h"

#include "fdpass.h"
#include "msg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the router channel, through connect() ---- */

static int overlay_connect(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sf_addr("10.77.0.5", 80, &ss);

	return ffs_connect(fd, (struct sockaddr *)&ss, len);
}

static int domain_of(int fd)
{
	int d = -1;
	socklen_t len = sizeof(d);

	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &len);
	return d;
}

/* A same-host connection: the app's fd becomes the AF_UNIX end the router
 * handed over, named as TCP with the overlay addresses, its bytes counted
 * in the stats slot the router gave. */
static void test_handover_pair(void)
{
	int fd = sf_socket(AF_INET, SOCK_STREAM), peer;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint64_t tx = sf_stats()->slot[SF_SLOT].tx;
	char buf[8];

	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL_FATAL(overlay_connect(fd), 0);
	peer = sf_take_peer();
	CU_ASSERT_EQUAL(domain_of(fd), AF_UNIX);
	CU_ASSERT_TRUE(ffs_is_conn(fd));
	CU_ASSERT_PTR_NOT_NULL(ffs_pair_of(fd));
	CU_ASSERT_EQUAL(ffs_getsockname(fd, (struct sockaddr *)&ss, &len, false), 0);
	CU_ASSERT_TRUE(sf_addr_is(&ss, SF_OWN_IP, SF_LOCAL_PORT));
	len = sizeof(ss);
	CU_ASSERT_EQUAL(ffs_getsockname(fd, (struct sockaddr *)&ss, &len, true), 0);
	CU_ASSERT_TRUE(sf_addr_is(&ss, "10.77.0.5", 80));
	CU_ASSERT_EQUAL(write(fd, "hello", 5), 5);
	ffs_count(fd, 5, true); /* what the write() wrapper adds */
	CU_ASSERT_EQUAL(read(peer, buf, sizeof(buf)), 5);
	CU_ASSERT_EQUAL(sf_stats()->slot[SF_SLOT].tx, tx + 5);
	sf_close(fd);
	close(peer);
}

/* Across hosts: a real TCP socket, which gets the TCP options the app set. */
static void test_handover_tcp(void)
{
	int fd = sf_socket(AF_INET, SOCK_STREAM), peer, on = 1, v = 0;
	socklen_t len = sizeof(v);

	CU_ASSERT_EQUAL(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)), 0);
	sf_answer(SF_TCP, 0);
	CU_ASSERT_EQUAL_FATAL(overlay_connect(fd), 0);
	peer = sf_take_peer();
	CU_ASSERT_EQUAL(domain_of(fd), AF_INET);
	CU_ASSERT_TRUE(ffs_is_conn(fd));
	CU_ASSERT_PTR_NULL(ffs_pair_of(fd)); /* real TCP: no send emulation */
	CU_ASSERT_EQUAL(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
	CU_ASSERT_EQUAL(v, 1);
	sf_close(fd);
	close(peer);
}

/* A reply to another request is not this one's: it is skipped. */
static void test_wrong_id(void)
{
	int fd = sf_socket(AF_INET, SOCK_STREAM), k = sf_kernel.calls;

	sf_answer(SF_WRONG_ID, 0);
	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL(overlay_connect(fd), 0);
	CU_ASSERT_EQUAL(domain_of(fd), AF_UNIX);
	CU_ASSERT_EQUAL(sf_kernel.calls, k);
	sf_close(fd);
	close(sf_take_peer());
}

/* A reply the shim cannot read: it gives up on the channel and the app
 * gets the kernel's connect; the next call opens a new channel. */
static void test_broken_replies(void)
{
	static const enum sf_answer broken[] = {SF_TRUNCATED, SF_BAD_FRAME, SF_TOO_BIG};

	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		int fd = sf_socket(AF_INET, SOCK_STREAM), k = sf_kernel.calls;
		int h = sf_hellos(), c = sf_connects();

		sf_answer(broken[i], 0);
		CU_ASSERT_EQUAL(overlay_connect(fd), 0); /* the fake kernel's success */
		CU_ASSERT_EQUAL(sf_kernel.calls, k + 1);
		CU_ASSERT_EQUAL(sf_connects(), c + 1); /* asked once, not again */
		CU_ASSERT_EQUAL(domain_of(fd), AF_INET);
		CU_ASSERT_EQUAL(ffs_fd_get(fd)->kind, FFS_TCP);
		sf_close(fd);
		CU_ASSERT_EQUAL(ffs_chan_up(), 1);
		CU_ASSERT_EQUAL(sf_hellos(), h + 1);
	}
}

/* The router went away mid-request (a restart): the shim says Hello to the
 * new one and asks once more. */
static void test_router_restart(void)
{
	int fd = sf_socket(AF_INET, SOCK_STREAM), h = sf_hellos(), c = sf_connects();

	sf_answer(SF_HANGUP, 0);
	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL(overlay_connect(fd), 0);
	CU_ASSERT_EQUAL(domain_of(fd), AF_UNIX);
	CU_ASSERT_EQUAL(sf_hellos(), h + 1);
	CU_ASSERT_EQUAL(sf_connects(), c + 2);
	sf_close(fd);
	close(sf_take_peer());
}

/* Each status: the errno a TCP connect would give, or (0) the kernel. */
static void test_status_errno(void)
{
	static const struct {
		Ff__Status st;
		int err;
	} cases[] = {
	    {FF__STATUS__ST_REFUSED, ECONNREFUSED},
	    {FF__STATUS__ST_UNREACH, EHOSTUNREACH},
	    {FF__STATUS__ST_TIMEDOUT, ETIMEDOUT},
	    {FF__STATUS__ST_NO_LISTENER, 0},
	    {FF__STATUS__ST_BUSY, 0},
	    {FF__STATUS__ST_PERM, 0},
	    {FF__STATUS__ST_QUOTA, 0},
	    {FF__STATUS__ST_INTERNAL, 0},
	    {FF__STATUS__ST_UNSUPPORTED, 0},
	    {FF__STATUS__ST_OK, 0}, /* no socket */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = sf_socket(AF_INET, SOCK_STREAM), k = sf_kernel.calls, r;

		sf_answer(SF_STATUS, cases[i].st);
		errno = 0;
		r = overlay_connect(fd);
		if (cases[i].err) {
			CU_ASSERT_EQUAL(r, -1);
			CU_ASSERT_EQUAL(errno, cases[i].err);
			CU_ASSERT_EQUAL(sf_kernel.calls, k);
		} else {
			CU_ASSERT_EQUAL(r, 0);
			CU_ASSERT_EQUAL(sf_kernel.calls, k + 1);
		}
		sf_close(fd);
	}
}

/* Non-blocking: a refusal arrives later, through POLLOUT and SO_ERROR, on
 * the app's own socket; a connection reports EINPROGRESS, then completes. */
static void test_nonblocking(void)
{
	int fd = sf_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK), r, err = 0;
	socklen_t len = sizeof(err);

	sf_answer(SF_STATUS, FF__STATUS__ST_REFUSED);
	r = overlay_connect(fd);
	CU_ASSERT_EQUAL(r, -1);
	CU_ASSERT_EQUAL(errno, EINPROGRESS);
	CU_ASSERT_EQUAL(poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, 2000), 1);
	CU_ASSERT_EQUAL(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
	CU_ASSERT_EQUAL(err, ECONNREFUSED);
	CU_ASSERT_EQUAL(domain_of(fd), AF_INET);
	sf_close(fd);
	fd = sf_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL(overlay_connect(fd), -1);
	CU_ASSERT_EQUAL(errno, EINPROGRESS);
	CU_ASSERT_EQUAL(domain_of(fd), AF_UNIX);
	CU_ASSERT(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CU_ASSERT_EQUAL(overlay_connect(fd), 0);
	CU_ASSERT_EQUAL(overlay_connect(fd), -1);
	CU_ASSERT_EQUAL(errno, EISCONN);
	sf_close(fd);
	close(sf_take_peer());
}

/* ---- the verbs half's exchange (ffs_sockcall) ---- */

struct vx {
	int sv[2]; /* sv[0] the shim's, sv[1] the router's */
	pthread_mutex_t lock;
	uint64_t next_id;
};

static void vx_open(struct vx *v)
{
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, v->sv) == 0);
	pthread_mutex_init(&v->lock, NULL);
	v->next_id = 10;
}

static void vx_close(struct vx *v)
{
	close(v->sv[0]);
	close(v->sv[1]);
	pthread_mutex_destroy(&v->lock);
}

/* Queues a reply on the router's end (the shim reads it after sending). */
static void vx_reply(struct vx *v, uint64_t id, Ff__Status st, uint32_t err, const int *fds,
		     int nfds)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__VerbsObjReply o = FF__VERBS_OBJ_REPLY__INIT;

	o.handle = (uint32_t)id; /* tells the replies apart */
	o.err = err;
	rep.id = id;
	rep.status = st;
	rep.body_case = FF__REPLY__BODY_VERBS_OBJ;
	rep.verbs_obj = &o;
	CU_ASSERT_EQUAL(ff_msg_send(v->sv[1], &rep.base, fds, nfds), 0);
}

/* ffs_sockcall with a VerbsAllocPd request; the reply's handle or -errno. */
static int vx_call(struct vx *v, int *rfd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsAllocPd m = FF__VERBS_ALLOC_PD__INIT;
	Ff__Reply *rep = NULL;
	int r, h;

	req.body_case = FF__REQUEST__BODY_VERBS_ALLOC_PD;
	req.verbs_alloc_pd = &m;
	r = ffs_sockcall(&v->sv[0], &v->lock, &v->next_id, &req, NULL, 0, &rep, rfd);
	if (r)
		return r;
	h = (int)rep->verbs_obj->handle;
	ff__reply__free_unpacked(rep, NULL);
	return h;
}

/* The request the shim sent, as the router reads it. */
static uint64_t vx_request_id(struct vx *v)
{
	uint8_t buf[512];
	ProtobufCMessage *m;
	int fds[2], n = 0;
	uint64_t id = 0;

	if (ff_msg_recv(v->sv[1], &ff__request__descriptor, buf, sizeof(buf), &m, fds, 2, &n,
			MSG_DONTWAIT) == 1) {
		id = ((Ff__Request *)m)->id;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	ff_close_fds(fds, n);
	return id;
}

static void test_verbs_good_and_ids(void)
{
	struct vx v;

	vx_open(&v);
	vx_reply(&v, 11, FF__STATUS__ST_OK, 0, NULL, 0);
	CU_ASSERT_EQUAL(vx_call(&v, NULL), 11);
	CU_ASSERT_EQUAL(vx_request_id(&v), 11); /* the next id, sent with the request */
	CU_ASSERT_EQUAL(v.next_id, 11);
	/* another request's reply is skipped */
	vx_reply(&v, 5, FF__STATUS__ST_OK, 0, NULL, 0);
	vx_reply(&v, 12, FF__STATUS__ST_OK, 0, NULL, 0);
	CU_ASSERT_EQUAL(vx_call(&v, NULL), 12);
	/* id 0: the router could not read the request; it answers it */
	vx_reply(&v, 0, FF__STATUS__ST_OK, 0, NULL, 0);
	CU_ASSERT_EQUAL(vx_call(&v, NULL), 0);
	vx_close(&v);
}

static void test_verbs_broken(void)
{
	struct vx v;
	uint8_t junk[] = {0xf1, 0x08, 0x0d, 0x12, 0x40}; /* a field cut short */

	vx_open(&v);
	CU_ASSERT_EQUAL(ff_send_fds(v.sv[1], junk, sizeof(junk), NULL, 0), 0);
	CU_ASSERT_EQUAL(vx_call(&v, NULL), -EIO);
	junk[0] = 0; /* not our frame */
	CU_ASSERT_EQUAL(ff_send_fds(v.sv[1], junk, sizeof(junk), NULL, 0), 0);
	CU_ASSERT_EQUAL(vx_call(&v, NULL), -EIO);
	close(v.sv[1]); /* the router is gone */
	v.sv[1] = -1;
	CU_ASSERT_EQUAL(vx_call(&v, NULL), -EIO);
	close(v.sv[0]); /* a context whose socket the app closed */
	v.sv[0] = -1;
	CU_ASSERT_EQUAL(vx_call(&v, NULL), -EIO);
	vx_close(&v);
}

/* A refusal: the device's errno if the router passed one on, else the
 * status's. */
static void test_verbs_status_errno(void)
{
	static const struct {
		Ff__Status st;
		uint32_t err;
		int want;
	} cases[] = {
	    {FF__STATUS__ST_PERM, 0, -EPERM},
	    {FF__STATUS__ST_QUOTA, 0, -ENOBUFS},
	    {FF__STATUS__ST_INVALID, 0, -EINVAL},
	    {FF__STATUS__ST_UNSUPPORTED, 0, -EOPNOTSUPP},
	    {FF__STATUS__ST_NOT_FOUND, 0, -ENOENT},
	    {FF__STATUS__ST_INTERNAL, 0, -EIO},
	    {FF__STATUS__ST_INTERNAL, EAGAIN, -EAGAIN},
	    {FF__STATUS__ST_INVALID, ENOMEM, -ENOMEM},
	};
	struct vx v;

	vx_open(&v);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vx_reply(&v, v.next_id + 1, cases[i].st, cases[i].err, NULL, 0);
		CU_ASSERT_EQUAL(vx_call(&v, NULL), cases[i].want);
		vx_request_id(&v);
	}
	vx_close(&v);
}

/* How many fds of this process are the file ino (other threads of the
 * test may open and close fds of their own meanwhile: not counted). */
static int fds_of(ino_t ino)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	struct stat st;
	int n = 0;

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
		    st.st_ino == ino && (int)strtol(e->d_name, NULL, 10) != dirfd(d))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* An fd with the reply is the caller's; with a refusal it is closed. */
static void test_verbs_fds(void)
{
	struct vx v;
	int p[2], rfd = -1, before;
	struct stat a, b;

	vx_open(&v);
	CU_ASSERT_FATAL(pipe(p) == 0);
	vx_reply(&v, 11, FF__STATUS__ST_OK, 0, &p[0], 1);
	CU_ASSERT_EQUAL(vx_call(&v, &rfd), 11);
	CU_ASSERT_FATAL(rfd >= 0);
	CU_ASSERT_TRUE(fstat(rfd, &a) == 0 && fstat(p[0], &b) == 0 && a.st_ino == b.st_ino);
	CU_ASSERT(fcntl(rfd, F_GETFD) & FD_CLOEXEC);
	close(rfd);
	before = fds_of(b.st_ino); /* p[0] and p[1] */
	vx_reply(&v, 12, FF__STATUS__ST_PERM, 0, &p[0], 1);
	rfd = 99;
	CU_ASSERT_EQUAL(vx_call(&v, &rfd), -EPERM);
	CU_ASSERT_EQUAL(rfd, -1);
	CU_ASSERT_EQUAL(fds_of(b.st_ino), before);
	close(p[0]);
	close(p[1]);
	vx_close(&v);
}

/* ---- the rings the router hands over ---- */

/* A ring memfd of len bytes whose header says kind, geometry from fill. */
static int ring_fd(uint32_t kind, size_t len, void (*fill)(struct ff_vring_hdr *h))
{
	int fd = memfd_create("test-vring", MFD_CLOEXEC);
	struct ff_vring_hdr *h;

	CU_ASSERT_FATAL(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
	h = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CU_ASSERT_FATAL(h != MAP_FAILED);
	h->magic = FF_VRING_MAGIC;
	h->kind = kind;
	fill(h);
	munmap(h, len);
	return fd;
}

#define RING_LEN (FF_VRING_HDR + 4096)

static void geom_good_qp(struct ff_vring_hdr *h)
{
	h->sq = (struct ff_vq_geom){.size = 8, .stride = 256, .off = FF_VRING_HDR, .max_sge = 2,
				    .max_inline = 64};
	h->rq = (struct ff_vq_geom){.size = 8, .stride = 128, .off = FF_VRING_HDR + 2048,
				    .max_sge = 2};
}
static void geom_sq_past_end(struct ff_vring_hdr *h)
{
	geom_good_qp(h);
	h->sq.size = 1u << 20;
}
static void geom_rq_stride_short(struct ff_vring_hdr *h)
{
	geom_good_qp(h);
	h->rq.max_sge = 64; /* 64 gather entries do not fit 128 bytes */
}
static void geom_sq_in_header(struct ff_vring_hdr *h)
{
	geom_good_qp(h);
	h->sq.off = 64;
}
static void geom_sq_not_pow2(struct ff_vring_hdr *h)
{
	geom_good_qp(h);
	h->sq.size = 6;
}
static void geom_cq_empty(struct ff_vring_hdr *h)
{
	h->cq = (struct ff_vq_geom){0};
}
static void geom_cq_wraps(struct ff_vring_hdr *h)
{
	h->cq = (struct ff_vq_geom){.size = 1u << 31, .stride = 64, .off = FF_VRING_HDR};
}

/* The shim writes send and receive slots and reads completions where the
 * ring's header says: a geometry that reaches outside the memfd, into its
 * header, or gives a slot too small for what it must hold is refused at
 * mapping, before any post or poll writes or reads out of bounds. */
static void test_ring_geometry(void)
{
	static const struct {
		uint32_t kind;
		void (*fill)(struct ff_vring_hdr *h);
		int want;
	} cases[] = {
	    {FF_VOBJ_QP, geom_good_qp, 0},
	    {FF_VOBJ_QP, geom_sq_past_end, -EPROTO},
	    {FF_VOBJ_QP, geom_rq_stride_short, -EPROTO},
	    {FF_VOBJ_QP, geom_sq_in_header, -EPROTO},
	    {FF_VOBJ_QP, geom_sq_not_pow2, -EPROTO},
	    {FF_VOBJ_CQ, geom_cq_empty, -EPROTO},
	    {FF_VOBJ_CQ, geom_cq_wraps, -EPROTO},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ffs_vring rg = {0};
		int r = ffs_vring_map(ring_fd(cases[i].kind, RING_LEN, cases[i].fill),
				      cases[i].kind, &rg);

		CU_ASSERT_EQUAL(r, cases[i].want);
		if (r != cases[i].want)
			fprintf(stderr, "case %zu: %d\n", i, r);
		if (!r)
			ffs_vring_unmap(&rg);
	}
}

/* ---- a handed-over file the router still holds ---- */

/* The router sends a connection and closes its own copy a moment later; an
 * app that serves and closes it meanwhile (woken by the send, it can run
 * before the router does) must not keep its epoll registration: the kernel
 * drops one only with the last copy of the file, and an event for a closed
 * fd reaches the app with the pointer it freed at close (the storm server
 * of t-load.sh died of a double free so). held is the router's copy. */
static void closed_while_held(int fd, int held, int peer)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = 42}, out;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	CU_ASSERT_EQUAL_FATAL(ffs_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	CU_ASSERT_EQUAL(sf_close(fd), 0);
	CU_ASSERT_EQUAL(write(peer, "x", 1), 1); /* the file is readable now */
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 50), 0);
	/* the copy the router holds is not touched */
	CU_ASSERT_EQUAL(read(held, &ev, 1), 1);
	close(held);
	close(peer);
	close(ep);
}

/* From a connect() reply (a same-host pair). */
static void test_close_while_router_holds(void)
{
	int fd = sf_socket(AF_INET, SOCK_STREAM), peer, held;

	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL_FATAL(overlay_connect(fd), 0);
	peer = sf_take_peer();
	held = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* not through the shim: the router's */
	closed_while_held(fd, held, peer);
}

/* An accept queue as the router builds one (q[1] is the app's listening
 * fd), holding one kernel connection forwarded from the app's kernel
 * listener (path NONE). The router's copy of it stays open: *held. */
static int queue_one(int q[2], int *held, int *peer)
{
	Ff__Accepted a = FF__ACCEPTED__INIT;
	Ff__Addr lm, pm;
	uint8_t lb[16], pb[16];
	struct ff_sa sa = {.port = 80};
	struct ffs_sock *l = ffs_sock_new(FFS_LISTEN, AF_INET);

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q), 0);
	ffs_fd_set(q[1], l);
	*peer = sf_tcp_pair(AF_INET, held);
	ff_ip_parse(SF_OWN_IP, &sa.ip);
	ff_sa_to_proto(&sa, &lm, lb);
	ff_sa_to_proto(&sa, &pm, pb);
	a.local = &lm;
	a.peer = &pm;
	a.path = FF__PATH__PATH_NONE;
	return ff_msg_send(q[0], &a.base, held, 1);
}

/* From the accept queue. */
static void test_accepted_close_while_router_holds(void)
{
	int q[2], held, peer, fd;

	CU_ASSERT_EQUAL_FATAL(queue_one(q, &held, &peer), 0);
	fd = ffs_accept(q[1], NULL, NULL, SOCK_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	closed_while_held(fd, held, peer);
	sf_close(q[1]);
	close(q[0]);
}

/* A child that closes its copy (as after fork) leaves the registration of
 * the epoll set it shares with its parent alone: the parent still hears
 * of the connection. */
static void test_child_close_keeps_parent_registration(void)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7}, out;
	int q[2], held, peer, fd, ep = epoll_create1(EPOLL_CLOEXEC), st = -1;
	pid_t pid;

	CU_ASSERT_EQUAL_FATAL(queue_one(q, &held, &peer), 0);
	fd = ffs_accept(q[1], NULL, NULL, SOCK_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	close(held);
	CU_ASSERT_EQUAL_FATAL(ffs_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	pid = fork();
	if (pid == 0)
		_exit(sf_close(fd) == 0 ? 0 : 1);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_EQUAL(write(peer, "x", 1), 1);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 1000), 1);
	CU_ASSERT_EQUAL(out.data.u64, 7);
	CU_ASSERT_EQUAL(sf_close(fd), 0);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 0), 0);
	close(peer);
	close(ep);
	sf_close(q[1]);
	close(q[0]);
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"handover_pair", test_handover_pair},
	    {"handover_tcp", test_handover_tcp},
	    {"wrong_id", test_wrong_id},
	    {"broken_replies", test_broken_replies},
	    {"router_restart", test_router_restart},
	    {"status_errno", test_status_errno},
	    {"nonblocking", test_nonblocking},
	    {"verbs_good_and_ids", test_verbs_good_and_ids},
	    {"verbs_broken", test_verbs_broken},
	    {"verbs_status_errno", test_verbs_status_errno},
	    {"verbs_fds", test_verbs_fds},
	    {"ring_geometry", test_ring_geometry},
	    {"close_while_router_holds", test_close_while_router_holds},
	    {"accepted_close_while_router_holds", test_accepted_close_while_router_holds},
	    {"child_close_keeps_parent_registration", test_child_close_keeps_parent_registration},
	    {0},
	};
	static const char *const overlay[] = {"10.77.0.5", NULL};
	int r;

	sf_start();
	sf_map_set(overlay);
	sf_kernel_fake(true);
	r = cu_run("shim-reply", tests);
	sf_kernel_fake(false);
	sf_stop();
	return r;
}
