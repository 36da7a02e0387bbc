/* ffconform.h - shared declarations of the socket-semantics conformance program.
 *
 * The program runs once natively and once under ffnet; the two transcripts must
 * be byte-identical, so everything printed through out_line()/ck_*() is a
 * deterministic fact (return values, errno names, byte counts, hashes,
 * booleans, IP addresses) and never an fd number, ephemeral port, pid, time or
 * buffer size. Diagnostics that are not facts go to stderr.
 */
#pragma once

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

#define FFC_UNUSED __attribute__((unused))

/* Every wait for the peer gives up after this long (no-progress timeout). */
#define FFC_IO_MS 10000
/* Blocking calls that are themselves under test are interrupted after this. */
#define FFC_WD_S 30
/* Offsets from --port: main listener, per-scenario listener, a port that never
 * listens, a port used only for the bind tests. */
#define FFC_PORT_AUX	 1
#define FFC_PORT_REFUSED 2
#define FFC_PORT_BIND	 3

struct ffc_opts {
	const char *ip; /* server: address to bind; client: address to connect */
	int port;
	long big_mib;
	long conns;
	int timeout_s;
};

extern struct ffc_opts ffc_opt;
extern char ffc_role;			   /* 'C' or 'S', prefixes every line */
extern const char *ffc_scen;		   /* scenario running now */
extern volatile sig_atomic_t ffc_sigpipes; /* SIGPIPEs received so far */
extern int ffc_listener;		   /* server: main listening fd */

/* transcript (out.c) */
void out_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void out_scenario(const char *name);
void out_summary(void);
unsigned ck_failures(void);
bool ck_ok(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ck_fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ck_zero(const char *name, long ret);
bool ck_fd(const char *name, int fd);
bool ck_err(const char *name, long ret, int want_errno);
bool ck_err_fd(const char *name, int ret, int want_errno);
bool ck_errval(const char *name, int want_errno, int got_errno);
bool ck_eq(const char *name, long want, long got);
bool ck_str(const char *name, const char *want, const char *got);
bool ck_yes(const char *name, bool cond);
bool ck_events(const char *name, unsigned want, unsigned got, const char *prefix);
bool step(const char *name, int r);
const char *nm(const char *suffix);
const char *err_name(int e);
void ret_str(char *buf, size_t len, long ret, int err);
void events_str(char *buf, size_t len, unsigned mask, const char *prefix);

/* fds and signals (io.c); these return 0 (or a count) or a negative errno */
void sig_init(void);
void wd_arm(void);
void wd_disarm(void);
uint64_t now_ms(void);
void sleep_ms(int ms);
int io_wait(int fd, short events, int ms);
int io_write_all(int fd, const void *buf, size_t len);
int io_read_full(int fd, void *buf, size_t len);
int io_read_line(int fd, char *buf, size_t cap);
int io_send_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int io_expect_line(int fd, const char *want);
int io_wait_inq(int fd, int want);
int io_read_to_eof(int fd, size_t *total);
int fd_flags(int fd, int cmd);
int set_nonblock(int fd, bool on);
int addr_make(struct sockaddr_in *sa, const char *ip, int port);
void addr_ip(const struct sockaddr_in *sa, char *buf, size_t len);
int tcp_listener(const char *ip, int port, int type_flags, int backlog);
int tcp_dial(const char *ip, int port);
int raise_nofile(long want);
int connect_wd(int fd, const struct sockaddr_in *sa);
int sel_str(int fd, bool r, bool w, bool e, int ms, char *out, size_t len);
bool cl_ping(int fd);
void sv_pong(int fd);
void cl_wait_done(void);

/* data (hash.c) */
struct ffc_hash {
	uint64_t v[4];
	uint8_t tail[32];
	size_t ntail;
	uint64_t len;
};
void ffc_hash_init(struct ffc_hash *h);
void ffc_hash_update(struct ffc_hash *h, const void *buf, size_t len);
uint64_t ffc_hash_final(const struct ffc_hash *h);
uint64_t ffc_hash_buf(const void *buf, size_t len);
void ffc_rand_fill(uint64_t *state, void *buf, size_t len);

/* roles (main.c) */
int cl_open(const char *scen, const char *arg, bool quiet);
int cl_ready(int s);
int sv_aux(int s, int type_flags, int backlog);
int sv_accept(int l, int flags);
void sv_finish(int fd);

/* scenarios: cl_* run in the client, sv_* in the server; sv_* consume fd */
void cl_hello(void);
void sv_hello(int fd, const char *arg);
void cl_connect_blocking(void);
void sv_pingpong(int fd, const char *arg);
void cl_connect_nonblock(void);
void cl_refused(void);
void cl_accept_blocking(void);
void sv_accept_blocking(int fd, const char *arg);
void cl_accept_nonblock(void);
void sv_accept_nonblock(int fd, const char *arg);
void cl_accept4(void);
void sv_accept4(int fd, const char *arg);
void cl_addrinuse(void);
void sv_addrinuse(int fd, const char *arg);
void cl_names(void);
void sv_names(int fd, const char *arg);
void cl_sockopt(void);
void sv_sockopt(int fd, const char *arg);
void cl_shutdown(void);
void sv_shutdown(int fd, const char *arg);
void cl_peek(void);
void sv_peek(int fd, const char *arg);
void cl_iovec(void);
void sv_iovec(int fd, const char *arg);
void cl_sendfile(void);
void sv_sendfile(int fd, const char *arg);
void cl_splice(void);
void sv_splice(int fd, const char *arg);
void cl_peerclose(void);
void sv_peerclose(int fd, const char *arg);
void cl_reset(void);
void sv_reset(int fd, const char *arg);
void cl_sndtimeo(void);
void sv_sndtimeo(int fd, const char *arg);
void cl_poll(void);
void sv_poll(int fd, const char *arg);
void cl_select(void);
void sv_select(int fd, const char *arg);
void cl_epoll(void);
void sv_epoll(int fd, const char *arg);
void cl_rdhup(void);
void sv_rdhup(int fd, const char *arg);
void cl_dup(void);
void sv_dup(int fd, const char *arg);
void cl_fork(void);
void sv_fork(int fd, const char *arg);
void sv_echo(int fd, const char *arg);
void cl_exec(void);
void sv_exec(int fd, const char *arg);
void cl_relay(void);
void sv_relay(int fd, const char *arg);
int exec_child_main(int argc, char **argv);
int relay_child_main(int argc, char **argv);
/* Waits (bounded) for pid; returns its exit code, 128+signal, or -ETIMEDOUT
 * (after killing it). */
int wait_child(pid_t pid);
int relay_helper_main(int argc, char **argv);
void cl_noshim(void);
void sv_noshim(int fd, const char *arg);
int noshim_child_main(int argc, char **argv);
void cl_conns(void);
void sv_conns(int fd, const char *arg);
void cl_bulk(void);
void sv_bulk(int fd, const char *arg);
