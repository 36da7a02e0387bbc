/* libFuzzer target: what another router sends this one over the host
 * network (xhost/ingress.c, auth.c, ask.c, connect.c and rdma/cm/xhost.c
 * behind them): preambles and the frames after them arriving at the
 * ingress, and the XReply frames a remote ingress answers this router's
 * own cross-host connects with.
 * The router gets a cluster secret and an ingress on 127.0.0.1, a remote
 * host "h2" whose ingress is a listener of this target, and a container
 * "r" (10.1.0.50) on h2. Each record, by aux >> 6:
 *   0: raw bytes on a TCP connection to the ingress (opened at the
 *      input's first such record);
 *   1: an XPreamble (the bytes, unpacked; skipped if they are not one)
 *      bound to that connection and sealed with the cluster key, as a
 *      real peer router sends it, so the fuzzer gets past the MAC;
 *   2: raw bytes as h2's ingress: container a's shim connects to r (at
 *      the input's first such record), this target accepts the router's
 *      connection, reads its preamble and answers with the bytes;
 *   3: the same, answered with an XReply sealed for that preamble
 *      (status: the first byte, error: the rest).
 * Then everything is closed and the harness's oracles follow. Frames
 * after a preamble (XCmMsg) are only sent raw, never sealed.
 *
 * Input: records (harness.h). */
#include "harness.h"

#include "fdpass.h"
#include "fixture.h"
#include "msg.h"
#include "vt.h"
#include "xhost/internal.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REMOTE_IP "10.1.0.50"

static struct ff_sa ingress; /* ours */
static int remote_lfd = -1;  /* h2's ingress */
static struct conn {
	int in;              /* to our ingress */
	int ch, out;         /* a's channel, the router's connect to h2 */
	uint8_t tag[FFR_MAC_LEN];
	bool tagged;
} k;

static struct ff_sa local(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ff_sa sa = {.port = 0};

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		ff_sa_from_sockaddr(&sa, (struct sockaddr *)&ss, len);
	return sa;
}

/* A connection to the ingress. Thousands of inputs a second use up the
 * loopback's port space with TIME_WAIT: our end closes with a reset (no
 * TIME_WAIT), and a connect that finds no free port waits and tries again;
 * anything else is the harness broken. */
static int tcp_to(const struct ff_sa *to)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct sockaddr_storage ss;
	socklen_t len = ff_sa_to_sockaddr(to, AF_INET, &ss);

	for (int i = 0; i < 1000; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			break;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (connect(fd, (struct sockaddr *)&ss, len) == 0)
			return fd;
		close(fd);
		/* EINTR: the router runs in this thread, and a tick of its accept
		 * guard (core/guard.c, periodic while armed) can still be pending
		 * when it is disarmed; it then lands on this blocking connect */
		if (errno != EADDRNOTAVAIL && errno != EAGAIN && errno != EINTR)
			break;
		usleep(10000);
	}
	fprintf(stderr, "fuzz_ingress: cannot reach the ingress: %s\n", strerror(errno));
	abort();
}

