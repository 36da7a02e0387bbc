/* Connection set-up rate: how many TCP connections per second one client
 * opens and closes against a server that accepts and closes them.
 *   connrate server PORT
 *   connrate client IP PORT SECONDS    prints "N connections/s"
 * Each client connection is connect() then a 1-byte read of the server's
 * close (EOF), so a connection counts only once it is really established
 * and served. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

static int serve(int port)
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

		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 || read(s, &b, 1) < 0) {
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

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return serve(atoi(argv[2]));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: connrate server PORT | connrate client IP PORT SECONDS\n");
	return 2;
}
