/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The daemon's own sandbox, the second layer under the unit's: no capabilities, no
 * new privileges, and a seccomp allowlist of the system calls the running daemon
 * makes. It is installed once start-up is complete (sockets bound, bus connected,
 * NVML loaded), so it only has to allow what serving needs.
 *
 * Capabilities belong to threads, not processes: each thread keeps the set it was
 * created with. So the manager drops them twice:
 *
 *   manager_start():  sandbox_drop_capabilities(&config)  first, before any thread
 *   ...               gRPC, NVML, sd-bus start (threads inherit the empty sets)
 *                     sandbox_apply(&config)  last, before READY=1
 *
 * sandbox_apply() drops them again in the calling thread, checks that no thread of
 * the process still holds one, and loads the seccomp filter into every thread
 * (SECCOMP_FILTER_FLAG_TSYNC). With Config.sandbox false (--no-sandbox,
 * [Sandbox] Enabled=no) both only log a loud warning.
 */

#include "conf.h"

/* ASan builds (with LeakSanitizer) allow ptrace and fork-like clone: see sandbox.c. */
#if defined(__SANITIZE_ADDRESS__)
#  define SANDBOX_LEAK_SANITIZER 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define SANDBOX_LEAK_SANITIZER 1
#  endif
#endif

/* Clear the effective, permitted, inheritable and ambient sets and, when we may
 * (CAP_SETPCAP), the bounding set of the calling thread. */
int sandbox_drop_capabilities(const Config *c);

/* Capabilities again, every thread checked, PR_SET_NO_NEW_PRIVS, the seccomp filter. */
int sandbox_apply(const Config *c);

/* The pieces, for tests. */
int sandbox_capabilities_drop(void);
int sandbox_capabilities_check_threads(void); /* -EPERM when a thread still holds one */
int sandbox_seccomp_install(SeccompAction action);
