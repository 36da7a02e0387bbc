/* ffexec end to end: the built binary ($FFEXEC) runs exec_helper
 * ($FFEXEC_HELPER) or /bin/sh, against no router, or a fake one: a thread
 * of this test serving a SOCK_SEQPACKET socket, which answers Hello and
 * Supervise and then, as scripted, serves the listener (answering every
 * notification CONTINUE and recording it), closes it at once (the keeper
 * takes over), refuses Supervise, or takes the program's connect and dies
 * without answering it.
 *
 * Every run reads the program's stdout and stderr to their end before it
 * reaps the program: an fd kept by the keeper would hang it. This process
 * is a child subreaper, so the keeper, once its intermediate parent is
 * gone, is reaped here: it must exit 0 once the program is gone. */
#include "cu.h"

#include "fdpass.h"
#include "msg.h"

#include <ff/exec.h>
#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_MS	 15000
#define STEP_MS	 5000
#define MAX_CONN 4
#define MAX_NOTE 256

extern char **environ;

static const char *ffexec, *helper;
static char dir[64], sock_path[108], none_path[108];
static int base_filters;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int seccomp_filters(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	int n = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp_filters:", 16))
			n = atoi(line + 16);
	if (f)
		fclose(f);
	return n;
}

/* ------------------------------------------------------------ processes */

struct proc {
	pid_t pid;
	int in; /* the program's stdin, -1 once closed */
	int out, err;
	char obuf[8192], ebuf[8192];
	size_t olen, elen;
	int status;
};

static bool env_named(const char *kv, const char *const *names)
{
	for (; names && *names; names++) {
		size_t n = strlen(*names);

		if (!strncmp(kv, *names, n) && kv[n] == '=')
			return true;
	}
	return false;
}

/* Set: the next programs start with stdin and stderr closed. */
static bool no_stdio;

/* Starts argv with this environment minus the FFNET_* settings, plus set
 * ("K=V" entries), its stdio on pipes. */
static int spawn(struct proc *p, char *const argv[], const char *const *set)
{
	static const char *const ours[] = {FF_ENV_SOCK, FF_ENV_DISABLE, FF_ENV_EXEC,
					   FF_ENV_LOG,	"HELPER_WAIT",	NULL};
	const char *envp[256];
	int n = 0, in[2], out[2], err[2];

	for (char **e = environ; *e && n < 240; e++)
		if (!env_named(*e, ours))
			envp[n++] = *e;
	for (; set && *set && n < 255; set++)
		envp[n++] = *set;
	envp[n] = NULL;
	memset(p, 0, sizeof(*p));
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		return -errno;
	p->pid = fork();
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		syscall(SYS_close_range, 3, ~0U, 0);
		if (no_stdio) {
			close(0);
			close(2);
		}
		execve(argv[0], argv, (char **)envp);
		_exit(126);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	return p->pid < 0 ? -errno : 0;
}

static void close_in(struct proc *p)
{
	if (p->in >= 0)
		close(p->in);
	p->in = -1;
}

/* Reads stdout and stderr to their end, then reaps the program. 0, or
 * -ETIMEDOUT (the program is killed). */
static int collect(struct proc *p)
{
	int64_t end = now_ms() + RUN_MS;
	int err = 0;

	close_in(p);
	while (p->out >= 0 || p->err >= 0) {
		struct pollfd f[2] = {{.fd = p->out, .events = POLLIN},
				      {.fd = p->err, .events = POLLIN}};
		int64_t left = end - now_ms();

		if (left <= 0 || poll(f, 2, (int)left) == 0) {
			err = -ETIMEDOUT;
			break;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i ? &p->err : &p->out;
			char *buf = i ? p->ebuf : p->obuf;
			size_t *len = i ? &p->elen : &p->olen;
			ssize_t n;

			if (!f[i].revents)
				continue;
			n = read(*fd, buf + *len, sizeof(p->obuf) - 1 - *len);
			if (n <= 0) {
				close(*fd);
				*fd = -1;
			} else {
				*len += (size_t)n;
				buf[*len] = '\0';
			}
		}
	}
	if (err) {
		printf("\n  (timed out; stdout so far: %s; stderr: %s) ", p->obuf, p->ebuf);
		kill(p->pid, SIGKILL);
	}
	waitpid(p->pid, &p->status, 0);
	for (int i = 0; i < 2; i++)
		if ((i ? p->err : p->out) >= 0)
			close(i ? p->err : p->out);
	return err;
}

static int run(char *const argv[], const char *const *set, struct proc *p)
{
	int err = spawn(p, argv, set);

	return err ? err : collect(p);
}

static bool exited(const struct proc *p, int code)
{
	return WIFEXITED(p->status) && WEXITSTATUS(p->status) == code;
}

