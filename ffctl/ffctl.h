/* ffctl internals: the channel to the router and output helpers. --json
 * output is built with json-c, so every string is escaped as JSON wants. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "admin.h"
#include "ff.pb-c.h"

struct ffc_ctx {
	const char *rundir;
	bool json;
	struct ff_admin adm; /* the admin channel: adm.fd is -1 until ffc_connect */
};

struct ffc_cmd {
	const char *name;
	int (*fn)(struct ffc_ctx *ctx, int argc, char **argv);
	const char *usage;
	const char *help;
};

/* Connects and says Hello. 0, or prints why and returns 1. */
int ffc_connect(struct ffc_ctx *ctx);
/* Sends req (id filled in) and collects its replies: *reps[0..*n), all
 * unpacked (free with ffc_replies_free). Returns 0 on a transport success
 * (check reps[0]->status), or prints why and returns 1. */
int ffc_call(struct ffc_ctx *ctx, Ff__Request *req, Ff__Reply ***reps, size_t *n);
void ffc_replies_free(Ff__Reply **reps, size_t n);
/* A read command: accepts only --json, sends req, checks that every reply
 * piece is a successful `want`, and hands them to print. Exit code. */
int ffc_query(struct ffc_ctx *ctx, int argc, char **argv, const char *name, Ff__Request *req,
	      Ff__Reply__BodyCase want, void (*print)(struct ffc_ctx *, Ff__Reply **, size_t));
/* A command that changes the router's state: sends req and reports the
 * verdict, the router's refusal (ffc_fail, under what) or, without
 * --json, the line fmt makes on stdout. Exit code. */
int ffc_change(struct ffc_ctx *ctx, Ff__Request *req, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints the router's error for a failed reply and returns the exit code. */
int ffc_fail(const Ff__Reply *rep, const char *what);

/* Prints o as JSON and a newline on stdout; consumes o. */
void ffc_json_print(struct json_object *o);
/* A new JSON string holding s ("" for NULL). */
struct json_object *ffc_json_string(const char *s);
const char *ffc_addr_str(const Ff__Addr *a, char *buf, size_t len);
const char *ffc_path_name(Ff__Path p);

int ffc_cmd_register(struct ffc_ctx *ctx, int argc, char **argv);
int ffc_cmd_unregister(struct ffc_ctx *ctx, int argc, char **argv);
int ffc_cmd_list(struct ffc_ctx *ctx, int argc, char **argv);
int ffc_cmd_status(struct ffc_ctx *ctx, int argc, char **argv);
int ffc_cmd_host(struct ffc_ctx *ctx, int argc, char **argv);
int ffc_cmd_publish(struct ffc_ctx *ctx, int argc, char **argv);
/* cmd-host.c, for status too: the hosts table, or its JSON array. */
void ffc_print_hosts(Ff__Host **h, size_t n);
struct json_object *ffc_hosts_json(Ff__Host **h, size_t n);
/* cmd-list.c, for status too: the containers of every reply piece (list
 * or status replies), as a table or a JSON array. */
void ffc_print_containers(Ff__Reply **reps, size_t n, bool status);
struct json_object *ffc_containers_json(Ff__Reply **reps, size_t n, bool status);
/* cmd-rdma.c: the RDMA section of status, asked of the router: printed
 * after the rest, or as JSON (NULL, i.e. null, when the router has no
 * device or no verbs support). */
void ffc_print_rdma(struct ffc_ctx *ctx);
struct json_object *ffc_rdma_json(struct ffc_ctx *ctx);
