/* main.c - roles and the scenario protocol of ffconform.
 *
 * Every scenario runs on its own connection: the client connects to the main
 * port and sends one line "NAME [ARG]"; the server accepts, reads that line
 * and runs the handler, which owns (and eventually closes) the connection.
 * Scenarios needing a second listener create it on port+1 and send "ready"
 * once it listens. A failing scenario only times out its own waits, so the
 * next scenario still starts from a clean connection.
 *
 * `both` runs the server in a forked child and the client in the parent, each
 * writing to its own memfd, then prints the client transcript followed by the
 * server transcript: exactly `cat client.out server.out` of a split run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ffconform.h"

struct ffc_opts ffc_opt = {.big_mib = 1024, .conns = 1000, .timeout_s = 60};
int ffc_listener = -1;

struct cl_scenario {
	const char *name;
	void (*run)(void);
};

struct sv_scenario {
	const char *name;
	void (*run)(int fd, const char *arg);
};

/* The client runs these in order; scenarios without a server part (refused)
 * never contact the server. */
static const struct cl_scenario cl_table[] = {
    {"hello", cl_hello},
    {"connect-blocking", cl_connect_blocking},
    {"connect-nonblock", cl_connect_nonblock},
    {"refused", cl_refused},
    {"accept-blocking", cl_accept_blocking},
    {"accept-nonblock", cl_accept_nonblock},
    {"accept4", cl_accept4},
    {"addrinuse", cl_addrinuse},
    {"names", cl_names},
    {"sockopt", cl_sockopt},
    {"shutdown", cl_shutdown},
    {"peek", cl_peek},
    {"iovec", cl_iovec},
    {"sendfile", cl_sendfile},
    {"splice", cl_splice},
    {"poll", cl_poll},
    {"select", cl_select},
    {"epoll", cl_epoll},
    {"rdhup", cl_rdhup},
    {"dup", cl_dup},
    {"fork", cl_fork},
    {"exec", cl_exec},
    {"relay", cl_relay},
    {"noshim", cl_noshim},
    {"peerclose", cl_peerclose},
    {"reset", cl_reset},
    {"sndtimeo", cl_sndtimeo},
    {"conns", cl_conns},
    {"bulk", cl_bulk},
};

static const struct sv_scenario sv_table[] = {
    {"hello", sv_hello},
    {"connect-blocking", sv_pingpong},
    {"connect-nonblock", sv_pingpong},
    {"accept-blocking", sv_accept_blocking},
    {"accept-nonblock", sv_accept_nonblock},
    {"accept4", sv_accept4},
    {"addrinuse", sv_addrinuse},
    {"names", sv_names},
    {"sockopt", sv_sockopt},
    {"shutdown", sv_shutdown},
    {"peek", sv_peek},
    {"iovec", sv_iovec},
    {"sendfile", sv_sendfile},
    {"splice", sv_splice},
    {"poll", sv_poll},
    {"select", sv_select},
    {"epoll", sv_epoll},
    {"rdhup", sv_rdhup},
    {"dup", sv_dup},
    {"fork", sv_fork},
    {"echo", sv_echo},
    {"exec", sv_exec},
    {"relay", sv_relay},
    {"noshim", sv_noshim},
    {"peerclose", sv_peerclose},
    {"reset", sv_reset},
    {"sndtimeo", sv_sndtimeo},
    {"conns", sv_conns},
    {"bulk", sv_bulk},
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Opens the connection of scenario scen (blocking connect to the main port)
 * and announces it. Returns a connected CLOEXEC fd, or -1 after printing a
 * FAIL line (unless quiet). */
int cl_open(const char *scen, const char *arg, bool quiet)
{
	struct sockaddr_in sa;
	int r, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		r = -errno;
		goto out_fail;
	}
	r = addr_make(&sa, ffc_opt.ip, ffc_opt.port);
	wd_arm();
	if (r == 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	wd_disarm();
	if (r == 0)
		r = arg ? io_send_line(fd, "%s %s", scen, arg) : io_send_line(fd, "%s", scen);
	if (r == 0)
		return fd;
	close(fd);
out_fail:
	if (!quiet)
		step("open", r);
	return -1;
}

/* One request/response on fd: the client says "ping", the server "pong". */
bool cl_ping(int fd)
{
	char line[64];
	int r = io_send_line(fd, "ping");

	if (r == 0)
		r = io_read_line(fd, line, sizeof(line));
	if (!step("ping", r))
		return false;
	return ck_str(nm("pong"), "pong", line);
}

void sv_pong(int fd)
{
	char line[64];
	int r = io_read_line(fd, line, sizeof(line));

	if (step("ping", r) && ck_str(nm("ping"), "ping", line))
		step("pong", io_send_line(fd, "pong"));
}

/* For scenarios whose checks all run in the server: wait for its "done". */
void cl_wait_done(void)
{
	int s = cl_open(ffc_scen, NULL, false);

	if (s < 0)
		return;
	step("done", io_expect_line(s, "done"));
	close(s);
}

/* Waits for the server's "ready" (its port+1 listener exists). */
int cl_ready(int s)
{
	int r = io_expect_line(s, "ready");

	step("ready", r);
	return r;
}

/* Listens on port+1 and tells the client so on s. Returns the listener or -1
 * (FAIL printed). Does not consume s. */
int sv_aux(int s, int type_flags, int backlog)
{
	int l = tcp_listener(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX, type_flags, backlog);

	if (!step("aux.listen", l))
		return -1;
	if (!step("aux.ready", io_send_line(s, "ready"))) {
		close(l);
		return -1;
	}
	return l;
}

/* Waits (bounded) for a pending connection on l and accepts it with accept4
 * flags. Returns the fd or a negative errno. */
int sv_accept(int l, int flags)
{
	int r = io_wait(l, POLLIN, FFC_IO_MS);

	if (r <= 0)
		return r ? r : -ETIMEDOUT;
	r = accept4(l, NULL, NULL, flags);
	return r < 0 ? -errno : r;
}

/* Waits for the client to close, then closes fd (consumes it). The client is
 * thus the side that closes first, and no unread data turns into a reset. */
void sv_finish(int fd)
{
	step("finish", io_read_to_eof(fd, NULL));
	close(fd);
}

static const struct sv_scenario *sv_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(sv_table); i++)
		if (strcmp(sv_table[i].name, name) == 0)
			return &sv_table[i];
	return NULL;
}

