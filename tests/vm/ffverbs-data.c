/* ffverbs data-server / data-client: the payload check perftest leaves
 * out. perftest counts completions and never looks at the bytes, so a
 * path that moved the wrong bytes (or none) would pass every perftest
 * program. Here, over one RC QP with a TCP exchange, the client moves a
 * pattern to the server with RDMA_WRITE and SEND, and reads one back with
 * RDMA_READ, for sizes from 1 B to 8 MiB, at offsets inside the MRs that
 * are not page aligned; the side that received each transfer checks every
 * byte, and that the byte after the end is untouched.
 *
 * The pattern gives each 32-bit word of a transfer its own value (an odd
 * multiplier is a bijection mod 2^32) mixed with a seed per transfer, so
 * a block landed at the wrong offset, a stale buffer or the previous
 * transfer's data never passes for the right one. */
#include "ffverbs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_LEN (8u << 20)
#define BUF_LEN (MAX_LEN + 65536u)
#define NOT_PAT 0x5c /* what a buffer holds before a transfer lands in it */

enum op { OP_WRITE, OP_SEND, OP_READ, NOPS };
static const char *const op_name[NOPS] = {"RDMA_WRITE", "SEND", "RDMA_READ"};
static const uint32_t sizes[] = {1, 4095, 65536, (1u << 20) + 17, MAX_LEN};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

struct dside {
	bool server;
	struct ffv_dev d;
	struct ibv_mr *mr;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int fd;
};

struct dwire {
	uint32_t qpn, psn, rkey, pad;
	uint64_t addr;
	uint8_t gid[16];
};

static uint8_t dpat(unsigned seed, size_t i)
{
	uint32_t w = (uint32_t)(i / 4) * 2654435761u ^ (seed * 0x85ebca6bu + 0x9e3779b9u);

	return (uint8_t)(w >> (8 * (i % 4)));
}

static void dfill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = dpat(seed, i);
}

/* Checks len bytes at p against the pattern and the byte after them
 * against NOT_PAT; fails the program naming the first wrong byte. */
static void dcheck(const uint8_t *p, size_t len, unsigned seed, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != dpat(seed, i))
			ffv_fail("%s: byte %zu of %zu is 0x%02x, sent 0x%02x", what, i, len, p[i],
				 dpat(seed, i));
	FFV_CHECK(p[len] == NOT_PAT, "%s: the byte after the %zu sent is 0x%02x, not left alone",
		  what, len, p[len]);
}

/* Offsets inside the MRs: not page aligned, different on the two sides
 * and for each size. */
static size_t dst_off(size_t k)
{
	return 4096 * k + 13;
}

static size_t src_off(size_t k)
{
	return 4096 * (k + 1) + 5;
}

static unsigned seed_of(enum op op, size_t k)
{
	return 1000u + 16u * (unsigned)op + (unsigned)k;
}

static void dsetup(struct dside *s, const char *dev)
{
	int acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;

	ffv_dev_open(&s->d, dev);
	s->mr = ffv_reg(&s->d, BUF_LEN, acc);
	s->cq = ibv_create_cq(s->d.ctx, 32, NULL, NULL, 0);
	FFV_CHECK(s->cq, "ibv_create_cq: %s", strerror(errno));
	s->qp = ffv_qp_rc(&s->d, s->cq, s->cq, NULL, 0);
}

static void dexchange(struct dside *s, struct dwire *peer)
{
	struct dwire me = {.qpn = s->qp->qp_num,
			   .psn = s->server ? 3333 : 4444,
			   .rkey = s->mr->rkey,
			   .addr = (uintptr_t)s->mr->addr};
	const char *step;
	int err;

	memcpy(me.gid, s->d.gid.raw, 16);
	ffv_xchg(s->fd, &me, peer, sizeof(me));
	err = ffv_qp_connect(&s->d, s->qp, peer->qpn, peer->gid, me.psn, peer->psn, &step);
	FFV_CHECK(!err, "QP to the peer's 0x%x (%s): %s", peer->qpn, step, strerror(err));
}

static void dpoll(struct dside *s, uint64_t wr_id, enum ibv_wc_opcode op, uint32_t len,
		  const char *what)
{
	struct ibv_wc wc;

	ffv_poll(s->cq, &wc, FFV_TIMEOUT_MS, what);
	/* byte_len is defined for receives and RDMA_READ only */
	FFV_CHECK(wc.wr_id == wr_id && wc.status == IBV_WC_SUCCESS && wc.opcode == op &&
		      ((op != IBV_WC_RECV && op != IBV_WC_RDMA_READ) || wc.byte_len == len),
		  "%s: wr_id %llu status %s opcode %s byte_len %u (wanted %s, %u bytes)", what,
		  (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status),
		  ffv_opcode_str(wc.opcode), wc.byte_len, ffv_opcode_str(op), len);
}

