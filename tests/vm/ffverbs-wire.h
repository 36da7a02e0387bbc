/* ffverbs-wire: the router's control protocol (proto/ff.proto) encoded
 * and decoded by hand, for ffverbs forge: framing (FF_FRAME_V1, then a
 * protobuf Request or Reply), SCM_RIGHTS fds, and builders of the Verbs*
 * messages it sends. Only the fields ffverbs needs are known here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME	      0xf1
#define PROTO_VERSION 1

/* Request body field numbers (proto/ff.proto) */
enum {
	B_HELLO = 10,
	B_VOPEN = 40,
	B_CTX_INIT = 42,
	B_ALLOC_PD = 43,
	B_REG_MR = 44,
	B_MEM_ADD = 45,
	B_CREATE_CQ = 46,
	B_CREATE_QP = 48,
	B_MODIFY_QP = 49,
	B_QUERY_QP = 50,
	B_CREATE_SRQ = 51,
	B_MODIFY_SRQ = 52,
	B_DESTROY = 53,
};

struct pb {
	uint8_t b[12288];
	size_t n;
};

/* The reply of one request: status, error text, and what ffverbs reads. */
struct reply {
	uint64_t id;
	uint32_t status;
	char error[256];
	unsigned body;
	uint64_t obj[11]; /* VerbsObjReply fields 1..10 */
	uint8_t gid4[16]; /* VerbsOpenReply: the IPv4-mapped GID */
	int fds[4], nfds;
};

void pb_u(struct pb *p, unsigned f, uint64_t v);
void pb_bytes(struct pb *p, unsigned f, const void *d, size_t n);
void pb_sub(struct pb *p, unsigned f, const struct pb *s);

/* A raw datagram with fds (not consumed); 0 or -errno. */
int fw_send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* 1: a reply in r; 0: the router closed the socket. Fails on silence. */
int fw_recv(int sock, struct reply *r);
void fw_close_fds(struct reply *r);
/* One request (body field number, its message) and its reply. */
void fw_call(int sock, unsigned body, const struct pb *sub, const int *fds, int nfds,
	     struct reply *r);
const char *fw_status_str(uint32_t st);
/* The request must be refused; with want, the errno must be want. */
void fw_refused(int sock, const char *what, unsigned body, const struct pb *sub, const int *fds,
		int nfds, int want);
void fw_accepted(int sock, const char *what, unsigned body, const struct pb *sub, const int *fds,
		 int nfds, struct reply *r);

/* Builders: each returns one of 8 rotating buffers. */
struct pb *fw_msg(void);
/* Any message of two numbers (fields 1 and 2): VerbsDestroy, VerbsQueryQp... */
struct pb *m_two(uint32_t a, uint32_t b);
struct pb *m_reg_mr(uint32_t pd, uint64_t addr, uint64_t len, uint32_t access);
struct pb *m_mem(uint64_t addr, uint64_t len, bool remove);
struct pb *m_cq(uint32_t cqe, uint32_t channel);
struct qp_caps {
	uint32_t swr, rwr, ssge, rsge, inl;
};
struct pb *m_qp(uint32_t pd, uint32_t cq, uint32_t srq, uint32_t type, const struct qp_caps *c);
/* A VerbsAh of gid (len bytes) */
struct pb *m_ah(const uint8_t *gid, size_t len, bool global, uint32_t port);
/* VerbsModifyQp: attr holds VerbsQpAttr fields (mask first). */
struct pb *m_modify(uint32_t qp, const struct pb *attr);
struct pb *a_init(void);
/* RTR towards qpn (ah: a VerbsAh) */
struct pb *a_rtr(const struct pb *ah, uint32_t qpn);
struct pb *a_rts(void);
/* mask and one field */
struct pb *a_one(uint32_t mask, unsigned f, uint64_t v);
