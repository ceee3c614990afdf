/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Each case forks a child that installs (part of) the sandbox and proves what it must:
 * forbidden calls fail with EPERM in errno mode and kill with SIGSYS in kill mode,
 * the calls the daemon makes still work, and no capability is left in any thread.
 * Children leave with _exit(): LeakSanitizer's exit-time check would need ptrace.
 */

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>

#include "conf.h"
#include "log.h"
#include "sandbox.h"
#include "tests.h"

/* ---------------------------------------------------------------- helpers */

typedef void (*ChildFunc)(void);

/* Run f in a child; return its wait status. */
static int run_child(ChildFunc f) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                /* A SIGSYS kill must not leave a core file behind in the build tree. */
                (void) setrlimit(RLIMIT_CORE, &(struct rlimit) {});
                f();
                _exit(EXIT_SUCCESS);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        return status;
}

static void assert_child_ok(int status) {
        if (WIFSIGNALED(status))
                TEST_FAIL("child killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* One "Name:\t<hex>" field of a thread ("self": the calling one). */
static uint64_t proc_status_field(const char *task, const char *name) {
        char path[128], line[256];
        uint64_t v = UINT64_MAX;
        FILE *f;

        if (streq(task, "self"))
                snprintf(path, sizeof(path), "/proc/thread-self/status");
        else
                snprintf(path, sizeof(path), "/proc/self/task/%s/status", task);
        f = fopen(path, "re");
        ASSERT_NOT_NULL(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':')
                        ASSERT_EQ(sscanf(line + strlen(name) + 1, "%" SCNx64, &v), 1);
        fclose(f);
        ASSERT_TRUE(v != UINT64_MAX);
        return v;
}

static void assert_no_capabilities(const char *task) {
        ASSERT_EQ_U(proc_status_field(task, "CapInh"), 0);
        ASSERT_EQ_U(proc_status_field(task, "CapPrm"), 0);
        ASSERT_EQ_U(proc_status_field(task, "CapEff"), 0);
        ASSERT_EQ_U(proc_status_field(task, "CapAmb"), 0);
        /* Only a process that had CAP_SETPCAP could empty its bounding set. */
        if (geteuid() == 0)
                ASSERT_EQ_U(proc_status_field(task, "CapBnd"), 0);
}

static void *thread_noop(void *arg) {
        return arg;
}

/* What the daemon does all day must keep working. */
static void assert_allowed_calls_work(void) {
        char path[] = "/tmp/test-sandbox-XXXXXX";
        pthread_t t;
        void *ret = NULL;
        int fd;

        fd = mkostemp(path, O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "x", 1), 1);
        ASSERT_OK(fsync(fd));
        ASSERT_OK(unlink(path));
        close(fd);

        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "x", 1), 1);
        close(fd);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        close(fd);

        fd = eventfd(0, EFD_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        close(fd);

        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_TRUE(p != MAP_FAILED);
        munmap(p, 4096);

        /* The first host name lookup (curl, the API server): NSS modules are dlopen()ed
         * now, and glibc tries an AF_NETLINK socket that the filter refuses. */
        struct addrinfo *ai = NULL;
        ASSERT_EQ(getaddrinfo("localhost", "443", &(struct addrinfo) { .ai_socktype = SOCK_STREAM }, &ai), 0);
        ASSERT_NOT_NULL(ai);
        freeaddrinfo(ai);

        /* pthread_create: clone3 answers ENOSYS, glibc falls back to clone(CLONE_THREAD). */
        ASSERT_EQ(pthread_create(&t, NULL, thread_noop, (void *) 0x1), 0);
        ASSERT_EQ(pthread_join(t, &ret), 0);
        ASSERT_TRUE(ret == (void *) 0x1);
}

/* ---------------------------------------------------------------- cases */

