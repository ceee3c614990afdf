/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "log.h"
#include "sandbox.h"

/* ---------------------------------------------------------------- capabilities */

static bool capability_is_effective(cap_value_t v) {
        cap_flag_value_t value = CAP_CLEAR;
        cap_t caps = cap_get_proc();

        if (!caps)
                return false;
        if (cap_get_flag(caps, v, CAP_EFFECTIVE, &value) < 0)
                value = CAP_CLEAR;
        cap_free(caps);
        return value == CAP_SET;
}

/*
 * The bounding set limits what execve() can ever grant. Dropping from it needs
 * CAP_SETPCAP; without it (an unprivileged run, or the unit's empty
 * CapabilityBoundingSet=, where there is nothing left to drop) NO_NEW_PRIVS and the
 * seccomp filter's missing execve make it moot.
 */
static int capabilities_drop_bounding(void) {
        bool may = capability_is_effective(CAP_SETPCAP);
        unsigned kept = 0;

        for (cap_value_t v = 0; v < (cap_value_t) cap_max_bits(); v++) {
                int r = cap_get_bound(v);
                if (r <= 0)
                        continue;
                if (!may) {
                        kept++;
                        continue;
                }
                if (cap_drop_bound(v) < 0)
                        return log_error_errno(negative_errno(), "Failed to drop capability %d from the bounding set: %m",
                                               (int) v);
        }
        if (kept > 0)
                log_debug("No CAP_SETPCAP: %u capabilities stay in the bounding set (harmless with NO_NEW_PRIVS)",
                          kept);
        return 0;
}

int sandbox_capabilities_drop(void) {
        cap_t none = NULL, current = NULL;
        int r;

        r = capabilities_drop_bounding();
        if (r < 0)
                return r;

        /* Ambient first: an ambient capability must also be permitted and inheritable. */
        if (cap_reset_ambient() < 0 && errno != EINVAL)
                return log_error_errno(negative_errno(), "Failed to clear the ambient capabilities: %m");

        none = cap_init();
        current = cap_get_proc();
        if (!none || !current) {
                r = log_oom();
                goto finish;
        }
        /* capset(2) is in the unit's ~@privileged: only call it when there is something to drop. */
        r = 0;
        if (cap_compare(current, none) != 0 && cap_set_proc(none) < 0)
                r = log_error_errno(negative_errno(), "Failed to drop the capabilities: %m");
finish:
        cap_free(none);
        cap_free(current);
        return r;
}

static int capabilities_parse_status(FILE *f, uint64_t *ret_held) {
        static const char *const fields[] = { "CapInh:", "CapPrm:", "CapEff:", "CapAmb:" };
        char line[256];
        uint64_t held = 0;
        unsigned found = 0;

        while (fgets(line, sizeof(line), f)) {
                for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                        size_t n = strlen(fields[i]);
                        uint64_t v;

                        if (strncmp(line, fields[i], n) != 0)
                                continue;
                        if (sscanf(line + n, "%" SCNx64, &v) != 1)
                                return -EBADMSG;
                        held |= v;
                        found++;
                }
        }
        if (found < 3) /* CapAmb: is missing before Linux 4.3 */
                return -EBADMSG;
        *ret_held = held;
        return 0;
}

int sandbox_capabilities_check_threads(void) {
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir("/proc/self/task");
        if (!d)
                return log_error_errno(negative_errno(), "Failed to list our threads in /proc/self/task: %m");

        while ((de = readdir(d))) {
                char path[sizeof("/proc/self/task//status") + sizeof(de->d_name)];
                _cleanup_fclose_ FILE *f = NULL;
                uint64_t held;
                int k;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue; /* the thread just ended */
                k = capabilities_parse_status(f, &held);
                if (k < 0) {
                        r = log_error_errno(k, "Cannot read the capabilities of thread %s: %m", de->d_name);
                        break;
                }
                if (held != 0) {
                        r = log_error_errno(EPERM,
                                            "Thread %s still holds capabilities (0x%" PRIx64 "): it was started "
                                            "before sandbox_drop_capabilities()",
                                            de->d_name, held);
                        break;
                }
        }
        closedir(d);
        return r;
}

/* ---------------------------------------------------------------- seccomp */

