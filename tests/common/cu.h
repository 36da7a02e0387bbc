/* One CUnit suite per test binary: run it, print the summary, exit 1 on
 * any failure. */
#pragma once

#include <CUnit/Basic.h>

struct cu_test {
	const char *name;
	void (*fn)(void);
};

int cu_run(const char *suite, const struct cu_test *tests);
