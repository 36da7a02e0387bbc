/* The launcher: decides whether the program runs under the filter, forks
 * the keeper before the filter exists (the keeper must stay unfiltered),
 * installs the filter, hands its listener to the keeper and becomes the
 * program: same pid, same fds, same environment plus FFNET_EXEC=1.
 *
 * Every fd the launcher opens is O_CLOEXEC and closed before the exec; the
 * keeper's intermediate parent is reaped here, so the program inherits no
 * child. Whenever the filter cannot be had, the program runs without it,
 * as it would without ffnet; once the filter is installed, the program
 * runs only if the keeper holds its listener (without a holder, the
 * trapped calls would fail with ENOSYS). */
#include "ffexec.h"

#include "fdpass.h"
#include "log.h"

#include <ff/exec.h>
#include <ff/wire.h>

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EX_USAGE_ENV 125 /* env(1)'s codes */
#define EX_NOEXEC    126
#define EX_NOTFOUND  127
#define ANSWER_MS    2000
#define CONNECT_MS   1000

static const char *sock_path(void)
{
	const char *p = getenv(FF_ENV_SOCK);

	return p && *p ? p : FF_DEFAULT_SOCK;
}

int ffe_router_connect(int timeout_ms)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	const char *path = sock_path();
	int fd, err = 0;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (timeout_ms ? 0 : SOCK_NONBLOCK), 0);
	if (fd < 0)
		return -errno;
	/* AF_UNIX connect waits for backlog room up to the send timeout */
	if (timeout_ms)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static int run(char **argv)
{
	int e;

	execvp(argv[0], argv);
	e = errno;
	fprintf(stderr, "ffexec: %s: %s\n", argv[0], strerror(e));
	return e == ENOENT ? EX_NOTFOUND : EX_NOEXEC;
}

static bool disabled(void)
{
	const char *off = getenv(FF_ENV_DISABLE);

	return off && *off && *off != '0';
}

/* Forks the keeper through an intermediate process that exits at once, so
 * the keeper is nobody's child here. Consumes sp and chan in the keeper
 * only. Returns 0 once the intermediate is reaped and reported success. */
static int fork_keeper(int sp, int chan, uint32_t pid)
{
	int st;
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0) {
		pid_t k = fork();

		if (k == 0)
			_exit(ffe_keeper(sp, chan, pid));
		_exit(k < 0 ? 1 : 0);
	}
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
}

/* Waits up to ANSWER_MS for the keeper's byte. */
static char keeper_answer(int sp)
{
	struct timespec t0, t;
	char c = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {.fd = sp, .events = POLLIN};
		long left;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ANSWER_MS -
		       ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return 0;
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (p.revents)
			return read(sp, &c, 1) == 1 ? c : 0;
	}
}

/* Filters this process, hands the listener over and returns 0, or returns
 * -errno with no filter installed (the program then runs without one), or
 * exits when a filter is installed but nobody holds its listener. */
static int supervise(int chan)
{
	uint32_t pid = (uint32_t)getpid();
	int sp[2], lfd, err;
	char c;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	err = fork_keeper(sp[1], chan, pid);
	close(sp[1]);
	if (err) {
		ff_warn("cannot start the keeper: %s; running without the filter", strerror(-err));
		goto out_close_sp;
	}
	setenv(FF_ENV_EXEC, "1", 1);
	lfd = ffe_filter_install();
	if (lfd < 0) {
		err = lfd;
		unsetenv(FF_ENV_EXEC);
		ff_warn("seccomp: %s; running without the filter", strerror(-err));
		goto out_close_sp; /* the keeper reads EOF and leaves */
	}
	err = ff_send_fds(sp[0], "L", 1, &lfd, 1);
	close(lfd);
	if (err) {
		ff_err("cannot hand the seccomp listener to the keeper: %s", strerror(-err));
		exit(EX_USAGE_ENV);
	}
	c = keeper_answer(sp[0]);
	if (c == 'R')
		ff_info("pid %u: the router supervises", pid);
	else if (c == 'K')
		ff_info("pid %u: no router took the listener; the keeper lets every call through",
			pid);
	else
		ff_info("pid %u: the keeper did not answer in time", pid);
out_close_sp:
	close(sp[0]);
	return err;
}

static const char usage[] =
	"usage: ffexec [--sendto] [--] PROGRAM [ARGS...]\n"
	"  --sendto  also serve sendto with an address on accelerated sockets\n"
	"            (a trip to the router per such call, UDP's included)\n"
	"  --help    this text\n";

int ffe_main(int argc, char **argv)
{
	int chan;

	ff_log_init("ffexec", ff_log_parse_level(getenv(FF_ENV_LOG)));
	while (argc > 1 && !strncmp(argv[1], "--", 2)) {
		if (!strcmp(argv[1], "--")) {
			argv++;
			argc--;
			break;
		}
		if (!strcmp(argv[1], "--help")) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(argv[1], "--sendto")) {
			fprintf(stderr, "ffexec: unknown option %s\n", argv[1]);
			argc = 0;
			break;
		}
		ffe_filter_trap_sendto(true);
		argv++;
		argc--;
	}
	if (argc < 2) {
		fputs(usage, stderr);
		return EX_USAGE_ENV;
	}
	argv++;
	if (disabled()) {
		ff_info("%s is set: running %s without the filter", FF_ENV_DISABLE, argv[0]);
		return run(argv);
	}
	chan = ffe_router_connect(CONNECT_MS);
	if (chan < 0) {
		ff_info("no router at %s (%s): running %s without the filter", sock_path(),
			strerror(-chan), argv[0]);
		return run(argv);
	}
	supervise(chan);
	close(chan);
	return run(argv);
}
