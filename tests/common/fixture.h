/* Test fixtures: a real ffrouter running in a thread of the test process,
 * and clients that speak its protocol. Tests observe the router only
 * through its sockets, never its internals, so the loop thread owns them.
 * The fx_up/fx_assert_* helpers assert with CUnit: call them from a test. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ff.pb-c.h"

struct fx_router {
	char dir[64];
	void *priv;
	unsigned max_conns; /* a container's connection quota; 0: 1024 */
	const char *metrics; /* the router's --metrics IP:PORT; NULL: none */
	uint32_t ring;       /* --same-host-rings; 0: none */
	uint32_t ring_mib;   /* --max-ring-mem; 0: the default */
};

/* Starts a router in a fresh temp run directory. 0 or -errno. */
int fx_router_start(struct fx_router *fx);
/* Stops it, removes the directory. */
void fx_router_stop(struct fx_router *fx);
/* Restarts it on the same directory (state file kept). */
int fx_router_restart(struct fx_router *fx);
/* Removes a directory tree (a test's temp run directory). */
void fx_rmtree(const char *dir);

/* Connects a SEQPACKET socket to path; -errno on failure. */
int fx_connect(const char *path);
/* Connects to the admin socket (hello=true: and says Hello). */
int fx_admin(struct fx_router *fx, bool hello);
/* Connects to a container's socket and says Hello; the map/stats fds of the
 * reply are closed. */
int fx_shim(struct fx_router *fx, const char *name);
/* The same, announcing the Hello caps (FF_CAP_*) caps. */
int fx_shim_caps(struct fx_router *fx, const char *name, uint64_t caps);

/* Sends req with fds (not consumed); waits (2 s) for one reply. Returns the
 * reply or NULL (closed / timeout); received fds go to rfds. */
Ff__Reply *fx_call(int fd, Ff__Request *req, const int *fds, int nfds, int *rfds, int *nrfds);
/* Waits (2 s) for one reply without sending. */
Ff__Reply *fx_recv(int fd, int *rfds, int *nrfds);

/* Registers NAME with one IP through a fresh admin connection; the status. */
int fx_register(struct fx_router *fx, const char *name, const char *ip);
/* The same with the container's network namespace (a path, NULL: none). */
int fx_register_netns(struct fx_router *fx, const char *name, const char *ip, const char *netns);
/* Number of containers/listeners/conns in the router's status (-1 on error). */
int fx_status_counts(struct fx_router *fx, int *containers, int *listeners, int *conns);

/* sendmsg with any number of SCM_RIGHTS fds, bypassing ff_send_fds's
 * limit (to play a hostile peer). Returns what sendmsg returned. */
long fx_send_raw_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/* A listening TCP socket on 0.0.0.0 with a kernel-chosen port. */
int fx_tcp_listener(uint16_t *port);
/* Fills an Addr (ip storage in buf). */
void fx_addr(Ff__Addr *a, uint8_t buf[16], const char *ip, uint16_t port);

/* Starts fx and registers c1 (10.99.0.1) and c2 (10.99.0.2); a failure
 * ends the calling test. Undone by fx_router_stop. */
void fx_up(struct fx_router *fx);
/* The router still answers a status request, with this many containers. */
void fx_assert_serving(struct fx_router *fx, int containers);
/* True when nobody, the router included, holds the read end of the pipe
 * wfd writes to (SIGPIPE must be ignored). */
bool fx_pipe_orphaned(int wfd);
/* Unregisters name through a fresh admin connection; the status or -1. */
int fx_unregister(struct fx_router *fx, const char *name);

/* On shim channel ch: Listen (qr_in < 0) with kernel listener kfd (< 0:
 * none sent), or Relisten (qr_in: the router end a shim kept). A Listen
 * reply carries the app's end (*qfd) and a copy of the router's end (*qr);
 * either is closed when its pointer is NULL, and -1 when not received. */
Ff__Reply *fx_listen_req(int ch, int kfd, int qr_in, const char *ip, uint16_t port, int *qfd,
			 int *qr);
/* Listen, keeping only the app's end of the queue. */
Ff__Reply *fx_listen(int ch, int kfd, const char *ip, uint16_t port, int *qfd);
/* Connect to an overlay address on shim channel ch; *cfd gets the
 * connection (-1 if none came). */
Ff__Reply *fx_overlay_connect(int ch, const char *ip, uint16_t port, int *cfd);
/* Reads one Accepted from an accept queue; *fd gets its connection. */
Ff__Accepted *fx_take_accepted(int qfd, int *fd);
/* The same where the rings may come: their memfd (*mfd, else -1) and the
 * end's page (*efd, else -1; efd NULL: closed). */
Ff__Accepted *fx_take_accepted2(int qfd, int *fd, int *mfd, int *efd);
/* fx_overlay_connect where the rings may come (as fx_take_accepted2). */
Ff__Reply *fx_overlay_connect2(int ch, const char *ip, uint16_t port, int *cfd, int *mfd, int *efd);
