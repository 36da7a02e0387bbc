/* ffrouter/xhost/outside.c: a container whose policy is host asks its
 * router (root, in the host's namespaces) for host sockets to destinations
 * outside the overlay. Refused, without the router connecting anywhere:
 * loopback (a listener of the test's on 127.0.0.1, ::1, 0.0.0.0 which is
 * the host too, ::ffff:127.0.0.1), the metadata address 169.254.169.254,
 * multicast, an address of the host's own interfaces, another router's
 * ingress, this router's --advertise. Still reached: what --host-allow
 * lets through (a port, a prefix), and anything else (a TEST-NET address,
 * which only times out). And the CIDR[:PORT] syntax. */
#include "xhtest.h"

#include <ifaddrs.h>

static struct event_base *base;

/* A router with policy-host container h1 and its shim channel. */
static struct ffr_router *router(const char **allow, int nallow, int *ch)
{
	struct ffr_xhost_config xc = {.xconnect_ms = 300, .advertise = "198.51.100.30:7946"};
	struct ffr_router *r;

	for (int i = 0; i < nallow; i++)
		CU_ASSERT_FATAL(ffr_host_allow_add(&xc, allow[i]) == 0);
	r = xt_router(base, "H", NULL, &xc);
	CU_ASSERT_FATAL(r != NULL);
	xt_host(r, "E", xt_sa("198.51.100.10", 7946)); /* another router, unreachable */
	*ch = xt_shim(base, xt_container(r, "h1", "10.200.9.2", NULL, FFR_POLICY_HOST));
	return r;
}

/* The status of a policy-host connect to ip:port; *fd the socket if any
 * (closed when fd is NULL). */
static Ff__Status outside(int ch, const char *ip, uint16_t port, int *fd)
{
	struct ff_sa dst = xt_sa(ip, port);
	Ff__Reply *rep;
	Ff__Status st;
	int cfd;

	rep = xt_connect(base, ch, &dst, true, &cfd);
	CU_ASSERT_FATAL(rep != NULL);
	st = rep->status;
	ff__reply__free_unpacked(rep, NULL);
	if (fd)
		*fd = cfd;
	else if (cfd >= 0)
		close(cfd);
	return st;
}

/* A non-loopback IPv4 address of this host, if it has one. */
static bool own_address(char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa) < 0)
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		struct sockaddr_in *in = (struct sockaddr_in *)i->ifa_addr;

		if (in && in->sin_family == AF_INET && (ntohl(in->sin_addr.s_addr) >> 24) != 127)
			found = inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)len) != NULL;
	}
	freeifaddrs(ifa);
	return found;
}

