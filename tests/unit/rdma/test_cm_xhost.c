/* ffrouter/rdma/cm/xhost.c on the wire: an rdma_cm connect request (a sealed
 * preamble with cm set) that reaches a router which cannot serve it is
 * answered with one REJECT frame, whose MAC binds it to the request's own
 * MAC, the passive direction and index 0, and the connection is closed. */
#include "cu.h"

#include "fake-ibv.h"
#include "inproc.h"
#include "mac.h"
#include "msg.h"
#include "rdma/cm/internal.h"

#include <errno.h>
#include <rdma/rdma_cma.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SECRET "0123456789abcdef-the-cluster"

static struct event_base *base;
static struct ffr_router *r;

/* Router B, with rdma_cm and, if dev, an RDMA device. */
static void setup(bool dev)
{
	ip_router_free(r);
	if (!base)
		base = event_base_new();
	r = ip_router_new(base, "B", SECRET, true, dev ? &fake_ibv : NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_FATAL(!dev || ffr_rdma_of(r));
}

/* A request from container a1 of host A, sealed and opened with the
 * cluster secret as the ingress does; tag: its MAC. */
static Ff__XPreamble *request(bool addrs, uint8_t tag[FFR_MAC_LEN])
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT, *out = NULL;
	Ff__XCmRequest cm = FF__XCM_REQUEST__INIT;
	Ff__RdmaConnParam pm = FF__RDMA_CONN_PARAM__INIT;
	Ff__Addr src = FF__ADDR__INIT, dst = FF__ADDR__INIT;
	uint8_t sb[4] = {10, 78, 0, 1}, db[4] = {10, 78, 0, 2};
	uint8_t buf[FFR_XFRAME_MAX + 2];
	int n;

	src.family = dst.family = AF_INET;
	src.ip.data = sb;
	dst.ip.data = db;
	src.ip.len = dst.ip.len = 4;
	src.port = 40000;
	dst.port = 7471;
	p.src_host = (char *)"A";
	p.src_container = (char *)"a1";
	p.src = addrs ? &src : NULL;
	p.dst = addrs ? &dst : NULL;
	pm.qp_num = 17;
	cm.param = &pm;
	cm.psn = 0x123456;
	p.cm = &cm;
	n = ffr_preamble_seal(r, &p, buf, sizeof(buf));
	CU_ASSERT_FATAL(n > 2 + FFR_MAC_LEN);
	memcpy(tag, buf + n - FFR_MAC_LEN, FFR_MAC_LEN);
	CU_ASSERT_FATAL(ffr_preamble_open(r, buf + 2, (size_t)n - 2, &out) == 0);
	return out;
}

/* Hands a request to the router on one end of a socket pair and reads
 * what comes back on the other: one REJECT frame, then EOF. */
static void expect_reject(Ff__XPreamble *p, const uint8_t tag[FFR_MAC_LEN], int reason)
{
	uint8_t buf[2 * FFR_XFRAME_MAX], mac[FFR_MAC_LEN], in[FFR_MAC_LEN + 9 + FFR_XFRAME_MAX];
	uint8_t k[FF_KEY_LEN];
	Ff__XCmMsg *m;
	size_t len;
	ssize_t n;
	int sv[2];

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	ffr_cmx_incoming(r, p, sv[0], tag);
	n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
	CU_ASSERT_FATAL(n > 2 + FFR_MAC_LEN);
	len = (size_t)buf[0] << 8 | buf[1];
	CU_ASSERT_FATAL((size_t)n == 2 + len);
	len -= FFR_MAC_LEN;
	/* HMAC(rdma_cm key, request MAC || 'P' || index 0 || message) */
	memcpy(in, tag, FFR_MAC_LEN);
	in[FFR_MAC_LEN] = 'P';
	memset(in + FFR_MAC_LEN + 1, 0, 8);
	memcpy(in + FFR_MAC_LEN + 9, buf + 2, len);
	ff_kdf(SECRET, strlen(SECRET), FFR_KEY_CM + 1, k);
	ff_mac(k, sizeof(k), in, FFR_MAC_LEN + 9 + len, mac);
	CU_ASSERT(memcmp(mac, buf + 2 + len, FFR_MAC_LEN) == 0);
	m = (Ff__XCmMsg *)ff_msg_unpack(&ff__xcm_msg__descriptor, buf + 2, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(m->kind, FF__XCM_MSG__KIND__REJECT);
	CU_ASSERT_EQUAL(m->reason, reason);
	ff__xcm_msg__free_unpacked(m, NULL);
	CU_ASSERT_EQUAL(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 0); /* closed */
	close(sv[1]);
}

static void test_no_rdma(void)
{
	uint8_t tag[FFR_MAC_LEN];

	setup(false);
	expect_reject(request(true, tag), tag, 8);
}

static void test_no_container(void)
{
	uint8_t tag[FFR_MAC_LEN];

	setup(true);
	expect_reject(request(true, tag), tag, 8);
	expect_reject(request(false, tag), tag, 8); /* no addresses at all */
	ip_router_free(r);
	r = NULL;
	event_base_free(base);
	base = NULL;
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"no_rdma", test_no_rdma},
		{"no_container", test_no_container},
		{0},
	};

	return cu_run("cm_xhost", tests);
}