/* Reads the scenario line of a new connection and runs it. Returns 1 when the
 * client said "done", 0 otherwise. Consumes fd. */
static int sv_dispatch(int fd)
{
	char line[128];
	const char *arg = "";
	const struct sv_scenario *sc;
	int r = io_read_line(fd, line, sizeof(line));

	if (r < 0) {
		fprintf(stderr, "ffconform server: no scenario line: %s\n", err_name(-r));
		close(fd);
		return 0;
	}
	char *sp = strchr(line, ' ');

	if (sp) {
		*sp = '\0';
		arg = sp + 1;
	}
	if (strcmp(line, "done") == 0) {
		io_send_line(fd, "bye");
		close(fd);
		return 1;
	}
	sc = sv_find(line);
	if (!sc) {
		ck_fail("server.scenario", "expected a known scenario got %s", line);
		close(fd);
		return 0;
	}
	out_scenario(sc->name);
	sc->run(fd, arg);
	return 0;
}

static int run_server(void)
{
	int rc = 0;

	ffc_role = 'S';
	ffc_listener = tcp_listener(ffc_opt.ip, ffc_opt.port, 0, 512);
	if (ffc_listener < 0) {
		fprintf(stderr, "ffconform server: listen %s:%d: %s\n", ffc_opt.ip, ffc_opt.port,
			err_name(-ffc_listener));
		return 2;
	}
	for (;;) {
		int r = io_wait(ffc_listener, POLLIN, ffc_opt.timeout_s * 1000);

		if (r == 0) {
			fprintf(stderr, "ffconform server: no client connection within %d s\n",
				ffc_opt.timeout_s);
			rc = 3;
			break;
		}
		int fd = accept4(ffc_listener, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "ffconform server: accept: %s\n", err_name(errno));
			rc = 2;
			break;
		}
		if (sv_dispatch(fd))
			break;
	}
	close(ffc_listener);
	out_summary();
	return rc ? rc : ck_failures() ? 1 : 0;
}

static int run_client(void)
{
	int fd;

	ffc_role = 'C';
	for (size_t i = 0; i < ARRAY_SIZE(cl_table); i++) {
		out_scenario(cl_table[i].name);
		cl_table[i].run();
	}
	fd = cl_open("done", NULL, true);
	if (fd < 0 || io_expect_line(fd, "bye") < 0)
		fprintf(stderr, "ffconform client: the server did not say bye\n");
	if (fd >= 0)
		close(fd);
	out_summary();
	return ck_failures() ? 1 : 0;
}

