/* libFuzzer target: the socket requests a container's shim sends on its
 * channel (core/sockets.c and the features' handlers of the same channel).
 * Each input opens a channel of container a, says Hello (unless flags bit
 * 0), sends each record as one datagram with the fds its aux asks for,
 * runs the loop, reads and drops the replies, and closes the channel; the
 * harness's oracles (b untouched, no fd leaked, the loop idle) follow.
 *
 * Input: flags: u8, then records (harness.h). */
#include "harness.h"

#include "fixture.h"

#include <ff/wire.h>

#include <sys/socket.h>
#include <unistd.h>

static void seeds(const char *dir)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Listen l = FF__LISTEN__INIT;
	Ff__Connect c = FF__CONNECT__INIT;
	Ff__Lookup k = FF__LOOKUP__INIT;
	Ff__Unlisten u = FF__UNLISTEN__INIT;
	Ff__Adopt ad = FF__ADOPT__INIT;
	uint64_t args[4] = {3, 0, 0, 0};
	Ff__Addr a, b;
	uint8_t ipa[16], ipb[16];

	fx_addr(&a, ipa, FH_IP_A, 80);
	fx_addr(&b, ipb, FH_IP_B, FH_PORT_B);
	req.id = 2;
	l.addr = &a;
	l.backlog = 16;
	req.body_case = FF__REQUEST__BODY_LISTEN;
	req.listen = &l;
	fh_seed_begin(dir, "listen-connect", 0);
	fh_seed_msg(&req.base, 2);
	c.dst = &a;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &c;
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	req.body_case = FF__REQUEST__BODY_RELISTEN;
	req.relisten = &l;
	fh_seed_begin(dir, "relisten", 0);
	fh_seed_msg(&req.base, 3);
	fh_seed_end();
	c.dst = &b; /* b's listener: allowed, and b must not notice more */
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &c;
	fh_seed_begin(dir, "connect-b", 0);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	k.inode = 12345;
	req.body_case = FF__REQUEST__BODY_LOOKUP;
	req.lookup = &k;
	fh_seed_begin(dir, "lookup", 0);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	u.listener_id = 1; /* b's */
	req.body_case = FF__REQUEST__BODY_UNLISTEN;
	req.unlisten = &u;
	fh_seed_begin(dir, "unlisten", 0);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	/* a keeper's hand-over of a call a dead router held: this channel
	 * supervises nothing, so it must be refused */
	ad.id = 77;
	ad.tid = 1;
	ad.nr = 288; /* accept4 */
	ad.n_args = 4;
	ad.args = args;
	req.body_case = FF__REQUEST__BODY_ADOPT;
	req.adopt = &ad;
	fh_seed_begin(dir, "adopt", 0);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
}

const struct fh_target fh_target = {.seeds = seeds, .keep_b = true};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_in in = {data + 1, size - 1};
	struct fh_rec r;
	int ch;

	if (size < 1)
		return 0;
	fh_begin();
	ch = fh_shim("a", !(data[0] & 1));
	while (fh_next(&in, &r)) {
		fh_send_rec(ch, &r);
		fh_settle();
		fh_drain(ch);
	}
	close(ch);
	fh_end();
	return 0;
}
