/* Fixtures of the shim's unit tests, which link the shim's code (ffshim_lib)
 * rather than preloading it:
 * - the shim initialised as in a preloaded program (ffs_init());
 * - a fake router, a thread of the test process serving FFNET_SOCK: it
 *   answers Hello with a map page built with common/map.h in a memfd and a
 *   stats page, and each Connect with the next scripted answer;
 * - a fake kernel connect(), put in the shim's table of real functions:
 *   it records where the shim connects a socket itself.
 * Tests observe the shim through its own entry functions (sock/sock.h)
 * and these records. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ff/shm.h>

#include "addr.h"
#include "ff.pb-c.h"

/* The fake router's overlay address for this container (HelloReply.ips)
 * and the local address it gives the connections it hands over. */
#define SF_OWN_IP     "10.77.0.1"
#define SF_LOCAL_PORT 40001
/* The stats slot of every connection it hands over. */
#define SF_SLOT 7

/* What the fake router does with a Connect. */
enum sf_answer {
	SF_STATUS,    /* a reply with a status only (ST_OK: no socket) */
	SF_PAIR,      /* SAME_HOST: one end of an AF_UNIX stream pair */
	SF_RING,      /* SF_PAIR with rings of SF_RING_SIZE (the memfd and the end's page) */
	SF_TCP,	      /* TCP: one end of a loopback TCP connection */
	SF_WRONG_ID,  /* first a REFUSED reply with another id, then the next answer */
	SF_TRUNCATED, /* a REFUSED reply cut short */
	SF_BAD_FRAME, /* a REFUSED reply whose frame byte is wrong */
	SF_TOO_BIG,   /* a REFUSED reply longer than the shim's reply buffer */
	SF_HANGUP,    /* no reply: the router closes the channel */
};

/* Initialises the shim, starts the fake router and points FFNET_SOCK at
 * it. Exits the test binary if that fails. */
void sf_start(void);
void sf_stop(void);
/* The router socket's path. */
const char *sf_router_path(void);

/* The overlay map: exactly the addresses of ips (NULL-terminated),
 * rewritten in place under the page's seqlock. */
void sf_map_set(const char *const *ips);
/* "container" (default) or "host": read by a shim at Hello. */
void sf_policy(const char *policy);
/* Queues the answer to a later Connect (st: for SF_STATUS); a Connect
 * with nothing queued gets ST_NO_LISTENER. */
void sf_answer(enum sf_answer a, Ff__Status st);
/* Drops the answers not used yet. */
void sf_answers_clear(void);
/* Hellos and Connects seen so far. */
int sf_hellos(void);
int sf_connects(void);
/* The last Connect's destination and "outside" flag. */
void sf_last_connect(struct ff_sa *dst, bool *outside);
/* The router's end of the last connection handed over (the caller closes
 * it), or -1. */
int sf_take_peer(void);
/* The rings' memfd of the last SF_RING connection (the caller closes
 * it), or -1: the test is the peer, side 1. */
#define SF_RING_SIZE (16u << 10)
int sf_take_ring(void);
/* The stats page the fake router handed out. */
struct ff_stat_hdr *sf_stats(void);

/* The fake kernel connect(): records every call but AF_UNIX ones (the
 * shim's own channel); loopback destinations (and NULL) then go to the
 * real connect(), any other is answered with err (0: success).
 * sf_kernel_fake(false) puts the real one back. */
struct sf_kernel {
	int calls;
	struct sockaddr_storage addr;
	int err;
};
extern struct sf_kernel sf_kernel;
void sf_kernel_fake(bool on);

/* A kernel TCP connection on loopback of the family (not through the
 * shim): its client end; *srv the accepted end. Exits if that fails. */
int sf_tcp_pair(int family, int *srv);

/* A socket as socket() under the shim leaves it (in the fd table). */
int sf_socket(int family, int type);
/* close() as the shim's wrapper does it. */
int sf_close(int fd);
/* ip:port as a sockaddr of ip's family; its length. */
socklen_t sf_addr(const char *ip, int port, struct sockaddr_storage *ss);
/* ip:port as an IPv4-mapped AF_INET6 sockaddr. */
socklen_t sf_addr_mapped(const char *ip4, int port, struct sockaddr_storage *ss);
/* Whether ss holds ip:port. */
bool sf_addr_is(const struct sockaddr_storage *ss, const char *ip, int port);
