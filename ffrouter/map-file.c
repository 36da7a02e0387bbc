/* The default locality store: the router's own state file, rewritten
 * atomically (temp file, fsync, rename) after each change:
 *   host NAME addr=IP:PORT [rdma]
 *   container NAME ips=IP[,IP...] host=HOST [policy=host] [netns=DEV:INO]
 *   publish NAME hostport=N port=M
 * Hosts come first, then containers (which may name them), then publishes.
 * A line that does not parse is reported with its number and skipped; the
 * file is then kept as STATE.bad so nothing is lost when it is rewritten. */
#include "router.h"

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

static int parse_host(struct ffr_router *r, const char *name, char **save)
{
	struct ff_sa addr = {0};
	bool rdma = false, have = false;
	char *t;

	while ((t = strtok_r(NULL, " \t\n", save))) {
		if (!strncmp(t, "addr=", 5) && ffr_parse_hostport(t + 5, &addr) == 0)
			have = true;
		else if (!strcmp(t, "rdma"))
			rdma = true;
		else
			return -EINVAL;
	}
	return have ? ffr_host_add(r, name, &addr, rdma, NULL) : -EINVAL;
}

static int parse_publish(struct ffr_router *r, const char *name, char **save)
{
	unsigned hp = 0, p = 0;
	char *t;

	while ((t = strtok_r(NULL, " \t\n", save))) {
		if (sscanf(t, "hostport=%u", &hp) != 1 && sscanf(t, "port=%u", &p) != 1)
			return -EINVAL;
	}
	if (!ffr_container_find(r, name) || hp > 65535 || p > 65535)
		return -EINVAL;
	return ffr_publish_add(r, name, (uint16_t)hp, (uint16_t)p, NULL);
}

static int parse_container(struct ffr_router *r, const char *name, char **save)
{
	struct ff_ip ips[FFR_MAX_IPS];
	char *host = NULL, *t;
	unsigned long long dev = 0, ino = 0;
	enum ffr_policy policy = FFR_POLICY_CONTAINER;
	struct ffr_container *c;
	int nips = 0;

	while ((t = strtok_r(NULL, " \t\n", save))) {
		if (!strncmp(t, "ips=", 4)) {
			if (parse_ips(t + 4, ips, &nips) < 0)
				return -EINVAL;
		} else if (!strncmp(t, "host=", 5)) {
			host = t + 5;
		} else if (!strncmp(t, "policy=", 7)) {
			if (ffr_policy_parse(t + 7, &policy) < 0)
				return -EINVAL;
		} else if (!strncmp(t, "netns=", 6)) {
			if (sscanf(t + 6, "%llu:%llu", &dev, &ino) != 2)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
	}
	if (!nips || ffr_container_find(r, name))
		return -EINVAL;
	if (!ffr_host_is_self(r, host) && !ffr_host_find(r, host))
		return -ENOENT;
	for (int i = 0; i < nips; i++)
		if (ffr_container_by_ip(r, &ips[i]))
			return -EADDRINUSE;
	return ffr_container_new(r, name, ips, nips, host, policy, (dev_t)dev, (ino_t)ino, &c);
}

static int parse_line(struct ffr_router *r, char *line)
{
	char *save = NULL, *kind, *name;

	kind = strtok_r(line, " \t\n", &save);
	if (!kind || *kind == '#')
		return 0;
	name = strtok_r(NULL, " \t\n", &save);
	if (!name || !ffr_name_valid(name))
		return -EINVAL;
	if (!strcmp(kind, "host"))
		return parse_host(r, name, &save);
	if (!strcmp(kind, "container"))
		return parse_container(r, name, &save);
	if (!strcmp(kind, "publish"))
		return parse_publish(r, name, &save);
	return -EINVAL;
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
	FILE *f = fopen(r->state, "re");
	char line[2048];
	int lineno = 0, bad = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f)) {
		int err;

		lineno++;
		err = parse_line(r, line);
		if (err) {
			ff_err("%s:%d: cannot restore this registration (%s)", r->state, lineno,
			       strerror(-err));
			bad++;
		}
	}
	fclose(f);
	if (bad)
		keep_bad_copy(r->state);
	return 0;
}

static void write_container(FILE *f, const struct ffr_container *c)
{
	char ip[FF_ADDRSTRLEN];

	fprintf(f, "container %s ips=", c->name);
	for (int i = 0; i < c->nips; i++)
		fprintf(f, "%s%s", i ? "," : "", ff_ip_fmt(&c->ips[i], ip, sizeof(ip)));
	fprintf(f, " host=%s", c->host);
	if (c->policy == FFR_POLICY_HOST)
		fprintf(f, " policy=host");
	if (c->ns_ino)
		fprintf(f, " netns=%llu:%llu", (unsigned long long)c->ns_dev,
			(unsigned long long)c->ns_ino);
	fputc('\n', f);
}

int ffr_state_save(struct ffr_router *r)
{
	struct ffr_container *c;
	struct ffr_publish *p;
	struct ffr_host *h;
	char tmp[4096], a[FF_ADDRSTRLEN];
	FILE *f;
	int fd, err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", r->state) >= (int)sizeof(tmp))
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
	TAILQ_FOREACH (h, &r->hosts, link)
		fprintf(f, "host %s addr=%s%s\n", h->name, ff_sa_fmt(&h->addr, a, sizeof(a)),
			h->rdma ? " rdma" : "");
	TAILQ_FOREACH (c, &r->containers, link)
		write_container(f, c);
	TAILQ_FOREACH (p, &r->publishes, link)
		fprintf(f, "publish %s hostport=%u port=%u\n", p->container, p->host_port, p->port);
	if (fflush(f) != 0 || fsync(fd) != 0)
		err = -errno;
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, r->state) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		ff_err("cannot write state file %s: %s", r->state, strerror(-err));
	}
	return err;
}