static void child_errno_mode(void) {
        int fd;

        ASSERT_OK(sandbox_capabilities_drop());
        ASSERT_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        ASSERT_OK(sandbox_seccomp_install(SECCOMP_ACTION_ERRNO));

        assert_allowed_calls_work();
        assert_no_capabilities("self");

        /* Forbidden, and each of these works unsandboxed even without capabilities
         * (mount and kexec_load excepted), so EPERM here is the filter's. */
        errno = 0;
        ASSERT_EQ(mount("none", "/", "tmpfs", 0, NULL), -1);
        ASSERT_EQ(errno, EPERM);
        errno = 0;
        ASSERT_EQ(syscall(SYS_kexec_load, 0, 0, NULL, 0), -1);
        ASSERT_EQ(errno, EPERM);
#ifndef SANDBOX_LEAK_SANITIZER /* LeakSanitizer's tracer needs these two */
        errno = 0;
        ASSERT_EQ(ptrace(PTRACE_TRACEME, 0, NULL, NULL), -1);
        ASSERT_EQ(errno, EPERM);
        /* fork() is clone() without CLONE_THREAD. */
        errno = 0;
        ASSERT_EQ(fork(), -1);
        ASSERT_EQ(errno, EPERM);
#endif
        errno = 0;
        ASSERT_EQ(personality(0xffffffff), -1);
        ASSERT_EQ(errno, EPERM);
        /* Other address families: EAFNOSUPPORT, as the unit's RestrictAddressFamilies= says. */
        errno = 0;
        ASSERT_EQ(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), -1);
        ASSERT_EQ(errno, EAFNOSUPPORT);
        errno = 0;
        ASSERT_EQ(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), -1);
        ASSERT_EQ(errno, EAFNOSUPPORT);
        errno = 0;
        ASSERT_EQ(socket(AF_UNSPEC, SOCK_STREAM | SOCK_CLOEXEC, 0), -1);
        ASSERT_EQ(errno, EAFNOSUPPORT);
        fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        close(fd);
        errno = 0;
        ASSERT_EQ(socketpair(AF_INET, SOCK_STREAM, 0, (int[2]) {}), -1);
        ASSERT_EQ(errno, EPERM);
        errno = 0;
        ASSERT_EQ(unshare(CLONE_NEWUSER), -1);
        ASSERT_EQ(errno, EPERM);
        errno = 0;
        ASSERT_EQ(execve("/bin/true", (char *[]) { (char *) "true", NULL }, environ), -1);
        ASSERT_EQ(errno, EPERM);
        /* clone3 says ENOSYS so that glibc falls back to the clone we can check. */
        errno = 0;
        ASSERT_EQ(syscall(SYS_clone3, NULL, 0), -1);
        ASSERT_EQ(errno, ENOSYS);
        /* Write and execute at once: never. */
        errno = 0;
        ASSERT_TRUE(mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
                    MAP_FAILED);
        ASSERT_EQ(errno, EPERM);
        /* Signals to others: no. To ourselves: yes. */
        errno = 0;
        ASSERT_EQ(kill(1, 0), -1);
        ASSERT_EQ(errno, EPERM);
        ASSERT_OK(kill(getpid(), 0));
        /* Limits may be read, not set. */
        struct rlimit rl;
        ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
        errno = 0;
        ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), -1);
        ASSERT_EQ(errno, EPERM);
}

static int kill_mode_pipe[2] = { -1, -1 };

static void child_kill_mode(void) {
        ASSERT_OK(sandbox_capabilities_drop());
        ASSERT_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        ASSERT_OK(sandbox_seccomp_install(SECCOMP_ACTION_KILL));

        assert_allowed_calls_work();
        /* Refused, not killed: getaddrinfo() tries this on every lookup. */
        errno = 0;
        ASSERT_EQ(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), -1);
        ASSERT_EQ(errno, EAFNOSUPPORT);
        ASSERT_EQ(write(kill_mode_pipe[1], "ok", 2), 2);

        (void) personality(0xffffffff); /* SIGSYS: the process dies here */
        _exit(42);
}

static void *thread_wait_once(void *arg) {
        pthread_barrier_wait(arg);
        return NULL;
}

static void child_thread_before_drop(void) {
        pthread_barrier_t b;
        pthread_t t;

        /* A thread started while we were still privileged keeps its capabilities. */
        ASSERT_EQ(pthread_barrier_init(&b, NULL, 2), 0);
        ASSERT_EQ(pthread_create(&t, NULL, thread_wait_once, &b), 0);
        ASSERT_OK(sandbox_capabilities_drop());
        ASSERT_ERROR(sandbox_capabilities_check_threads(), EPERM);
        pthread_barrier_wait(&b);
        ASSERT_EQ(pthread_join(t, NULL), 0);
}

static void *thread_wait(void *arg) {
        pthread_barrier_wait(arg); /* started */
        pthread_barrier_wait(arg); /* sandbox installed */
        return NULL;
}

