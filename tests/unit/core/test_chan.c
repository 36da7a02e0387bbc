/* ffrouter/core/chan.c through the router's sockets: every kind of bad
 * input a container or a confused client can send on a control channel
 * (garbage, fds where none belong, requests out of order or not allowed on
 * that socket, a flood), and the channel quota. After each bad input the
 * router must still serve (checked with a fresh request). */
#include "cu.h"
#include "fixture.h"

#include "fdpass.h"
#include "msg.h"

#include <ff/wire.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct fx_router fx;

/* Sends bytes as they are (framed: behind a valid frame byte). */
static Ff__Reply *raw(int fd, const void *buf, size_t len, bool framed)
{
	uint8_t *b = malloc(len + 1);
	int rfds[FF_MAX_FDS], nr, err;

	b[0] = FF_FRAME_V1;
	memcpy(b + 1, buf, len);
	err = framed ? ff_send_fds(fd, b, len + 1, NULL, 0) : ff_send_fds(fd, buf, len, NULL, 0);
	free(b);
	if (err < 0)
		return NULL;
	return fx_recv(fd, rfds, &nr);
}

static void test_garbage(void)
{
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	/* id=5, then field 99 (length-delimited, empty): a type we do not know */
	static const uint8_t unknown[] = {0x08, 0x05, 0x9a, 0x06, 0x00};
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister u = FF__UNREGISTER__INIT;
	uint8_t enc[256], *big;
	size_t len;
	Ff__Reply *rep;
	int fd, rfds[FF_MAX_FDS], nr;

	fx_up(&fx);
	fd = fx_admin(&fx, true);
	rep = raw(fd, garbage, sizeof(garbage), true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* truncated: the first half of a valid request */
	u.name = (char *)"a-rather-long-container-name";
	req.id = 9;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &u;
	len = protobuf_c_message_pack(&req.base, enc);
	rep = raw(fd, enc, len / 2, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* oversized */
	big = calloc(1, FF_MSG_MAX + 4096);
	rep = raw(fd, big, FF_MSG_MAX + 4096, true);
	free(big);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep->error, "too long"));
	ff__reply__free_unpacked(rep, NULL);
	/* a valid message without the frame byte */
	rep = raw(fd, enc, len, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* unknown type */
	rep = raw(fd, unknown, sizeof(unknown), true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_UNSUPPORTED);
	CU_ASSERT_EQUAL(rep->id, 5);
	ff__reply__free_unpacked(rep, NULL);
	/* the same channel still works */
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NOT_FOUND);
	ff__reply__free_unpacked(rep, NULL);
	/* an empty datagram reads as EOF on SOCK_SEQPACKET: the channel goes */
	CU_ASSERT_PTR_NULL(raw(fd, "", 0, false));
	close(fd);
	fx_assert_serving(&fx, 2);
	fx_router_stop(&fx);
}

static void test_unexpected_fds(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus st = FF__GET_STATUS__INIT;
	int fd, p[2], many[FF_MAX_FDS + 1], rfds[FF_MAX_FDS], nr;
	Ff__Reply *rep;

	fx_up(&fx);
	fd = fx_admin(&fx, true);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &st;
	/* status carries no fds */
	rep = fx_call(fd, &req, &p[0], 1, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* more fds than any message may carry */
	for (int i = 0; i <= FF_MAX_FDS; i++)
		many[i] = p[0];
	{
		uint8_t enc[64];
		size_t len = ff_msg_pack(&req.base, enc);

		CU_ASSERT_EQUAL(fx_send_raw_fds(fd, enc, len, many, FF_MAX_FDS + 1), (long)len);
		rep = fx_recv(fd, rfds, &nr);
		CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
		CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
		ff__reply__free_unpacked(rep, NULL);
	}
	/* the router kept none of them */
	close(p[0]);
	CU_ASSERT(fx_pipe_orphaned(p[1]));
	close(p[1]);
	close(fd);
	fx_assert_serving(&fx, 2);
	fx_router_stop(&fx);
}

static void test_protocol_order(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus st = FF__GET_STATUS__INIT;
	Ff__Register reg = FF__REGISTER__INIT;
	char *ips[] = {"10.99.0.50"};
	int fd, rfds[FF_MAX_FDS], nr;
	Ff__Reply *rep;
	char b;

	fx_up(&fx);
	/* before Hello: refused and closed */
	fd = fx_admin(&fx, false);
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &st;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NOT_HELLO);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_EQUAL(recv(fd, &b, 1, 0), 0);
	close(fd);
	/* a container cannot register others */
	fd = fx_shim(&fx, "c1");
	reg.name = (char *)"evil";
	reg.n_ips = 1;
	reg.ips = ips;
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &reg;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_PERM);
	ff__reply__free_unpacked(rep, NULL);
	/* and a CLI cannot connect as a container */
	close(fd);
	fd = fx_admin(&fx, true);
	rep = fx_overlay_connect(fd, "10.99.0.1", 80, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_PERM);
	ff__reply__free_unpacked(rep, NULL);
	close(fd);
	fx_assert_serving(&fx, 2);
	fx_router_stop(&fx);
}

static void test_flood_closes_channel(void)
{
	int fd, rfds[FF_MAX_FDS], nr, replies = 0, resets = 0;
	uint8_t buf[512];

	fx_up(&fx);
	fd = fx_shim(&fx, "c1");
	for (int i = 0; i < 40; i++)
		if (ff_send_fds(fd, "\xff\xff", 2, NULL, 0) < 0)
			break;
	/* Closed with requests unread, the router's end resets ours: that
	 * error comes first, then the replies queued before it, then EOF. */
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 2000) != 1)
			break;
		n = ff_recv_fds(fd, buf, sizeof(buf), rfds, FF_MAX_FDS, &nr, 0);
		if (n == -ECONNRESET && !resets++)
			continue;
		if (n <= 0)
			break;
		replies++;
	}
	/* answered up to the limit, then closed */
	CU_ASSERT(replies >= 1 && replies <= 16);
	close(fd);
	fx_assert_serving(&fx, 2);
	fx_router_stop(&fx);
}

static void test_channel_quota(void)
{
	int fds[70], n = 0, refused = 0;

	fx_up(&fx);
	for (int i = 0; i < 70; i++) {
		fds[i] = fx_shim(&fx, "c1");
		if (fds[i] >= 0)
			n++;
		else
			refused++;
	}
	CU_ASSERT_EQUAL(n, 64);
	CU_ASSERT_EQUAL(refused, 6);
	for (int i = 0; i < 70; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	usleep(50000);
	n = fx_shim(&fx, "c1");
	CU_ASSERT(n >= 0);
	close(n);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"garbage", test_garbage},
		{"unexpected_fds", test_unexpected_fds},
		{"protocol_order", test_protocol_order},
		{"flood_closes_channel", test_flood_closes_channel},
		{"channel_quota", test_channel_quota},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("chan", tests);
}