/* The keeper's exit status once it is ours to reap, -1 after STEP_MS. */
static int reap_keeper(void)
{
	int64_t end = now_ms() + STEP_MS;
	struct timespec tick = {0, 10 * 1000000L};
	int st;

	while (now_ms() < end) {
		pid_t k = waitpid(-1, &st, WNOHANG);

		if (k > 0)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		nanosleep(&tick, NULL);
	}
	return -1;
}

static bool no_child_left(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* "key=value" line of the helper's output, or "" */
static const char *field(const struct proc *p, const char *key, char *val, size_t cap)
{
	size_t k = strlen(key);
	const char *s = p->obuf;

	*val = '\0';
	while (s && *s) {
		if (!strncmp(s, key, k) && s[k] == '=') {
			size_t n = strcspn(s + k + 1, "\n");

			snprintf(val, cap, "%.*s", (int)n, s + k + 1);
			break;
		}
		s = strchr(s, '\n');
		s = s ? s + 1 : NULL;
	}
	return val;
}

static int field_int(const struct proc *p, const char *key)
{
	char v[64];

	return *field(p, key, v, sizeof(v)) ? atoi(v) : -1;
}

/* ---------------------------------------------------- a TCP destination */

static int tcp_listener(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* True when a connection came and sent "hi". */
static bool got_hi(int lfd)
{
	char buf[8] = "";
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	bool ok = c >= 0 && read(c, buf, sizeof(buf)) == 2 && !memcmp(buf, "hi", 2);

	if (c >= 0)
		close(c);
	return ok;
}

/* --------------------------------------------------------- fake router */

enum fr_mode {
	FR_SERVE,    /* answer every notification CONTINUE until the filter is gone */
	FR_CLOSE,    /* close the listener and the channel after Supervise */
	FR_REFUSE,   /* answer Supervise ST_UNSUPPORTED */
	FR_HOLD,     /* take the first connect, die without answering it */
	FR_KEEP,     /* hand the keeper a listener to keep (keep_fds), then as FR_CLOSE */
	FR_RELISTEN, /* read one request after Supervise (relisten), then as FR_SERVE */
	FR_PARK,     /* hand a parked page; record the first accept there, die */
	FR_ADOPT,    /* read one request after Supervise (adopt), answer its call 42 */
};

struct fr_conn {
	uint32_t version;
	char role[16];
	uint32_t pid;
	int nfds;
	bool listener;
};

struct fr {
	int lsock;
	enum fr_mode modes[MAX_CONN];
	int nmodes;
	int ev[2];   /* a byte after each Supervise answered */
	int stop[2]; /* ends serving */
	pthread_t thr;
	/* what it saw */
	int nconn;
	struct fr_conn conn[MAX_CONN];
	int nnotes;
	int note_nr[MAX_NOTE];
	uint32_t note_pid[MAX_NOTE];
	/* FR_KEEP: what it hands over (the keeper gets copies): a stash with
	 * a listener in it and a queue end, then a stash it drains at once
	 * (a listener the program closed) */
	int keep_fds[2];
	uint64_t keep_qino;
	int keep_drained;
	/* FR_PARK: the page handed over, and the accept parked in it */
	struct ff_parked_page *page;
	int page_fd;
	uint64_t parked_id;
	/* FR_ADOPT: what came back */
	struct {
		bool seen;
		uint64_t id;
		uint32_t tid, nr;
		uint64_t args[4];
	} ad;
	/* FR_RELISTEN: what came back */
	struct {
		bool seen;
		int nfds;
		ino_t ino[2];
		uint64_t q_ino;
		int backlog;
		uint32_t port;
	} rl;
};

static int wait_in(int fd, int stop, int ms)
{
	struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop, .events = POLLIN}};

	if (poll(p, 2, ms) <= 0 || p[1].revents)
		return -1;
	return 0;
}

static int fr_recv(struct fr *f, int c, Ff__Request **req, int *fds, int *nfds)
{
	uint8_t buf[4096];
	ProtobufCMessage *m = NULL;

	if (wait_in(c, f->stop[0], STEP_MS) < 0 ||
	    ff_msg_recv(c, &ff__request__descriptor, buf, sizeof(buf), &m, fds, FF_MAX_FDS, nfds,
			0) != 1)
		return -1;
	*req = (Ff__Request *)m;
	return 0;
}

