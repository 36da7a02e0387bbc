/* stderr logger: one write(2) per line so lines from several processes do
 * not interleave; raw syscall so the shim's own write() wrapper is not hit. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int ff_log_level = FF_LOG_WARN;
static const char *log_ident = "ffnet";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void ff_log_init(const char *ident, int level)
{
	log_ident = ident;
	if (level >= 0)
		ff_log_level = level;
}

int ff_log_parse_level(const char *s)
{
	if (!s || !*s)
		return -1;
	if (s[0] >= '0' && s[0] <= '3' && s[1] == '\0')
		return s[0] - '0';
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (!strcasecmp(s, level_names[i]))
			return (int)i;
	if (!strcasecmp(s, "err"))
		return FF_LOG_ERR;
	if (!strcasecmp(s, "warning"))
		return FF_LOG_WARN;
	return -1;
}

void ff_log(int level, const char *fmt, ...)
{
	int saved = errno;
	char buf[1024];
	struct timespec ts;
	va_list ap;
	int n, m;

	if (level > ff_log_level)
		goto out;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(buf, sizeof(buf), "%lld.%03ld %s[%ld] %s: ", (long long)ts.tv_sec,
		     ts.tv_nsec / 1000000, log_ident, (long)syscall(SYS_getpid),
		     level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
	if (n < 0)
		goto out;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		goto out;
	n += m;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	syscall(SYS_write, 2, buf, (size_t)n);
out:
	errno = saved;
}
