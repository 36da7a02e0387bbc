/* The program test_ffexec runs under ffexec. It prints what it inherited,
 * one "key=value" line each, then does what its mode says:
 *   exec_helper probe           exit 0 if ffexec's filter installs here, else 77
 *   exec_helper info            only the lines below
 *   exec_helper connect PORT    a TCP connection to 127.0.0.1:PORT sending "hi",
 *                               and the metadata calls: "connect=OK"
 *                               (with HELPER_WAIT set, first waits for a line
 *                               on stdin)
 *   exec_helper rescue PORT     the connect on a second thread while the main
 *                               thread makes a trapped call every 50 ms:
 *                               "rescue=OK" once the connect completed
 *   exec_helper accept          a blocking accept4 on a loopback listener:
 *                               "accept=" and what it returned (or the errno)
 * Lines: exec= (FFNET_EXEC, "-" if unset), pid=, fds= (open fds above 2),
 * child= ("none" when it has no child), filters= (Seccomp_filters). */
#include "ffexec.h"

#include <ff/exec.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void info(void)
{
	const char *e = getenv(FF_ENV_EXEC);
	char line[256], fds[256] = "";
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	FILE *f;

	printf("exec=%s\npid=%d\n", e ? e : "-", (int)getpid());
	while (d && (de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] != '.' && fd > 2 && fd != dirfd(d) && strlen(fds) < 200)
			sprintf(fds + strlen(fds), "%s%d", *fds ? "," : "", fd);
	}
	if (d)
		closedir(d);
	printf("fds=%s\n", fds);
	printf("child=%s\n", waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD ? "none" : "some");
	f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp_filters:", 16))
			printf("filters=%d\n", atoi(line + 16));
	if (f)
		fclose(f);
	fflush(stdout);
}

/* 0, or the step that failed ("connect", ...) with errno set */
static const char *tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(int);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), v = 1;
	const char *step = NULL;

	if (fd < 0)
		return "socket";
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		step = "connect";
	else if (write(fd, "hi", 2) != 2)
		step = "write";
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len) < 0 || v)
		step = "getsockopt";
	else if (len = sizeof(v),
		 getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_INET)
		step = "getsockopt";
	else if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) < 0)
		step = "setsockopt";
	else if (len = sizeof(a), getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		step = "getsockname";
	else if (len = sizeof(a),
		 getpeername(fd, (struct sockaddr *)&a, &len) < 0 || ntohs(a.sin_port) != port)
		step = "getpeername";
	close(fd);
	return step;
}

static int do_connect(int port)
{
	const char *step;
	char line[64];

	if (getenv("HELPER_WAIT") && !fgets(line, sizeof(line), stdin)) {
		printf("connect=FAIL stdin\n");
		return 1;
	}
	step = tcp_connect(port);
	if (step)
		printf("connect=FAIL %s %s\n", step, strerror(errno));
	else
		printf("connect=OK\n");
	return step ? 1 : 0;
}

static int done;

static void *connector(void *arg)
{
	const char *step = tcp_connect((int)(long)arg);

	__atomic_store_n(&done, step ? -1 : 1, __ATOMIC_RELEASE);
	return NULL;
}

static int do_rescue(int port)
{
	struct timespec tick = {0, 50 * 1000000L};
	pthread_t t;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || pthread_create(&t, NULL, connector, (void *)(long)port))
		return 2;
	for (int i = 0; i < 100 && !__atomic_load_n(&done, __ATOMIC_ACQUIRE); i++) {
		struct sockaddr_in a;
		socklen_t len = sizeof(a);

		nanosleep(&tick, NULL);
		getsockname(s, (struct sockaddr *)&a, &len);
	}
	switch (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
	case 1:
		pthread_join(t, NULL);
		printf("rescue=OK\n");
		return 0;
	case -1:
		pthread_join(t, NULL);
		printf("rescue=FAIL\n");
		return 1;
	default:
		printf("rescue=STUCK\n");
		fflush(stdout);
		_exit(1); /* the stuck thread goes with the process */
	}
}

static int do_accept(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0)
		return 2;
	printf("listener=%d\n", l);
	fflush(stdout);
	r = accept4(l, NULL, NULL, 0);
	if (r < 0)
		printf("accept=%s\n", strerror(errno));
	else
		printf("accept=%d\n", r);
	return 0;
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "probe")) {
		fd = ffe_filter_install();
		return fd < 0 ? 77 : 0;
	}
	info();
	if (!strcmp(argv[1], "connect") && argc > 2)
		return do_connect(atoi(argv[2]));
	if (!strcmp(argv[1], "rescue") && argc > 2)
		return do_rescue(atoi(argv[2]));
	if (!strcmp(argv[1], "accept"))
		return do_accept();
	return strcmp(argv[1], "info") ? 2 : 0;
}
