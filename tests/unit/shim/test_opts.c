/* What an accelerated connection answers at the IP, IPv6 and TCP levels,
 * against a kernel TCP connection on loopback of the same family: the same
 * return value, errno, length and bytes for every option a TCP socket
 * answers, fresh and after the app set them, and the kernel's errno for a
 * value it refuses. (A server that drops connections carrying IP options
 * read four zero bytes from IP_OPTIONS, where TCP gives an empty list, and
 * dropped every accelerated connection.) */
#include "cu.h"
#include "shim_fixture.h"

#include "sock/sock-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct opt {
	int level, name;
	const char *what;
};

#define O(l, n) {l, n, #n}

/* Options a connected TCP socket answers the same way whatever its route.
 * Left out, because they describe the connection itself and the shim
 * answers them as a TCP connection over Ethernet would, not as loopback:
 * TCP_MAXSEG, TCP_INFO, TCP_CC_INFO, IP_MTU, IPV6_MTU, TCP_WINDOW_CLAMP;
 * and TCP_TIMESTAMP (a clock). */
static const struct opt v4_opts[] = {
    O(IPPROTO_IP, IP_OPTIONS),	      O(IPPROTO_IP, IP_TOS),
    O(IPPROTO_IP, IP_TTL),	      O(IPPROTO_IP, IP_HDRINCL),
    O(IPPROTO_IP, IP_RECVOPTS),	      O(IPPROTO_IP, IP_RETOPTS),
    O(IPPROTO_IP, IP_PKTINFO),	      O(IPPROTO_IP, IP_MTU_DISCOVER),
    O(IPPROTO_IP, IP_RECVERR),	      O(IPPROTO_IP, IP_RECVTTL),
    O(IPPROTO_IP, IP_RECVTOS),	      O(IPPROTO_IP, IP_MULTICAST_TTL),
    O(IPPROTO_IP, IP_MULTICAST_LOOP), O(IPPROTO_IP, IP_FREEBIND),
    O(IPPROTO_IP, IP_TRANSPARENT),    O(IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT),
    O(IPPROTO_IP, IP_MINTTL),	      O(IPPROTO_IP, IP_NODEFRAG),
    O(IPPROTO_IP, IP_CHECKSUM),	      O(IPPROTO_IP, IP_RECVFRAGSIZE),
    {IPPROTO_IP, 999, "IP 999"},
};

static const struct opt v6_opts[] = {
    O(IPPROTO_IPV6, IPV6_V6ONLY),	  O(IPPROTO_IPV6, IPV6_UNICAST_HOPS),
    O(IPPROTO_IPV6, IPV6_TCLASS),	  O(IPPROTO_IPV6, IPV6_RECVPKTINFO),
    O(IPPROTO_IPV6, IPV6_MTU_DISCOVER), O(IPPROTO_IPV6, IPV6_RECVERR),
    O(IPPROTO_IPV6, IPV6_MULTICAST_HOPS), O(IPPROTO_IPV6, IPV6_AUTOFLOWLABEL),
    O(IPPROTO_IPV6, IPV6_DONTFRAG),	  O(IPPROTO_IPV6, IPV6_RECVTCLASS),
    O(IPPROTO_IPV6, IPV6_FREEBIND),	  {IPPROTO_IPV6, 999, "IPV6 999"},
};

