/* out.c - the transcript: one line per check, prefixed with the role letter.
 *
 * Lines are written with a single write(2) each, never through stdio, so a
 * forked or exec'd child that shares stdout cannot duplicate buffered text and
 * lines never interleave mid-line. A check line is "R ok NAME: detail" or
 * "R FAIL NAME: expected X got Y"; the detail never holds run-dependent values.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ffconform.h"

char ffc_role = 'C';
const char *ffc_scen = "main";
static unsigned n_checks, n_fails;

static void out_write(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void out_vline(const char *head, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%c %s", ffc_role, head);

	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		n = 0;
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);

	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	out_write(buf, (size_t)n);
}

void out_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vline("", fmt, ap);
	va_end(ap);
}

void out_scenario(const char *name)
{
	ffc_scen = name;
	out_line("== %s", name);
}

void out_summary(void)
{
	out_line("summary: %u checks, %u failed", n_checks, n_fails);
}

unsigned ck_failures(void)
{
	return n_fails;
}

static bool ck_vline(bool ok, const char *name, const char *fmt, va_list ap)
{
	char head[160];

	snprintf(head, sizeof(head), "%s %s: ", ok ? "ok" : "FAIL", name);
	n_checks++;
	if (!ok)
		n_fails++;
	out_vline(head, fmt, ap);
	return ok;
}

bool ck_ok(const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ck_vline(true, name, fmt, ap);
	va_end(ap);
	return true;
}

bool ck_fail(const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ck_vline(false, name, fmt, ap);
	va_end(ap);
	return false;
}

/* "SCENARIO.suffix" in one of a few rotating static buffers (main thread). */
const char *nm(const char *suffix)
{
	static char bufs[8][128];
	static unsigned next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s.%s", ffc_scen, suffix);
	return b;
}

const char *err_name(int e)
{
	static __thread char buf[24];
	const char *s = e ? strerrorname_np(e) : "0";

	if (s)
		return s;
	snprintf(buf, sizeof(buf), "errno%d", e);
	return buf;
}

/* A syscall result as "N" or "-1 ENAME" (err is errno when ret was -1). */
void ret_str(char *buf, size_t len, long ret, int err)
{
	if (ret == -1)
		snprintf(buf, len, "-1 %s", err_name(err));
	else
		snprintf(buf, len, "%ld", ret);
}

bool ck_zero(const char *name, long ret)
{
	char got[48];
	int err = errno;

	if (ret == 0)
		return ck_ok(name, "0");
	ret_str(got, sizeof(got), ret, err);
	return ck_fail(name, "expected 0 got %s", got);
}

/* fd is a descriptor, -1 with errno set, or a negative errno below -1. */
bool ck_fd(const char *name, int fd)
{
	char got[48];
	int err = fd < -1 ? -fd : errno;

	if (fd < -1)
		fd = -1;

	if (fd >= 0)
		return ck_ok(name, "fd");
	ret_str(got, sizeof(got), fd, err);
	return ck_fail(name, "expected fd got %s", got);
}

bool ck_err(const char *name, long ret, int want_errno)
{
	char got[48];
	int err = errno;

	if (ret == -1 && err == want_errno)
		return ck_ok(name, "-1 %s", err_name(err));
	ret_str(got, sizeof(got), ret, err);
	return ck_fail(name, "expected -1 %s got %s", err_name(want_errno), got);
}

/* ck_err for calls that return a descriptor: success shows as "fd", never as
 * its number. */
bool ck_err_fd(const char *name, int ret, int want_errno)
{
	int err = errno;

	if (ret == -1 && err == want_errno)
		return ck_ok(name, "-1 %s", err_name(err));
	if (ret >= 0)
		return ck_fail(name, "expected -1 %s got fd", err_name(want_errno));
	return ck_fail(name, "expected -1 %s got -1 %s", err_name(want_errno), err_name(err));
}

bool ck_errval(const char *name, int want_errno, int got_errno)
{
	if (want_errno == got_errno)
		return ck_ok(name, "%s", err_name(got_errno));
	return ck_fail(name, "expected %s got %s", err_name(want_errno), err_name(got_errno));
}

bool ck_eq(const char *name, long want, long got)
{
	if (want == got)
		return ck_ok(name, "%ld", got);
	return ck_fail(name, "expected %ld got %ld", want, got);
}

bool ck_str(const char *name, const char *want, const char *got)
{
	if (strcmp(want, got) == 0)
		return ck_ok(name, "%s", got);
	return ck_fail(name, "expected %s got %s", want, got);
}

bool ck_yes(const char *name, bool cond)
{
	if (cond)
		return ck_ok(name, "yes");
	return ck_fail(name, "expected yes got no");
}

static const struct {
	unsigned bit;
	const char *name;
} ev_names[] = {
    {POLLIN, "IN"},	    {POLLPRI, "PRI"},	    {POLLOUT, "OUT"},	    {POLLERR, "ERR"},
    {POLLHUP, "HUP"},	    {POLLNVAL, "NVAL"},	    {POLLRDNORM, "RDNORM"}, {POLLRDBAND, "RDBAND"},
    {POLLWRNORM, "WRNORM"}, {POLLWRBAND, "WRBAND"}, {POLLRDHUP, "RDHUP"},
};

/* poll and epoll share these bit values; prefix is "POLL" or "EPOLL". */
void events_str(char *buf, size_t len, unsigned mask, const char *prefix)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(ev_names) / sizeof(ev_names[0]); i++) {
		if (!(mask & ev_names[i].bit))
			continue;
		mask &= ~ev_names[i].bit;
		used += (size_t)snprintf(buf + used, len > used ? len - used : 0, "%s%s%s",
					 used ? "|" : "", prefix, ev_names[i].name);
	}
	if (mask)
		used += (size_t)snprintf(buf + used, len > used ? len - used : 0, "%s0x%x",
					 used ? "|" : "", mask);
	if (used == 0)
		snprintf(buf, len, "none");
}

bool ck_events(const char *name, unsigned want, unsigned got, const char *prefix)
{
	char w[160], g[160];

	events_str(w, sizeof(w), want, prefix);
	events_str(g, sizeof(g), got, prefix);
	if (want == got)
		return ck_ok(name, "%s", g);
	return ck_fail(name, "expected %s got %s", w, g);
}

/* A step that is not itself a check: silent on success (r >= 0), otherwise a
 * FAIL line "SCENARIO.NAME" naming the negative errno. */
bool step(const char *name, int r)
{
	char full[128];

	if (r >= 0)
		return true;
	snprintf(full, sizeof(full), "%s.%s", ffc_scen, name);
	if (r == -ETIMEDOUT)
		return ck_fail(full, "expected progress got timeout");
	return ck_fail(full, "expected success got %s", err_name(-r));
}
