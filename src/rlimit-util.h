/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Raise the soft RLIMIT_NOFILE to the hard limit, as systemd's rlimit_nofile_bump() does
 * for its own daemons. The soft limit of 1,024 exists for select(), whose fd_set cannot
 * hold higher numbers; nothing in this daemon calls select() (gRPC, sd-event, sd-bus and
 * curl's multi-socket interface all use epoll or poll), and it never executes another
 * program that could inherit the higher limit.
 *
 * Call it at start, before the sandbox forbids setrlimit. Returns 1 when raised, 0 when
 * the soft limit already was the hard one, or a negative errno (the limit is unchanged).
 * *ret_limit (may be NULL) gets the soft limit in force afterwards.
 */

#include <stdint.h>

int rlimit_nofile_bump(uint64_t *ret_limit);
