/* ffverbs: entry point and the helpers every mode shares (device, QPs,
 * posting, polling, patterns, the TCP exchange). See ffverbs.h.
 *
 *   ffverbs server [-p PORT] [-d DEV]        coverage, passive side
 *   ffverbs client HOST [-p PORT] [-d DEV]   coverage, active side
 *   ffverbs data-server [-p PORT] [-d DEV]   payload check, passive side
 *   ffverbs data-client HOST [-p PORT] [-d DEV]  payload check, active side
 *   ffverbs hold FILE [-d DEV]               objects another container attacks
 *   ffverbs steal FILE [-d DEV]              uses hold's lkey/rkey/QP number
 *   ffverbs forge FILE                       raw requests on a context socket
 */
#include "ffverbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const char *ffv_role = "ffverbs";

void ffv_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stdout, "FAIL: %s: ", ffv_role);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
	exit(1);
}

void ffv_ok(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stdout, "ok: %s: ", ffv_role);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

/* ---- patterns ---- */

static uint8_t pat(unsigned seed, size_t i)
{
	return (uint8_t)(seed * 151u + i * 7u + (i >> 8) * 13u + 1u);
}

void ffv_fill(void *buf, size_t len, unsigned seed, size_t from)
{
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = pat(seed, from + i);
}

bool ffv_same(const void *buf, size_t len, unsigned seed, size_t from)
{
	for (size_t i = 0; i < len; i++)
		if (((const uint8_t *)buf)[i] != pat(seed, from + i))
			return false;
	return true;
}

