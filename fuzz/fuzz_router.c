/* libFuzzer target: the router's decoding and handling of everything a
 * container can send it. One router lives for the whole run, with one
 * registered container; each input opens a channel on it, says Hello
 * (unless the input asks not to), then sends the input's datagrams, each
 * with the fds it asks for, runs the event loop until it is idle, reads
 * and closes whatever came back, and closes the channel.
 *
 * Input: byte 0 = flags (bit 0: no Hello), then records
 *   [len: u16 LE][fds: u8][len bytes]
 * fds: 0 none, 1 a pipe, 2 a TCP listener, 3 a TCP listener and a
 * SEQPACKET socket (a Relisten's pair), 4 three pipes (too many).
 * FUZZ_SEEDS=DIR writes a few valid inputs there and exits. */
#include "ffrouter.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct ffr_router *router;
static struct ffr_container *ctr;

static void run_loop(void)
{
	for (int i = 0; i < 8; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static int tcp_listener(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4) < 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Makes the fds a record asks for; returns how many (all to be closed). */
static int make_fds(int kind, int *fds)
{
	int p[2], sv[2], n = 0;

	switch (kind % 5) {
	case 1:
		if (pipe2(p, O_CLOEXEC) == 0) {
			fds[n++] = p[0];
			close(p[1]);
		}
		break;
	case 2:
		fds[n] = tcp_listener();
		n += fds[n] >= 0;
		break;
	case 3:
		fds[n] = tcp_listener();
		n += fds[n] >= 0;
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
			fds[n++] = sv[0];
			close(sv[1]);
		}
		break;
	case 4:
		for (int i = 0; i < 3; i++)
			if (pipe2(p, O_CLOEXEC) == 0) {
				fds[n++] = p[0];
				close(p[1]);
			}
		break;
	}
	return n;
}

static void send_raw(int sock, const uint8_t *buf, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)] = {0};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds > 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void drain(int sock)
{
	uint8_t buf[FF_MSG_MAX];
	int fds[FF_MAX_FDS], nfds;

	while (ff_recv_fds(sock, buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, MSG_DONTWAIT) > 0)
		ff_close_fds(fds, nfds);
}

static void hello(int sock)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;

	h.version = FF_PROTO_VERSION;
	req.id = 1;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	ff_msg_send(sock, &req.base, NULL, 0);
}

/* ---- seeds: one valid request of each kind ---- */

static void seed(const char *dir, const char *name, Ff__Request *req, int fdkind)
{
	uint8_t buf[512], hdr[3];
	size_t len = ff_msg_pack(&req->base, buf);
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return;
	hdr[0] = (uint8_t)len;
	hdr[1] = (uint8_t)(len >> 8);
	hdr[2] = (uint8_t)fdkind;
	fputc(0, f);
	fwrite(hdr, 1, 3, f);
	fwrite(buf, 1, len, f);
	fclose(f);
}

static void write_seeds(const char *dir)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Listen l = FF__LISTEN__INIT;
	Ff__Connect c = FF__CONNECT__INIT;
	Ff__Lookup k = FF__LOOKUP__INIT;
	Ff__Unlisten u = FF__UNLISTEN__INIT;
	Ff__Addr a = FF__ADDR__INIT;
	uint8_t ip[4] = {10, 9, 9, 9};

	a.family = AF_INET;
	a.ip.data = ip;
	a.ip.len = 4;
	a.port = 80;
	req.id = 2;
	l.addr = &a;
	req.body_case = FF__REQUEST__BODY_LISTEN;
	req.listen = &l;
	seed(dir, "listen", &req, 2);
	req.body_case = FF__REQUEST__BODY_RELISTEN;
	req.relisten = &l;
	seed(dir, "relisten", &req, 3);
	c.dst = &a;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &c;
	seed(dir, "connect", &req, 0);
	k.inode = 12345;
	req.body_case = FF__REQUEST__BODY_LOOKUP;
	req.lookup = &k;
	seed(dir, "lookup", &req, 0);
	u.listener_id = 1;
	req.body_case = FF__REQUEST__BODY_UNLISTEN;
	req.unlisten = &u;
	seed(dir, "unlisten", &req, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/fffuzz.XXXXXX";
	struct ffr_options o;
	struct ff_ip ip;
	int err;

	if (getenv("FUZZ_SEEDS")) {
		write_seeds(getenv("FUZZ_SEEDS"));
		exit(0);
	}
	ff_log_level = -1; /* bad input is logged; here there is nothing else */
	if (!mkdtemp(dir))
		abort();
	ffr_options_default(&o);
	o.core.rundir = dir;
	o.core.quota = (struct ffr_quota){.channels = 64, .listeners = 64, .conns = 4096,
					  .pending = 64};
	o.rdma.dev = "none";
	base = event_base_new();
	router = ffr_start(base, &o, &err);
	ff_ip_parse("10.9.9.9", &ip);
	if (!router || ffr_container_new(router, "fz", &ip, 1, NULL, FFR_POLICY_CONTAINER, 0, 0, &ctr) < 0)
		abort();
	ffr_map_publish(router);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];

	if (size < 1 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (ffr_chan_new(router, ctr, sv[0]) < 0) {
		close(sv[1]);
		return 0;
	}
	if (!(data[0] & 1))
		hello(sv[1]);
	for (size_t off = 1; off + 3 <= size;) {
		size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
		int fds[4], nfds = make_fds(data[off + 2], fds);

		off += 3;
		if (len > size - off)
			len = size - off;
		send_raw(sv[1], data + off, len, fds, nfds);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		off += len;
		run_loop();
		drain(sv[1]);
	}
	close(sv[1]);
	run_loop();
	return 0;
}
