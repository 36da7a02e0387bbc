/* libFuzzer target: the requests ffctl sends on the admin socket
 * (core/admin.c, xhost/host-admin.c and publish.c, the verbs status).
 * Each input opens an admin connection, says Hello as "ctl" (unless flags
 * bit 0), sends each record as one datagram with the fds its aux asks
 * for, reads and drops the replies and closes the connection.
 * The admin socket is root's: it may unregister b by right, so b's state
 * is not an oracle here. After an input, containers it registered are
 * unregistered; if it changed a or b, the router is started afresh and
 * that input's fd count is not compared (the fds of b's harness go with
 * the old router); otherwise the fd and liveness oracles apply.
 *
 * Input: flags: u8, then records (harness.h). */
#include "harness.h"

#include "fixture.h"
#include "vt.h"

#include <ff/wire.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void seeds(const char *dir)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Register rg = FF__REGISTER__INIT;
	Ff__Unregister ur = FF__UNREGISTER__INIT;
	Ff__ListContainers ls = FF__LIST_CONTAINERS__INIT;
	Ff__GetStatus st = FF__GET_STATUS__INIT;
	Ff__VerbsStatus vs = FF__VERBS_STATUS__INIT;
	Ff__HostAdd ha = FF__HOST_ADD__INIT;
	char *ips[] = {"10.1.0.9", "fd00::9"};

	req.id = 5;
	rg.name = "c";
	rg.n_ips = 2;
	rg.ips = ips;
	rg.policy = "host";
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &rg;
	fh_seed_begin(dir, "register-unregister", 0);
	fh_seed_msg(&req.base, 0);
	ur.name = "c";
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &ur;
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	rg.host = "h2";
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &rg;
	ha.name = "h2";
	ha.addr = "192.0.2.7:7000";
	fh_seed_begin(dir, "host-remote", 0);
	req.body_case = FF__REQUEST__BODY_HOST_ADD;
	req.host_add = &ha;
	fh_seed_msg(&req.base, 0);
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &rg;
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	fh_seed_begin(dir, "status", 0);
	req.body_case = FF__REQUEST__BODY_LIST;
	req.list = &ls;
	fh_seed_msg(&req.base, 0);
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &st;
	fh_seed_msg(&req.base, 0);
	req.body_case = FF__REQUEST__BODY_VERBS_STATUS;
	req.verbs_status = &vs;
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
}

const struct fh_target fh_target = {.seeds = seeds, .keep_b = false};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_in in = {data + 1, size - 1};
	char path[PATH_MAX];
	struct fh_rec r;
	int fd;

	if (size < 1)
		return 0;
	fh_begin();
	snprintf(path, sizeof(path), "%s/%s", vt_r->rundir, FF_SOCK_NAME);
	fd = fx_connect(path);
	if (fd < 0)
		abort();
	if (!(data[0] & 1)) {
		Ff__Request req = FF__REQUEST__INIT;
		Ff__Hello h = FF__HELLO__INIT;

		h.version = FF_PROTO_VERSION;
		h.role = "ctl";
		req.body_case = FF__REQUEST__BODY_HELLO;
		req.hello = &h;
		vt_loop();
		fh_seed_msg_send(fd, &req.base);
	}
	while (fh_next(&in, &r)) {
		fh_send_rec(fd, &r);
		fh_settle();
		fh_drain(fd);
	}
	close(fd);
	if (fh_restore())
		fh_end();
	return 0;
}
