/* Logging to stderr for every component. The shim logs only failures unless
 * FF_LOG_LEVEL says otherwise; ff_log never changes errno. */
#pragma once

enum ff_log_level {
	FF_LOG_ERR = 0,
	FF_LOG_WARN = 1,
	FF_LOG_INFO = 2,
	FF_LOG_DEBUG = 3,
};

extern int ff_log_level;

void ff_log_init(const char *ident, int level);
/* Parses "error|warn|info|debug" or a digit; returns -1 if unknown. */
int ff_log_parse_level(const char *s);
void ff_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ff_err(...) ff_log(FF_LOG_ERR, __VA_ARGS__)
#define ff_warn(...) ff_log(FF_LOG_WARN, __VA_ARGS__)
#define ff_info(...)                                                                               \
	do {                                                                                       \
		if (ff_log_level >= FF_LOG_INFO)                                                   \
			ff_log(FF_LOG_INFO, __VA_ARGS__);                                          \
	} while (0)
#define ff_dbg(...)                                                                                \
	do {                                                                                       \
		if (ff_log_level >= FF_LOG_DEBUG)                                                  \
			ff_log(FF_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)