/*
 * The system calls the daemon makes once it serves. Found with strace -f
 * (tools/strace-syscalls.sh) on hami-dra-plugin --backend=mock driven by
 * tests/kubelet-sim.py (registration, GetInfo, health stream, prepare/unprepare), a
 * mock-health change, SIGHUP and SIGTERM; checked by running the integration suite
 * with [Sandbox] Seccomp=kill (no SIGSYS). Added from the libraries' sources, not yet
 * traced: sd-bus and polkit (connect/sendmsg/recvmsg, SO_PEERCRED), libcurl (its
 * resolver thread, poll, getaddrinfo's NSS modules), NVML (ioctl, mmap of /dev/nvidia*,
 * /proc/driver/nvidia reads; no GPU here). Everything else fails (EPERM) or kills
 * (SIGSYS): mount, ptrace, execve, fork, namespaces, bpf, kexec, module loading,
 * keyrings, setuid, chown, personality, io_uring, userfaultfd, perf_event_open,
 * process_vm_*, ... Names unknown to this architecture are skipped. Calls with
 * argument checks follow in seccomp_add_conditional().
 */
static const char *const sandbox_syscalls_allowed[] = {
        /* memory (mmap, mprotect: conditional) */
        "brk", "munmap", "mremap", "madvise", "msync", "mincore", "membarrier",
        /* file I/O: config and mock-health files, CDI specs, checkpoints written with
         * fsync + rename, /proc and /sys reads, NVML's device nodes */
        "read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2",
        "pwritev2", "lseek", "close", "close_range", "open", "openat", "openat2", "fstat", "stat",
        "lstat", "newfstatat", "statx", "fstatfs", "statfs", "access", "faccessat", "faccessat2",
        "getdents", "getdents64", "readlink", "readlinkat", "mkdir", "mkdirat", "rename",
        "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "link", "linkat", "symlink",
        "symlinkat", "fsync", "fdatasync", "ftruncate", "fallocate", "fadvise64", "fchmod",
        "fchmodat", "chmod", "umask", "utimensat", "flock", "fcntl", "dup", "dup2", "dup3",
        "pipe", "pipe2", "sendfile", "copy_file_range", "getcwd", "chdir", "fchdir",
        /* journal entries larger than a datagram go out in a sealed memfd */
        "memfd_create",
        /* sd-event: the loop, its signals, timers, inotify on the mock-health file */
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
        "poll", "ppoll", "select", "pselect6", "eventfd", "eventfd2", "signalfd", "signalfd4",
        "timerfd_create", "timerfd_settime", "timerfd_gettime", "inotify_init1",
        "inotify_add_watch", "inotify_rm_watch",
        /* time */
        "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
        "alarm", "getitimer", "setitimer",
        /* signals (kill and tgkill: conditional) */
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending",
        "rt_sigsuspend", "sigaltstack", "restart_syscall",
        /* threads: gRPC's executor and event engine, curl's resolver (clone: conditional) */
        "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
        "exit", "exit_group", "sched_yield", "sched_getaffinity", "sched_getparam",
        "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min", "getpriority",
        "getcpu",
        /* who we are; prctl for thread names (PR_SET_NAME) and PR_CAPBSET_READ */
        "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
        "getresgid", "getgroups", "capget", "prctl", "arch_prctl", "getrlimit", "getrusage",
        "times", "uname", "sysinfo", "getrandom", "wait4", "waitid",
        /* sockets: gRPC on AF_UNIX, sd-bus, sd_notify, journal, curl to the API server
         * (socket, socketpair: conditional) */
        "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
        "getsockopt", "setsockopt", "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg",
        "recvmmsg", "shutdown",
        /* NVML talks to the driver through ioctl on /dev/nvidia*; FIONREAD, TCGETS */
        "ioctl",
};

static int seccomp_add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n_args,
                       const struct scmp_arg_cmp *args) {
        int nr, r;

        nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR)
                return 0; /* no such call on this architecture */
        r = seccomp_rule_add_array(ctx, action, nr, n_args, args);
        if (r < 0 && nr < 0)
                return 0; /* libseccomp's pseudo number for a call this ABI lacks */
        if (r < 0)
                return log_error_errno(r, "Failed to add seccomp rule for %s: %m", name);
        return 0;
}

#define SECCOMP_ADD(ctx, action, name, ...)                                                      \
        seccomp_add(ctx, action, name, ELEMENTSOF(((const struct scmp_arg_cmp[]) { __VA_ARGS__ })), \
                    (const struct scmp_arg_cmp[]) { __VA_ARGS__ })

#define CLONE_NAMESPACES                                                                         \
        (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
         CLONE_NEWCGROUP)

static int seccomp_add_conditional(scmp_filter_ctx ctx) {
        int r = 0;

#ifdef SANDBOX_LEAK_SANITIZER
        /*
         * ASan builds only (tests, never shipped): LeakSanitizer's exit-time check
         * stops the world from a tracer task, a clone() without CLONE_THREAD that
         * ptrace()s every thread. Without these two the tests' leak check dies.
         */
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "clone", SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NAMESPACES, 0));
        r = r ?: seccomp_add(ctx, SCMP_ACT_ALLOW, "ptrace", 0, NULL);
