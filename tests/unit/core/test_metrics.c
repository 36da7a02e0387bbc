/* ffrouter/core/metrics.c through a plain TCP socket: the exposition
 * parses, counts what the router did, escapes label values, answers only
 * /metrics, and neither a huge nor a silent client harms the router. */
#include "core.h"
#include "cu.h"
#include "fixture.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESP_MAX (1 << 20)

static struct fx_router fx;
static char maddr[32];
static uint16_t mport;

/* A port nobody listens on now, for the router's --metrics. */
static void pick_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	mport = ntohs(sin.sin_port);
	close(fd);
	snprintf(maddr, sizeof(maddr), "127.0.0.1:%u", mport);
	fx.metrics = maddr;
}

static int http_connect(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(mport),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Sends req (its first len bytes) and reads the answer until EOF or 3 s
 * of silence; the answer (NUL-terminated, malloc'd) or NULL. */
static char *http_raw(const char *req, size_t len)
{
	int fd = http_connect();
	char *buf = malloc(RESP_MAX + 1);
	size_t n = 0;

	CU_ASSERT_FATAL(fd >= 0 && buf);
	/* the router may close before it has read all of a hostile request */
	send(fd, req, len, MSG_NOSIGNAL);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r;

		if (poll(&p, 1, 3000) != 1)
			break;
		r = read(fd, buf + n, RESP_MAX - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return buf;
}

static char *http_get(const char *path)
{
	char req[256];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
	return http_raw(req, strlen(req));
}

static int status_code(const char *resp)
{
	int code = -1;

	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
		return -1;
	return code;
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");

	return b ? b + 4 : NULL;
}

/* A label value: "..." with \\, \" and \n escapes; returns past it. */
static const char *parse_lvalue(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++)
		if (*p == '\\' && !strchr("\\\"n", *++p))
			return NULL;
	return *p == '"' ? p + 1 : NULL;
}

/* name{k="v",...} value, or name value; the name (of len *nlen) or NULL. */
static const char *parse_sample(const char *line, size_t *nlen)
{
	const char *p = line;

	if (!isalpha((unsigned char)*p) && *p != '_' && *p != ':')
		return NULL;
	while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
		p++;
	*nlen = (size_t)(p - line);
	if (*p == '{') {
		do {
			p++;
			if (!isalpha((unsigned char)*p) && *p != '_')
				return NULL;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			if (*p++ != '=' || !(p = parse_lvalue(p)))
				return NULL;
		} while (*p == ',');
		if (*p++ != '}')
			return NULL;
	}
	if (*p++ != ' ' || !isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	return *p ? NULL : line;
}

/* Every line is a HELP, a TYPE or a sample of the family typed last. */
static void assert_exposition(char *body)
{
	char family[128] = "";
	int samples = 0;

	for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
		char name[128], type[16];
		size_t nlen;

		if (!strncmp(line, "# HELP ", 7))
			continue;
		if (sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
			CU_ASSERT(!strcmp(type, "counter") || !strcmp(type, "gauge"));
			CU_ASSERT(strcmp(type, "counter") || strstr(name, "_total"));
			CU_ASSERT_EQUAL(strncmp(name, "ffnet_", 6), 0);
			snprintf(family, sizeof(family), "%s", name);
			continue;
		}
		CU_ASSERT_PTR_NOT_NULL(parse_sample(line, &nlen));
		if (!parse_sample(line, &nlen)) {
			printf("bad line: %s\n", line);
			continue;
		}
		CU_ASSERT(nlen == strlen(family) && !strncmp(line, family, nlen));
		samples++;
	}
	CU_ASSERT(samples > 10);
}

/* A same-host connection between two registered containers shows in the
 * counters, by path and by container; the exposition parses. */
static void test_exposition(void)
{
	int c1, c2, kfd, qfd, cfd, sfd;
	Ff__Accepted *a;
	Ff__Reply *rep;
	char *resp;
	uint16_t port;

	pick_port();
	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	a = fx_take_accepted(qfd, &sfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	ff__accepted__free_unpacked(a, NULL);

	resp = http_get("/metrics");
	CU_ASSERT_EQUAL(status_code(resp), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(body_of(resp));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_connections_total{path=\"same-host\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_connections_total{path=\"tcp\"} 0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_connections_open{path=\"same-host\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_containers 2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_listeners 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_container_connections{container=\"c2\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_container_listeners{container=\"c1\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_bad_messages_total 0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "# TYPE ffnet_connections_total counter\n"));
	assert_exposition((char *)body_of(resp));
	free(resp);
	close(cfd);
	close(sfd);
	close(qfd);
	close(c1);
	close(c2);
	fx_router_stop(&fx);
}

/* Label values are escaped as the format wants, whatever they hold. */
static void test_escape(void)
{
	struct evbuffer *out = evbuffer_new();
	struct ffr_metrics m = {.out = out};
	char text[256] = "";
	size_t nlen;

	ffr_metrics_family(&m, "x_total", "counter", "a test");
	ffr_metrics_sample(&m, 7, "container", "we\"ird\\na\nme", "path", "", NULL);
	ffr_metrics_sample(&m, 0, NULL);
	evbuffer_remove(out, text, sizeof(text) - 1);
	CU_ASSERT_STRING_EQUAL(text, "# HELP ffnet_x_total a test\n"
				     "# TYPE ffnet_x_total counter\n"
				     "ffnet_x_total{container=\"we\\\"ird\\\\na\\nme\",path=\"\"} 7\n"
				     "ffnet_x_total 0\n");
	CU_ASSERT_PTR_NOT_NULL(parse_sample("ffnet_x_total{container=\"we\\\"ird\\\\na\\nme\"} 7",
					    &nlen));
	evbuffer_free(out);
}

/* Only GET /metrics: another path is 404, another method is refused. */
static void test_other_paths(void)
{
	static const char post[] = "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
	char *resp;

	pick_port();
	fx_up(&fx);
	resp = http_get("/other");
	CU_ASSERT_EQUAL(status_code(resp), 404);
	free(resp);
	resp = http_get("/metricsx");
	CU_ASSERT_EQUAL(status_code(resp), 404);
	free(resp);
	resp = http_raw(post, strlen(post));
	CU_ASSERT(status_code(resp) >= 400);
	free(resp);
	resp = http_get("/metrics?x=1");
	CU_ASSERT_EQUAL(status_code(resp), 200);
	free(resp);
	fx_router_stop(&fx);
}

/* A 1 MiB header block is refused (or the connection dropped) without an
 * answer of metrics; a client that says nothing holds no one up; the
 * router then still serves metrics and ffctl. */
static void test_hostile(void)
{
	size_t len = 1 << 20;
	char *req = malloc(len), *resp;
	int silent;

	CU_ASSERT_PTR_NOT_NULL_FATAL(req);
	pick_port();
	fx_up(&fx);
	silent = http_connect();
	CU_ASSERT(silent >= 0);
	memset(req, 'a', len);
	memcpy(req, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
	memcpy(req + len - 4, "\r\n\r\n", 4);
	resp = http_raw(req, len);
	CU_ASSERT_NOT_EQUAL(status_code(resp), 200);
	CU_ASSERT_PTR_NULL(strstr(resp, "ffnet_"));
	free(resp);
	resp = http_get("/metrics");
	CU_ASSERT_EQUAL(status_code(resp), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\nffnet_containers 2\n"));
	free(resp);
	fx_assert_serving(&fx, 2);
	close(silent);
	free(req);
	fx_router_stop(&fx);
}

/* A bad address is a start-up error; a taken one too. */
static void test_bad_addr(void)
{
	struct ff_sa a;
	int fd;

	CU_ASSERT_EQUAL(ffr_metrics_parse("127.0.0.1:9464", &a), 0);
	CU_ASSERT_EQUAL(a.port, 9464);
	CU_ASSERT_EQUAL(ffr_metrics_parse("[::1]:0", &a), 0);
	CU_ASSERT_EQUAL(ffr_metrics_parse("127.0.0.1", &a), -EINVAL);
	CU_ASSERT_EQUAL(ffr_metrics_parse("127.0.0.1:x", &a), -EINVAL);
	CU_ASSERT_EQUAL(ffr_metrics_parse("127.0.0.1:65536", &a), -EINVAL);
	CU_ASSERT_EQUAL(ffr_metrics_parse("localhost:80", &a), -EINVAL);
	CU_ASSERT_EQUAL(ffr_metrics_parse("::1:80", &a), -EINVAL);
	fx.metrics = "127.0.0.1:";
	CU_ASSERT_EQUAL(fx_router_start(&fx), -EINVAL);
	fx_rmtree(fx.dir);
	pick_port();
	fd = http_connect(); /* nobody there yet */
	CU_ASSERT_EQUAL(fd, -1);
	fx_up(&fx);
	{
		struct fx_router fx2 = {.metrics = maddr};

		CU_ASSERT_EQUAL(fx_router_start(&fx2), -EADDRINUSE);
		fx_rmtree(fx2.dir);
	}
	fx_router_stop(&fx);
	fx.metrics = NULL;
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"exposition", test_exposition},
		{"escape", test_escape},
		{"other_paths", test_other_paths},
		{"hostile", test_hostile},
		{"bad_addr", test_bad_addr},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("metrics", tests);
}
