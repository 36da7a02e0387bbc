/* What the libFuzzer targets share (fuzz/README.md): the input's record
 * format, raw datagrams with fds, seed files, and for the router targets
 * one in-process router on the fake RDMA device (tests/common/vt.h) with
 * two registered containers, "a" (the fuzzer's) and "b" (the bystander),
 * and the oracles every input is checked against:
 *   isolation: what the admin and verbs status show of b (its container,
 *     listeners, verbs contexts and rdma_cm listeners) is what it was
 *     before the input;
 *   fds: the process has as many open fds as before the input;
 *   liveness: the router's loop goes idle (nothing left active) after a
 *     bounded number of turns, so an input cannot make it spin.
 * A broken oracle aborts, which libFuzzer reports as a crash. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ff.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- inputs ----
 * An input is records [len: u16 LE][aux: u8][len bytes]. len 0xffff takes
 * all the rest of the input, up to FF_MSG_MAX + 1 bytes (one more than a
 * datagram may hold), so every size a peer can send is reachable; a len
 * beyond the input is cut to what is left. */
struct fh_rec {
	const uint8_t *p;
	size_t len;
	uint8_t aux;
};
struct fh_in {
	const uint8_t *p;
	size_t left;
};
/* The next record of in; false at the end. */
bool fh_next(struct fh_in *in, struct fh_rec *r);

/* ---- sockets ---- */
/* Makes the fds aux asks for (aux % 5: 0 none, 1 a pipe, 2 a TCP
 * listener, 3 a TCP listener and a SEQPACKET socket, 4 three pipes);
 * returns how many are in fds (at most 4), all the caller's to close. */
int fh_make_fds(uint8_t aux, int *fds);
/* sendmsg of buf with nfds fds (not consumed), never blocking. */
void fh_send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* A record sent on sock with the fds its aux asks for. */
void fh_send_rec(int sock, const struct fh_rec *r);
/* Reads and drops whatever sock has queued, closing the fds it carries. */
void fh_drain(int sock);
/* A TCP listener on any address with a kernel-chosen port, or -1. */
int fh_tcp_listener(void);
/* Open fds of this process. */
int fh_nfds(void);
/* Lists them on stderr (what an fd oracle reports). */
void fh_list_fds(void);

/* ---- seeds ----
 * fh_seed_begin opens DIR/name (flags: the first byte, for targets whose
 * input starts with one), fh_seed_rec appends a record, fh_seed_msg a
 * packed protobuf message as a record, fh_seed_end closes the file. */
void fh_seed_begin(const char *dir, const char *name, int flags);
void fh_seed_rec(const void *buf, size_t len, uint8_t aux);
void fh_seed_msg(const ProtobufCMessage *m, uint8_t aux);
void fh_seed_end(void);
/* m packed and sent on sock as one datagram. */
void fh_seed_msg_send(int sock, const ProtobufCMessage *m);
/* Run when FUZZ_SEEDS=DIR: calls fn(DIR) and exits. */
void fh_seeds_if_asked(void (*fn)(const char *dir));

/* ---- the router ----
 * A router target defines fh_target; the harness's LLVMFuzzerInitialize
 * writes its seeds when asked (FUZZ_SEEDS), else starts the router and
 * runs its init, if any. */
struct fh_target {
	void (*seeds)(const char *dir);
	void (*init)(void);
	bool keep_b; /* false: b's state is not an oracle (fh_check_b) */
};
extern const struct fh_target fh_target;

#define FH_IP_A "10.1.0.1"
#define FH_IP_B "10.1.0.2"
#define FH_PORT_B 47080
/* Starts the router, registers a and b and gives b a shim channel with a
 * listener on port FH_PORT_B of any address, a verbs context with a QP, and an
 * rdma_cm listener. */
void fh_router_up(void);
/* Undoes fh_router_up. */
void fh_router_down(void);
/* Whether fh_end checks b's state (the admin target may change it by right). */
extern bool fh_check_b;
/* For targets that may register and unregister by right (admin, state
 * file): drops every published port (they outlive their container by
 * design), unregisters every container but a and b; if a or b is not as it
 * was, starts the router afresh and returns false (the fd oracle cannot
 * compare across routers). */
bool fh_restore(void);
/* The path of container name's socket. */
const char *fh_sock_path(const char *name);
/* A shim channel on name's socket, Hello said unless hello is false. */
int fh_shim(const char *name, bool hello);
/* Runs the loop until nothing is active (aborts if it never is). */
void fh_settle(void);
/* Takes the baseline of the oracles; call before each input. */
void fh_begin(void);
/* Settles the loop, accepts and drops what reached b's listener, and
 * checks every oracle against the baseline (aborting when one fails). */
void fh_end(void);
/* A status request on the admin socket; the replies' packed, b-only
 * part is appended to buf (the caller frees *buf). */
size_t fh_b_view(uint8_t **buf);
