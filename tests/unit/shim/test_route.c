/* libffshim/sock/sock-conn.c: the routing decision of connect(). Which
 * destinations the shim takes to the router (those of the map page the
 * router shares, unicast, with a port, in the socket's family) and which
 * it leaves to the kernel, and how the container's policy changes that.
 * The router refuses every Connect here, so a destination it was asked
 * about never reaches the (fake) kernel connect. */
#include "cu.h"
#include "shim_fixture.h"

#include "sock/sock-internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const overlay[] = {"10.77.0.5", "10.77.0.6", "fd00::5", "224.0.0.5",
				      "127.0.0.9", "0.0.0.0",	NULL};

/* Where connect(fd, addr) went: 'r' the router, 'k' the kernel, '?'
 * both or neither. */
static char route_addr(int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	int c = sf_connects(), k = sf_kernel.calls;

	sf_answers_clear();
	sf_answer(SF_STATUS, FF__STATUS__ST_REFUSED);
	ffs_connect(fd, (const struct sockaddr *)ss, len);
	sf_answers_clear();
	c = sf_connects() - c;
	k = sf_kernel.calls - k;
	return c == 1 && k == 0 ? 'r' : c == 0 && k == 1 ? 'k' : '?';
}

static char route(int fd, const char *ip, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = sf_addr(ip, port, &ss);

	return route_addr(fd, &ss, len);
}

/* The same on a fresh AF_INET/AF_INET6 socket, closed after. */
static char route_new(int family, const char *ip, int port)
{
	int fd = sf_socket(family, SOCK_STREAM);
	char r = route(fd, ip, port);

	sf_close(fd);
	return r;
}

static void test_overlay_to_router(void)
{
	struct ff_sa dst;
	struct ff_ip want;
	bool outside = true;

	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.5", 80), 'r');
	sf_last_connect(&dst, &outside);
	ff_ip_parse("10.77.0.5", &want);
	CU_ASSERT_TRUE(ff_ip_equal(&dst.ip, &want));
	CU_ASSERT_EQUAL(dst.port, 80);
	CU_ASSERT_FALSE(outside);
	CU_ASSERT_EQUAL(route_new(AF_INET6, "fd00::5", 443), 'r');
}

static void test_others_to_kernel(void)
{
	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.7", 80), 'k'); /* not in the map */
	CU_ASSERT_TRUE(sf_addr_is(&sf_kernel.addr, "10.77.0.7", 80));
	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.5", 0), 'k'); /* no port */
	/* in the map, but no unicast container address */
	CU_ASSERT_EQUAL(route_new(AF_INET, "224.0.0.5", 80), 'k');
	CU_ASSERT_EQUAL(route_new(AF_INET, "127.0.0.9", 9), 'k');
	CU_ASSERT_EQUAL(route_new(AF_INET, "0.0.0.0", 80), 'k');
}

/* The page is read at each connect(): the router's updates count at once. */
static void test_map_read_live(void)
{
	static const char *const more[] = {"10.77.0.5", "10.77.0.7", NULL};

	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.7", 80), 'k');
	sf_map_set(more);
	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.7", 80), 'r');
	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.6", 80), 'k');
	sf_map_set(overlay);
	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.7", 80), 'k');
}

/* The address must be of the socket's family: the kernel answers the
 * mismatch. An IPv6 socket reaches an IPv4 overlay address mapped, unless
 * it is IPv6-only. */
static void test_families(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct ff_sa dst;
	bool outside;
	int fd, on = 1;

	CU_ASSERT_EQUAL(route_new(AF_INET6, "10.77.0.5", 80), 'k');
	CU_ASSERT_EQUAL(route_new(AF_INET, "fd00::5", 80), 'k');
	len = sf_addr_mapped("10.77.0.5", 80, &ss);
	fd = sf_socket(AF_INET6, SOCK_STREAM);
	CU_ASSERT_EQUAL(route_addr(fd, &ss, len), 'r');
	sf_last_connect(&dst, &outside);
	CU_ASSERT_EQUAL(dst.ip.family, AF_INET); /* the router gets it unmapped */
	sf_close(fd);
	fd = sf_socket(AF_INET6, SOCK_STREAM);
	CU_ASSERT_EQUAL(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)), 0);
	CU_ASSERT_EQUAL(route_addr(fd, &ss, len), 'k');
	sf_close(fd);
}