/* One transfer of sizes[k] bytes; the steps of the two sides are kept in
 * line by ffv_sync (a side that failed has exited, and the other one sees
 * it there). */
static void server_xfer(struct dside *s, enum op op, size_t k, uint8_t step)
{
	uint8_t *b = s->mr->addr;
	uint32_t len = sizes[k];
	char what[64];

	snprintf(what, sizeof(what), "%s of %u bytes", op_name[op], len);
	if (op == OP_READ) {
		/* the client reads from here */
		memset(b + src_off(k), NOT_PAT, len + 1);
		dfill(b + src_off(k), len, seed_of(op, k));
		ffv_sync(s->fd, step, step);
		ffv_sync(s->fd, step + 1, step + 1);
		return;
	}
	memset(b + dst_off(k) - 1, NOT_PAT, len + 2);
	if (op == OP_SEND)
		FFV_CHECK(!ffv_recv(s->qp, k, (uintptr_t)b + dst_off(k), MAX_LEN, s->mr->lkey),
			  "ibv_post_recv failed");
	ffv_sync(s->fd, step, step);
	if (op == OP_SEND)
		dpoll(s, k, IBV_WC_RECV, len, what);
	ffv_sync(s->fd, step + 1, step + 1);
	FFV_CHECK(b[dst_off(k) - 1] == NOT_PAT, "%s: the byte before the target was written", what);
	dcheck(b + dst_off(k), len, seed_of(op, k), what);
	ffv_ok("%s: %u bytes at offset %zu, every byte as sent, nothing outside", op_name[op], len,
	       dst_off(k));
}

static void client_xfer(struct dside *s, const struct dwire *p, enum op op, size_t k, uint8_t step)
{
	uint8_t *b = s->mr->addr;
	uint32_t len = sizes[k];
	struct ffv_sge sg;
	char what[64];

	snprintf(what, sizeof(what), "%s of %u bytes", op_name[op], len);
	if (op == OP_READ) {
		memset(b + dst_off(k), NOT_PAT, len + 1);
		sg = (struct ffv_sge){(uintptr_t)b + dst_off(k), len, s->mr->lkey};
		ffv_sync(s->fd, step, step);
		FFV_CHECK(!ffv_send(s->qp, IBV_WR_RDMA_READ, k, &sg, 1, 0, 0, p->addr + src_off(k),
				    p->rkey),
			  "post %s", what);
		dpoll(s, k, IBV_WC_RDMA_READ, len, what);
		ffv_sync(s->fd, step + 1, step + 1);
		dcheck(b + dst_off(k), len, seed_of(op, k), what);
		ffv_ok("%s: %u bytes from offset %zu, every byte as the server wrote them",
		       op_name[op], len, src_off(k));
		return;
	}
	dfill(b + src_off(k), len, seed_of(op, k));
	sg = (struct ffv_sge){(uintptr_t)b + src_off(k), len, s->mr->lkey};
	ffv_sync(s->fd, step, step);
	if (op == OP_WRITE)
		FFV_CHECK(!ffv_send(s->qp, IBV_WR_RDMA_WRITE, k, &sg, 1, 0, 0, p->addr + dst_off(k),
				    p->rkey),
			  "post %s", what);
	else
		FFV_CHECK(!ffv_send(s->qp, IBV_WR_SEND, k, &sg, 1, 0, 0, 0, 0), "post %s", what);
	dpoll(s, k, op == OP_WRITE ? IBV_WC_RDMA_WRITE : IBV_WC_SEND, len, what);
	ffv_sync(s->fd, step + 1, step + 1);
}

int ffv_data(bool server, const char *host, int port, const char *dev)
{
	struct dside s = {.server = server};
	struct dwire p;
	uint64_t total = 0;
	uint8_t step = 1;
	int lfd = -1, err;

	if (server)
		lfd = ffv_tcp_listen(port);
	dsetup(&s, dev);
	s.fd = server ? ffv_tcp_accept(lfd) : ffv_tcp_dial(host, port);
	dexchange(&s, &p);
	for (size_t k = 0; k < NSIZES; k++) {
		for (int op = 0; op < NOPS; op++, step += 2) {
			if (server)
				server_xfer(&s, (enum op)op, k, step);
			else
				client_xfer(&s, &p, (enum op)op, k, step);
			total += sizes[k];
		}
	}
	ffv_sync(s.fd, 255, 255);
	ffv_qp_destroy(s.qp);
	FFV_CHECK(!(err = ibv_destroy_cq(s.cq)), "ibv_destroy_cq: %s", strerror(err));
	ffv_dereg(s.mr);
	ffv_dev_close(&s.d);
	close(s.fd);
	if (lfd >= 0)
		close(lfd);
	ffv_ok("all %zu transfers checked (%s), %llu bytes", NSIZES * NOPS,
	       server ? "RDMA_WRITE and SEND here, RDMA_READ on the client" : "RDMA_READ here",
	       (unsigned long long)total);
	return 0;
}
