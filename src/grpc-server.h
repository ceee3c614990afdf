/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The kubelet-facing gRPC endpoints: plugin registration, DRAPlugin v1 and v1beta1,
 * and the DRAResourceHealth stream (v1alpha1 and v1). This module and grpc-proto.c
 * are the only ones that know gRPC core or protobuf-c; the rest of the daemon sees the
 * plain types of dra-types.h and the functions below.
 *
 * Threading: one completion-queue thread forwards finished operations to the sd-event
 * loop, one thread accepts connections and holds each until its HTTP/2 client preface
 * has arrived (GRPC_HANDSHAKE_TIMEOUT_USEC at most, GRPC_HANDSHAKES_MAX at once, and
 * never into the last GRPC_FD_RESERVE fds); every callback below runs on the sd-event
 * thread, and every function here must be called from it. Accepting and GetInfo (from
 * immutable data) never wait for the loop.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "dra-types.h"

/* An in-flight NodePrepareResources or NodeUnprepareResources call. */
typedef struct DraRequest DraRequest;

bool dra_request_is_prepare(const DraRequest *r);
DraApiVersion dra_request_api_version(const DraRequest *r);
size_t dra_request_n_claims(const DraRequest *r);
const DraClaimRef *dra_request_claim(const DraRequest *r, size_t i);

/*
 * Answer for claim i; a later answer replaces an earlier one. set_devices (prepare only)
 * takes ownership of the array and its contents even on failure. set_done is success
 * without devices: what unprepare answers, or a prepared claim with no devices.
 */
int dra_request_set_done(DraRequest *r, size_t i);
int dra_request_set_error(DraRequest *r, size_t i, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
int dra_request_set_devices(DraRequest *r, size_t i, DraDevice *devices, size_t n_devices);

/*
 * Send the reply (claims without an answer get the error "not handled by the driver") and
 * free r. Claims the server rejected itself (no UID, one UID with different names) never
 * reach the callbacks but are answered in the same reply. Every request handed to a
 * callback must be completed exactly once, also after grpc_server_free() (then it is
 * only freed).
 */
void dra_request_complete(DraRequest *r);

typedef struct GrpcServerCallbacks {
        /* NotifyRegistrationStatus from the kubelet. */
        void (*registration_status)(void *userdata, bool registered, const char *error);
        /* Prepare/unprepare: answer now or later with dra_request_complete(). */
        void (*prepare)(void *userdata, DraRequest *r);
        void (*unprepare)(void *userdata, DraRequest *r);
} GrpcServerCallbacks;

typedef struct GrpcServerConfig {
        const char *driver_name;
        const char *registration_socket; /* path the kubelet watches */
        const char *dra_socket;          /* endpoint given in GetInfo */
        int registration_fd;             /* listening fd from systemd, or -1 to bind ourselves */
        int dra_fd;
} GrpcServerConfig;

typedef struct GrpcServer GrpcServer;

/*
 * Calls grpc_init() and starts gRPC's threads: block the signals the daemon handles
 * (pthread_sigmask) before calling this, or gRPC's threads inherit them unblocked.
 * Creates the servers and the CQ thread; binds (or adopts) the DRA socket first, then the
 * registration socket. A *_fd >= 0 is a listening socket from systemd: we own it from
 * this call on, also when the call fails (we close it, never unlink it), and the endpoint
 * in GetInfo is where it really listens. Otherwise we bind the path ourselves (mode 0600, parents created 0755, the DRA socket's
 * own directory 0750), replacing only a dead socket left there, and unlink it on free.
 */
int grpc_server_new(sd_event *e, const GrpcServerConfig *cfg, const GrpcServerCallbacks *cb,
                    void *userdata, GrpcServer **ret);

/* Replace the device-health snapshot (copied); every open NodeWatchResources stream gets
 * it. Streams opened before the first snapshot wait for it. */
int grpc_server_set_health(GrpcServer *s, const DraDeviceHealth *devices, size_t n);

/* Counters for STATUS= and D-Bus. */
typedef struct GrpcServerStats {
        uint64_t calls;            /* calls received since start, on both sockets */
        uint64_t get_info_calls;   /* GetInfo answered since start */
        uint64_t connections;      /* connections accepted since start */
        uint64_t connections_dropped; /* of those, closed before their HTTP/2 preface arrived */
        unsigned health_streams;   /* NodeWatchResources streams open now */
        unsigned calls_in_flight;  /* calls not finished yet, streams included */
} GrpcServerStats;
void grpc_server_get_stats(const GrpcServer *s, GrpcServerStats *ret);

/*
 * The graceful stop, on the event loop, so that a restart loses no call: stop accepting
 * (new connections wait in systemd's backlog for the next instance), serve the calls on
 * the connections we have until they are quiet (100 ms without one, at most 1 s), send
 * GOAWAY (clients retry new calls on a new connection, in the backlog), and let the calls
 * running finish (at most 30 s). Then done(userdata) runs, once; the daemon exits and
 * grpc_server_free() cancels whatever is left. -EALREADY when stopping already.
 */
typedef void (*GrpcServerStopped)(void *userdata);
int grpc_server_stop(GrpcServer *s, GrpcServerStopped done, void *userdata);

/* Shutdown in gRPC's order: stop accepting, end all calls (requests the daemon still
 * holds are answered UNAVAILABLE and orphaned), drain the queue without running callbacks,
 * join the thread, grpc_shutdown. Unlinks sockets we bound ourselves, never systemd's. */
GrpcServer *grpc_server_free(GrpcServer *s);
