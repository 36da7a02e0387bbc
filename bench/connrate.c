/* Connection set-up rate: how many TCP connections per second one client
 * opens and closes against a server that accepts and closes them.
 *   connrate server PORT
 *   connrate client IP PORT SECONDS    prints "N connections/s"
 * Each client connection is connect() then a 1-byte read of the server's
 * close (EOF), so a connection counts only once it is really established
 * and served.
 * And the cost of the calls an app makes on a connection besides its
 * bytes (ffexec traps them: issue 11), on one connection the server holds
 * until the client closes it:
 *   connrate hold PORT
 *   connrate calls IP PORT K    K getsockname, then K setsockopt
 *                               (TCP_NODELAY); prints
 *                               "getsockname X us setsockopt Y us" */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int serve(int port, int hold)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	int one = 1, l = socket(AF_INET6, SOCK_STREAM, 0);

	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1024) < 0) {
		perror("connrate server");
		return 1;
	}
	for (;;) {
		int c = accept(l, NULL, NULL);
		char b[64];

		while (c >= 0 && hold && read(c, b, sizeof(b)) > 0)
			;
		if (c >= 0)
			close(c);
	}
}

static int client(const char *ip, int port, double secs)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	double t0 = now(), t;
	long n = 0;
	char b;

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		fprintf(stderr, "connrate: bad address %s\n", ip);
		return 2;
	}
	do {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    read(s, &b, 1) < 0) {
			fprintf(stderr, "connrate: %s\n", strerror(errno));
			return 1;
		}
		close(s);
		n++;
		t = now() - t0;
	} while (t < secs);
	printf("%.0f connections/s\n", n / t);
	return 0;
}

static int calls(const char *ip, int port, long k)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct sockaddr_in me;
	socklen_t len;
	double t0, t1, t2;
	int one = 1, s;

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1 || k < 1) {
		fprintf(stderr, "connrate: bad address %s or count %ld\n", ip, k);
		return 2;
	}
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "connrate: %s\n", strerror(errno));
		return 1;
	}
	t0 = now();
	for (long i = 0; i < k; i++) {
		len = sizeof(me);
		if (getsockname(s, (struct sockaddr *)&me, &len) < 0 || me.sin_family != AF_INET) {
			fprintf(stderr, "connrate: getsockname: %s\n", strerror(errno));
			return 1;
		}
	}
	t1 = now();
	for (long i = 0; i < k; i++)
		if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
			fprintf(stderr, "connrate: setsockopt: %s\n", strerror(errno));
			return 1;
		}
	t2 = now();
	close(s);
	printf("getsockname %.2f us setsockopt %.2f us\n", (t1 - t0) / (double)k * 1e6,
	       (t2 - t1) / (double)k * 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return serve(atoi(argv[2]), 0);
	if (argc == 3 && !strcmp(argv[1], "hold"))
		return serve(atoi(argv[2]), 1);
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atof(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "calls"))
		return calls(argv[2], atoi(argv[3]), atol(argv[4]));
	fprintf(stderr, "usage: connrate server|hold PORT | connrate client IP PORT SECONDS |"
			" connrate calls IP PORT K\n");
	return 2;
}
