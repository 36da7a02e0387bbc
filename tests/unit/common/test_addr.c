/* common/addr.c: parsing, classification, and conversions between
 * sockaddr, the protocol's Addr and our own form, including the hostile
 * inputs a peer could send. */
#include "addr.h"

#include "cu.h"

#include <arpa/inet.h>
#include <string.h>

static void test_parse(void)
{
	struct ff_ip ip;
	char buf[64];

	CU_ASSERT_EQUAL(ff_ip_parse("10.1.2.3", &ip), 0);
	CU_ASSERT_EQUAL(ip.family, AF_INET);
	CU_ASSERT_STRING_EQUAL(ff_ip_fmt(&ip, buf, sizeof(buf)), "10.1.2.3");
	CU_ASSERT_EQUAL(ff_ip_parse("fd00::7", &ip), 0);
	CU_ASSERT_EQUAL(ip.family, AF_INET6);
	CU_ASSERT_STRING_EQUAL(ff_ip_fmt(&ip, buf, sizeof(buf)), "fd00::7");
	/* a v4-mapped address is the IPv4 address */
	CU_ASSERT_EQUAL(ff_ip_parse("::ffff:10.1.2.3", &ip), 0);
	CU_ASSERT_EQUAL(ip.family, AF_INET);
	CU_ASSERT_EQUAL(ff_ip_parse("300.1.1.1", &ip), -EINVAL);
	CU_ASSERT_EQUAL(ff_ip_parse("10.1.2", &ip), -EINVAL);
	CU_ASSERT_EQUAL(ff_ip_parse("", &ip), -EINVAL);
	CU_ASSERT_EQUAL(ff_ip_parse(NULL, &ip), -EINVAL);
}

static void test_classify(void)
{
	struct ff_ip ip;

	ff_ip_parse("0.0.0.0", &ip);
	CU_ASSERT(ff_ip_is_any(&ip));
	CU_ASSERT(!ff_ip_is_unicast(&ip));
	ff_ip_parse("::", &ip);
	CU_ASSERT(ff_ip_is_any(&ip));
	ff_ip_parse("127.0.0.5", &ip);
	CU_ASSERT(ff_ip_is_loopback(&ip));
	CU_ASSERT(!ff_ip_is_unicast(&ip));
	ff_ip_parse("::1", &ip);
	CU_ASSERT(ff_ip_is_loopback(&ip));
	ff_ip_parse("224.0.0.1", &ip);
	CU_ASSERT(!ff_ip_is_unicast(&ip));
	ff_ip_parse("ff02::1", &ip);
	CU_ASSERT(!ff_ip_is_unicast(&ip));
	ff_ip_parse("172.17.0.2", &ip);
	CU_ASSERT(ff_ip_is_unicast(&ip));
}

static void test_sockaddr(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80)};
	struct sockaddr_in6 *s6;
	struct sockaddr_storage ss;
	struct ff_sa sa;
	char buf[64];

	inet_pton(AF_INET, "10.0.0.9", &sin.sin_addr);
	CU_ASSERT_EQUAL(ff_sa_from_sockaddr(&sa, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CU_ASSERT_EQUAL(sa.port, 80);
	CU_ASSERT_STRING_EQUAL(ff_sa_fmt(&sa, buf, sizeof(buf)), "10.0.0.9:80");
	/* short lengths are refused, not over-read */
	CU_ASSERT_EQUAL(ff_sa_from_sockaddr(&sa, (struct sockaddr *)&sin, sizeof(sin) - 1), -EINVAL);
	CU_ASSERT_EQUAL(ff_sa_from_sockaddr(&sa, (struct sockaddr *)&sin, 1), -EINVAL);
	/* to a v6 socket: v4-mapped */
	CU_ASSERT_EQUAL(ff_sa_to_sockaddr(&sa, AF_INET6, &ss), (int)sizeof(struct sockaddr_in6));
	s6 = (struct sockaddr_in6 *)&ss;
	CU_ASSERT(IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr));
	CU_ASSERT_EQUAL(ntohs(s6->sin6_port), 80);
	/* and back */
	CU_ASSERT_EQUAL(ff_sa_from_sockaddr(&sa, (struct sockaddr *)&ss, sizeof(*s6)), 0);
	CU_ASSERT_EQUAL(sa.ip.family, AF_INET);
	/* an IPv6 address cannot go into a v4 socket */
	ff_ip_parse("fd00::1", &sa.ip);
	CU_ASSERT_EQUAL(ff_sa_to_sockaddr(&sa, AF_INET, &ss), -EAFNOSUPPORT);
	CU_ASSERT_STRING_EQUAL(ff_sa_fmt(&sa, buf, sizeof(buf)), "[fd00::1]:80");
}

static void test_proto(void)
{
	Ff__Addr a;
	uint8_t ipb[16], junk[16] = {1, 2, 3, 4, 5};
	struct ff_sa sa = {.port = 443}, back;

	ff_ip_parse("192.168.9.9", &sa.ip);
	ff_sa_to_proto(&sa, &a, ipb);
	CU_ASSERT_EQUAL(a.ip.len, 4);
	CU_ASSERT_EQUAL(ff_sa_from_proto(&back, &a), 0);
	CU_ASSERT(ff_ip_equal(&back.ip, &sa.ip));
	CU_ASSERT_EQUAL(back.port, 443);
	/* what a hostile peer could send */
	CU_ASSERT_EQUAL(ff_sa_from_proto(&back, NULL), -EINVAL);
	a.port = 70000;
	CU_ASSERT_EQUAL(ff_sa_from_proto(&back, &a), -EINVAL);
	a.port = 1;
	a.ip.len = 5;
	a.ip.data = junk;
	CU_ASSERT_EQUAL(ff_sa_from_proto(&back, &a), -EINVAL);
	a.family = AF_INET6;
	a.ip.len = 4;
	CU_ASSERT_EQUAL(ff_sa_from_proto(&back, &a), -EINVAL);
	a.family = 99;
	a.ip.len = 16;
	CU_ASSERT_EQUAL(ff_sa_from_proto(&back, &a), -EINVAL);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"parse", test_parse},
		{"classify", test_classify},
		{"sockaddr", test_sockaddr},
		{"proto", test_proto},
		{0},
	};

	return cu_run("addr", tests);
}