static int copy_out(int from)
{
	char buf[65536];
	off_t off = 0;
	ssize_t n;

	while ((n = pread(from, buf, sizeof(buf), off)) > 0) {
		for (ssize_t done = 0, w; done < n; done += w) {
			w = write(STDOUT_FILENO, buf + done, (size_t)(n - done));
			if (w <= 0)
				return -EIO;
		}
		off += n;
	}
	return n < 0 ? -errno : 0;
}

/* True if ip:port can be bound right now without SO_REUSEADDR. */
static bool port_free(const char *ip, int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && addr_make(&sa, ip, port) == 0 &&
		  bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* For `both --port 0`: a base port whose four ports are all free, probed
 * from a pid-derived start below the usual ephemeral range. */
static int pick_base_port(const char *ip)
{
	for (int k = 0; k < 500; k++) {
		int base = 20000 + (int)(((unsigned)getpid() * 16 + (unsigned)k * 4) % 12000);
		bool ok = true;

		for (int off = 0; ok && off <= FFC_PORT_BIND; off++)
			ok = port_free(ip, base + off);
		if (ok)
			return base;
	}
	return -1;
}

static int run_both(void)
{
	int status = 0, crc, src;
	int so = memfd_create("ffconform-server", MFD_CLOEXEC);
	int co = memfd_create("ffconform-client", MFD_CLOEXEC);
	int saved = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);

	if (so < 0 || co < 0 || saved < 0) {
		perror("ffconform both: memfd");
		return 2;
	}
	if (ffc_opt.port == 0 && (ffc_opt.port = pick_base_port(ffc_opt.ip)) < 0) {
		fprintf(stderr, "ffconform both: no four free ports found\n");
		return 2;
	}
	fflush(NULL);
	pid_t pid = fork();

	if (pid < 0) {
		perror("ffconform both: fork");
		return 2;
	}
	if (pid == 0) {
		dup2(so, STDOUT_FILENO);
		close(so);
		close(co);
		close(saved);
		exit(run_server());
	}
	dup2(co, STDOUT_FILENO);
	crc = run_client();
	dup2(saved, STDOUT_FILENO);
	close(saved);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	src = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (copy_out(co) < 0 || copy_out(so) < 0)
		crc = 2;
	close(co);
	close(so);
	if (src)
		fprintf(stderr, "ffconform both: server exit status %d\n", src);
	return crc || src ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: ffconform server --bind IP --port P [opts]\n"
			"       ffconform client --connect IP --port P [opts]\n"
			"       ffconform both --ip IP --port P [opts]   (P = 0: pick free ports)\n"
			"opts:  --big-mib N (1024)  --conns N (1000)  --timeout S (60)\n"
			"The server also listens on P+1 and uses P+2 (never listened) and P+3.\n");
}

static long num_arg(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "ffconform: bad number '%s' (%ld..%ld)\n", s, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"bind", required_argument, NULL, 'i'},
	    {"connect", required_argument, NULL, 'i'},
	    {"ip", required_argument, NULL, 'i'},
	    {"port", required_argument, NULL, 'p'},
	    {"big-mib", required_argument, NULL, 'b'},
	    {"conns", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool port_set = false;
	int c;

	if (argc < 2) {
		usage();
		return 2;
	}
	sig_init();
	if (strcmp(argv[1], "exec-child") == 0)
		return exec_child_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "relay-child") == 0)
		return relay_child_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "noshim-child") == 0)
		return noshim_child_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "relay-helper") == 0)
		return relay_helper_main(argc - 2, argv + 2);
	while ((c = getopt_long(argc - 1, argv + 1, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			ffc_opt.ip = optarg;
			break;
		case 'p':
			ffc_opt.port = (int)num_arg(optarg, 0, 65535 - FFC_PORT_BIND);
			port_set = true;
			break;
		case 'b':
			ffc_opt.big_mib = num_arg(optarg, 1, 1L << 20);
			break;
		case 'n':
			ffc_opt.conns = num_arg(optarg, 1, 60000);
			break;
		case 't':
			ffc_opt.timeout_s = (int)num_arg(optarg, 1, 86400);
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (!ffc_opt.ip || !port_set || optind != argc - 1 ||
	    (ffc_opt.port == 0 && strcmp(argv[1], "both") != 0)) {
		usage();
		return 2;
	}
	if (strcmp(argv[1], "server") == 0)
		return run_server();
	if (strcmp(argv[1], "client") == 0)
		return run_client();
	if (strcmp(argv[1], "both") == 0)
		return run_both();
	usage();
	return 2;
}
