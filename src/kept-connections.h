/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Connections kept open past gRPC during a graceful stop.
 *
 * After its last GOAWAY gRPC's C core shuts an idle connection down at once
 * (shutdown(2), then close(2)). A client that has not read that GOAWAY yet and starts a
 * call on the connection then writes into a closed socket: "Broken pipe", a failed call
 * it cannot retry. Were the socket still open, its write would go through, it would read
 * the GOAWAY, whose last stream ID is below its new stream's, and retry the call on a new
 * connection, which waits in the listening socket's backlog for the next instance.
 *
 * So while kept_connections_begin() is in force, a shutdown(2) that gRPC makes on a
 * connection of one of our listening sockets only takes the socket out of gRPC's epoll
 * sets and keeps a copy of it: gRPC closes its own descriptor, the socket stays open.
 * The copies are closed once their clients have closed their ends, or handed to
 * systemd's file-descriptor store (FileDescriptorStoreMax=) when the daemon exits, where
 * systemd closes each when its client hangs up.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keep the connections of these listening sockets from now on. */
int kept_connections_begin(const int *listen_fds, size_t n_listen_fds);

/* How many connections were kept since kept_connections_begin(). */
size_t kept_connections_total(void);

/* Close the copies whose clients have closed their ends; the number still open. */
size_t kept_connections_reap(void);

/* What is still open goes to systemd's file-descriptor store as "connection" (when
 * NOTIFY_SOCKET is set), then every copy is closed. The number handed over, or a
 * negative errno; without a notify socket 0. */
int kept_connections_end(void);

/* A socket systemd passed back from the store: a connection of an earlier instance. */
bool kept_connection_is_ours(const char *fd_name);
