/* common/fdpass.c and msg.c: datagrams with fds, and what a hostile peer
 * can do to them (truncation, too many fds, garbage). */
#include "cu.h"
#include "fixture.h"
#include "fdpass.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

/* True when every read end of the pipe is closed. */
static bool pipe_orphaned(int wfd)
{
	return write(wfd, "x", 1) < 0 && errno == EPIPE;
}

static void test_fds_roundtrip(void)
{
	int sv[2], p[2], fds[FF_MAX_FDS], nfds = -1;
	char buf[16];

	CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	CU_ASSERT_EQUAL(ff_send_fds(sv[0], "hello", 5, &p[0], 1), 0);
	CU_ASSERT_EQUAL(ff_recv_fds(sv[1], buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, 0), 5);
	CU_ASSERT_EQUAL(nfds, 1);
	CU_ASSERT(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	CU_ASSERT_EQUAL(write(p[1], "z", 1), 1);
	CU_ASSERT_EQUAL(read(fds[0], buf, 1), 1);
	CU_ASSERT_EQUAL(buf[0], 'z');
	close(fds[0]);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_too_many_fds(void)
{
	int sv[2], p[2], fds[FF_MAX_FDS], nfds = -1, many[FF_MAX_FDS + 1];
	char buf[16];

	CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	for (int i = 0; i <= FF_MAX_FDS; i++)
		many[i] = p[0];
	/* the sender refuses more than FF_MAX_FDS */
	CU_ASSERT_EQUAL(ff_send_fds(sv[0], "x", 1, many, FF_MAX_FDS + 1), -EINVAL);
	/* a raw sender does not: the receiver closes all of them */
	CU_ASSERT_EQUAL(fx_send_raw_fds(sv[0], "x", 1, many, FF_MAX_FDS + 1), 1);
	close(p[0]);
	CU_ASSERT_EQUAL(ff_recv_fds(sv[1], buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, 0),
			-ETOOMANYREFS);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT(pipe_orphaned(p[1]));
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_truncated(void)
{
	int sv[2], p[2], fds[FF_MAX_FDS], nfds = -1;
	char big[200] = {0}, buf[16];

	CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	CU_ASSERT_EQUAL(ff_send_fds(sv[0], big, sizeof(big), &p[0], 1), 0);
	close(p[0]);
	CU_ASSERT_EQUAL(ff_recv_fds(sv[1], buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, 0), -EMSGSIZE);
	CU_ASSERT(pipe_orphaned(p[1]));
	/* EOF */
	close(sv[0]);
	CU_ASSERT_EQUAL(ff_recv_fds(sv[1], buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, 0), 0);
	close(p[1]);
	close(sv[1]);
}

/* An empty datagram reads as the end of the stream, as EOF does: the fds
 * it carried are closed, not left to a caller that sees no message (found
 * by fuzz_router: a shim leaked two router fds per empty datagram). */
static void test_empty_with_fds(void)
{
	int sv[2], p[2], fds[FF_MAX_FDS], nfds = -1;
	char buf[16];

	CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	CU_ASSERT_EQUAL(fx_send_raw_fds(sv[0], "", 0, &p[0], 1), 0);
	close(p[0]);
	CU_ASSERT_EQUAL(ff_recv_fds(sv[1], buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, 0), 0);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT(pipe_orphaned(p[1]));
	if (nfds > 0)
		ff_close_fds(fds, nfds);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_msg_garbage(void)
{
	static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	uint8_t buf[256];
	ProtobufCMessage *m = NULL;
	int sv[2], p[2], fds[FF_MAX_FDS], nfds = -1;

	CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	CU_ASSERT_EQUAL(ff_send_fds(sv[0], garbage, sizeof(garbage), &p[0], 1), 0);
	close(p[0]);
	CU_ASSERT_EQUAL(ff_msg_recv(sv[1], &ff__request__descriptor, buf, sizeof(buf), &m, fds,
				    FF_MAX_FDS, &nfds, 0),
			-EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT(pipe_orphaned(p[1]));
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_msg_roundtrip(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister u = FF__UNREGISTER__INIT;
	uint8_t buf[256];
	ProtobufCMessage *m = NULL;
	int sv[2], fds[FF_MAX_FDS], nfds = -1;

	CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
	u.name = (char *)"c9";
	req.id = 77;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &u;
	CU_ASSERT_EQUAL(ff_msg_send(sv[0], &req.base, NULL, 0), 0);
	CU_ASSERT_EQUAL(ff_msg_recv(sv[1], &ff__request__descriptor, buf, sizeof(buf), &m, fds,
				    FF_MAX_FDS, &nfds, 0),
			1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(((Ff__Request *)m)->id, 77);
	CU_ASSERT_STRING_EQUAL(((Ff__Request *)m)->unregister->name, "c9");
	protobuf_c_message_free_unpacked(m, NULL);
	CU_ASSERT_EQUAL(ff_status_errno(FF__STATUS__ST_ADDR_IN_USE), EADDRINUSE);
	CU_ASSERT_EQUAL(ff_status_errno(FF__STATUS__ST_NO_LISTENER), ECONNREFUSED);
	CU_ASSERT_STRING_EQUAL(ff_status_name(FF__STATUS__ST_QUOTA), "ST_QUOTA");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"fds_roundtrip", test_fds_roundtrip},
		{"too_many_fds", test_too_many_fds},
		{"truncated", test_truncated},
		{"empty_with_fds", test_empty_with_fds},
		{"msg_garbage", test_msg_garbage},
		{"msg_roundtrip", test_msg_roundtrip},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("msg", tests);
}
