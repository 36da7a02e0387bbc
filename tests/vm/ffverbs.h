/* ffverbs: a verbs coverage and fault program for the vm-verbs-* tests.
 * It links libibverbs only (the forging mode speaks the router's wire
 * protocol by hand), runs inside a container with or without the shim, and
 * prints one "ok: ..." line per behaviour it checked, or "FAIL: ..." and
 * exits 1. Nothing here is installed. */
#pragma once

#include <infiniband/verbs.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FFV_TIMEOUT_MS 60000 /* TCG is slow: every wait is bounded by this */
#define FFV_PORT       18590

extern const char *ffv_role; /* prefixes every message */

__attribute__((noreturn, format(printf, 1, 2))) void ffv_fail(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void ffv_ok(const char *fmt, ...);
#define FFV_CHECK(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ffv_fail(__VA_ARGS__);                                                     \
	} while (0)

/* ---- device, QPs, posting (ffverbs.c) ---- */

struct ffv_dev {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_device_attr da;
	struct ibv_port_attr port;
	union ibv_gid gid; /* index 1: the IPv4-mapped RoCE v2 GID */
};

/* Opens the first device (it must be named name when name is non-NULL). */
void ffv_dev_open(struct ffv_dev *d, const char *name);
void ffv_dev_close(struct ffv_dev *d);
/* A page-aligned buffer of len bytes registered with access. */
struct ibv_mr *ffv_reg(struct ffv_dev *d, size_t len, int access);
void ffv_dereg(struct ibv_mr *mr);

struct ibv_qp *ffv_qp_rc(struct ffv_dev *d, struct ibv_cq *scq, struct ibv_cq *rcq,
			 struct ibv_srq *srq, uint32_t max_inline);
/* RESET -> INIT -> RTR -> RTS towards QP qpn at gid, which sends from
 * peer_psn while this one sends from psn; 0 or the errno of the step that
 * failed (*step names it). */
int ffv_qp_connect(struct ffv_dev *d, struct ibv_qp *qp, uint32_t qpn, const uint8_t gid[16],
		   uint32_t psn, uint32_t peer_psn, const char **step);
/* Two QPs of one context connected to each other (loopback). */
void ffv_pair(struct ffv_dev *d, struct ibv_cq *cq, struct ibv_qp *qp[2]);
void ffv_qp_destroy(struct ibv_qp *qp);

struct ffv_sge {
	uint64_t addr;
	uint32_t len, lkey;
};
int ffv_send(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id, const struct ffv_sge *sg,
	     int nsge, unsigned flags, uint32_t imm, uint64_t raddr, uint32_t rkey);
int ffv_atomic(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id, const struct ffv_sge *sg,
	       uint64_t raddr, uint32_t rkey, uint64_t cmp_add, uint64_t swap);
int ffv_recv(struct ibv_qp *qp, uint64_t wr_id, uint64_t addr, uint32_t len, uint32_t lkey);
int ffv_srq_recv(struct ibv_srq *srq, uint64_t wr_id, uint64_t addr, uint32_t len, uint32_t lkey);
/* One completion within timeout_ms; fails the program on a timeout. */
void ffv_poll(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms, const char *what);
/* The same, but returns false on a timeout. */
bool ffv_poll_try(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms);

const char *ffv_opcode_str(enum ibv_wc_opcode op);
/* Test patterns: byte i of pattern seed. */
void ffv_fill(void *buf, size_t len, unsigned seed, size_t from);
bool ffv_same(const void *buf, size_t len, unsigned seed, size_t from);
char *ffv_gid_str(const void *gid, char *buf, size_t len);

/* ---- TCP exchange (ffverbs.c) ---- */
int ffv_tcp_listen(int port);
int ffv_tcp_accept(int lfd);
int ffv_tcp_dial(const char *host, int port);
void ffv_xchg(int fd, const void *out, void *in, size_t len);
void ffv_sync(int fd, uint8_t mine, uint8_t want);

/* ---- modes ---- */
int ffv_coverage(bool server, const char *host, int port, const char *dev);
int ffv_data(bool server, const char *host, int port, const char *dev);
int ffv_hold(const char *file, const char *dev);
int ffv_steal(const char *file, const char *dev);
int ffv_forge(const char *file);

/* What hold writes for steal and forge: one "key value" per line. */
struct ffv_victim {
	uint32_t pd, mr, cq, qp, qpn, lkey, rkey;
	uint32_t free_qpn; /* a QP in INIT that hold connects when steal says so */
	uint64_t addr, len;
	uint8_t gid[16];
};
void ffv_victim_write(const char *file, const struct ffv_victim *v);
void ffv_victim_read(const char *file, struct ffv_victim *v);