/* The pages a router sends with a shim's HelloReply: two memfds. */
static int fr_hello(struct fr *f, int c, struct fr_conn *fc)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__HelloReply h = FF__HELLO_REPLY__INIT;
	Ff__Request *req;
	int fds[FF_MAX_FDS], nfds = 0, pages[2], err;

	if (fr_recv(f, c, &req, fds, &nfds) < 0)
		return -1;
	ff_close_fds(fds, nfds);
	if (req->body_case == FF__REQUEST__BODY_HELLO) {
		fc->version = req->hello->version;
		snprintf(fc->role, sizeof(fc->role), "%s", req->hello->role);
	}
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_HELLO;
	rep.hello = &h;
	h.version = FF_PROTO_VERSION;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	pages[0] = memfd_create("map", MFD_CLOEXEC);
	pages[1] = memfd_create("stats", MFD_CLOEXEC);
	err = ff_msg_send(c, &rep.base, pages, 2);
	ff_close_fds(pages, 2);
	return err;
}

static bool is_listener(int fd)
{
	uint64_t id = 0;

	return ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0 && errno == ENOENT;
}

/* Supervise: its listener, or -1 (refused, or no such request). The OK
 * carries f->page_fd when there is one (FR_PARK). */
static int fr_supervise(struct fr *f, int c, struct fr_conn *fc, bool refuse, bool page)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__Request *req;
	int fds[FF_MAX_FDS], nfds = 0, lfd = -1;

	if (fr_recv(f, c, &req, fds, &nfds) < 0)
		return -1;
	fc->nfds = nfds;
	if (req->body_case == FF__REQUEST__BODY_SUPERVISE && nfds == 1) {
		fc->pid = req->supervise->pid;
		fc->listener = is_listener(fds[0]);
		lfd = fds[0];
		nfds = 0;
	}
	ff_close_fds(fds, nfds);
	rep.id = req->id;
	rep.status = refuse ? FF__STATUS__ST_UNSUPPORTED : FF__STATUS__ST_OK;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if (ff_msg_send(c, &rep.base, &f->page_fd, page ? 1 : 0) < 0 || refuse) {
		if (lfd >= 0)
			close(lfd);
		lfd = -1;
	}
	return lfd;
}

/* Serves lfd until the filter is gone (or, hold: until a connect, left
 * unanswered; park: until an accept, recorded in f->page, unanswered). */
static void fr_serve(struct fr *f, int lfd, bool hold, bool park)
{
	int64_t end = now_ms() + RUN_MS;

	while (now_ms() < end) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN},
				      {.fd = f->stop[0], .events = POLLIN}};
		struct seccomp_notif n;
		struct seccomp_notif_resp resp;

		if (poll(p, 2, 100) < 0 || p[1].revents || (p[0].revents & POLLHUP))
			return;
		if (!(p[0].revents & POLLIN))
			continue;
		memset(&n, 0, sizeof(n));
		if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
			continue;
		if (f->nnotes < MAX_NOTE) {
			f->note_nr[f->nnotes] = n.data.nr;
			f->note_pid[f->nnotes++] = n.pid;
		}
		if (hold && n.data.nr == SYS_connect)
			return;
		if (park && n.data.nr == SYS_accept4) {
			struct ff_parked *e = &f->page->slot[3];

			memcpy(e->args, n.data.args, sizeof(e->args));
			e->tid = n.pid;
			e->nr = (uint32_t)n.data.nr;
			__atomic_store_n(&e->id, n.id, __ATOMIC_RELEASE);
			f->parked_id = n.id;
			return;
		}
		memset(&resp, 0, sizeof(resp));
		resp.id = n.id;
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
}

static ino_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* FR_KEEP: the unasked Reply a router sends a keeper for a new listener. */
static void fr_keep1(int c, uint32_t port, uint64_t q_ino, const int *fds)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__Listen m = FF__LISTEN__INIT;
	Ff__Addr a = FF__ADDR__INIT;
	uint8_t ip[4] = {10, 1, 2, 3};

	a.family = AF_INET;
	a.ip.data = ip;
	a.ip.len = sizeof(ip);
	a.port = port;
	m.addr = &a;
	m.backlog = 7;
	m.queue_inode = q_ino;
	rep.body_case = FF__REPLY__BODY_KEEP;
	rep.keep = &m;
	CU_ASSERT_EQUAL(ff_msg_send(c, &rep.base, fds, 2), 0);
}

static void fr_keep(struct fr *f, int c)
{
	int fds[2] = {f->keep_drained, f->keep_fds[1]}, got[FF_MAX_FDS], n = 0;
	char b;

	fr_keep1(c, 8080, f->keep_qino, f->keep_fds);
	fr_keep1(c, 8081, f->keep_qino, fds);
	CU_ASSERT_EQUAL(ff_recv_fds(f->keep_drained, &b, 1, got, FF_MAX_FDS, &n, MSG_DONTWAIT), 1);
	ff_close_fds(got, n);
	close(f->keep_drained);
}

/* FR_ADOPT: the request a keeper sends once served again; its call is
 * answered 42. */
