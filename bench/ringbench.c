/* The same-host rings alone (common/sring.c, issue 14), against the
 * kernel's ways between two threads of one process: one writer thread on
 * CPU 0, one reader on CPU 1, a stream of MSG-byte writes for SECS seconds.
 *   ringbench ring|spin|copy|unix|tcp MSG SECS   prints "N msgs/s M MiB/s"
 * ring: a memfd's rings (FF_SRING_DEFAULT) with their doorbell
 * (common/sdoor.c): each side sleeps in poll() on its socket, as an app
 * would, and the socket's readiness follows the ring; spin: the same
 * rings, each side watching the ring instead of sleeping (no system call
 * at all: the most the rings can move between these two CPUs); copy: one
 * thread on CPU 0 copying MSG bytes at a time into a buffer the ring's
 * size (what one core's copy does, no other core involved); unix: an
 * AF_UNIX stream socketpair (the plain same-host path); tcp: a loopback
 * TCP connection. Each write is one write() or one ring copy; the reader
 * takes what there is (128 KiB at most). */
#include "sdoor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct ff_sring wr, rd;
static struct ff_sdoor dw, dr;
static int bell[2], sk[2];
static size_t msg;
static volatile int stop;
static uint64_t got_bytes;
static enum { RING, SPIN, COPY, UNIX, TCP } mode;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &s);
	sched_setaffinity(0, sizeof(s), &s);
}

/* Sleeps in poll() for events on fd (100 ms at most: stop is a flag). */
static void wait_for(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};

	poll(&p, 1, 100);
}

static void *writer(void *arg)
{
	static char buf[1 << 20];

	(void)arg;
	pin(0);
	while (!stop) {
		ssize_t n;

		if (mode == UNIX || mode == TCP) {
			if (write(sk[0], buf, msg) < 0)
				break;
			continue;
		}
		n = ff_sring_write(&wr, buf, msg);
		if (mode == SPIN) {
			if (n < 0)
				break;
			continue;
		}
		if (n > 0)
			ff_sdoor_wrote(&dw, bell[0]);
		else if (n == 0 && ff_sdoor_full(&dw, bell[0]) == 0)
			wait_for(bell[0], POLLOUT);
		else if (n < 0)
			break;
	}
	if (mode == RING || mode == SPIN) {
		ff_sring_shut_tx(&wr);
		if (mode == RING)
			shutdown(bell[0], SHUT_WR);
	} else {
		shutdown(sk[0], SHUT_WR);
	}
	return NULL;
}

static void *reader(void *arg)
{
	static char buf[128 << 10];

	(void)arg;
	pin(1);
	for (;;) {
		ssize_t n;

		if (mode == SPIN) {
			n = ff_sring_read(&rd, buf, sizeof(buf), false);
			if (n < 0 || (n == 0 && ff_sring_eof(&rd)))
				break;
			got_bytes += (uint64_t)n;
			continue;
		}
		if (mode == UNIX || mode == TCP) {
			n = read(sk[1], buf, sizeof(buf));
			if (n <= 0)
				break;
			got_bytes += (uint64_t)n;
			continue;
		}
		n = ff_sring_read(&rd, buf, sizeof(buf), false);
		if (n < 0)
			break;
		ff_sdoor_took(&dr, bell[1]);
		if (n == 0) {
			if (ff_sring_eof(&rd))
				break;
			wait_for(bell[1], POLLIN);
			continue;
		}
		got_bytes += (uint64_t)n;
	}
	return NULL;
}

static int tcp_pair(int sv[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (l < 0 || bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return -1;
	sv[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (sv[0] < 0 || connect(sv[0], (struct sockaddr *)&a, len) < 0)
		return -1;
	sv[1] = accept(l, NULL, NULL);
	close(l);
	setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return sv[1] < 0 ? -1 : 0;
}

/* One core's copy, for SECS: MSG bytes at a time round a buffer of the
 * rings' size. */
static void copy_alone(double secs)
{
	static char src[1 << 20];
	char *dst = malloc(FF_SRING_DEFAULT);
	size_t off = 0;
	double t0 = now();

	pin(0);
	memset(src, 1, sizeof(src));
	memset(dst, 0, FF_SRING_DEFAULT);
	while (now() - t0 < secs)
		for (int i = 0; i < 64; i++) {
			size_t k = msg < FF_SRING_DEFAULT - off ? msg : FF_SRING_DEFAULT - off;

			memcpy(dst + off, src, k);
			off = (off + k) % FF_SRING_DEFAULT;
			got_bytes += k;
		}
	printf("%.0f msgs/s %.1f MiB/s\n", (double)got_bytes / (double)msg / (now() - t0),
	       (double)got_bytes / (1 << 20) / (now() - t0));
	free(dst);
}

int main(int argc, char **argv)
{
	pthread_t tw, tr;
	double secs, t0, t1;

	if (argc != 4 || (msg = strtoul(argv[2], NULL, 10)) == 0 || msg > (1 << 20) ||
	    (secs = atof(argv[3])) <= 0) {
		fprintf(stderr, "usage: ringbench ring|spin|copy|unix|tcp MSG SECS\n");
		return 2;
	}
	mode = !strcmp(argv[1], "ring")	  ? RING
	       : !strcmp(argv[1], "spin") ? SPIN
	       : !strcmp(argv[1], "copy") ? COPY
	       : !strcmp(argv[1], "unix") ? UNIX
					  : TCP;
	if (mode == COPY) {
		copy_alone(secs);
		return 0;
	}
	if (mode == RING || mode == SPIN) {
		size_t len = ff_sring_len(FF_SRING_DEFAULT);
		int fd = memfd_create("ringbench", MFD_CLOEXEC);
		void *m;

		if (fd < 0 || ftruncate(fd, (off_t)len) < 0 ||
		    (m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED ||
		    ff_sring_format(m, len, FF_SRING_DEFAULT) < 0 || ff_sring_attach(&wr, m, len, 0) < 0 ||
		    ff_sring_attach(&rd, m, len, 1) < 0 ||
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bell) < 0 ||
		    setsockopt(bell[0], SOL_SOCKET, SO_SNDBUF, &(int){FF_SDOOR_SNDBUF}, sizeof(int)) < 0 ||
		    setsockopt(bell[1], SOL_SOCKET, SO_SNDBUF, &(int){FF_SDOOR_SNDBUF}, sizeof(int)) < 0 ||
		    ff_sdoor_init(&dw, &wr, bell[0]) < 0 || ff_sdoor_init(&dr, &rd, bell[1]) < 0) {
			perror("ringbench: ring");
			return 1;
		}
	} else if ((mode == UNIX ? socketpair(AF_UNIX, SOCK_STREAM, 0, sk) : tcp_pair(sk)) < 0) {
		perror("ringbench: socket");
		return 1;
	}
	t0 = now();
	pthread_create(&tr, NULL, reader, NULL);
	pthread_create(&tw, NULL, writer, NULL);
	usleep((useconds_t)(secs * 1e6));
	stop = 1;
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	t1 = now();
	printf("%.0f msgs/s %.1f MiB/s\n", (double)got_bytes / (double)msg / (t1 - t0),
	       (double)got_bytes / (1 << 20) / (t1 - t0));
	return 0;
}