static const struct opt tcp_opts[] = {
    O(IPPROTO_TCP, TCP_NODELAY),	      O(IPPROTO_TCP, TCP_CORK),
    O(IPPROTO_TCP, TCP_KEEPIDLE),	      O(IPPROTO_TCP, TCP_KEEPINTVL),
    O(IPPROTO_TCP, TCP_KEEPCNT),	      O(IPPROTO_TCP, TCP_SYNCNT),
    O(IPPROTO_TCP, TCP_LINGER2),	      O(IPPROTO_TCP, TCP_DEFER_ACCEPT),
    O(IPPROTO_TCP, TCP_QUICKACK),	      O(IPPROTO_TCP, TCP_CONGESTION),
    O(IPPROTO_TCP, TCP_USER_TIMEOUT),     O(IPPROTO_TCP, TCP_NOTSENT_LOWAT),
    O(IPPROTO_TCP, TCP_FASTOPEN),	      O(IPPROTO_TCP, TCP_FASTOPEN_CONNECT),
    O(IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS), O(IPPROTO_TCP, TCP_THIN_DUPACK),
    O(IPPROTO_TCP, TCP_SAVE_SYN),	      O(IPPROTO_TCP, TCP_INQ),
    O(IPPROTO_TCP, TCP_ULP),		      O(IPPROTO_TCP, TCP_MD5SIG),
    O(IPPROTO_TCP, TCP_TX_DELAY),	      {IPPROTO_TCP, 999, "TCP 999"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct answer {
	int r, err;
	socklen_t len;
	uint8_t val[256];
};

static void ask(int fd, const struct opt *o, struct answer *a, bool shim)
{
	memset(a, 0, sizeof(*a));
	a->len = sizeof(a->val);
	errno = 0;
	a->r = shim ? ffs_getsockopt(fd, o->level, o->name, a->val, &a->len)
		    : getsockopt(fd, o->level, o->name, a->val, &a->len);
	a->err = a->r < 0 ? errno : 0;
	if (a->r < 0)
		a->len = 0;
}

/* Every option of opts answered alike on fd (the shim's) and kfd. */
static int compare(int fd, int kfd, const struct opt *opts, size_t n, const char *when)
{
	int diffs = 0;

	for (size_t i = 0; i < n; i++) {
		struct answer s, k;

		ask(fd, &opts[i], &s, true);
		ask(kfd, &opts[i], &k, false);
		if (s.r != k.r || s.err != k.err || s.len != k.len || memcmp(s.val, k.val, s.len)) {
			fprintf(stderr,
				"%s %s: shim r=%d errno=%d len=%u; kernel r=%d errno=%d len=%u\n",
				when, opts[i].what, s.r, s.err, s.len, k.r, k.err, k.len);
			diffs++;
		}
	}
	return diffs;
}

/* A same-host connection handed over by the fake router: the app's fd. */
static int shim_conn(int family)
{
	int fd = sf_socket(family, SOCK_STREAM);
	struct sockaddr_storage ss;
	socklen_t len = family == AF_INET ? sf_addr("10.77.0.5", 80, &ss)
					  : sf_addr_mapped("10.77.0.5", 80, &ss);

	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL_FATAL(ffs_connect(fd, (struct sockaddr *)&ss, len), 0);
	CU_ASSERT_TRUE_FATAL(ffs_is_conn(fd));
	close(sf_take_peer());
	return fd;
}

static int setint(int fd, int level, int name, int v, bool shim)
{
	return shim ? ffs_setsockopt(fd, level, name, &v, sizeof(v))
		    : setsockopt(fd, level, name, &v, sizeof(v));
}

/* What servers and Go set, and the IP options a hardening server clears. */
static void set_some(int fd, int family, bool shim)
{
	static const uint8_t nops[4] = {IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_END};

	CU_ASSERT_EQUAL(setint(fd, IPPROTO_TCP, TCP_NODELAY, 1, shim), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_TCP, TCP_KEEPIDLE, 15, shim), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_TCP, TCP_LINGER2, 5, shim), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, 16384, shim), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, 1, shim), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_IP, IP_TOS, 0x10, shim), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_IP, IP_RECVERR, 1, shim), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO, shim), 0);
	if (family == AF_INET) {
		CU_ASSERT_EQUAL(shim ? ffs_setsockopt(fd, IPPROTO_IP, IP_OPTIONS, nops, sizeof(nops))
				     : setsockopt(fd, IPPROTO_IP, IP_OPTIONS, nops, sizeof(nops)),
				0);
	} else {
		CU_ASSERT_EQUAL(setint(fd, IPPROTO_IPV6, IPV6_TCLASS, 0x20, shim), 0);
		CU_ASSERT_EQUAL(setint(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7, shim), 0);
	}
}

static void same_answers(int family)
{
	int srv, kfd = sf_tcp_pair(family, &srv), fd = shim_conn(family), d = 0;
	const char *f = family == AF_INET ? "v4" : "v6";
	char when[32];

	snprintf(when, sizeof(when), "%s fresh", f);
	d += compare(fd, kfd, v4_opts, N(v4_opts), when);
	d += compare(fd, kfd, tcp_opts, N(tcp_opts), when);
	if (family == AF_INET6)
		d += compare(fd, kfd, v6_opts, N(v6_opts), when);
	set_some(fd, family, true);
	set_some(kfd, family, false);
	snprintf(when, sizeof(when), "%s set", f);
	d += compare(fd, kfd, v4_opts, N(v4_opts), when);
	d += compare(fd, kfd, tcp_opts, N(tcp_opts), when);
	if (family == AF_INET6)
		d += compare(fd, kfd, v6_opts, N(v6_opts), when);
	CU_ASSERT_EQUAL(d, 0);
	sf_close(fd);
	close(kfd);
	close(srv);
}

