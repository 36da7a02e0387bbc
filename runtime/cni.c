/* ffnet, a chained CNI plugin ("type": "ffnet"; optional key "rundir",
 * the router's run directory, default /run/ffnet). It comes after the
 * plugins that made the interface and its addresses (bridge + host-local,
 * say) and registers the container with the router from their result:
 *   ADD    registers CNI_CONTAINERID (the router's name for it: the first
 *          63 characters) with prevResult's container addresses and
 *          CNI_NETNS as its identity, then prints prevResult unchanged;
 *   DEL    unregisters; succeeds when there is nothing to undo, also when
 *          the router is down (the next GC, or an ADD that meets the stale
 *          registration, finishes the job);
 *   CHECK  the registration exists with the same addresses;
 *   STATUS the router answers (else error 50);
 *   GC     unregisters what this plugin registered for attachments not in
 *          cni.dev/valid-attachments;
 *   VERSION the versions below.
 * Errors are CNI error JSON on stdout and exit 1.
 *
 * What this plugin registered is recorded in RUNDIR/cni/NAME (marks.c),
 * root-only: DEL and GC touch only those,
 * never a registration someone made by hand; and a registration whose
 * namespace is gone is known to be stale (the router was down at DEL) and
 * may be replaced by an ADD that needs its name or address.
 * Invariant: an ADD that fails leaves nothing registered by it. */
#include "cni.h"

#include "json-read.h"

#include <ff/wire.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STDIN_MAX (1 << 20)

static const char *const versions[] = {"0.4.0", "1.0.0", "1.1.0"};
#define NVERSIONS (sizeof(versions) / sizeof(versions[0]))

static struct json_object *versions_json(void)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < NVERSIONS; i++)
		json_object_array_add(a, json_object_new_string(versions[i]));
	return a;
}

static bool version_ok(const char *v)
{
	for (size_t i = 0; v && i < NVERSIONS; i++)
		if (!strcmp(v, versions[i]))
			return true;
	return false;
}

void ffn_print(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int ffn_error(const struct ffn_cni *c, int code, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "cniVersion",
			       json_object_new_string(c->version ? c->version : versions[NVERSIONS - 1]));
	json_object_object_add(o, "code", json_object_new_int(code));
	json_object_object_add(o, "msg", json_object_new_string(msg));
	ffn_print(o);
	fprintf(stderr, "ffnet-cni: %s %s: %s\n", c->cmd ? c->cmd : "?", c->cid ? c->cid : "", msg);
	return 1;
}

/* The whole of stdin, NUL-terminated; NULL if it is larger than STDIN_MAX. */
static char *read_stdin(size_t *len)
{
	char *buf = malloc(STDIN_MAX + 1);
	size_t n = 0;
	ssize_t r = 1;

	while (buf && n <= STDIN_MAX && r > 0) {
		r = read(0, buf + n, STDIN_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			r = 1;
		else if (r > 0)
			n += (size_t)r;
	}
	if (!buf || r < 0 || n > STDIN_MAX) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

static const struct {
	const char *name;
	int (*fn)(struct ffn_cni *c);
	bool needs_id; /* CNI_CONTAINERID and CNI_IFNAME */
} cmds[] = {
	{"ADD", ffn_cmd_add, true},     {"DEL", ffn_cmd_del, true},
	{"CHECK", ffn_cmd_check, true}, {"STATUS", ffn_cmd_status, false},
	{"GC", ffn_cmd_gc, false},
};

static int cmd_version(struct ffn_cni *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "cniVersion",
			       json_object_new_string(version_ok(c->version) ? c->version
									     : versions[NVERSIONS - 1]));
	json_object_object_add(o, "supportedVersions", versions_json());
	ffn_print(o);
	return 0;
}

/* The network configuration: its version must be one of ours; rundir, if
 * given, a non-empty string. */
static int read_conf(struct ffn_cni *c)
{
	struct json_object *rd;

	c->version = ff_json_str(c->conf, "cniVersion");
	if (!c->version)
		return ffn_error(c, FFN_E_CONFIG, "the network configuration has no cniVersion");
	if (!version_ok(c->version)) {
		const char *v = c->version;

		c->version = NULL;
		return ffn_error(c, FFN_E_VERSION, "CNI version %.32s is not supported (0.4.0, 1.0.0, 1.1.0)",
				 v);
	}
	if (json_object_object_get_ex(c->conf, "rundir", &rd)) {
		if (!json_object_is_type(rd, json_type_string) || !*json_object_get_string(rd))
			return ffn_error(c, FFN_E_CONFIG, "\"rundir\" must be a non-empty string");
		c->rundir = json_object_get_string(rd);
	}
	if ((size_t)snprintf(c->marks, sizeof(c->marks), "%s/cni", c->rundir) >= sizeof(c->marks))
		return ffn_error(c, FFN_E_CONFIG, "\"rundir\" is too long");
	return 0;
}

static int run(struct ffn_cni *c)
{
	char *in;
	size_t len;
	int rc;

	in = read_stdin(&len);
	if (!in)
		return ffn_error(c, FFN_E_DECODE, "cannot read the configuration on stdin (at most %d bytes)",
				 STDIN_MAX);
	c->conf = ff_json_parse(in, len);
	free(in);
	if (!strcmp(c->cmd, "VERSION")) {
		c->version = c->conf ? ff_json_str(c->conf, "cniVersion") : NULL;
		return cmd_version(c);
	}
	if (!c->conf || !json_object_is_type(c->conf, json_type_object))
		return ffn_error(c, FFN_E_DECODE, "the configuration on stdin is not a JSON object");
	rc = read_conf(c);
	for (size_t i = 0; !rc && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(c->cmd, cmds[i].name))
			continue;
		if (cmds[i].needs_id && (!c->cid || !*c->cid || !c->ifname || !*c->ifname))
			return ffn_error(c, FFN_E_ENV, "CNI_CONTAINERID and CNI_IFNAME must be set");
		if (cmds[i].needs_id && ffn_name_of(c->cid, c->name, sizeof(c->name)) < 0)
			return ffn_error(c, FFN_E_ENV, "CNI_CONTAINERID '%.80s' is not a valid container ID",
					 c->cid);
		return cmds[i].fn(c);
	}
	return rc ? rc : ffn_error(c, FFN_E_ENV, "unknown CNI_COMMAND '%.32s'", c->cmd);
}

int main(void)
{
	struct ffn_cni c = {
		.cmd = getenv("CNI_COMMAND"),
		.cid = getenv("CNI_CONTAINERID"),
		.netns = getenv("CNI_NETNS"),
		.ifname = getenv("CNI_IFNAME"),
		.rundir = FF_DEFAULT_RUNDIR,
	};
	int rc;

	if (!c.cmd || !*c.cmd) {
		fprintf(stderr, "ffnet-cni: ffnet is a CNI plugin, run by a container runtime (CNI_COMMAND is not set)\n"
				"  supported versions: 0.4.0 1.0.0 1.1.0\n");
		return 1;
	}
	rc = run(&c);
	if (c.conf)
		json_object_put(c.conf);
	return rc;
}