char *ffv_gid_str(const void *gid, char *buf, size_t len)
{
	if (!inet_ntop(AF_INET6, gid, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

const char *ffv_opcode_str(enum ibv_wc_opcode op)
{
	switch (op) {
	case IBV_WC_SEND:
		return "SEND";
	case IBV_WC_RDMA_WRITE:
		return "RDMA_WRITE";
	case IBV_WC_RDMA_READ:
		return "RDMA_READ";
	case IBV_WC_COMP_SWAP:
		return "COMP_SWAP";
	case IBV_WC_FETCH_ADD:
		return "FETCH_ADD";
	case IBV_WC_RECV:
		return "RECV";
	case IBV_WC_RECV_RDMA_WITH_IMM:
		return "RECV_RDMA_WITH_IMM";
	default:
		return "other";
	}
}

/* ---- device ---- */

void ffv_dev_open(struct ffv_dev *d, const char *name)
{
	struct ibv_device **list;
	int n = 0;

	memset(d, 0, sizeof(*d));
	list = ibv_get_device_list(&n);
	FFV_CHECK(list && n > 0, "no RDMA device (%s)", strerror(errno));
	FFV_CHECK(!name || !strcmp(ibv_get_device_name(list[0]), name),
		  "the first device is %s, not %s", ibv_get_device_name(list[0]), name);
	d->ctx = ibv_open_device(list[0]);
	ibv_free_device_list(list);
	FFV_CHECK(d->ctx, "ibv_open_device: %s", strerror(errno));
	FFV_CHECK(!ibv_query_device(d->ctx, &d->da), "ibv_query_device failed");
	FFV_CHECK(!ibv_query_port(d->ctx, 1, &d->port), "ibv_query_port failed");
	FFV_CHECK(!ibv_query_gid(d->ctx, 1, 1, &d->gid), "ibv_query_gid(1) failed");
	d->pd = ibv_alloc_pd(d->ctx);
	FFV_CHECK(d->pd, "ibv_alloc_pd: %s", strerror(errno));
}

void ffv_dev_close(struct ffv_dev *d)
{
	int err = ibv_dealloc_pd(d->pd);

	FFV_CHECK(!err, "ibv_dealloc_pd: %s", strerror(err));
	FFV_CHECK(!ibv_close_device(d->ctx), "ibv_close_device failed");
}

struct ibv_mr *ffv_reg(struct ffv_dev *d, size_t len, int access)
{
	void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_mr *mr;

	FFV_CHECK(buf != MAP_FAILED, "mmap %zu: %s", len, strerror(errno));
	mr = (ibv_reg_mr)(d->pd, buf, len, access);
	FFV_CHECK(mr, "ibv_reg_mr(%zu bytes): %s", len, strerror(errno));
	return mr;
}

void ffv_dereg(struct ibv_mr *mr)
{
	void *buf = mr->addr;
	size_t len = mr->length;
	int err = ibv_dereg_mr(mr);

	FFV_CHECK(!err, "ibv_dereg_mr: %s", strerror(err));
	munmap(buf, len);
}

/* ---- QPs ---- */

struct ibv_qp *ffv_qp_rc(struct ffv_dev *d, struct ibv_cq *scq, struct ibv_cq *rcq,
			 struct ibv_srq *srq, uint32_t max_inline)
{
	struct ibv_qp_init_attr ia = {
	    .send_cq = scq,
	    .recv_cq = rcq,
	    .srq = srq,
	    .qp_type = IBV_QPT_RC,
	    .cap = {.max_send_wr = 16,
		    .max_recv_wr = srq ? 0 : 16,
		    .max_send_sge = 2,
		    .max_recv_sge = srq ? 0 : 2,
		    .max_inline_data = max_inline},
	};
	struct ibv_qp *qp = ibv_create_qp(d->pd, &ia);

	FFV_CHECK(qp, "ibv_create_qp(RC): %s", strerror(errno));
	FFV_CHECK(ia.cap.max_send_wr >= 16 && ia.cap.max_send_sge >= 2 &&
		      ia.cap.max_inline_data >= max_inline,
		  "ibv_create_qp returned smaller caps than asked (%u wr, %u sge, %u inline)",
		  ia.cap.max_send_wr, ia.cap.max_send_sge, ia.cap.max_inline_data);
	return qp;
}

int ffv_qp_connect(struct ffv_dev *d, struct ibv_qp *qp, uint32_t qpn, const uint8_t gid[16],
		   uint32_t psn, uint32_t peer_psn, const char **step)
{
	struct ibv_qp_attr a = {
	    .qp_state = IBV_QPS_INIT,
	    .port_num = 1,
	    .qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			       IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC,
	};
	int err;

	*step = "INIT";
	err = ibv_modify_qp(qp, &a,
			    IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (err)
		return err;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = d->port.active_mtu;
	a.dest_qp_num = qpn;
	a.rq_psn = peer_psn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	memcpy(a.ah_attr.grh.dgid.raw, gid, 16);
	a.ah_attr.grh.sgid_index = 1;
	a.ah_attr.grh.hop_limit = 64;
	a.ah_attr.port_num = 1;
	*step = "RTR";
	err = ibv_modify_qp(qp, &a,
			    IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (err)
		return err;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = psn;
	a.max_rd_atomic = 1;
	*step = "RTS";
	return ibv_modify_qp(qp, &a,
			     IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				 IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

void ffv_pair(struct ffv_dev *d, struct ibv_cq *cq, struct ibv_qp *qp[2])
{
	const char *step;
	int err;

	qp[0] = ffv_qp_rc(d, cq, cq, NULL, 0);
	qp[1] = ffv_qp_rc(d, cq, cq, NULL, 0);
	for (int i = 0; i < 2; i++) {
		err = ffv_qp_connect(d, qp[i], qp[!i]->qp_num, d->gid.raw, 4242, 4242, &step);
		FFV_CHECK(!err, "connecting a QP to its neighbour (%s): %s", step, strerror(err));
	}
}

void ffv_qp_destroy(struct ibv_qp *qp)
{
	int err = ibv_destroy_qp(qp);

	FFV_CHECK(!err, "ibv_destroy_qp: %s", strerror(err));
}

/* ---- posting and polling ---- */

int ffv_send(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id, const struct ffv_sge *sg,
	     int nsge, unsigned flags, uint32_t imm, uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge s[4];
	struct ibv_send_wr wr = {.wr_id = wr_id,
				 .sg_list = s,
				 .num_sge = nsge,
				 .opcode = op,
				 .send_flags = flags | IBV_SEND_SIGNALED},
			   *bad = NULL;

	for (int i = 0; i < nsge && i < 4; i++)
		s[i] =
		    (struct ibv_sge){.addr = sg[i].addr, .length = sg[i].len, .lkey = sg[i].lkey};
	wr.imm_data = htonl(imm);
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	return ibv_post_send(qp, &wr, &bad);
}

int ffv_atomic(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id, const struct ffv_sge *sg,
	       uint64_t raddr, uint32_t rkey, uint64_t cmp_add, uint64_t swap)
{
	struct ibv_sge s = {.addr = sg->addr, .length = sg->len, .lkey = sg->lkey};
	struct ibv_send_wr wr = {.wr_id = wr_id,
				 .sg_list = &s,
				 .num_sge = 1,
				 .opcode = op,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad = NULL;

	wr.wr.atomic.remote_addr = raddr;
	wr.wr.atomic.rkey = rkey;
	wr.wr.atomic.compare_add = cmp_add;
	wr.wr.atomic.swap = swap;
	return ibv_post_send(qp, &wr, &bad);
}

int ffv_recv(struct ibv_qp *qp, uint64_t wr_id, uint64_t addr, uint32_t len, uint32_t lkey)
{
	struct ibv_sge s = {.addr = addr, .length = len, .lkey = lkey};
	struct ibv_recv_wr wr = {.wr_id = wr_id, .sg_list = &s, .num_sge = 1}, *bad = NULL;

	return ibv_post_recv(qp, &wr, &bad);
}

int ffv_srq_recv(struct ibv_srq *srq, uint64_t wr_id, uint64_t addr, uint32_t len, uint32_t lkey)
{
	struct ibv_sge s = {.addr = addr, .length = len, .lkey = lkey};
	struct ibv_recv_wr wr = {.wr_id = wr_id, .sg_list = &s, .num_sge = 1}, *bad = NULL;

	return ibv_post_srq_recv(srq, &wr, &bad);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool ffv_poll_try(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int n = ibv_poll_cq(cq, 1, wc);

		FFV_CHECK(n >= 0, "ibv_poll_cq returned %d", n);
		if (n == 1)
			return true;
		if (now_ms() > end)
			return false;
		usleep(200);
	}
}

void ffv_poll(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms, const char *what)
{
	FFV_CHECK(ffv_poll_try(cq, wc, timeout_ms), "no completion for %s within %d ms", what,
		  timeout_ms);
}

/* ---- TCP ---- */

int ffv_tcp_listen(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	FFV_CHECK(fd >= 0, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	FFV_CHECK(!bind(fd, (struct sockaddr *)&sa, sizeof(sa)) && !listen(fd, 4),
		  "listen on port %d: %s", port, strerror(errno));
	return fd;
}

int ffv_tcp_accept(int lfd)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	int fd;

	FFV_CHECK(poll(&p, 1, FFV_TIMEOUT_MS) == 1, "no client within %d ms", FFV_TIMEOUT_MS);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	FFV_CHECK(fd >= 0, "accept: %s", strerror(errno));
	return fd;
}

int ffv_tcp_dial(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = -1;

	FFV_CHECK(inet_pton(AF_INET, host, &sa.sin_addr) == 1, "bad address %s", host);
	for (int i = 0; i < 100; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		FFV_CHECK(fd >= 0, "socket: %s", strerror(errno));
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		close(fd);
		usleep(100000);
	}
	ffv_fail("cannot connect to %s:%d: %s", host, port, strerror(errno));
}

static void io_full(int fd, void *buf, size_t len, bool out)
{
	for (size_t off = 0; off < len;) {
		struct pollfd p = {.fd = fd, .events = out ? POLLOUT : POLLIN};
		ssize_t n;

		FFV_CHECK(poll(&p, 1, FFV_TIMEOUT_MS) == 1, "the peer is silent for %d ms",
			  FFV_TIMEOUT_MS);
		n = out ? write(fd, (uint8_t *)buf + off, len - off)
			: read(fd, (uint8_t *)buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		FFV_CHECK(n > 0, "the peer went away (%s)", n ? strerror(errno) : "EOF");
		off += (size_t)n;
	}
}

void ffv_xchg(int fd, const void *out, void *in, size_t len)
{
	io_full(fd, (void *)out, len, true);
	io_full(fd, in, len, false);
}

/* Both sides say where they are; the peer must be at want. */
void ffv_sync(int fd, uint8_t mine, uint8_t want)
{
	uint8_t got;

	ffv_xchg(fd, &mine, &got, 1);
	FFV_CHECK(got == want, "the peer is at step %u, not %u (it failed)", got, want);
}

/* ---- the victim file ---- */

void ffv_victim_write(const char *file, const struct ffv_victim *v)
{
	char tmp[4096], g[64];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	f = fopen(tmp, "w");
	FFV_CHECK(f, "%s: %s", tmp, strerror(errno));
	fprintf(f,
		"pd %u\nmr %u\ncq %u\nqp %u\nqpn %u\nlkey %u\nrkey %u\naddr %llu\nlen %llu\n"
		"gid %s\nfree_qpn %u\n",
		v->pd, v->mr, v->cq, v->qp, v->qpn, v->lkey, v->rkey, (unsigned long long)v->addr,
		(unsigned long long)v->len, ffv_gid_str(v->gid, g, sizeof(g)), v->free_qpn);
	FFV_CHECK(!fclose(f) && !rename(tmp, file), "%s: %s", file, strerror(errno));
}

void ffv_victim_read(const char *file, struct ffv_victim *v)
{
	char key[32], val[64];
	unsigned long long n;
	FILE *f = fopen(file, "r");
	int got = 0;

	FFV_CHECK(f, "%s: %s", file, strerror(errno));
	memset(v, 0, sizeof(*v));
	while (fscanf(f, "%31s %63s", key, val) == 2) {
		n = strtoull(val, NULL, 0);
		got++;
		if (!strcmp(key, "pd"))
			v->pd = (uint32_t)n;
		else if (!strcmp(key, "mr"))
			v->mr = (uint32_t)n;
		else if (!strcmp(key, "cq"))
			v->cq = (uint32_t)n;
		else if (!strcmp(key, "qp"))
			v->qp = (uint32_t)n;
		else if (!strcmp(key, "qpn"))
			v->qpn = (uint32_t)n;
		else if (!strcmp(key, "lkey"))
			v->lkey = (uint32_t)n;
		else if (!strcmp(key, "rkey"))
			v->rkey = (uint32_t)n;
		else if (!strcmp(key, "addr"))
			v->addr = n;
		else if (!strcmp(key, "len"))
			v->len = n;
		else if (!strcmp(key, "free_qpn"))
			v->free_qpn = (uint32_t)n;
		else if (!strcmp(key, "gid"))
			FFV_CHECK(inet_pton(AF_INET6, val, v->gid) == 1, "bad gid %s", val);
		else
			got--;
	}
	fclose(f);
	FFV_CHECK(got == 11, "%s: %d of 11 fields", file, got);
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr, "usage: ffverbs server [-p PORT] [-d DEV]\n"
			"       ffverbs client HOST [-p PORT] [-d DEV]\n"
			"       ffverbs data-server [-p PORT] [-d DEV]\n"
			"       ffverbs data-client HOST [-p PORT] [-d DEV]\n"
			"       ffverbs hold|steal FILE [-d DEV]\n"
			"       ffverbs forge FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "", *arg = NULL, *dev = NULL;
	bool server = !strcmp(mode, "server") || !strcmp(mode, "data-server");
	int port = FFV_PORT, i = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!server && argc > 2 && argv[2][0] != '-')
		arg = argv[i++];
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "-p") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-d") && i + 1 < argc)
			dev = argv[++i];
		else
			usage();
	}
	ffv_role = mode;
	if (!strcmp(mode, "server"))
		return ffv_coverage(true, NULL, port, dev);
	if (!strcmp(mode, "data-server"))
		return ffv_data(true, NULL, port, dev);
	if (!arg)
		usage();
	if (!strcmp(mode, "client"))
		return ffv_coverage(false, arg, port, dev);
	if (!strcmp(mode, "data-client"))
		return ffv_data(false, arg, port, dev);
	if (!strcmp(mode, "hold"))
		return ffv_hold(arg, dev);
	if (!strcmp(mode, "steal"))
		return ffv_steal(arg, dev);
	if (!strcmp(mode, "forge"))
		return ffv_forge(arg);
	usage();
}