/* The manager's sequence: drop early, start threads, apply at the end. */
static void child_daemon_sequence(void) {
        _cleanup_(config_done) Config c = {};
        pthread_barrier_t b;
        pthread_t t;

        ASSERT_OK(config_init(&c));
        ASSERT_TRUE(c.sandbox);
        ASSERT_EQ(c.seccomp_action, SECCOMP_ACTION_ERRNO);

        ASSERT_OK(sandbox_drop_capabilities(&c));
        ASSERT_EQ(pthread_barrier_init(&b, NULL, 2), 0);
        ASSERT_EQ(pthread_create(&t, NULL, thread_wait, &b), 0);
        pthread_barrier_wait(&b);

        ASSERT_OK(sandbox_apply(&c));

        /* Every thread: filtered (mode 2), no capabilities. */
        ASSERT_EQ_U(proc_status_field("self", "Seccomp"), 2);
        ASSERT_EQ_U(proc_status_field("self", "NoNewPrivs"), 1);
        assert_no_capabilities("self");
        DIR *d = opendir("/proc/self/task");
        ASSERT_NOT_NULL(d);
        unsigned n = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                ASSERT_EQ_U(proc_status_field(de->d_name, "Seccomp"), 2);
                assert_no_capabilities(de->d_name);
                n++;
        }
        closedir(d);
        ASSERT_EQ(n, 2);

        errno = 0;
        ASSERT_EQ(personality(0xffffffff), -1);
        ASSERT_EQ(errno, EPERM);

        pthread_barrier_wait(&b);
        ASSERT_EQ(pthread_join(t, NULL), 0);
}

static void child_disabled(void) {
        _cleanup_(config_done) Config c = {};

        ASSERT_OK(config_init(&c));
        c.sandbox = false;
        ASSERT_OK(sandbox_drop_capabilities(&c));
        ASSERT_OK(sandbox_apply(&c));
        /* Nothing installed, nothing dropped. */
        ASSERT_EQ_U(proc_status_field("self", "Seccomp"), 0);
        if (geteuid() == 0)
                ASSERT_TRUE(proc_status_field("self", "CapEff") != 0);
        ASSERT_OK(personality(0xffffffff));
}

#ifdef SANDBOX_LEAK_SANITIZER
/* The exit-time leak check still works under the filter: exit() (not _exit) runs it. */
static void child_leak_check(void) {
        _cleanup_(config_done) Config c = {};

        ASSERT_OK(config_init(&c));
        ASSERT_OK(sandbox_drop_capabilities(&c));
        ASSERT_OK(sandbox_apply(&c));
        exit(EXIT_SUCCESS);
}

static void test_leak_sanitizer_under_filter(void) {
        assert_child_ok(run_child(child_leak_check));
}
#endif

static void test_errno_mode(void) {
        assert_child_ok(run_child(child_errno_mode));
}

static void test_kill_mode(void) {
        char buf[2] = {};
        int status;

        ASSERT_OK(pipe2(kill_mode_pipe, O_CLOEXEC));
        status = run_child(child_kill_mode);
        close(kill_mode_pipe[1]);
        /* The allowed calls ran... */
        ASSERT_EQ(read(kill_mode_pipe[0], buf, sizeof(buf)), 2);
        close(kill_mode_pipe[0]);
        ASSERT_TRUE(memcmp(buf, "ok", 2) == 0);
        /* ...and the forbidden one killed the process with SIGSYS. */
        if (!WIFSIGNALED(status))
                TEST_FAIL("child not killed: exit status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        ASSERT_EQ(WTERMSIG(status), SIGSYS);
}

static void test_thread_before_drop(void) {
        if (geteuid() != 0) {
                fprintf(stderr, "   (skipped: needs capabilities to lose)\n");
                return;
        }
        assert_child_ok(run_child(child_thread_before_drop));
}

static void test_daemon_sequence(void) {
        assert_child_ok(run_child(child_daemon_sequence));
}

static void test_disabled(void) {
        assert_child_ok(run_child(child_disabled));
}

/* valgrind does not implement seccomp(2): nothing to test there. */
static bool seccomp_syscall_available(void) {
        uint32_t action = SECCOMP_RET_ERRNO;

        return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0 || errno != ENOSYS;
}

int main(void) {
        log_set_target(LOG_TARGET_CONSOLE);
        if (!seccomp_syscall_available()) {
                fprintf(stderr, "SKIP: the seccomp(2) system call is not available (valgrind?)\n");
                return 77;
        }
        TEST(test_errno_mode);
        TEST(test_kill_mode);
        TEST(test_thread_before_drop);
        TEST(test_daemon_sequence);
        TEST(test_disabled);
#ifdef SANDBOX_LEAK_SANITIZER
        TEST(test_leak_sanitizer_under_filter);
#endif
        return 0;
}