static void fr_adopt(struct fr *f, int c, int lfd)
{
	struct seccomp_notif_resp resp = {.val = 42};
	Ff__Request *req;
	int fds[FF_MAX_FDS], nfds = 0;

	if (fr_recv(f, c, &req, fds, &nfds) < 0)
		return;
	if (req->body_case == FF__REQUEST__BODY_ADOPT && req->adopt->n_args == 4) {
		f->ad.seen = true;
		f->ad.id = req->adopt->id;
		f->ad.tid = req->adopt->tid;
		f->ad.nr = req->adopt->nr;
		memcpy(f->ad.args, req->adopt->args, sizeof(f->ad.args));
		resp.id = req->adopt->id;
		CU_ASSERT_EQUAL(ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp), 0);
	}
	ff_close_fds(fds, nfds);
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* FR_RELISTEN: the request a keeper sends once served again. */
static void fr_relisten(struct fr *f, int c)
{
	Ff__Request *req;
	int fds[FF_MAX_FDS], nfds = 0;

	if (fr_recv(f, c, &req, fds, &nfds) < 0)
		return;
	if (req->body_case == FF__REQUEST__BODY_RELISTEN && req->relisten->addr) {
		f->rl.seen = true;
		f->rl.nfds = nfds;
		for (int i = 0; i < nfds && i < 2; i++)
			f->rl.ino[i] = fd_ino(fds[i]);
		f->rl.q_ino = req->relisten->queue_inode;
		f->rl.backlog = req->relisten->backlog;
		f->rl.port = req->relisten->addr->port;
	}
	ff_close_fds(fds, nfds);
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void *fr_main(void *arg)
{
	struct fr *f = arg;

	for (int i = 0; i < f->nmodes; i++) {
		struct fr_conn *fc = &f->conn[i];
		int c, lfd;

		if (wait_in(f->lsock, f->stop[0], STEP_MS) < 0)
			break;
		c = accept4(f->lsock, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			break;
		f->nconn++;
		lfd = fr_hello(f, c, fc) < 0 ? -1
					     : fr_supervise(f, c, fc, f->modes[i] == FR_REFUSE,
							    f->modes[i] == FR_PARK);
		if (lfd >= 0 && f->modes[i] == FR_KEEP)
			fr_keep(f, c);
		if (lfd >= 0 && f->modes[i] == FR_RELISTEN)
			fr_relisten(f, c);
		if (lfd >= 0 && f->modes[i] == FR_ADOPT)
			fr_adopt(f, c, lfd);
		if (write(f->ev[1], "s", 1) != 1)
			break;
		if (lfd >= 0 && (f->modes[i] == FR_SERVE || f->modes[i] == FR_HOLD ||
				 f->modes[i] == FR_RELISTEN || f->modes[i] == FR_PARK ||
				 f->modes[i] == FR_ADOPT))
			fr_serve(f, lfd, f->modes[i] == FR_HOLD, f->modes[i] == FR_PARK);
		if (lfd >= 0)
			close(lfd);
		close(c);
	}
	return NULL;
}

static int fr_listen(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	strcpy(sun.sun_path, sock_path);
	unlink(sock_path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 8) < 0)
		return -1;
	return fd;
}

static int fr_start(struct fr *f, const enum fr_mode *modes, int n)
{
	memset(f, 0, sizeof(*f));
	f->lsock = fr_listen();
	if (f->lsock < 0 || pipe2(f->ev, O_CLOEXEC) < 0 || pipe2(f->stop, O_CLOEXEC) < 0)
		return -1;
	memcpy(f->modes, modes, sizeof(*modes) * (size_t)n);
	f->nmodes = n;
	return pthread_create(&f->thr, NULL, fr_main, f) ? -1 : 0;
}

/* Waits for the n-th Supervise to be answered. */
static bool fr_wait_supervise(struct fr *f)
{
	char c;

	return wait_in(f->ev[0], -1, STEP_MS) == 0 && read(f->ev[0], &c, 1) == 1;
}

static void fr_stop(struct fr *f)
{
	if (write(f->stop[1], "x", 1) != 1)
		printf("(cannot stop the fake router) ");
	pthread_join(f->thr, NULL);
	close(f->lsock);
	unlink(sock_path);
	for (int i = 0; i < 2; i++) {
		close(f->ev[i]);
		close(f->stop[i]);
	}
}

static int fr_count(const struct fr *f, int nr, uint32_t pid)
{
	int n = 0;

	for (int i = 0; i < f->nnotes; i++)
		n += f->note_nr[i] == nr && f->note_pid[i] == pid;
	return n;
}

static void check_conn(const struct fr_conn *fc, pid_t pid)
{
	CU_ASSERT_EQUAL(fc->version, FF_PROTO_VERSION);
	CU_ASSERT_STRING_EQUAL(fc->role, "shim");
	CU_ASSERT_EQUAL(fc->nfds, 1);
	CU_ASSERT_TRUE(fc->listener);
	CU_ASSERT_EQUAL(fc->pid, (uint32_t)pid);
}

/* What the helper says about itself under the filter. */
static void check_inherited(const struct proc *p, bool filtered)
{
	char v[64];

	CU_ASSERT_STRING_EQUAL(field(p, "exec", v, sizeof(v)), filtered ? "1" : "-");
	CU_ASSERT_EQUAL(field_int(p, "pid"), p->pid);
	CU_ASSERT_STRING_EQUAL(field(p, "fds", v, sizeof(v)), "");
	CU_ASSERT_STRING_EQUAL(field(p, "child", v, sizeof(v)), "none");
	CU_ASSERT_EQUAL(field_int(p, "filters"), base_filters + filtered);
}

/* ---------------------------------------------------------------- tests */

static const char *sock_env(void)
{
	static char e[160];

	snprintf(e, sizeof(e), "%s=%s", FF_ENV_SOCK, sock_path);
	return e;
}

static const char *none_env(void)
{
	static char e[160];

	snprintf(e, sizeof(e), "%s=%s", FF_ENV_SOCK, none_path);
	return e;
}

static void test_usage(void)
{
	char *argv[] = {(char *)ffexec, NULL};
	char *bogus[] = {(char *)ffexec, "--sendtoo", "/bin/true", NULL};
	char *only[] = {(char *)ffexec, "--sendto", "--", NULL};
	char *opt[] = {(char *)ffexec, "--sendto", "--", "/bin/sh", "-c", "echo ran", NULL};
	const char *env[] = {none_env(), NULL};
	struct proc p;

	CU_ASSERT_FATAL(run(argv, NULL, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 125));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.ebuf, "usage: ffexec"));
	/* an unknown option is said, not run as the program */
	CU_ASSERT_FATAL(run(bogus, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 125));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.ebuf, "unknown option --sendtoo"));
	CU_ASSERT_FATAL(run(only, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 125));
	CU_ASSERT_FATAL(run(opt, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(p.obuf, "ran\n");
}

/* No router: the program runs as it is, without the filter. */
static void test_no_router(void)
{
	char *sh[] = {
	    (char *)ffexec, "--", "/bin/sh", "-c", "echo \"[$FFNET_EXEC] $0 $1\"", "a", "b", NULL};
	char *info[] = {(char *)ffexec, (char *)helper, "info", NULL};
	const char *env[] = {none_env(), NULL};
	struct proc p;

	CU_ASSERT_FATAL(run(sh, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(p.obuf, "[] a b\n");
	CU_ASSERT_STRING_EQUAL(p.ebuf, "");
	CU_ASSERT_FATAL(run(info, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 0));
	check_inherited(&p, false);
	CU_ASSERT_TRUE(no_child_left());
}

static void test_not_found(void)
{
	char *missing[] = {(char *)ffexec, "/nonexistent/program", NULL};
	char *notexec[] = {(char *)ffexec, dir, NULL};
	const char *env[] = {none_env(), NULL}, *renv[] = {sock_env(), NULL};
	const enum fr_mode modes[] = {FR_SERVE};
	struct proc p;
	struct fr f;

	CU_ASSERT_FATAL(run(missing, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 127));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.ebuf, "/nonexistent/program: No such file"));
	CU_ASSERT_FATAL(run(notexec, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 126));
	CU_ASSERT_TRUE(no_child_left());
	/* under the filter: the same answer, and the keeper still goes */
	CU_ASSERT_FATAL(fr_start(&f, modes, 1) == 0);
	CU_ASSERT_FATAL(run(missing, renv, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 127));
	CU_ASSERT_EQUAL(reap_keeper(), 0);
	fr_stop(&f);
	CU_ASSERT_EQUAL(f.nconn, 1);
	check_conn(&f.conn[0], p.pid);
}

static void test_disabled(void)
{
	char *sh[] = {(char *)ffexec, "/bin/sh", "-c", "echo \"[$FFNET_EXEC]\"", NULL};
	const char *env[] = {sock_env(), FF_ENV_DISABLE "=1", NULL};
	int lsock = fr_listen();
	struct proc p;

	CU_ASSERT_FATAL(lsock >= 0);
	CU_ASSERT_FATAL(run(sh, env, &p) == 0);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(p.obuf, "[]\n");
	/* nobody knocked */
	CU_ASSERT_TRUE(accept4(lsock, NULL, NULL, SOCK_CLOEXEC) < 0 && errno == EAGAIN);
	CU_ASSERT_TRUE(no_child_left());
	close(lsock);
	unlink(sock_path);
}

/* Runs the helper in mode against the fake router scripted by modes. */
static void helper_run(const char *mode, const enum fr_mode *modes, int n, struct fr *f,
		       struct proc *p, bool *hi)
{
	char port[16];
	char *argv[] = {(char *)ffexec, (char *)helper, (char *)mode, port, NULL};
	const char *env[] = {sock_env(), NULL};
	int tport, tcp = tcp_listener(&tport);

	CU_ASSERT_FATAL(tcp >= 0);
	snprintf(port, sizeof(port), "%d", tport);
	CU_ASSERT_FATAL(fr_start(f, modes, n) == 0);
	CU_ASSERT_FATAL(run(argv, env, p) == 0);
	CU_ASSERT_EQUAL(reap_keeper(), 0);
	fr_stop(f);
	*hi = got_hi(tcp);
	close(tcp);
}

/* The router serves: the program's socket calls reach it. */
static void test_served(void)
{
	const enum fr_mode modes[] = {FR_SERVE};
	struct proc p;
	struct fr f;
	char v[64];
	bool hi;

	helper_run("connect", modes, 1, &f, &p, &hi);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(field(&p, "connect", v, sizeof(v)), "OK");
	CU_ASSERT_STRING_EQUAL(p.ebuf, "");
	check_inherited(&p, true);
	CU_ASSERT_TRUE(hi);
	CU_ASSERT_EQUAL(f.nconn, 1);
	check_conn(&f.conn[0], p.pid);
	CU_ASSERT_EQUAL(fr_count(&f, SYS_connect, (uint32_t)p.pid), 1);
	/* SO_DOMAIN traps, SO_ERROR passes */
	CU_ASSERT_EQUAL(fr_count(&f, SYS_getsockopt, (uint32_t)p.pid), 1);
	CU_ASSERT_EQUAL(fr_count(&f, SYS_setsockopt, (uint32_t)p.pid), 1);
	CU_ASSERT_EQUAL(fr_count(&f, SYS_getsockname, (uint32_t)p.pid), 1);
	CU_ASSERT_EQUAL(fr_count(&f, SYS_getpeername, (uint32_t)p.pid), 1);
}

/* The router drops the listener at once: the keeper lets every call
 * through, the program runs as without ffnet. */
static void test_fallback(void)
{
	const enum fr_mode modes[] = {FR_CLOSE};
	struct proc p;
	struct fr f;
	char v[64];
	bool hi;

	helper_run("connect", modes, 1, &f, &p, &hi);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(field(&p, "connect", v, sizeof(v)), "OK");
	check_inherited(&p, true);
	CU_ASSERT_TRUE(hi);
	CU_ASSERT_EQUAL(f.nconn, 1);
	check_conn(&f.conn[0], p.pid);
	CU_ASSERT_EQUAL(f.nnotes, 0);
}

static void test_refused(void)
{
	const enum fr_mode modes[] = {FR_REFUSE};
	struct proc p;
	struct fr f;
	char v[64];
	bool hi;

	helper_run("connect", modes, 1, &f, &p, &hi);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(field(&p, "connect", v, sizeof(v)), "OK");
	CU_ASSERT_PTR_NOT_NULL(strstr(p.ebuf, "router refused Supervise: ST_UNSUPPORTED"));
	CU_ASSERT_TRUE(hi);
	CU_ASSERT_EQUAL(f.nconn, 1);
	CU_ASSERT_EQUAL(f.conn[0].pid, (uint32_t)p.pid);
}

/* The router goes, a router comes back: the keeper hands the listener
 * to it, which then gets the program's calls. */
static void test_restart(void)
{
	const enum fr_mode modes[] = {FR_CLOSE, FR_SERVE};
	char port[16];
	char *argv[] = {(char *)ffexec, (char *)helper, "connect", port, NULL};
	const char *env[] = {sock_env(), "HELPER_WAIT=1", NULL};
	int tport, tcp = tcp_listener(&tport);
	struct proc p;
	struct fr f;
	char v[64];

	CU_ASSERT_FATAL(tcp >= 0);
	snprintf(port, sizeof(port), "%d", tport);
	CU_ASSERT_FATAL(fr_start(&f, modes, 2) == 0);
	CU_ASSERT_FATAL(spawn(&p, argv, env) == 0);
	CU_ASSERT_TRUE(fr_wait_supervise(&f));
	CU_ASSERT_TRUE(fr_wait_supervise(&f));
	CU_ASSERT(write(p.in, "go\n", 3) == 3);
	CU_ASSERT_FATAL(collect(&p) == 0);
	CU_ASSERT_EQUAL(reap_keeper(), 0);
	fr_stop(&f);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(field(&p, "connect", v, sizeof(v)), "OK");
	CU_ASSERT_TRUE(got_hi(tcp));
	close(tcp);
	CU_ASSERT_EQUAL(f.nconn, 2);
	check_conn(&f.conn[0], p.pid);
	check_conn(&f.conn[1], p.pid);
	CU_ASSERT_EQUAL(fr_count(&f, SYS_connect, (uint32_t)p.pid), 1);
}

/* Whether port (loopback) is free within ms: nobody holds its listener
 * any more. (A bind, not a connect: connects to a listener nobody accepts
 * from would fill its backlog and then wait for SYN retries.) */
static bool freed_within(int port, int ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int64_t end = now_ms() + ms;

	do {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int r = bind(s, (struct sockaddr *)&a, sizeof(a)), e = errno;

		close(s);
		if (r == 0)
			return true;
		if (e != EADDRINUSE)
			return false;
		usleep(20000);
	} while (now_ms() < end);
	return false;
}

/* A stash: a datagram socket holding fd (a copy) in flight, as the
 * router's; -1 on failure. */
static int stash_of(int fd)
{
	int st[2];
	char b = 'k';

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, st) < 0)
		return -1;
	if (ff_send_fds(st[1], &b, 1, &fd, 1) < 0) {
		close(st[0]);
		st[0] = -1;
	}
	close(st[1]);
	return st[0];
}

