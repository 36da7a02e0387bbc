/* libFuzzer target: rdma_cm channel messages (rdma/cm/channel.c, cm.c,
 * connect.c): what a container's shim sends on the request socket of an
 * rdma_cm event channel. Each input opens a shim channel of container a,
 * says Hello, opens an rdma_cm channel (RdmaCmOpen), sends each record
 * as one datagram with the fds its aux asks for on the request socket,
 * reads and drops the replies and the events, then closes everything;
 * the harness's oracles follow (b, which listens on FH_IP_B:7471 and may
 * be connected to by right, keeps its listener; no fd leaked; the loop
 * idle).
 *
 * Input: records (harness.h). */
#include "harness.h"

#include "fdpass.h"
#include "fixture.h"
#include "vt.h"

#include <ff/wire.h>

#include <rdma/rdma_cma.h>
#include <stdlib.h>
#include <unistd.h>

struct cmch {
	int ch, req, ev;
};

static void cm_open(struct cmch *c)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaCmOpen o = FF__RDMA_CM_OPEN__INIT;
	int rfds[FF_MAX_FDS], n = 0;
	Ff__Reply *rep;

	c->ch = fh_shim("a", true);
	req.body_case = FF__REQUEST__BODY_RDMA_CM_OPEN;
	req.rdma_cm_open = &o;
	rep = vt_call(c->ch, &req, NULL, 0, rfds, &n);
	if (!rep || rep->status || n != 2)
		abort();
	ff__reply__free_unpacked(rep, NULL);
	c->req = rfds[0];
	c->ev = rfds[1];
}

static void cm_close(struct cmch *c)
{
	ff_close_fds(&c->req, 1);
	ff_close_fds(&c->ev, 1);
	ff_close_fds(&c->ch, 1);
}

/* Sends req on c and returns the reply's id (0 if none). */
static uint32_t call_id(struct cmch *c, Ff__Request *req)
{
	Ff__Reply *rep = vt_call(c->req, req, NULL, 0, NULL, NULL);
	uint32_t id = rep && rep->body_case == FF__REPLY__BODY_RDMA_CM ? rep->rdma_cm->id : 0;

	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	return id;
}

static void seeds(const char *dir)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaCreateId cr = FF__RDMA_CREATE_ID__INIT;
	Ff__RdmaBind bd = FF__RDMA_BIND__INIT;
	Ff__RdmaListen ls = FF__RDMA_LISTEN__INIT;
	Ff__RdmaResolveAddr ra = FF__RDMA_RESOLVE_ADDR__INIT;
	Ff__RdmaIdOp op = FF__RDMA_ID_OP__INIT;
	Ff__RdmaResolveRoute rr = FF__RDMA_RESOLVE_ROUTE__INIT;
	Ff__RdmaConnect cn = FF__RDMA_CONNECT__INIT;
	Ff__RdmaConnParam pm = FF__RDMA_CONN_PARAM__INIT;
	Ff__Addr a, b;
	uint8_t ipa[16], ipb[16], pdata[56] = "hello";
	struct cmch c;
	uint32_t id;

	fh_router_up();
	cm_open(&c);
	cr.ps = RDMA_PS_TCP;
	cr.qp_type = IBV_QPT_RC;
	req.body_case = FF__REQUEST__BODY_RDMA_CREATE_ID;
	req.rdma_create_id = &cr;
	id = call_id(&c, &req); /* the handle the first id of a channel gets */
	req.id = 3;
	fh_seed_begin(dir, "listen", -1);
	fh_seed_msg(&req.base, 0);
	fx_addr(&a, ipa, FH_IP_A, 7000);
	bd.id = id;
	bd.addr = &a;
	req.body_case = FF__REQUEST__BODY_RDMA_BIND;
	req.rdma_bind = &bd;
	fh_seed_msg(&req.base, 0);
	ls.id = id;
	ls.backlog = 8;
	req.body_case = FF__REQUEST__BODY_RDMA_LISTEN;
	req.rdma_listen = &ls;
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	fh_seed_begin(dir, "connect-b", -1);
	req.body_case = FF__REQUEST__BODY_RDMA_CREATE_ID;
	req.rdma_create_id = &cr;
	fh_seed_msg(&req.base, 0);
	fx_addr(&b, ipb, FH_IP_B, 7471);
	ra.id = id;
	ra.dst = &b;
	req.body_case = FF__REQUEST__BODY_RDMA_RESOLVE_ADDR;
	req.rdma_resolve_addr = &ra;
	fh_seed_msg(&req.base, 0);
	op.id = rr.id = id;
	req.body_case = FF__REQUEST__BODY_RDMA_RESOLVE_ROUTE;
	req.rdma_resolve_route = &rr;
	fh_seed_msg(&req.base, 0);
	pm.private_data.data = pdata;
	pm.private_data.len = sizeof(pdata);
	pm.responder_resources = 1;
	pm.initiator_depth = 1;
	pm.retry_count = 7;
	cn.id = id;
	cn.param = &pm;
	req.body_case = FF__REQUEST__BODY_RDMA_CONNECT;
	req.rdma_connect = &cn;
	fh_seed_msg(&req.base, 0);
	req.body_case = FF__REQUEST__BODY_RDMA_DISCONNECT;
	req.rdma_disconnect = &op;
	fh_seed_msg(&req.base, 0);
	req.body_case = FF__REQUEST__BODY_RDMA_DESTROY_ID;
	req.rdma_destroy_id = &op;
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	cm_close(&c);
}

const struct fh_target fh_target = {.seeds = seeds, .keep_b = true};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_in in = {data, size};
	struct fh_rec r;
	struct cmch c;

	fh_begin();
	cm_open(&c);
	while (fh_next(&in, &r)) {
		fh_send_rec(c.req, &r);
		fh_settle();
		fh_drain(c.req);
		fh_drain(c.ev);
	}
	cm_close(&c);
	fh_end();
	return 0;
}