static void test_same_answers_v4(void)
{
	same_answers(AF_INET);
}

static void test_same_answers_v6(void)
{
	same_answers(AF_INET6);
}

/* A value the kernel refuses is refused with its errno, and the option
 * keeps its value. */
static void test_refused_values(void)
{
	static const struct {
		int level, name, v;
	} bad[] = {
	    {IPPROTO_IP, IP_TTL, 300},	      {IPPROTO_IP, IP_TTL, 0},
	    {IPPROTO_TCP, TCP_KEEPIDLE, 0},   {IPPROTO_TCP, TCP_KEEPCNT, 200},
	    {IPPROTO_TCP, TCP_MAXSEG, 10},    {IPPROTO_IP, IP_MTU_DISCOVER, 99},
	    {IPPROTO_TCP, TCP_USER_TIMEOUT, -1},
	};
	int srv, kfd = sf_tcp_pair(AF_INET, &srv), fd = shim_conn(AF_INET);

	for (size_t i = 0; i < N(bad); i++) {
		int rs, es, rk, ek;

		errno = 0;
		rs = setint(fd, bad[i].level, bad[i].name, bad[i].v, true);
		es = errno;
		errno = 0;
		rk = setint(kfd, bad[i].level, bad[i].name, bad[i].v, false);
		ek = errno;
		CU_ASSERT_EQUAL(rs, rk);
		CU_ASSERT_EQUAL(es, ek);
		if (rs != rk || es != ek)
			fprintf(stderr, "case %zu: shim %d/%d kernel %d/%d\n", i, rs, es, rk, ek);
	}
	CU_ASSERT_EQUAL(ffs_setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "nosuchcc", 8), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	CU_ASSERT_EQUAL(compare(fd, kfd, tcp_opts, N(tcp_opts), "after refusals"), 0);
	CU_ASSERT_EQUAL(compare(fd, kfd, v4_opts, N(v4_opts), "after refusals"), 0);
	sf_close(fd);
	close(kfd);
	close(srv);
}

/* Options set on the TCP socket before connect() are what the accelerated
 * connection answers after it. */
static void test_set_before_connect(void)
{
	static const uint8_t nops[4] = {IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_END};
	int fd = sf_socket(AF_INET, SOCK_STREAM), v = 0;
	struct sockaddr_storage ss;
	socklen_t len = sf_addr("10.77.0.5", 80, &ss), vl;
	uint8_t buf[40];

	CU_ASSERT_EQUAL(ffs_setsockopt(fd, IPPROTO_IP, IP_OPTIONS, nops, sizeof(nops)), 0);
	CU_ASSERT_EQUAL(setint(fd, IPPROTO_IP, IP_RECVERR, 1, true), 0);
	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL_FATAL(ffs_connect(fd, (struct sockaddr *)&ss, len), 0);
	CU_ASSERT_TRUE(ffs_is_conn(fd));
	close(sf_take_peer());
	vl = sizeof(buf);
	CU_ASSERT_EQUAL(ffs_getsockopt(fd, IPPROTO_IP, IP_OPTIONS, buf, &vl), 0);
	CU_ASSERT_EQUAL(vl, sizeof(nops));
	CU_ASSERT_EQUAL(memcmp(buf, nops, sizeof(nops)), 0);
	vl = sizeof(v);
	CU_ASSERT_EQUAL(ffs_getsockopt(fd, IPPROTO_IP, IP_RECVERR, &v, &vl), 0);
	CU_ASSERT_EQUAL(v, 1);
	sf_close(fd);
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"same_answers_v4", test_same_answers_v4},
	    {"same_answers_v6", test_same_answers_v6},
	    {"refused_values", test_refused_values},
	    {"set_before_connect", test_set_before_connect},
	    {0},
	};
	static const char *const overlay[] = {"10.77.0.5", NULL};
	int r;

	sf_start();
	sf_map_set(overlay);
	sf_kernel_fake(true);
	r = cu_run("shim-opts", tests);
	sf_kernel_fake(false);
	sf_stop();
	return r;
}