/* A router hands the keeper two listeners and dies; the next router gets
 * back the one whose kernel listener is still in its stash (Relisten: the
 * same kernel socket and queue end, the same fields), not the one whose
 * stash the router drained (the program closed it). The keeper keeps no
 * copy once it handed the listener back. */
static void test_keep(void)
{
	const enum fr_mode modes[] = {FR_KEEP, FR_RELISTEN};
	char port[16];
	char *argv[] = {(char *)ffexec, (char *)helper, "connect", port, NULL};
	const char *env[] = {sock_env(), "HELPER_WAIT=1", NULL};
	int tport, tcp = tcp_listener(&tport), kport, kfd, q[2];
	struct proc p;
	struct fr f;
	ino_t kino, qino;

	CU_ASSERT_FATAL(tcp >= 0);
	snprintf(port, sizeof(port), "%d", tport);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q) == 0);
	CU_ASSERT_FATAL(fr_start(&f, modes, 2) == 0);
	kfd = tcp_listener(&kport);
	CU_ASSERT_FATAL(kfd >= 0);
	f.keep_fds[0] = stash_of(kfd);
	f.keep_fds[1] = q[0];
	f.keep_qino = fd_ino(q[1]);
	f.keep_drained = stash_of(kfd);
	CU_ASSERT_FATAL(f.keep_fds[0] >= 0 && f.keep_drained >= 0);
	kino = fd_ino(kfd);
	qino = fd_ino(q[0]);
	CU_ASSERT_FATAL(spawn(&p, argv, env) == 0);
	CU_ASSERT_TRUE(fr_wait_supervise(&f));
	CU_ASSERT_TRUE(fr_wait_supervise(&f));
	/* handed back: neither the keeper nor its stash holds the listener */
	close(kfd);
	close(f.keep_fds[0]);
	CU_ASSERT_TRUE(freed_within(kport, 3000));
	close(q[0]);
	close(q[1]);
	CU_ASSERT(write(p.in, "go\n", 3) == 3);
	CU_ASSERT_FATAL(collect(&p) == 0);
	CU_ASSERT_EQUAL(reap_keeper(), 0);
	fr_stop(&f);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_TRUE(got_hi(tcp));
	close(tcp);
	CU_ASSERT_EQUAL(f.nconn, 2);
	CU_ASSERT_TRUE(f.rl.seen);
	CU_ASSERT_EQUAL(f.rl.nfds, 2);
	CU_ASSERT_EQUAL(f.rl.ino[0], kino);
	CU_ASSERT_EQUAL(f.rl.ino[1], qino);
	CU_ASSERT_EQUAL(f.rl.q_ino, f.keep_qino);
	CU_ASSERT_EQUAL(f.rl.backlog, 7);
	CU_ASSERT_EQUAL(f.rl.port, 8080);
}

