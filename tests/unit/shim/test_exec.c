/* libffshim/sock/exec.c: whether an exec'd image will load the shim,
 * which decides whether its ring connections get a relay. Files are made
 * in a scratch directory: ELF headers with the interpreter of glibc, of
 * musl or none, scripts and their interpreters, a set-id program; and the
 * environment's LD_PRELOAD and FFNET_DISABLE. */
#include "cu.h"

#include "sock/sock-internal.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], self[PATH_MAX];

static void put(const char *name, const void *data, size_t len, mode_t mode)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(write(fd, data, len) == (ssize_t)len);
	close(fd);
	chmod(p, mode);
}

static int image(const char *name)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return ffs_exec_image(AT_FDCWD, p, 0, false);
}

/* A 64-bit ELF header for machine m with one PT_INTERP naming interp
 * (NULL: no program header at all, as a static program). */
static void put_elf(const char *name, Elf64_Half m, const char *interp)
{
	struct {
		Elf64_Ehdr eh;
		Elf64_Phdr ph;
		char s[64];
	} f;

	memset(&f, 0, sizeof(f));
	memcpy(f.eh.e_ident, ELFMAG, SELFMAG);
	f.eh.e_ident[EI_CLASS] = ELFCLASS64;
	f.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	f.eh.e_type = ET_DYN;
	f.eh.e_machine = m;
	f.eh.e_phoff = sizeof(f.eh);
	f.eh.e_phentsize = sizeof(Elf64_Phdr);
	f.eh.e_phnum = interp ? 1 : 0;
	if (interp) {
		f.ph.p_type = PT_INTERP;
		f.ph.p_offset = offsetof(__typeof__(f), s);
		f.ph.p_filesz = strlen(interp) + 1;
		strcpy(f.s, interp);
	}
	put(name, &f, sizeof(f), 0755);
}

static void test_elf(void)
{
	CU_ASSERT_EQUAL(ffs_exec_image(AT_FDCWD, self, 0, false), 1); /* this test: glibc */
	put_elf("glibc", EM_X86_64, "/lib64/ld-linux-x86-64.so.2");
	put_elf("musl", EM_X86_64, "/lib/ld-musl-x86_64.so.1");
	put_elf("static", EM_X86_64, NULL);
	put_elf("i386", EM_386, "/lib/ld-linux.so.2");
#if defined(__x86_64__)
	CU_ASSERT_EQUAL(image("glibc"), 1);
#endif
	CU_ASSERT_EQUAL(image("musl"), 0);
	CU_ASSERT_EQUAL(image("static"), 0);
	CU_ASSERT_EQUAL(image("i386"), 0);
	put("short", ELFMAG "\2", 5, 0755);
	CU_ASSERT_EQUAL(image("short"), 0);
	put("text", "hello\n", 6, 0755);
	CU_ASSERT_EQUAL(image("text"), 0);
	CU_ASSERT_EQUAL(image("absent"), -1);
	/* set-id: the loader ignores LD_PRELOAD's paths */
	put_elf("setuid", EM_X86_64, "/lib64/ld-linux-x86-64.so.2");
	chmod(strcat(strcat(strcpy((char[256]){0}, dir), "/"), "setuid"), 04755);
	CU_ASSERT_EQUAL(image("setuid"), 0);
	if (access("/bin/busybox", X_OK) == 0)
		CU_ASSERT_EQUAL(ffs_exec_image(AT_FDCWD, "/bin/busybox", 0, false), 0);
}

static void test_script(void)
{
	char s[PATH_MAX + 16];
	int n;

	n = snprintf(s, sizeof(s), "#!%s -x\necho\n", self);
	put("to-glibc", s, (size_t)n, 0755);
	CU_ASSERT_EQUAL(image("to-glibc"), 1);
	n = snprintf(s, sizeof(s), "#!%s/static\n", dir);
	put("to-static", s, (size_t)n, 0755);
	CU_ASSERT_EQUAL(image("to-static"), 0);
	n = snprintf(s, sizeof(s), "#! %s/to-glibc\n", dir); /* a script's script */
	put("nested", s, (size_t)n, 0755);
	CU_ASSERT_EQUAL(image("nested"), 1);
	n = snprintf(s, sizeof(s), "#!%s/loop\n", dir); /* itself: the depth bounds it */
	put("loop", s, (size_t)n, 0755);
	CU_ASSERT_EQUAL(image("loop"), 0);
	put("empty", "#!\n", 3, 0755);
	CU_ASSERT_EQUAL(image("empty"), 0);
}

static void test_fd_and_search(void)
{
	int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), f;
	char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;

	CU_ASSERT_FATAL(d >= 0);
	CU_ASSERT_EQUAL(ffs_exec_image(d, "musl", 0, false), 0);
	CU_ASSERT_EQUAL(ffs_exec_image(d, "absent", 0, false), -1);
	f = open(self, O_RDONLY | O_CLOEXEC);
	CU_ASSERT_EQUAL(ffs_exec_image(f, "", AT_EMPTY_PATH, false), 1); /* fexecve */
	close(f);
	close(d);
	CU_ASSERT_EQUAL(ffs_exec_image(AT_FDCWD, "ffnet-no-such-program", 0, true), -1);
	setenv("PATH", dir, 1);
	CU_ASSERT_EQUAL(ffs_exec_image(AT_FDCWD, "glibc", 0, true), 1);
	CU_ASSERT_EQUAL(ffs_exec_image(AT_FDCWD, "static", 0, true), 0);
	CU_ASSERT_EQUAL(ffs_exec_image(AT_FDCWD, "absent", 0, true), -1);
	if (path)
		setenv("PATH", path, 1);
	else
		unsetenv("PATH");
	free(path);
}

/* The "shim" here is this binary, where the code asking lives. */
static void test_env(void)
{
	char pre[PATH_MAX + 32], pre2[PATH_MAX + 64];
	char *with[] = {pre, NULL}, *two[] = {pre2, NULL};
	char *off[] = {pre, "FFNET_DISABLE=1", NULL}, *zero[] = {pre, "FFNET_DISABLE=0", NULL};
	char *other[] = {"LD_PRELOAD=/nonexistent/libx.so", NULL}, *none[] = {"PATH=/bin", NULL};

	snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", self);
	snprintf(pre2, sizeof(pre2), "LD_PRELOAD=/nonexistent/liba.so:%s /x", self);
	CU_ASSERT_TRUE(ffs_exec_env_loads(with));
	CU_ASSERT_TRUE(ffs_exec_env_loads(two));
	CU_ASSERT_TRUE(ffs_exec_env_loads(zero));
	CU_ASSERT_FALSE(ffs_exec_env_loads(off));
	CU_ASSERT_FALSE(ffs_exec_env_loads(other));
	CU_ASSERT_FALSE(ffs_exec_env_loads(none));
	CU_ASSERT_FALSE(ffs_exec_env_loads(NULL));
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"elf", test_elf},
	    {"script", test_script},
	    {"fd_and_search", test_fd_and_search},
	    {"env", test_env},
	    {0},
	};
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char cmd[128];
	int r;

	if (n <= 0)
		return 1;
	self[n] = '\0';
	ffs_init(); /* the real calls' table */
	strcpy(dir, "/tmp/ffexec-img.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	r = cu_run("shim-exec", tests);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		r = r ? r : 1;
	return r;
}