static void test_refused(void)
{
	struct ffr_router *r;
	uint16_t port;
	int ch, lfd = fx_tcp_listener(&port); /* on 0.0.0.0: every address of the host */
	char own[INET_ADDRSTRLEN] = "";
	int64_t t0;

	base = event_base_new();
	r = router(NULL, 0, &ch);
	CU_ASSERT_FATAL(lfd >= 0);
	CU_ASSERT_EQUAL(outside(ch, "127.0.0.1", port, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(outside(ch, "0.0.0.0", port, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(outside(ch, "::ffff:127.0.0.1", port, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(outside(ch, "::1", port, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(outside(ch, "224.0.0.1", port, NULL), FF__STATUS__ST_REFUSED);
	if (own_address(own, sizeof(own)))
		CU_ASSERT_EQUAL(outside(ch, own, port, NULL), FF__STATUS__ST_REFUSED);
	/* refused at once: no connect is even tried (it would time out) */
	t0 = xt_now_ms();
	CU_ASSERT_EQUAL(outside(ch, "169.254.169.254", 80, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(outside(ch, "198.51.100.10", 7946, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(outside(ch, "198.51.100.30", 7946, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT(xt_now_ms() - t0 < 250);
	/* the same addresses on other ports, and others: not refused by
	 * policy (TEST-NET: the connect itself times out) */
	CU_ASSERT_NOT_EQUAL(outside(ch, "198.51.100.10", 7947, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_NOT_EQUAL(outside(ch, "198.51.100.30", 80, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(ffr_xhost_stats(r)->outside_refused, own[0] ? 9 : 8);
	close(ch);
	close(lfd);
	ip_router_free(r);
	event_base_free(base);
}

static void test_allowed(void)
{
	const char *allow[3];
	char a0[32];
	struct ffr_router *r;
	uint16_t port, other;
	int ch, fd = -1, sfd, lfd = fx_tcp_listener(&port), l2 = fx_tcp_listener(&other);

	CU_ASSERT_FATAL(lfd >= 0 && l2 >= 0);
	snprintf(a0, sizeof(a0), "127.0.0.1:%u", port);
	allow[0] = a0;                 /* one port on loopback */
	allow[1] = "169.254.0.0/16";   /* link-local, all ports */
	allow[2] = "[::1/128]:1";      /* IPv6 syntax */
	base = event_base_new();
	r = router(allow, 3, &ch);
	CU_ASSERT_EQUAL(outside(ch, "127.0.0.1", port, &fd), FF__STATUS__ST_OK);
	CU_ASSERT_FATAL(fd >= 0);
	sfd = accept(lfd, NULL, NULL);
	CU_ASSERT(sfd >= 0);
	CU_ASSERT(send(fd, "ok", 2, MSG_NOSIGNAL) == 2);
	close(fd);
	if (sfd >= 0)
		close(sfd);
	/* another port of the same address is not allowed */
	CU_ASSERT_EQUAL(outside(ch, "127.0.0.1", other, NULL), FF__STATUS__ST_REFUSED);
	/* allowed, so tried (and timed out): not refused by policy */
	CU_ASSERT_NOT_EQUAL(outside(ch, "169.254.169.254", 80, NULL), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(ffr_xhost_stats(r)->outside_refused, 1);
	close(ch);
	close(lfd);
	close(l2);
	ip_router_free(r);
	event_base_free(base);
}

static void test_syntax(void)
{
	struct ffr_cidr c;
	struct ffr_xhost_config xc = {.state = NULL};
	char ip[64];

	CU_ASSERT_EQUAL(ffr_cidr_parse("10.1.2.3/8", &c), 0);
	CU_ASSERT(c.bits == 8 && c.port == 0 && !strcmp(ff_ip_fmt(&c.ip, ip, sizeof(ip)), "10.0.0.0"));
	CU_ASSERT_EQUAL(ffr_cidr_parse("10.0.0.5:443", &c), 0);
	CU_ASSERT(c.bits == 32 && c.port == 443);
	CU_ASSERT_EQUAL(ffr_cidr_parse("10.0.0.0/24:5432", &c), 0);
	CU_ASSERT(c.bits == 24 && c.port == 5432);
	CU_ASSERT_EQUAL(ffr_cidr_parse("fd00::/8", &c), 0);
	CU_ASSERT(c.bits == 8 && c.ip.family == AF_INET6 && c.port == 0);
	CU_ASSERT_EQUAL(ffr_cidr_parse("fd00::/8:443", &c), 0);
	CU_ASSERT(c.bits == 8 && c.port == 443);
	CU_ASSERT_EQUAL(ffr_cidr_parse("[fd00::1]:443", &c), 0);
	CU_ASSERT(c.bits == 128 && c.port == 443);
	CU_ASSERT_EQUAL(ffr_cidr_parse("::1", &c), 0);
	CU_ASSERT(c.bits == 128 && c.port == 0);
	for (const char **s = (const char *[]){"", "x", "10.0.0.0/33", "10.0.0.0/8:0",
					       "10.0.0.0/8:70000", "10.0.0.0/", "[::1", "[::1]x",
					       "fd00::/129", "10.0.0.1:", "1.2.3.4:5:6", NULL};
	     *s; s++)
		if (ffr_cidr_parse(*s, &c) != -EINVAL) {
			fprintf(stderr, "'%s' parsed\n", *s);
			CU_FAIL("a malformed CIDR[:PORT] parsed");
		}
	for (int i = 0; i < FFR_HOST_ALLOW_MAX; i++)
		CU_ASSERT_EQUAL(ffr_host_allow_add(&xc, "10.0.0.0/8"), 0);
	CU_ASSERT_EQUAL(ffr_host_allow_add(&xc, "10.0.0.0/8"), -ENOSPC);
	CU_ASSERT_EQUAL(ffr_host_allow_add(&(struct ffr_xhost_config){.state = NULL}, "x"), -EINVAL);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"refused", test_refused},
		{"allowed", test_allowed},
		{"syntax", test_syntax},
		{0},
	};

	return cu_run("outside", tests);
}