/* A router parks a blocking accept and dies: the keeper holds the call
 * (the program's accept keeps waiting) and hands it to the next router
 * (Adopt: the same id, task, call and arguments), which answers it. */
static void test_parked(void)
{
	const enum fr_mode modes[] = {FR_PARK, FR_ADOPT};
	char *argv[] = {(char *)ffexec, (char *)helper, "accept", NULL};
	const char *env[] = {sock_env(), NULL};
	int pfd = memfd_create("parked", MFD_CLOEXEC);
	struct ff_parked_page *pg;
	struct proc p;
	struct fr f;
	char v[64];

	CU_ASSERT_FATAL(pfd >= 0 && ftruncate(pfd, sizeof(*pg)) == 0);
	pg = mmap(NULL, sizeof(*pg), PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	CU_ASSERT_FATAL(pg != MAP_FAILED);
	pg->magic = FF_PARKED_MAGIC;
	pg->nslots = FF_PARKED_SLOTS;
	CU_ASSERT_FATAL(fr_start(&f, modes, 2) == 0);
	f.page = pg;
	f.page_fd = pfd;
	CU_ASSERT_FATAL(run(argv, env, &p) == 0);
	CU_ASSERT_EQUAL(reap_keeper(), 0);
	fr_stop(&f);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(field(&p, "accept", v, sizeof(v)), "42");
	CU_ASSERT_EQUAL(f.nconn, 2);
	CU_ASSERT_NOT_EQUAL(f.parked_id, 0);
	CU_ASSERT_TRUE(f.ad.seen);
	CU_ASSERT_EQUAL(f.ad.id, f.parked_id);
	CU_ASSERT_EQUAL(f.ad.tid, (uint32_t)p.pid);
	CU_ASSERT_EQUAL(f.ad.nr, SYS_accept4);
	CU_ASSERT_EQUAL((int)f.ad.args[0], field_int(&p, "listener"));
	CU_ASSERT_EQUAL(f.ad.args[1], 0);
	munmap(pg, sizeof(*pg));
	close(pfd);
}

/* The router takes a connect and dies: the keeper finds the call by its
 * id once another call comes, and lets it through. */
static void test_rescue(void)
{
	const enum fr_mode modes[] = {FR_HOLD};
	struct proc p;
	struct fr f;
	char v[64];
	bool hi;

	helper_run("rescue", modes, 1, &f, &p, &hi);
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(field(&p, "rescue", v, sizeof(v)), "OK");
	CU_ASSERT_TRUE(hi);
	CU_ASSERT_EQUAL(f.nconn, 1);
	CU_ASSERT_EQUAL(fr_count(&f, SYS_connect, (uint32_t)p.pid), 0); /* another thread's tid */
	CU_ASSERT_TRUE(f.nnotes > 0 && f.note_nr[f.nnotes - 1] == SYS_connect);
}

/* Started with stdin and stderr closed, ffexec's own fds take 0 and 2:
 * the keeper still holds the listener, the program finds 0 and 2 closed. */
static void test_closed_stdio(void)
{
	const enum fr_mode modes[] = {FR_SERVE};
	struct proc p;
	struct fr f;
	char v[64];
	bool hi;

	no_stdio = true;
	helper_run("connect", modes, 1, &f, &p, &hi);
	no_stdio = false;
	CU_ASSERT_TRUE(exited(&p, 0));
	CU_ASSERT_STRING_EQUAL(field(&p, "connect", v, sizeof(v)), "OK");
	check_inherited(&p, true);
	CU_ASSERT_TRUE(hi);
	CU_ASSERT_EQUAL(f.nconn, 1);
	check_conn(&f.conn[0], p.pid);
	CU_ASSERT_EQUAL(fr_count(&f, SYS_connect, (uint32_t)p.pid), 1);
}

static int setup(void)
{
	char *probe[] = {NULL, "probe", NULL};
	struct proc p;

	ffexec = getenv("FFEXEC");
	helper = getenv("FFEXEC_HELPER");
	if (!ffexec || !helper) {
		printf("FFEXEC and FFEXEC_HELPER must name ffexec and exec_helper (meson test sets "
		       "them)\n");
		return 1;
	}
	probe[0] = (char *)helper;
	if (run(probe, NULL, &p) || !exited(&p, 0)) {
		printf("SKIP: no seccomp user notification here\n");
		return 77;
	}
	strcpy(dir, "/tmp/ffexec-test.XXXXXX");
	if (!mkdtemp(dir) || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/ffrouter.sock", dir);
	snprintf(none_path, sizeof(none_path), "%s/none.sock", dir);
	base_filters = seccomp_filters();
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"usage", test_usage},
	    {"no_router", test_no_router},
	    {"not_found", test_not_found},
	    {"disabled", test_disabled},
	    {"served", test_served},
	    {"fallback", test_fallback},
	    {"refused", test_refused},
	    {"restart", test_restart},
	    {"rescue", test_rescue},
	    {"keep", test_keep},
	    {"parked", test_parked},
	    {"closed_stdio", test_closed_stdio},
	    {0},
	};
	int r = setup();

	if (r)
		return r;
	r = cu_run("ffexec", tests);
	rmdir(dir);
	return r;
}
