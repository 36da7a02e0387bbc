/* The default locality store: the router's own state file, rewritten
 * atomically (temp file, fsync, rename) after each change:
 *   host NAME addr=IP:PORT [rdma]
 *   container NAME ips=IP[,IP...] host=HOST [policy=host] [transport=tcp]
 *             [netns=DEV:INO]
 *   publish NAME hostport=N port=M
 * Hosts come first, then containers (which may name them), then publishes.
 * A line that does not parse is reported with its number and skipped; the
 * file is then kept as STATE.bad so nothing is lost when it is rewritten. */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_ips(char *v, struct ff_ip *ips, int *nips)
{
	char *save = NULL;

	*nips = 0;
	for (char *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*nips >= FFR_MAX_IPS || ff_ip_parse(t, &ips[*nips]) < 0 ||
		    !ff_ip_is_unicast(&ips[*nips]))
			return -EINVAL;
		(*nips)++;
	}
	return *nips ? 0 : -EINVAL;
}

static int parse_attr(struct ffr_record *rec, char *t)
{
	unsigned long long dev, ino;
	unsigned v;

	if (!strncmp(t, "ips=", 4))
		return parse_ips(t + 4, rec->ips, &rec->nips);
	if (!strncmp(t, "host=", 5) && strlen(t + 5) <= FFR_HOST_MAX) {
		strcpy(rec->host, t + 5);
		return 0;
	}
	if (!strncmp(t, "policy=", 7))
		return ffr_policy_parse(t + 7, &rec->policy);
	if (!strncmp(t, "transport=", 10))
		return ffr_transport_parse(t + 10, &rec->tcp_only);
	if (!strncmp(t, "netns=", 6) && sscanf(t + 6, "%llu:%llu", &dev, &ino) == 2) {
		rec->ns_dev = (dev_t)dev;
		rec->ns_ino = (ino_t)ino;
		return 0;
	}
	if (!strncmp(t, "addr=", 5))
		return ff_sa_parse(t + 5, &rec->addr, 0);
	if (!strcmp(t, "rdma")) {
		rec->rdma = true;
		return 0;
	}
	if (sscanf(t, "hostport=%u", &v) == 1 && v && v <= 65535) {
		rec->host_port = (uint16_t)v;
		return 0;
	}
	if (sscanf(t, "port=%u", &v) == 1 && v && v <= 65535) {
		rec->port = (uint16_t)v;
		return 0;
	}
	return -EINVAL;
}

int ffr_record_parse(const char *line, struct ffr_record *rec)
{
	char buf[2048], *save = NULL, *kind, *name, *t;

	memset(rec, 0, sizeof(*rec));
	if (strlen(line) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, line);
	kind = strtok_r(buf, " \t\n", &save);
	if (!kind || *kind == '#')
		return 0;
	name = strtok_r(NULL, " \t\n", &save);
	if (!name || !ffr_name_valid(name))
		return -EINVAL;
	strcpy(rec->name, name);
	rec->kind = !strcmp(kind, "host")	 ? FFR_REC_HOST
		    : !strcmp(kind, "container") ? FFR_REC_CONTAINER
		    : !strcmp(kind, "publish")	 ? FFR_REC_PUBLISH
						 : 0;
	if (!rec->kind)
		return -EINVAL;
	while ((t = strtok_r(NULL, " \t\n", &save)))
		if (parse_attr(rec, t) < 0)
			return -EINVAL;
	if ((rec->kind == FFR_REC_HOST && !rec->addr.port) ||
	    (rec->kind == FFR_REC_CONTAINER && !rec->nips) ||
	    (rec->kind == FFR_REC_PUBLISH && (!rec->host_port || !rec->port)))
		return -EINVAL;
	return 1;
}