static void drain_tcp(int fd)
{
	uint8_t buf[4096];

	while (fd >= 0 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void sealed_preamble(const struct fh_rec *r)
{
	Ff__XPreamble *p = (Ff__XPreamble *)ff_msg_unpack(&ff__xpreamble__descriptor, r->p, r->len);
	static uint8_t buf[2 + FFR_XFRAME_MAX + FFR_MAC_LEN];
	struct ffr_xbind b;
	char *dst_host;
	Ff__Addr *via_src, *via_dst;
	int n;

	if (!p)
		return;
	dst_host = p->dst_host;
	via_src = p->via_src;
	via_dst = p->via_dst;
	if (ffr_preamble_bind(p, &b, vt_r->host_id, k.in, &ingress) == 0 &&
	    (n = ffr_preamble_seal(vt_r, p, buf, sizeof(buf))) > 0)
		fh_send_raw(k.in, buf, (size_t)n, NULL, 0);
	p->dst_host = dst_host; /* the unpacked message's own, to free */
	p->via_src = via_src;
	p->via_dst = via_dst;
	ff__xpreamble__free_unpacked(p, NULL);
}

/* a's shim connects to r; this target takes the router's connection to
 * h2 and the MAC that ends its preamble. */
static void outgoing(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect c = FF__CONNECT__INIT;
	Ff__Addr a;
	uint8_t ip[16], buf[2 + FFR_XFRAME_MAX + FFR_MAC_LEN];
	ssize_t n = 0;

	k.ch = fh_shim("a", true);
	fx_addr(&a, ip, REMOTE_IP, 80);
	c.dst = &a;
	req.id = 7;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &c;
	fh_seed_msg_send(k.ch, &req.base);
	for (int i = 0; i < 64 && k.out < 0; i++) {
		fh_settle();
		k.out = accept4(remote_lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	}
	for (int i = 0; i < 64 && k.out >= 0 && n <= 2 + FFR_MAC_LEN; i++) {
		ssize_t got;

		fh_settle();
		got = recv(k.out, buf + n, sizeof(buf) - (size_t)n, MSG_DONTWAIT);
		n += got > 0 ? got : 0;
	}
	if (n > 2 + FFR_MAC_LEN) {
		memcpy(k.tag, buf + n - FFR_MAC_LEN, FFR_MAC_LEN);
		k.tagged = true;
	}
}

static void answer(const struct fh_rec *r, bool sealed)
{
	static uint8_t buf[2 + FFR_XFRAME_MAX + FFR_MAC_LEN];
	char err[256];
	size_t n;

	if (k.ch < 0)
		outgoing();
	if (k.out < 0)
		return;
	if (!sealed || !r->len) {
		fh_send_raw(k.out, r->p, r->len, NULL, 0);
		return;
	}
	n = r->len - 1 < sizeof(err) - 1 ? r->len - 1 : sizeof(err) - 1;
	memcpy(err, r->p + 1, n);
	err[n] = '\0';
	n = ffr_xreply_seal(vt_r, k.tagged ? k.tag : NULL, (Ff__Status)(r->p[0] % 16), err, buf,
			    sizeof(buf));
	fh_send_raw(k.out, buf, n, NULL, 0);
}

/* ---- seeds ---- */

static void seed_preamble(const char *dir, const char *name, Ff__XPreamble *p)
{
	fh_seed_begin(dir, name, -1);
	fh_seed_msg(&p->base, 1 << 6);
	fh_seed_end();
}

static void seeds(const char *dir)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT;
	Ff__XCmRequest cm = FF__XCM_REQUEST__INIT;
	Ff__RdmaConnParam pm = FF__RDMA_CONN_PARAM__INIT;
	Ff__XQpCheck qc = FF__XQP_CHECK__INIT;
	Ff__XCmMsg m = FF__XCM_MSG__INIT;
	Ff__Addr src, dst, cmdst;
	uint8_t s[16], d[16], cd[16];
	static const uint8_t ok[] = {FF__STATUS__ST_OK}, refused[] = "\x02no listener";

	fx_addr(&src, s, REMOTE_IP, 40000);
	fx_addr(&dst, d, FH_IP_B, FH_PORT_B);
	p.src_host = "h2";
	p.src_container = "r";
	p.src = &src;
	p.dst = &dst;
	seed_preamble(dir, "to-b", &p);
	fx_addr(&cmdst, cd, FH_IP_B, 7471);
	p.dst = &cmdst;
	cm.param = &pm;
	cm.psn = 0x123456;
	pm.qp_num = 0x99;
	pm.responder_resources = pm.initiator_depth = 1;
	p.cm = &cm;
	fh_seed_begin(dir, "cm-to-b", -1);
	fh_seed_msg(&p.base, 1 << 6);
	m.kind = FF__XCM_MSG__KIND__RTU;
	fh_seed_msg(&m.base, 0);
	fh_seed_end();
	p.cm = NULL;
	qc.qpn = 0x99;
	qc.dest_qpn = 0x98;
	p.qp = &qc;
	seed_preamble(dir, "qp-check", &p);
	fh_seed_begin(dir, "reply-ok", -1);
	fh_seed_rec(ok, sizeof(ok), 3 << 6);
	fh_seed_end();
	fh_seed_begin(dir, "reply-refused", -1);
	fh_seed_rec(refused, sizeof(refused) - 1, 3 << 6);
	fh_seed_end();
}

static void init(void)
{
	static const char secret[] = "0123456789abcdef-the-fuzz-cluster";
	struct ff_sa h2 = {.port = 0};
	char path[PATH_MAX], hostport[64];
	int fd;

	snprintf(path, sizeof(path), "%s/fuzz-secret", vt_r->rundir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, secret, sizeof(secret) - 1) != sizeof(secret) - 1)
		abort();
	close(fd);
	fd = fh_tcp_listener(); /* a port free right now (the ingress wants one) */
	snprintf(hostport, sizeof(hostport), "127.0.0.1:%u", local(fd).port);
	close(fd);
	if (ffr_read_secret(ffr_xh(vt_r), path) < 0 || ffr_ingress_open(vt_r, hostport) < 0)
		abort();
	ingress = local(ffr_xh(vt_r)->ifd);
	remote_lfd = fh_tcp_listener();
	h2 = local(remote_lfd);
	ff_ip_parse("127.0.0.1", &h2.ip);
	if (remote_lfd < 0 || ffr_host_add(vt_r, "h2", &h2, false, NULL) < 0 ||
	    vt_register("r", REMOTE_IP, "h2"))
		abort();
	fh_settle();
}

const struct fh_target fh_target = {.seeds = seeds, .init = init, .keep_b = true};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_in in = {data, size};
	struct fh_rec r;

	k = (struct conn){.in = -1, .ch = -1, .out = -1};
	fh_begin();
	while (fh_next(&in, &r)) {
		switch (r.aux >> 6) {
		case 0:
		case 1:
			if (k.in < 0)
				k.in = tcp_to(&ingress);
			if (r.aux >> 6)
				sealed_preamble(&r);
			else
				fh_send_raw(k.in, r.p, r.len, NULL, 0);
			break;
		default:
			answer(&r, r.aux >> 6 == 3);
		}
		fh_settle();
		drain_tcp(k.in);
		drain_tcp(k.out);
		if (k.ch >= 0)
			fh_drain(k.ch);
	}
	ff_close_fds(&k.in, 1);
	ff_close_fds(&k.out, 1);
	ff_close_fds(&k.ch, 1);
	fh_end();
	return 0;
}
