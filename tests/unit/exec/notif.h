/* Fixture of ffexec's filter tests: a child process under ffexec's filter
 * (ffexec/filter.c) runs a test body while the test process, holding the
 * listener, records every notification and answers it CONTINUE, as the
 * keeper does without a router. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define NT_MAX_CALLS 64

struct nt_call {
	int nr;
	uint32_t pid;
	uint64_t args[6];
};

struct nt_run {
	struct nt_call calls[NT_MAX_CALLS];
	int ncalls;
	int pid;	/* the child's */
	int status;	/* the child's wait status */
	char out[4096]; /* what the body wrote to its fd, NUL-terminated */
};

/* Forks a child that installs the filter and returns body(out) as its exit
 * status; out is a pipe to r->out. Returns 0 once the child exited, -errno
 * when the filter cannot be installed here (ENOSYS, EOPNOTSUPP, EPERM...),
 * -ETIMEDOUT after 10 s (the child is killed). */
int nt_run(int (*body)(int out), struct nt_run *r);

/* Index of the first call numbered nr at or after *from, advancing *from
 * past it; -1 if none. */
int nt_find(const struct nt_run *r, int nr, int *from);

/* 0 when seccomp user notification works here, else -errno. */
int nt_available(void);

/* A line "name ret err" (err 0 when ret >= 0) on out. */
void nt_say(int out, const char *name, long ret);