#else
        /* Threads only: CLONE_THREAD set, no namespace flag. No fork, no vfork. */
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "clone",
                             SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_NAMESPACES, CLONE_THREAD));
#endif
        /* clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes
         * glibc's pthread_create fall back to clone, checked above. */
        r = r ?: seccomp_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);

        /*
         * The address families of the unit's RestrictAddressFamilies=. Any other family
         * says EAFNOSUPPORT, also in kill mode, as the unit does: glibc's getaddrinfo()
         * tries an AF_NETLINK socket on every lookup and copes when it is refused.
         */
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "socket", SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "socket", SCMP_A0(SCMP_CMP_EQ, AF_INET));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "socket", SCMP_A0(SCMP_CMP_EQ, AF_INET6));
        for (int af = 0; af < AF_INET6; af++)
                if (af != AF_UNIX && af != AF_INET)
                        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket",
                                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) af));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", SCMP_A0(SCMP_CMP_GT, AF_INET6));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "socketpair", SCMP_A0(SCMP_CMP_EQ, AF_UNIX));

        /*
         * Write or execute, never both (the unit's MemoryDenyWriteExecute=). Executable
         * mappings stay possible because glibc may still dlopen() an NSS module (first
         * host name lookup) or libgcc_s (thread cancellation) after start-up.
         */
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "mmap", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "mmap", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_WRITE, 0));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "mprotect", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "pkey_mprotect", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));

        /* Signals to ourselves only (raise, abort, pthread_kill). */
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "kill", SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) getpid()));
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "tgkill", SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) getpid()));

        /* Read limits (sysconf), never set them. */
        r = r ?: SECCOMP_ADD(ctx, SCMP_ACT_ALLOW, "prlimit64", SCMP_A2(SCMP_CMP_EQ, 0));
        return r;
}

int sandbox_seccomp_install(SeccompAction action) {
        uint32_t deny = action == SECCOMP_ACTION_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(EPERM);
        scmp_filter_ctx ctx;
        int r = 0;

        ctx = seccomp_init(deny);
        if (!ctx)
                return log_oom();

        /* Every thread, gRPC's included, gets the filter; a 32-bit or x32 entry point is denied. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, deny);
        /* A binary search over the allowed calls, not a chain of ~170 compares: the filter
         * runs on every system call of every thread. */
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (r < 0) {
                log_error_errno(r, "Failed to set seccomp filter attributes: %m");
                goto finish;
        }

        for (size_t i = 0; i < ELEMENTSOF(sandbox_syscalls_allowed) && r >= 0; i++)
                r = seccomp_add(ctx, SCMP_ACT_ALLOW, sandbox_syscalls_allowed[i], 0, NULL);
        if (r >= 0)
                r = seccomp_add_conditional(ctx);
        if (r < 0)
                goto finish;

        r = seccomp_load(ctx);
        if (r < 0)
                log_error_errno(r, "Failed to load the seccomp filter: %m");
finish:
        seccomp_release(ctx);
        return r;
}

/* ---------------------------------------------------------------- the whole thing */

int sandbox_drop_capabilities(const Config *c) {
        if (!c->sandbox)
                return 0; /* sandbox_apply() says so, loudly */
        return sandbox_capabilities_drop();
}

int sandbox_apply(const Config *c) {
        int r;

        if (!c->sandbox) {
                log_struct(LOG_WARNING,
                           LOG_MESSAGE("SANDBOX DISABLED (--no-sandbox or [Sandbox] Enabled=no): no "
                                       "capability drop, no seccomp filter. For development only, "
                                       "never on a production node."),
                           LOG_FIELD("SANDBOX=disabled"), NULL);
                return 0;
        }

        r = sandbox_capabilities_drop();
        if (r < 0)
                return r;
        r = sandbox_capabilities_check_threads();
        if (r < 0)
                return r;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(negative_errno(), "Failed to set PR_SET_NO_NEW_PRIVS: %m");
        r = sandbox_seccomp_install(c->seccomp_action);
        if (r < 0)
                return r;
#ifdef SANDBOX_LEAK_SANITIZER
        log_notice("ASan build: ptrace(2) and fork-like clone(2) stay allowed for LeakSanitizer");
#endif

        log_struct(LOG_INFO,
                   LOG_MESSAGE("Sandbox installed: no capabilities, no new privileges, %zu system calls "
                               "allowed, others %s",
                               ELEMENTSOF(sandbox_syscalls_allowed),
                               c->seccomp_action == SECCOMP_ACTION_KILL ? "kill the daemon (SIGSYS)"
                                                                        : "fail with EPERM"),
                   LOG_FIELD("SANDBOX=%s", c->seccomp_action == SECCOMP_ACTION_KILL ? "kill" : "errno"),
                   NULL);
        return 0;
}