int ffr_record_format(const struct ffr_router *r, const struct ffr_container *c, char *buf,
		      size_t len)
{
	char ip[FF_ADDRSTRLEN];
	size_t off;

	off = (size_t)snprintf(buf, len, "container %s ips=", c->name);
	for (int i = 0; i < c->nips && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
					ff_ip_fmt(&c->ips[i], ip, sizeof(ip)));
	if (off < len)
		off += (size_t)snprintf(buf + off, len - off, " host=%s%s%s", c->host,
					c->policy == FFR_POLICY_HOST ? " policy=host" : "",
					c->tcp_only ? " transport=tcp" : "");
	if (c->ns_ino && off < len)
		off += (size_t)snprintf(buf + off, len - off, " netns=%llu:%llu",
					(unsigned long long)c->ns_dev, (unsigned long long)c->ns_ino);
	return off < len ? (int)off : -ENAMETOOLONG;
}

/* A record from the state file: everything it names must be new. */
static int parse_line(struct ffr_router *r, char *line)
{
	struct ffr_record rec;
	struct ffr_container *c;
	int err = ffr_record_parse(line, &rec);

	if (err <= 0)
		return err;
	switch (rec.kind) {
	case FFR_REC_HOST:
		return ffr_host_add(r, rec.name, &rec.addr, rec.rdma, NULL);
	case FFR_REC_PUBLISH:
		if (!ffr_container_find(r, rec.name))
			return -ENOENT;
		return ffr_publish_add(r, rec.name, rec.host_port, rec.port, NULL);
	default:
		break;
	}
	if (ffr_container_find(r, rec.name))
		return -EEXIST;
	if (!ffr_is_self(r, rec.host) && !ffr_host_find(r, rec.host))
		return -ENOENT;
	for (int i = 0; i < rec.nips; i++)
		if (ffr_container_by_ip(r, &rec.ips[i]))
			return -EADDRINUSE;
	err = ffr_container_new(r, rec.name, rec.ips, rec.nips, rec.host, rec.policy, rec.ns_dev,
				rec.ns_ino, &c);
	if (!err)
		c->tcp_only = rec.tcp_only;
	return err;
}

static void keep_bad_copy(const char *state)
{
	char bad[4096];
	char buf[8192];
	int in, out;
	ssize_t n;

	snprintf(bad, sizeof(bad), "%s.bad", state);
	in = open(state, O_RDONLY | O_CLOEXEC);
	out = open(bad, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	ff_err("kept the original state file as %s", bad);
}

int ffr_state_load(struct ffr_router *r)
{
	const char *state = ffr_xh(r)->state;
	FILE *f = fopen(state, "re");
	char line[2048];
	int lineno = 0, bad = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f)) {
		int err;

		lineno++;
		err = parse_line(r, line);
		if (err) {
			ff_err("%s:%d: cannot restore this registration (%s)", state, lineno,
			       strerror(-err));
			bad++;
		}
	}
	fclose(f);
	if (bad)
		keep_bad_copy(state);
	return 0;
}

static void write_container(FILE *f, const struct ffr_router *r, const struct ffr_container *c)
{
	char line[1024];

	if (c->from_store) /* the cluster store's, not ours to keep */
		return;
	if (ffr_record_format(r, c, line, sizeof(line)) > 0)
		fprintf(f, "%s\n", line);
}

int ffr_state_save(struct ffr_router *r)
{
	struct ffr_xhost *xh = ffr_xh(r);
	struct ffr_container *c;
	struct ffr_publish *p;
	struct ffr_host *h;
	char tmp[4096], a[FF_ADDRSTRLEN];
	FILE *f;
	int fd, err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", xh->state) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	fprintf(f, "# ffrouter state (host %s): hosts, containers, published ports\n", r->host_id);
	TAILQ_FOREACH (h, &xh->hosts, link)
		if (!h->from_store)
			fprintf(f, "host %s addr=%s%s\n", h->name,
				ff_sa_fmt(&h->addr, a, sizeof(a)), h->rdma ? " rdma" : "");
	TAILQ_FOREACH (c, &r->containers, link)
		write_container(f, r, c);
	TAILQ_FOREACH (p, &xh->publishes, link)
		fprintf(f, "publish %s hostport=%u port=%u\n", p->container, p->host_port, p->port);
	if (fflush(f) != 0 || fsync(fd) != 0)
		err = -errno;
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, xh->state) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		ff_err("cannot write state file %s: %s", xh->state, strerror(-err));
	}
	return err;
}