/* A short address is the kernel's to refuse. */
static void test_short_address(void)
{
	struct sockaddr_storage ss;
	int fd = sf_socket(AF_INET, SOCK_STREAM), c = sf_connects();

	sf_addr("10.77.0.5", 80, &ss);
	sf_kernel.calls = 0;
	ffs_connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in) - 1);
	ffs_connect(fd, (struct sockaddr *)&ss, sizeof(sa_family_t));
	ffs_connect(fd, NULL, 0);
	CU_ASSERT_EQUAL(sf_kernel.calls, 3);
	CU_ASSERT_EQUAL(sf_connects(), c);
	sf_close(fd);
}

/* Only TCP sockets the shim saw made go to the router. */
static void test_socket_kinds(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0); /* made behind the shim's back */

	CU_ASSERT_EQUAL(route(fd, "10.77.0.5", 80), 'k');
	close(fd);
	fd = sf_socket(AF_INET, SOCK_DGRAM);
	CU_ASSERT_EQUAL(route(fd, "10.77.0.5", 80), 'k');
	sf_close(fd);
	fd = sf_socket(AF_INET, SOCK_STREAM);
	ffs_fd_set(fd, ffs_sock_new(FFS_OTHER, AF_INET)); /* the router said: not ours */
	CU_ASSERT_EQUAL(route(fd, "10.77.0.5", 80), 'k');
	sf_close(fd);
	ffs_enabled = false; /* FFNET_DISABLE when the socket was made */
	fd = sf_socket(AF_INET, SOCK_STREAM);
	ffs_enabled = true;
	CU_ASSERT_EQUAL(route(fd, "10.77.0.5", 80), 'k');
	sf_close(fd);
}

/* A connected accelerated socket (or listener) answers EISCONN itself. */
static void test_connected(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sf_addr("10.77.0.5", 80, &ss);
	int fd = sf_socket(AF_INET, SOCK_STREAM), c, k, peer;

	sf_answer(SF_PAIR, 0);
	CU_ASSERT_EQUAL_FATAL(ffs_connect(fd, (struct sockaddr *)&ss, len), 0);
	peer = sf_take_peer();
	c = sf_connects();
	k = sf_kernel.calls;
	CU_ASSERT_EQUAL(ffs_connect(fd, (struct sockaddr *)&ss, len), -1);
	CU_ASSERT_EQUAL(errno, EISCONN);
	CU_ASSERT_EQUAL(sf_connects(), c);
	CU_ASSERT_EQUAL(sf_kernel.calls, k);
	sf_close(fd);
	close(peer);
}

/* In a child (so it says Hello again and gets the policy): 0 if connect
 * to ip went to the router (which refuses it) and not to the kernel. */
static int child_connect(const char *ip)
{
	struct sockaddr_storage ss;
	socklen_t len = sf_addr(ip, 80, &ss);
	int fd = sf_socket(AF_INET, SOCK_STREAM), r;

	sf_kernel.calls = 0;
	r = ffs_connect(fd, (struct sockaddr *)&ss, len);
	return r == -1 && errno == ECONNREFUSED && sf_kernel.calls == 0 ? 0 : 1;
}

static int run_child(const char *ip)
{
	pid_t pid;
	int st;

	sf_answer(SF_STATUS, FF__STATUS__ST_REFUSED);
	pid = fork();
	if (pid == 0)
		_exit(child_connect(ip));
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Policy "host": the router also connects outside the overlay, and says
 * so in the request; overlay addresses are still the overlay's. */
static void test_policy_host(void)
{
	struct ff_sa dst;
	bool outside = false;
	int hellos = sf_hellos();

	sf_policy("host");
	CU_ASSERT_EQUAL(run_child("10.77.0.7"), 0);
	sf_last_connect(&dst, &outside);
	CU_ASSERT_EQUAL(dst.ip.ip[3], 7);
	CU_ASSERT_TRUE(outside);
	CU_ASSERT_EQUAL(run_child("10.77.0.5"), 0);
	sf_last_connect(&dst, &outside);
	CU_ASSERT_EQUAL(dst.ip.ip[3], 5);
	CU_ASSERT_FALSE(outside);
	CU_ASSERT_EQUAL(sf_hellos(), hellos + 2);
	sf_policy("container");
	/* this process's channel still has the policy it said Hello with */
	CU_ASSERT_EQUAL(route_new(AF_INET, "10.77.0.7", 80), 'k');
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"overlay_to_router", test_overlay_to_router},
	    {"others_to_kernel", test_others_to_kernel},
	    {"map_read_live", test_map_read_live},
	    {"families", test_families},
	    {"short_address", test_short_address},
	    {"socket_kinds", test_socket_kinds},
	    {"connected", test_connected},
	    {"policy_host", test_policy_host},
	    {0},
	};
	int r;

	sf_start();
	sf_map_set(overlay);
	sf_kernel_fake(true);
	r = cu_run("shim-route", tests);
	sf_kernel_fake(false);
	sf_stop();
	return r;
}
