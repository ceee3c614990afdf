/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Two gRPC servers (registration, DRA) on one completion queue, drained by one
 * thread. An accept thread takes connections and hands each fd to gRPC, which is the
 * only way to serve a listening socket systemd passed us (gRPC cannot adopt one).
 * gRPC serves such an fd without a handshake deadline (GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS
 * covers only sockets it listens on itself), so the accept thread keeps each connection
 * until the client's HTTP/2 preface has arrived: one that sends none within
 * GRPC_HANDSHAKE_TIMEOUT_USEC is closed, and at most a bounded number wait at once
 * (the oldest gives way to a new one), so stalled clients cannot take the fds the
 * kubelet's next connection needs.
 *
 * The CQ thread answers GetInfo, unknown methods and over-limit calls itself, so with
 * the accept thread the kubelet's 1 s GetInfo deadline holds however busy the main loop
 * is. Everything else is posted to the sd-event thread through a mutex-protected list
 * and an eventfd; the main loop also cancels calls whose request message stalls.
 */

#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "grpc-proto.h"
#include "grpc-server.h"
#include "kept-connections.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"
#include "unix-socket.h"

#define GRPC_MAX_RECEIVE_BYTES (4 * 1024 * 1024)
#define GRPC_MAX_CONCURRENT_STREAMS 64
#define GRPC_CALLS_IN_FLIGHT_MAX 1024U   /* per budget (GetInfo, the rest); then RESOURCE_EXHAUSTED */
#define GRPC_READ_TIMEOUT_USEC (30 * 1000 * 1000ULL) /* a request message must arrive by then */
#define GRPC_SWEEP_INTERVAL_USEC (5 * 1000 * 1000ULL)
#define GRPC_HEALTH_STREAMS_MAX 16U      /* a kubelet opens one */
#define GRPC_SHUTDOWN_GRACE_USEC (2 * 1000 * 1000ULL) /* running calls may finish before we cancel */
#define GRPC_STOP_GRACE_USEC (30 * 1000 * 1000ULL)  /* a graceful stop waits this long for running calls */
#define GRPC_STOP_POLL_USEC (5 * 1000ULL)           /* how often a graceful stop looks again */
#define GRPC_STOP_SETTLE_USEC (20 * 1000ULL)        /* after a GOAWAY, before answers on another socket */
#define GRPC_STOP_LINGER_USEC (500 * 1000ULL)       /* all answered: the clients close (ms), or this */
#define GRPC_STOP_READ_TIMEOUT_USEC (1000 * 1000ULL) /* stopping: a request message must come by then */
#define GRPC_DRAIN_QUIET_USEC (100 * 1000ULL)       /* no call for this long: the connections are idle */
#define GRPC_DRAIN_QUIET_REGISTRATION_USEC (20 * 1000ULL) /* GetInfo is answered at once: a shorter wait */
#define GRPC_DRAIN_MAX_USEC (1000 * 1000ULL)        /* ...or stop draining after this long */
#define GRPC_HOLD_MAX_REGISTRATION_USEC (300 * 1000ULL) /* GetInfo has a 1 s deadline: never hold it longer */
#define GRPC_ARMED_REQUESTS 8            /* request_call kept armed per server */
#define ACCEPT_RETRY_USEC (100 * 1000ULL)            /* pause a socket after EMFILE and friends */
#define GRPC_HANDSHAKE_TIMEOUT_USEC (5 * 1000 * 1000ULL) /* the client's HTTP/2 preface must arrive by then */
#define GRPC_HANDSHAKES_MAX 1024U        /* connections waiting for their preface, both sockets */
#define GRPC_FD_RESERVE 256U             /* fds never used for connections: claims, NVML, D-Bus, curl */
#define ACCEPT_LOG_INTERVAL_USEC (10 * 1000 * 1000ULL) /* at most one line about dropped connections */
#define SOCKET_MODE 0600                 /* only the kubelet (root) and we may connect */

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

typedef enum TagKind {
        TAG_CALL,
        TAG_STREAM_WRITE,
        TAG_STREAM_CLOSE,
        TAG_SERVER_SHUTDOWN,
        TAG_QUIT,
} TagKind;

/* A completion-queue tag; also the link in the queue to the main thread. */
typedef struct Tag {
        TagKind kind;
        bool ok;
        struct Tag *next;
} Tag;

typedef enum CallState {
        CALL_REQUESTED, /* request_call armed */
        CALL_READING,   /* receiving the request message */
        CALL_HANDLING,  /* owned by the main thread (or a health stream) */
        CALL_FINISHING, /* final batch started; freed on its completion */
} CallState;

typedef struct Listener Listener;
typedef struct HealthStream HealthStream;

typedef struct Call {
        Tag tag;
        Listener *listener;
        CallState state;
        GrpcMethod method;
        bool arrived;
        bool get_info_budget;
        bool timed_out;
        uint64_t read_started;           /* CLOCK_MONOTONIC usec; while in the reading list */
        struct Call *reading_next, *reading_prev;
        struct Call *held_next;          /* held while a graceful stop quiets the connections */
        uint64_t held_since;             /* CLOCK_MONOTONIC usec */
        bool hold_over;                  /* released while its socket is still held: answer it */
        bool held_answer;                /* ...with its answer ready: */
        grpc_status_code held_status;
        grpc_slice held_reply;           /* owned; empty without a message */
        bool held_has_reply;
        grpc_call *call;
        grpc_call_details details;
        grpc_metadata_array request_metadata;
        grpc_byte_buffer *request;
        grpc_byte_buffer *response;
        grpc_slice status_details;
        int cancelled;
} Call;

/* A graceful stop takes the DRA socket first, then the registration socket: GetInfo is
 * served on the kubelet's connection until the last prepare is answered. */
typedef enum GrpcStopPhase {
        STOP_NONE,
        STOP_QUIETING_DRA,      /* no more connections; calls held until both sockets are quiet */
        STOP_SETTLING_DRA,      /* GOAWAY on the DRA socket; GetInfo still held, so that no
                                   client starts a DRA call before it has read the GOAWAY */
        STOP_FINISHING_DRA,     /* prepares running finish; GetInfo served again */
        STOP_QUIETING_REGISTRATION,
        STOP_FINISHING,         /* GOAWAY on both: the last calls finish */
        STOP_DONE,
} GrpcStopPhase;

struct Listener {
        GrpcServer *server;
        GrpcSocketKind kind;
        const char *name;
        grpc_server *grpc;
        Tag shutdown_tag;
        int fd;
        bool bound_by_us;
        char *path;
        UnixSocketFile file;
        bool holding;                    /* under the server's held_lock: calls are held, not answered */
        struct Call *held;
        atomic_uint_fast64_t last_arrival_usec; /* CLOCK_MONOTONIC: quiet before GOAWAY */
        bool gone_away;                  /* shutdown_and_notify() called */
        bool paused;                     /* accept thread only: out of fds, retry at resume_usec */
        bool pause_logged;
        uint64_t resume_usec;
};

/* An accepted connection whose HTTP/2 client preface has not arrived yet (accept thread only). */
typedef struct Handshake {
        int fd;
        Listener *listener;
        uint64_t deadline;               /* CLOCK_MONOTONIC usec */
        struct Handshake *next, *prev;   /* newest first */
} Handshake;

struct HealthStream {
        Tag write_tag;
        Tag close_tag;
        GrpcServer *server;
        Call *call;
        grpc_byte_buffer *message;
        bool metadata_sent;
        bool write_pending;
        bool close_pending;
        bool dirty;
        bool closed;
        HealthStream *next, *prev;
};

typedef struct ClaimAnswerSlot {
        char *error;
        DraDevice *devices;
        size_t n_devices;
        bool answered;
} ClaimAnswerSlot;

struct DraRequest {
        GrpcServer *server; /* NULL once grpc_server_free() orphaned us */
        Call *call;
        GrpcMethod method;
        DraClaimList claims;
        ClaimAnswerSlot *answers;
        DraRequest *next, *prev;
};

struct GrpcServer {
        sd_event *event;
        GrpcServerCallbacks cb;
        void *userdata;

        grpc_completion_queue *cq;
        grpc_server_credentials *creds;
        Listener listeners[2]; /* indexed by GrpcSocketKind */
        pthread_t cq_thread;
        bool cq_thread_started;
        pthread_t accept_thread;
        bool accept_thread_started;
        int accept_stop_fd;
        int accept_epoll_fd;

        /* The accept thread's alone. */
        Handshake *handshakes, *oldest_handshake;
        unsigned n_handshakes;
        unsigned handshakes_max;
        unsigned connection_fds_max;     /* an accepted fd numbered this or above is over the reserve */
        uint64_t timed_out, evicted, refused; /* not yet logged */
        uint64_t dropped_logged_usec;
        bool grpc_initialized;
        grpc_slice plugin_info; /* immutable after new(): read by the CQ thread */

        pthread_mutex_t queue_lock;
        Tag *queue_head, **queue_tail;
        int queue_fd;
        sd_event_source *queue_source;
        Tag quit_tag;
        bool quit;

        atomic_bool shutting_down;       /* grpc_server_free(): no more callbacks */
        atomic_bool accept_stopped;      /* the accept thread is gone; hand waiting connections over */
        pthread_mutex_t held_lock;
        atomic_uint servers_down;
        GrpcStopPhase stop_phase;        /* grpc_server_stop(), on the event loop */
        uint64_t stop_start_usec, stop_phase_usec, stop_answered_usec;
        sd_event_source *stop_timer;
        GrpcServerStopped stop_done;
        void *stop_userdata;
        unsigned n_servers;

        grpc_slice health[2]; /* [0] v1alpha1, [1] v1 */
        bool have_health;
        HealthStream *streams;
        unsigned n_streams;
        DraRequest *requests;

        atomic_uint_fast64_t calls;
        atomic_uint_fast64_t get_info_calls;
        atomic_uint_fast64_t connections;
        atomic_uint_fast64_t connections_dropped;
        atomic_uint calls_in_flight;
        atomic_uint get_info_in_flight;
        atomic_uint_fast64_t last_arrival_usec; /* CLOCK_MONOTONIC: for the drain before shutdown */

        /* Calls waiting for their request message: the main loop cancels those that stall. */
        pthread_mutex_t reading_lock;
        Call *reading;
        sd_event_source *sweep_source;
};

/* ---- calls (any thread) ---- */

static void call_free(Call *c) {
        if (!c)
                return;
        if (c->call)
                grpc_call_unref(c->call);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->request_metadata);
        if (c->request)
                grpc_byte_buffer_destroy(c->request);
        if (c->response)
                grpc_byte_buffer_destroy(c->response);
        grpc_slice_unref(c->status_details);
        if (c->arrived)
                atomic_fetch_sub(&c->listener->server->calls_in_flight, 1);
        if (c->get_info_budget)
                atomic_fetch_sub(&c->listener->server->get_info_in_flight, 1);
        free(c);
}

static void call_arm(Listener *l) {
        Call *c;
        grpc_call_error e;

        /*
         * Keep requests armed through a graceful shutdown: a call that arrives before the
         * client saw our GOAWAY and finds none armed would wait inside gRPC and be cancelled
         * at the end. Only the CQ thread re-arms, and it alone shuts the queue down once
         * every server has: so this never arms on a shut-down queue.
         */
        if (atomic_load(&l->server->servers_down) >= l->server->n_servers)
                return;
        c = calloc(1, sizeof(Call));
        if (!c) {
                log_oom();
                return;
        }
        *c = (Call) {
                .tag.kind = TAG_CALL,
                .listener = l,
                .state = CALL_REQUESTED,
                .method = _GRPC_METHOD_INVALID,
                .status_details = grpc_empty_slice(),
        };
        grpc_call_details_init(&c->details);
        grpc_metadata_array_init(&c->request_metadata);
        e = grpc_server_request_call(l->grpc, &c->call, &c->details, &c->request_metadata, l->server->cq,
                                     l->server->cq, &c->tag);
        if (e != GRPC_CALL_OK) {
                log_error("Failed to arm a gRPC request on the %s socket: %s", l->name,
                          grpc_call_error_to_string(e));
                call_free(c);
        }
}

/* Everything the server still has to do for a unary call, in one batch. Takes `reply`. */
static bool call_hold_answer(Call *c, grpc_status_code status, grpc_slice *reply, const char *message);

static void call_finish(Call *c, grpc_status_code status, grpc_slice *reply, const char *message) {
        grpc_op ops[4] = {};
        size_t n = 0;
        grpc_call_error e;

        if (call_hold_answer(c, status, reply, message))
                return;

        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        if (reply && status == GRPC_STATUS_OK) {
                c->response = grpc_raw_byte_buffer_create(reply, 1);
                ops[n].op = GRPC_OP_SEND_MESSAGE;
                ops[n++].data.send_message.send_message = c->response;
        }
        if (reply)
                grpc_slice_unref(*reply);
        if (message) {
                grpc_slice_unref(c->status_details);
                c->status_details = grpc_slice_from_copied_string(message);
        }
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = status;
        ops[n++].data.send_status_from_server.status_details = message ? &c->status_details : NULL;
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;

        c->state = CALL_FINISHING;
        e = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
        if (e != GRPC_CALL_OK) {
                log_debug("Failed to finish a gRPC call: %s", grpc_call_error_to_string(e));
                call_free(c);
        }
}

static void call_finish_bytes(Call *c, uint8_t *buf, size_t size) {
        grpc_slice s = grpc_slice_new(buf, size, free);
        call_finish(c, GRPC_STATUS_OK, &s, NULL);
}

static grpc_status_code status_from_errno(int r) {
        switch (-r) {
        case E2BIG:
        case ENOMEM:
                return GRPC_STATUS_RESOURCE_EXHAUSTED;
        case EBADMSG:
        case EINVAL:
        case ENAMETOOLONG:
                return GRPC_STATUS_INVALID_ARGUMENT;
        default:
                return GRPC_STATUS_INTERNAL;
        }
}

static const char *message_from_errno(int r) {
        switch (-r) {
        case E2BIG:
                return "request too large: too many claims or fields";
        case EBADMSG:
                return "request is not a valid protobuf message";
        case ENAMETOOLONG:
                return "a claim namespace, name or UID is too long";
        case EINVAL:
                return "a claim namespace, name or UID holds invalid characters";
        case ENOMEM:
                return "out of memory";
        default:
                return "internal error";
        }
}

/* The request message as one contiguous slice (gRPC may hand it over in pieces). */
static grpc_slice call_request_bytes(Call *c) {
        grpc_byte_buffer_reader reader;
        grpc_slice s;

        if (!grpc_byte_buffer_reader_init(&reader, c->request))
                return grpc_empty_slice();
        s = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        return s;
}

/* ---- the CQ thread ---- */

static void queue_post(GrpcServer *s, Tag *t) {
        uint64_t one = 1;

        t->next = NULL;
        pthread_mutex_lock(&s->queue_lock);
        *s->queue_tail = t;
        s->queue_tail = &t->next;
        pthread_mutex_unlock(&s->queue_lock);
        if (write(s->queue_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                log_error_errno(-errno, "Failed to wake the main loop: %m");
}

static void call_answer_get_info(Call *c) {
        GrpcServer *s = c->listener->server;
        grpc_slice in = call_request_bytes(c);
        int r;

        r = grpc_proto_decode_empty(GRPC_METHOD_GET_INFO, GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in));
        grpc_slice_unref(in);
        if (r < 0)
                return call_finish(c, status_from_errno(r), NULL, message_from_errno(r));

        atomic_fetch_add(&s->get_info_calls, 1);
        grpc_slice reply = grpc_slice_ref(s->plugin_info);
        call_finish(c, GRPC_STATUS_OK, &reply, NULL);
}

static void reading_add(GrpcServer *s, Call *c) {
        pthread_mutex_lock(&s->reading_lock);
        c->read_started = now_usec();
        LIST_PREPEND_FIELDS(reading_next, reading_prev, s->reading, c);
        pthread_mutex_unlock(&s->reading_lock);
}

static void reading_remove(GrpcServer *s, Call *c) {
        pthread_mutex_lock(&s->reading_lock);
        LIST_REMOVE_FIELDS(reading_next, reading_prev, s->reading, c);
        pthread_mutex_unlock(&s->reading_lock);
}

/* GetInfo has its own budget, so calls stalled on the DRA socket never starve the kubelet's poll. */
static bool call_over_budget(GrpcServer *s, Call *c) {
        unsigned all = atomic_fetch_add(&s->calls_in_flight, 1) + 1;

        c->arrived = true;
        if (c->method == GRPC_METHOD_GET_INFO) {
                c->get_info_budget = true;
                return atomic_fetch_add(&s->get_info_in_flight, 1) >= GRPC_CALLS_IN_FLIGHT_MAX;
        }
        return all - atomic_load(&s->get_info_in_flight) > GRPC_CALLS_IN_FLIGHT_MAX;
}

static void call_on_arrival(Call *c) {
        Listener *l = c->listener;
        GrpcServer *s = l->server;
        grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };
        grpc_call_error e;

        call_arm(l); /* keep the armed count constant */
        atomic_fetch_add(&s->calls, 1);
        atomic_store(&s->last_arrival_usec, now_usec());
        atomic_store(&l->last_arrival_usec, now_usec());

        c->method = grpc_method_from_path(l->kind, (const char *) GRPC_SLICE_START_PTR(c->details.method),
                                          GRPC_SLICE_LENGTH(c->details.method));
        if (call_over_budget(s, c))
                return call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "too many calls in flight");
        if (c->method < 0)
                return call_finish(c, GRPC_STATUS_UNIMPLEMENTED, NULL, "unknown method");

        op.data.recv_message.recv_message = &c->request;
        c->state = CALL_READING;
        reading_add(s, c);
        e = grpc_call_start_batch(c->call, &op, 1, &c->tag, NULL);
        if (e != GRPC_CALL_OK) {
                log_debug("Failed to read a gRPC request: %s", grpc_call_error_to_string(e));
                reading_remove(s, c);
                call_free(c);
        }
}

/* A call whose request message is here: GetInfo is answered on this thread, the rest on the main loop. */
static void call_answer(Call *c) {
        if (c->method == GRPC_METHOD_GET_INFO)
                return call_answer_get_info(c);
        c->state = CALL_HANDLING;
        queue_post(c->listener->server, &c->tag);
}

/*
 * While a graceful stop quiets the connections, a call that arrives is held, not answered:
 * its client (the kubelet waits for its answers) sends nothing more, so the connections
 * fall silent and GOAWAY can go out with no new call on its way. The held calls are
 * answered right after the GOAWAY, which their clients read first: their next calls go
 * to the next instance. gRPC cancels calls that arrive after its shutdown instead of
 * letting their clients retry them, so this is what makes a restart lose none.
 */
static bool call_hold(GrpcServer *s, Call *c) {
        Listener *l = c->listener;
        bool held;

        pthread_mutex_lock(&s->held_lock);
        held = l->holding;
        if (held) {
                c->held_next = l->held;
                c->held_since = now_usec();
                l->held = c;
        }
        pthread_mutex_unlock(&s->held_lock);
        return held;
}

/*
 * An answer ready while its socket is being quieted waits too: a client that got it would
 * send its next call at once, on a connection about to get GOAWAY. (The status message of
 * a held answer is kept in status_details, as call_finish() keeps it.)
 */
static bool call_hold_answer(Call *c, grpc_status_code status, grpc_slice *reply, const char *message) {
        GrpcServer *s = c->listener->server;
        bool held;

        pthread_mutex_lock(&s->held_lock);
        held = c->listener->holding && !c->hold_over;
        if (held) {
                c->held_answer = true;
                c->held_status = status;
                c->held_has_reply = reply;
                c->held_reply = reply ? *reply : grpc_empty_slice();
                if (message) {
                        grpc_slice_unref(c->status_details);
                        c->status_details = grpc_slice_from_copied_string(message);
                }
                c->held_next = c->listener->held;
                c->held_since = now_usec();
                c->listener->held = c;
        }
        pthread_mutex_unlock(&s->held_lock);
        return held;
}

static void call_release(Call *c) {
        _cleanup_free_ char *message = NULL;

        if (!c->held_answer)
                return call_answer(c);
        c->held_answer = false;
        if (GRPC_SLICE_LENGTH(c->status_details) > 0)
                message = strndup((const char *) GRPC_SLICE_START_PTR(c->status_details),
                                  GRPC_SLICE_LENGTH(c->status_details));
        call_finish(c, c->held_status, c->held_has_reply ? &c->held_reply : NULL, message);
}

static void listener_hold(Listener *l) {
        pthread_mutex_lock(&l->server->held_lock);
        l->holding = true;
        pthread_mutex_unlock(&l->server->held_lock);
}

/* Answer a list of calls taken off a listener's held list (linked by held_next). */
static void calls_release(Call *c) {
        for (Call *next; c; c = next) {
                next = c->held_next;
                call_release(c);
        }
}

static void listener_release(Listener *l) {
        Call *c;

        pthread_mutex_lock(&l->server->held_lock);
        l->holding = false;
        c = l->held;
        l->held = NULL;
        pthread_mutex_unlock(&l->server->held_lock);
        calls_release(c);
}

/*
 * The kubelet gives GetInfo 1 s, and quieting a socket may take that long: a call held for
 * GRPC_HOLD_MAX_REGISTRATION_USEC is answered while its socket is still held. Its client's
 * next call is a DRA call, held in turn while the DRA socket is quieted, or sent after the
 * DRA GOAWAY to the next instance.
 */
static void listener_release_overdue(Listener *l, uint64_t now, uint64_t max_usec) {
        Call *c, *overdue = NULL, **keep;

        pthread_mutex_lock(&l->server->held_lock);
        for (keep = &l->held; (c = *keep);)
                if (now - c->held_since >= max_usec) {
                        c->hold_over = true;
                        *keep = c->held_next;
                        c->held_next = overdue;
                        overdue = c;
                } else
                        keep = &c->held_next;
        pthread_mutex_unlock(&l->server->held_lock);
        calls_release(overdue);
}

static void call_on_event(Call *c, bool ok) {
        switch (c->state) {
        case CALL_REQUESTED:
                if (!ok) /* server shutting down */
                        return call_free(c);
                return call_on_arrival(c);
        case CALL_READING:
                reading_remove(c->listener->server, c);
                if (!ok)
                        return call_free(c);
                if (!c->request)
                        return call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "no request message");
                if (call_hold(c->listener->server, c))
                        return;
                return call_answer(c);
        case CALL_FINISHING:
                return call_free(c);
        case CALL_HANDLING:
                break;
        }
        log_error("Unexpected completion for a gRPC call being handled.");
}

static void *cq_thread(void *userdata) {
        GrpcServer *s = userdata;

        for (;;) {
                grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                Tag *t;

                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                        break;
                if (ev.type != GRPC_OP_COMPLETE)
                        continue;
                t = ev.tag;
                t->ok = ev.success;
                switch (t->kind) {
                case TAG_CALL:
                        call_on_event((Call *) t, t->ok);
                        break;
                case TAG_SERVER_SHUTDOWN:
                        if (atomic_fetch_add(&s->servers_down, 1) + 1 == s->n_servers)
                                grpc_completion_queue_shutdown(s->cq);
                        break;
                default:
                        queue_post(s, t);
                }
        }
        queue_post(s, &s->quit_tag);
        return NULL;
}

/* ---- DRA requests (main thread) ---- */

static void devices_free(DraDevice *devices, size_t n) {
        for (size_t i = 0; i < n; i++)
                dra_device_done(&devices[i]);
        free(devices);
}

bool dra_request_is_prepare(const DraRequest *r) {
        return grpc_method_is_prepare(r->method);
}

DraApiVersion dra_request_api_version(const DraRequest *r) {
        return grpc_method_api_version(r->method);
}

size_t dra_request_n_claims(const DraRequest *r) {
        return r->claims.n_claims;
}

const DraClaimRef *dra_request_claim(const DraRequest *r, size_t i) {
        return i < r->claims.n_claims ? &r->claims.claims[i] : NULL;
}

static void answer_slot_clear(ClaimAnswerSlot *a) {
        a->error = mfree(a->error);
        devices_free(a->devices, a->n_devices);
        a->devices = NULL;
        a->n_devices = 0;
        a->answered = false;
}

int dra_request_set_error(DraRequest *r, size_t i, const char *format, ...) {
        va_list ap;
        char *e;
        int k;

        if (i >= r->claims.n_claims)
                return -ERANGE;
        va_start(ap, format);
        k = vasprintf(&e, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        answer_slot_clear(&r->answers[i]);
        r->answers[i].error = isempty(e) ? mfree(e) : e;
        if (!r->answers[i].error)
                r->answers[i].error = strdup("unknown error");
        r->answers[i].answered = true;
        return 0;
}

int dra_request_set_devices(DraRequest *r, size_t i, DraDevice *devices, size_t n_devices) {
        if (i >= r->claims.n_claims || !grpc_method_is_prepare(r->method)) {
                devices_free(devices, n_devices);
                return i >= r->claims.n_claims ? -ERANGE : -EINVAL;
        }
        answer_slot_clear(&r->answers[i]);
        r->answers[i].devices = devices;
        r->answers[i].n_devices = n_devices;
        r->answers[i].answered = true;
        return 0;
}

int dra_request_set_done(DraRequest *r, size_t i) {
        if (i >= r->claims.n_claims)
                return -ERANGE;
        answer_slot_clear(&r->answers[i]);
        r->answers[i].answered = true;
        return 0;
}

static DraRequest *dra_request_free(DraRequest *r) {
        if (!r)
                return NULL;
        if (r->server)
                LIST_REMOVE(r->server->requests, r);
        for (size_t i = 0; i < r->claims.n_claims; i++)
                answer_slot_clear(&r->answers[i]);
        free(r->answers);
        dra_claim_list_done(&r->claims);
        call_free(r->call);
        return mfree(r);
}

static int dra_request_encode(DraRequest *r, uint8_t **ret, size_t *ret_size) {
        size_t n = r->claims.n_claims + r->claims.n_rejected, k = 0;
        _cleanup_free_ DraClaimAnswer *answers = calloc(MAX(n, 1U), sizeof(DraClaimAnswer));

        if (!answers)
                return -ENOMEM;
        for (size_t i = 0; i < r->claims.n_claims; i++) {
                const ClaimAnswerSlot *a = &r->answers[i];
                answers[k++] = (DraClaimAnswer) {
                        .uid = r->claims.claims[i].uid,
                        .error = a->answered ? a->error : "not handled by the driver",
                        .devices = a->devices,
                        .n_devices = a->n_devices,
                };
        }
        for (size_t i = 0; i < r->claims.n_rejected; i++)
                answers[k++] = (DraClaimAnswer) {
                        .uid = r->claims.rejected[i].uid,
                        .error = r->claims.rejected[i].error,
                };

        if (grpc_method_is_prepare(r->method))
                return grpc_proto_encode_prepare_response(grpc_method_api_version(r->method), answers, n, ret,
                                                          ret_size);
        return grpc_proto_encode_unprepare_response(grpc_method_api_version(r->method), answers, n, ret,
                                                    ret_size);
}

void dra_request_complete(DraRequest *r) {
        uint8_t *buf;
        size_t size;
        int k;

        if (!r)
                return;
        if (r->server && r->call) {
                Call *c = TAKE_PTR(r->call);
                k = dra_request_encode(r, &buf, &size);
                if (k < 0)
                        call_finish(c, status_from_errno(k), NULL, "failed to encode the response");
                else
                        call_finish_bytes(c, buf, size);
        }
        dra_request_free(r);
}

static void call_handle_claims(GrpcServer *s, Call *c) {
        _cleanup_(dra_claim_list_done) DraClaimList claims = {};
        grpc_slice in = call_request_bytes(c);
        DraRequest *r;
        int k;

        k = grpc_proto_decode_claims(c->method, GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in), &claims);
        grpc_slice_unref(in);
        if (k < 0)
                return call_finish(c, status_from_errno(k), NULL, message_from_errno(k));

        r = calloc(1, sizeof(DraRequest));
        if (r)
                r->answers = calloc(MAX(claims.n_claims, 1U), sizeof(ClaimAnswerSlot));
        if (!r || !r->answers) {
                free(r);
                return call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
        }
        r->server = s;
        r->call = c;
        r->method = c->method;
        r->claims = claims;
        claims = (DraClaimList) {};
        LIST_PREPEND(s->requests, r);

        void (*handler)(void *, DraRequest *) = grpc_method_is_prepare(r->method) ? s->cb.prepare : s->cb.unprepare;
        if (!handler || r->claims.n_claims == 0)
                return dra_request_complete(r);
        handler(s->userdata, r);
}

static void call_handle_registration_status(GrpcServer *s, Call *c) {
        _cleanup_free_ char *error = NULL;
        grpc_slice in = call_request_bytes(c);
        uint8_t *buf;
        size_t size;
        bool registered;
        int k;

        k = grpc_proto_decode_registration_status(GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in),
                                                  &registered, &error);
        grpc_slice_unref(in);
        if (k < 0)
                return call_finish(c, status_from_errno(k), NULL, message_from_errno(k));

        /* Always OK: an error reply makes the kubelet report a registration it did store as failed. */
        k = grpc_proto_encode_empty(&buf, &size);
        if (k < 0)
                call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
        else
                call_finish_bytes(c, buf, size);

        if (s->cb.registration_status)
                s->cb.registration_status(s->userdata, registered, error);
}

/* ---- health streams (main thread) ---- */

static void stream_free(HealthStream *h) {
        GrpcServer *s = h->server;

        LIST_REMOVE(s->streams, h);
        s->n_streams--;
        if (h->message)
                grpc_byte_buffer_destroy(h->message);
        call_free(h->call);
        free(h);
}

static void stream_send(HealthStream *h) {
        GrpcServer *s = h->server;
        grpc_slice *snapshot = &s->health[h->call->method == GRPC_METHOD_WATCH_HEALTH_V1];
        grpc_op ops[2] = {};
        size_t n = 0;
        grpc_call_error e;

        if (h->closed || !s->have_health)
                return;
        if (h->write_pending) {
                h->dirty = true;
                return;
        }
        if (h->message)
                grpc_byte_buffer_destroy(h->message);
        h->message = grpc_raw_byte_buffer_create(snapshot, 1);
        if (!h->metadata_sent)
                ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = h->message;

        e = grpc_call_start_batch(h->call->call, ops, n, &h->write_tag, NULL);
        if (e != GRPC_CALL_OK) {
                log_debug("Failed to send device health: %s", grpc_call_error_to_string(e));
                return;
        }
        h->metadata_sent = true;
        h->write_pending = true;
        h->dirty = false;
}

static void stream_start(GrpcServer *s, Call *c) {
        grpc_slice in = call_request_bytes(c);
        grpc_op op = { .op = GRPC_OP_RECV_CLOSE_ON_SERVER };
        HealthStream *h;
        int k;

        k = grpc_proto_decode_empty(c->method, GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in));
        grpc_slice_unref(in);
        if (k < 0)
                return call_finish(c, status_from_errno(k), NULL, message_from_errno(k));
        if (s->n_streams >= GRPC_HEALTH_STREAMS_MAX)
                return call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "too many health streams");

        h = calloc(1, sizeof(HealthStream));
        if (!h)
                return call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
        h->write_tag.kind = TAG_STREAM_WRITE;
        h->close_tag.kind = TAG_STREAM_CLOSE;
        h->server = s;
        h->call = c;
        LIST_PREPEND(s->streams, h);
        s->n_streams++;

        /* Completes when the client goes away or we cancel the call at shutdown. */
        op.data.recv_close_on_server.cancelled = &c->cancelled;
        if (grpc_call_start_batch(c->call, &op, 1, &h->close_tag, NULL) != GRPC_CALL_OK) {
                stream_free(h);
                return;
        }
        h->close_pending = true;
        stream_send(h);
}

static void stream_on_event(GrpcServer *s, Tag *t) {
        HealthStream *h;

        if (t->kind == TAG_STREAM_WRITE) {
                h = container_of(t, HealthStream, write_tag);
                h->write_pending = false;
                if (!t->ok)
                        h->closed = true;
                else if (h->dirty)
                        stream_send(h);
        } else {
                h = container_of(t, HealthStream, close_tag);
                h->close_pending = false;
                h->closed = true;
        }
        if (!h->closed)
                return;
        if (h->close_pending) /* a write failed: cancel, so that RECV_CLOSE_ON_SERVER completes */
                grpc_call_cancel(h->call->call, NULL);
        else if (!h->write_pending)
                stream_free(h);
        /* else the pending write completes, with ok=false, soon */
}

int grpc_server_set_health(GrpcServer *s, const DraDeviceHealth *devices, size_t n) {
        uint8_t *buf[2] = {};
        size_t size[2];
        int r;

        for (int v = 0; v < 2; v++) {
                r = grpc_proto_encode_health(v ? GRPC_METHOD_WATCH_HEALTH_V1 : GRPC_METHOD_WATCH_HEALTH_V1ALPHA1,
                                             devices, n, &buf[v], &size[v]);
                if (r < 0) {
                        free(buf[0]);
                        return log_error_errno(r, "Failed to encode device health: %m");
                }
        }
        for (int v = 0; v < 2; v++) {
                grpc_slice_unref(s->health[v]);
                s->health[v] = grpc_slice_new(buf[v], size[v], free);
        }
        s->have_health = true;
        for (HealthStream *h = s->streams; h; h = h->next)
                stream_send(h);
        return 0;
}

/* ---- the main-thread queue ---- */

static void queue_dispatch(GrpcServer *s, Tag *t) {
        Call *c;

        switch (t->kind) {
        case TAG_CALL:
                c = (Call *) t;
                /* While grpc_server_free() drains, the daemon may be half torn down: no callbacks. */
                if (atomic_load(&s->shutting_down))
                        call_finish(c, GRPC_STATUS_UNAVAILABLE, NULL, "shutting down");
                else if (c->method == GRPC_METHOD_NOTIFY_REGISTRATION_STATUS)
                        call_handle_registration_status(s, c);
                else if (grpc_method_is_health(c->method))
                        stream_start(s, c);
                else
                        call_handle_claims(s, c);
                break;
        case TAG_STREAM_WRITE:
        case TAG_STREAM_CLOSE:
                stream_on_event(s, t);
                break;
        case TAG_QUIT:
                s->quit = true;
                break;
        default:
                break;
        }
}

static void queue_drain(GrpcServer *s) {
        uint64_t v;
        Tag *t, *next;

        if (read(s->queue_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_error_errno(-errno, "Failed to read the gRPC queue eventfd: %m");
        pthread_mutex_lock(&s->queue_lock);
        t = s->queue_head;
        s->queue_head = NULL;
        s->queue_tail = &s->queue_head;
        pthread_mutex_unlock(&s->queue_lock);
        for (; t; t = next) {
                next = t->next;
                queue_dispatch(s, t);
        }
}

static int on_queue(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        queue_drain(userdata);
        return 0;
}

/* A client that opens a call and never sends its message gets DEADLINE_EXCEEDED. */
/* Cancel the calls whose request message has not come within timeout_usec. */
static void calls_reading_expire(GrpcServer *s, uint64_t now, uint64_t timeout_usec) {
        unsigned n = 0;

        pthread_mutex_lock(&s->reading_lock);
        for (Call *c = s->reading; c; c = c->reading_next)
                if (!c->timed_out && now - c->read_started > timeout_usec) {
                        c->timed_out = true;
                        grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                                     "request message not received in time", NULL);
                        n++;
                }
        pthread_mutex_unlock(&s->reading_lock);
        if (n > 0)
                log_debug("Cancelled %u gRPC call(s) whose request message did not arrive.", n);
}

static int on_sweep(sd_event_source *source, uint64_t usec, void *userdata) {
        GrpcServer *s = userdata;

        calls_reading_expire(s, now_usec(), GRPC_READ_TIMEOUT_USEC);

        (void) sd_event_source_set_time_relative(source, GRPC_SWEEP_INTERVAL_USEC);
        return sd_event_source_set_enabled(source, SD_EVENT_ON);
}

/* ---- sockets ---- */

static int listener_bind(Listener *l, mode_t dir_mode) {
        int fd = unix_socket_listen(l->path, dir_mode, SOCKET_MODE, &l->file);

        if (fd < 0)
                return fd;
        l->fd = fd;
        l->bound_by_us = true;
        return 0;
}

static void listener_unlink(Listener *l) {
        if (l->bound_by_us)
                unix_socket_unlink(l->path, &l->file);
        l->bound_by_us = false;
}

static int listener_adopt(Listener *l, int fd) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = unix_socket_adopt(fd, &path);
        if (r < 0)
                return log_error_errno(r, "fd %d passed for the %s socket is not a usable listening AF_UNIX stream socket: %m",
                                       fd, l->name);
        l->fd = fd;

        /* The endpoint in GetInfo must be where systemd really listens. */
        if (path && !streq(path, l->path)) {
                log_warning("The %s socket from systemd is %s, not %s; using %s.", l->name, path, l->path, path);
                free(l->path);
                l->path = TAKE_PTR(path);
        }
        return 0;
}

/* ---- accepting (the accept thread) ---- */

static const char h2_client_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_SIZE (sizeof(h2_client_preface) - 1)
#define H2_FRAME_HEADER_SIZE 9

/*
 * Whether a connection is ready for gRPC: > 0 when the client preface and the header of
 * the frame after it (its SETTINGS) are there, or when the bytes are not HTTP/2 at all
 * (gRPC answers those and closes); 0 while they are a true beginning of the preface;
 * < 0 when the client hung up or the socket failed. Peeks: gRPC reads the bytes itself.
 */
static int connection_preface_state(int fd) {
        char buf[H2_PREFACE_SIZE + H2_FRAME_HEADER_SIZE];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);

        if (n < 0)
                return IN_SET(errno, EAGAIN, EINTR) ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        if (memcmp(buf, h2_client_preface, MIN((size_t) n, H2_PREFACE_SIZE)) != 0)
                return 1;
        return (size_t) n == sizeof(buf);
}

static void connection_hand_over(Listener *l, int fd) {
        grpc_server_add_channel_from_fd(l->grpc, fd, l->server->creds); /* gRPC owns fd now */
}

static void handshake_link(GrpcServer *s, Handshake *h) {
        LIST_PREPEND(s->handshakes, h);
        if (!s->oldest_handshake)
                s->oldest_handshake = h;
        s->n_handshakes++;
}

static void handshake_unlink(GrpcServer *s, Handshake *h) {
        if (s->oldest_handshake == h)
                s->oldest_handshake = h->prev;
        LIST_REMOVE(s->handshakes, h);
        s->n_handshakes--;
}

/* Close the connection; closing takes it out of the epoll set too. */
static void handshake_close(GrpcServer *s, Handshake *h) {
        handshake_unlink(s, h);
        safe_close(h->fd);
        free(h);
}

static void handshake_drop(GrpcServer *s, Handshake *h, uint64_t *counter) {
        handshake_close(s, h);
        (*counter)++;
        atomic_fetch_add(&s->connections_dropped, 1);
}

static void handshake_hand_over(GrpcServer *s, Handshake *h) {
        Listener *l = h->listener;
        int fd = h->fd;

        if (epoll_ctl(s->accept_epoll_fd, EPOLL_CTL_DEL, fd, NULL) < 0)
                log_debug_errno(-errno, "Failed to stop watching a connection: %m");
        handshake_unlink(s, h);
        free(h);
        connection_hand_over(l, fd);
}

static void handshake_on_event(GrpcServer *s, Handshake *h, uint32_t events) {
        int r = connection_preface_state(h->fd);

        if (r > 0)
                return handshake_hand_over(s, h);
        if (r < 0 || (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                return handshake_close(s, h); /* the client went away by itself */
        /* part of the preface: wait for the rest (edge-triggered: the next bytes wake us) */
}

static void handshakes_expire(GrpcServer *s, uint64_t now) {
        /* One timeout for all: the oldest is always the first to expire. */
        while (s->oldest_handshake && s->oldest_handshake->deadline <= now)
                handshake_drop(s, s->oldest_handshake, &s->timed_out);
}

/* A new connection: to gRPC if its preface is already there, else it waits for it. */
static void connection_take(Listener *l, int fd) {
        GrpcServer *s = l->server;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
        Handshake *h;
        int r;

        r = connection_preface_state(fd);
        if (r > 0)
                return connection_hand_over(l, fd);
        if (r < 0) {
                safe_close(fd);
                return;
        }
        if (s->n_handshakes >= s->handshakes_max)
                handshake_drop(s, s->oldest_handshake, &s->evicted);

        h = malloc(sizeof(Handshake));
        if (!h) {
                log_oom();
                safe_close(fd);
                return;
        }
        *h = (Handshake) {
                .fd = fd,
                .listener = l,
                .deadline = now_usec() + GRPC_HANDSHAKE_TIMEOUT_USEC,
        };
        ev.data.ptr = h;
        /* Bytes that came after the peek above are reported at once: epoll checks on ADD. */
        if (epoll_ctl(s->accept_epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                log_warning_errno(-errno, "Failed to watch a new connection on the %s socket: %m", l->name);
                safe_close(fd);
                free(h);
                return;
        }
        handshake_link(s, h);
}

/* Accept what is waiting; false when out of fds or memory, so the caller pauses this socket. */
static bool listener_accept(Listener *l) {
        GrpcServer *s = l->server;

        for (unsigned i = 0; i < 64; i++) {
                int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN)
                                return true;
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (IN_SET(errno, EMFILE, ENFILE) && s->oldest_handshake) {
                                handshake_drop(s, s->oldest_handshake, &s->evicted);
                                continue;
                        }
                        if (!l->pause_logged)
                                log_warning_errno(-errno, "Failed to accept on the %s socket, pausing: %m", l->name);
                        l->pause_logged = true;
                        return false;
                }
                atomic_fetch_add(&s->connections, 1);

                /* Fds are numbered lowest free first: cfd + 1 of them are open now. */
                if ((unsigned) cfd >= s->connection_fds_max) {
                        if (s->oldest_handshake)
                                handshake_drop(s, s->oldest_handshake, &s->evicted);
                        else {
                                safe_close(cfd);
                                s->refused++;
                                atomic_fetch_add(&s->connections_dropped, 1);
                                continue;
                        }
                }
                l->pause_logged = false;
                connection_take(l, cfd);
        }
        return true;
}

static void listener_pause(Listener *l, bool pause, uint64_t now) {
        struct epoll_event ev = { .events = pause ? 0 : EPOLLIN, .data.ptr = l };

        if (epoll_ctl(l->server->accept_epoll_fd, EPOLL_CTL_MOD, l->fd, &ev) < 0)
                log_error_errno(-errno, "Failed to %s the %s socket: %m", pause ? "pause" : "resume", l->name);
        l->paused = pause;
        l->resume_usec = now + ACCEPT_RETRY_USEC;
}

static void accept_log_dropped(GrpcServer *s, uint64_t now) {
        if (s->timed_out + s->evicted + s->refused == 0 ||
            now - s->dropped_logged_usec < ACCEPT_LOG_INTERVAL_USEC)
                return;
        log_warning("Closed connections before their HTTP/2 handshake: %" PRIu64 " sent no preface within %llu s, "
                    "%" PRIu64 " gave way to newer ones (%u may wait), %" PRIu64 " came with fewer than %u fds left.",
                    s->timed_out, GRPC_HANDSHAKE_TIMEOUT_USEC / 1000000, s->evicted, s->handshakes_max,
                    s->refused, GRPC_FD_RESERVE);
        s->timed_out = s->evicted = s->refused = 0;
        s->dropped_logged_usec = now;
}

/* Until the next handshake deadline, paused socket or log line is due; -1: none. */
static int accept_timeout_msec(GrpcServer *s, uint64_t now) {
        uint64_t next = UINT64_MAX;

        if (s->oldest_handshake)
                next = s->oldest_handshake->deadline;
        for (size_t i = 0; i < ELEMENTSOF(s->listeners); i++)
                if (s->listeners[i].paused)
                        next = MIN(next, s->listeners[i].resume_usec);
        if (s->timed_out + s->evicted + s->refused > 0)
                next = MIN(next, s->dropped_logged_usec + ACCEPT_LOG_INTERVAL_USEC);
        if (next == UINT64_MAX)
                return -1;
        return next <= now ? 0 : (int) MIN((next - now + 999) / 1000, (uint64_t) INT_MAX);
}

/*
 * Connections are accepted on their own thread, not in the main loop: a new kubelet
 * connection (it dials anew to poll GetInfo) must be served within 1 s even while the
 * main loop is busy. One epoll set: the stop eventfd (data s), both listening sockets
 * (data the Listener), and the connections waiting for their preface (data the Handshake).
 */
static void *accept_thread(void *userdata) {
        GrpcServer *s = userdata;
        struct epoll_event events[64];

        for (;;) {
                uint64_t now = now_usec();
                bool stop = false;
                int n;

                handshakes_expire(s, now);
                for (size_t i = 0; i < ELEMENTSOF(s->listeners); i++)
                        if (s->listeners[i].paused && now >= s->listeners[i].resume_usec)
                                listener_pause(&s->listeners[i], false, now);
                accept_log_dropped(s, now);

                n = epoll_wait(s->accept_epoll_fd, events, ELEMENTSOF(events), accept_timeout_msec(s, now));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error_errno(-errno, "Failed to wait for connections: %m");
                        break;
                }
                /* Waiting connections first: accepting may close some of them (the oldest). */
                for (int i = 0; i < n; i++) {
                        void *p = events[i].data.ptr;
                        if (p == s)
                                stop = true;
                        else if (p != &s->listeners[0] && p != &s->listeners[1])
                                handshake_on_event(s, p, events[i].events);
                }
                if (stop)
                        break;
                for (int i = 0; i < n; i++) {
                        Listener *l = events[i].data.ptr;
                        if ((l == &s->listeners[0] || l == &s->listeners[1]) && !listener_accept(l))
                                listener_pause(l, true, now_usec());
                }
        }

        /* A graceful stop hands the connections still waiting for their preface to gRPC:
         * its GOAWAY tells their clients to go on with the next instance. */
        while (s->handshakes)
                if (atomic_load(&s->accept_stopped))
                        handshake_hand_over(s, s->handshakes);
                else
                        handshake_close(s, s->handshakes);
        return NULL;
}

/* How many connections may wait for their preface, and where the fd reserve begins. */
static void accept_set_limits(GrpcServer *s) {
        struct rlimit rl;
        uint64_t limit = 1024;

        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0)
                limit = rl.rlim_cur == RLIM_INFINITY ? (uint64_t) INT_MAX : (uint64_t) rl.rlim_cur;
        limit = MIN(limit, (uint64_t) INT_MAX);
        s->connection_fds_max = limit > 4 * GRPC_FD_RESERVE ? (unsigned) limit - GRPC_FD_RESERVE
                                                            : (unsigned) (limit * 3 / 4);
        s->handshakes_max = MAX(MIN(GRPC_HANDSHAKES_MAX, s->connection_fds_max / 2), 1U);
        log_debug("fd limit %" PRIu64 ": connections get fds below %u, %u may wait for their HTTP/2 preface.",
                  limit, s->connection_fds_max, s->handshakes_max);
}

static int accept_start(GrpcServer *s) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
        int r;

        accept_set_limits(s);
        s->accept_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->accept_stop_fd < 0)
                return log_error_errno(-errno, "Failed to create an eventfd: %m");
        s->accept_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (s->accept_epoll_fd < 0)
                return log_error_errno(-errno, "Failed to create an epoll set: %m");
        if (epoll_ctl(s->accept_epoll_fd, EPOLL_CTL_ADD, s->accept_stop_fd, &ev) < 0)
                return log_error_errno(-errno, "Failed to watch the accept thread's stop eventfd: %m");
        for (size_t i = 0; i < ELEMENTSOF(s->listeners); i++) {
                ev.data.ptr = &s->listeners[i];
                if (epoll_ctl(s->accept_epoll_fd, EPOLL_CTL_ADD, s->listeners[i].fd, &ev) < 0)
                        return log_error_errno(-errno, "Failed to watch the %s socket: %m", s->listeners[i].name);
        }

        r = pthread_create(&s->accept_thread, NULL, accept_thread, s);
        if (r != 0)
                return log_error_errno(-r, "Failed to start the accept thread: %m");
        s->accept_thread_started = true;
        return 0;
}

/* ---- life cycle ---- */

static grpc_server *server_create(GrpcServer *s, GrpcSocketKind kind) {
        grpc_arg args[] = {
                { .type = GRPC_ARG_INTEGER, .key = (char *) GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                  .value.integer = GRPC_MAX_RECEIVE_BYTES },
                { .type = GRPC_ARG_INTEGER, .key = (char *) GRPC_ARG_MAX_CONCURRENT_STREAMS,
                  .value.integer = GRPC_MAX_CONCURRENT_STREAMS },
                /* A peer that stops reading is found by a ping that is never answered. */
                { .type = GRPC_ARG_INTEGER, .key = (char *) GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 120 * 1000 },
                { .type = GRPC_ARG_INTEGER, .key = (char *) GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20 * 1000 },
                { .type = GRPC_ARG_INTEGER, .key = (char *) GRPC_ARG_ENABLE_CHANNELZ, .value.integer = 0 },
                /* The kubelet dials the registration socket per call; the DRA connection it keeps. */
                { .type = GRPC_ARG_INTEGER, .key = (char *) GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                  .value.integer = 5 * 60 * 1000 },
        };
        grpc_channel_args chargs = {
                .num_args = ELEMENTSOF(args) - (kind == GRPC_SOCKET_DRA),
                .args = args,
        };
        grpc_server *g = grpc_server_create(&chargs, NULL);

        if (g)
                grpc_server_register_completion_queue(g, s->cq, NULL);
        return g;
}

static int listener_start(GrpcServer *s, GrpcSocketKind kind, const char *path, int fd) {
        Listener *l = &s->listeners[kind];
        int r;

        l->server = s;
        l->kind = kind;
        l->name = kind == GRPC_SOCKET_DRA ? "DRA" : "registration";
        l->fd = -EBADF;
        l->shutdown_tag.kind = TAG_SERVER_SHUTDOWN;
        l->path = strdup(path);
        if (!l->path)
                return log_oom();

        r = fd >= 0 ? listener_adopt(l, fd) : listener_bind(l, kind == GRPC_SOCKET_DRA ? 0750 : 0755);
        if (r < 0)
                return r;

        l->grpc = server_create(s, kind);
        if (!l->grpc)
                return log_error_errno(-ENOMEM, "Failed to create the %s gRPC server.", l->name);
        grpc_server_start(l->grpc);
        s->n_servers++;
        for (int i = 0; i < GRPC_ARMED_REQUESTS; i++)
                call_arm(l);

        log_info("Serving the %s socket %s%s.", l->name, l->path, fd >= 0 ? " (from systemd)" : "");
        return 0;
}

int grpc_server_new(sd_event *e, const GrpcServerConfig *cfg, const GrpcServerCallbacks *cb,
                    void *userdata, GrpcServer **ret) {
        GrpcServer *s;
        uint8_t *info;
        size_t info_size;
        int r;

        if (!e || !cfg || isempty(cfg->driver_name) || isempty(cfg->registration_socket) ||
            isempty(cfg->dra_socket) || !ret)
                return -EINVAL;

        s = calloc(1, sizeof(GrpcServer));
        if (!s) {
                safe_close(cfg->dra_fd);
                safe_close(cfg->registration_fd);
                return log_oom();
        }
        s->event = sd_event_ref(e);
        if (cb)
                s->cb = *cb;
        s->userdata = userdata;
        s->queue_fd = -EBADF;
        s->accept_stop_fd = -EBADF;
        s->accept_epoll_fd = -EBADF;
        s->queue_tail = &s->queue_head;
        s->quit_tag.kind = TAG_QUIT;
        s->plugin_info = grpc_empty_slice();
        s->health[0] = s->health[1] = grpc_empty_slice();
        s->listeners[0].fd = s->listeners[1].fd = -EBADF;
        pthread_mutex_init(&s->queue_lock, NULL);
        pthread_mutex_init(&s->reading_lock, NULL);
        pthread_mutex_init(&s->held_lock, NULL);

        grpc_init();
        s->grpc_initialized = true;
        s->cq = grpc_completion_queue_create_for_next(NULL);
        s->creds = grpc_insecure_server_credentials_create();
        if (!s->cq || !s->creds) {
                r = log_error_errno(-ENOMEM, "Failed to set up gRPC.");
                goto fail;
        }

        s->queue_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->queue_fd < 0) {
                r = log_error_errno(-errno, "Failed to create an eventfd: %m");
                goto fail;
        }
        r = sd_event_add_io(e, &s->queue_source, s->queue_fd, EPOLLIN, on_queue, s);
        if (r < 0) {
                log_error_errno(r, "Failed to watch the gRPC queue: %m");
                goto fail;
        }

        r = sd_event_add_time_relative(e, &s->sweep_source, CLOCK_MONOTONIC, GRPC_SWEEP_INTERVAL_USEC,
                                       GRPC_SWEEP_INTERVAL_USEC / 5, on_sweep, s);
        if (r < 0) {
                log_error_errno(r, "Failed to add the gRPC sweep timer: %m");
                goto fail;
        }
        (void) sd_event_source_set_enabled(s->sweep_source, SD_EVENT_ON);

        r = pthread_create(&s->cq_thread, NULL, cq_thread, s);
        if (r != 0) {
                r = log_error_errno(-r, "Failed to start the gRPC thread: %m");
                goto fail;
        }
        s->cq_thread_started = true;

        /* DRA first: the kubelet may call it right after GetInfo. */
        r = listener_start(s, GRPC_SOCKET_DRA, cfg->dra_socket, cfg->dra_fd);
        if (r < 0)
                goto fail;

        r = grpc_proto_encode_plugin_info(cfg->driver_name, s->listeners[GRPC_SOCKET_DRA].path, &info, &info_size);
        if (r < 0) {
                log_error_errno(r, "Failed to encode PluginInfo: %m");
                goto fail;
        }
        s->plugin_info = grpc_slice_new(info, info_size, free);

        r = listener_start(s, GRPC_SOCKET_REGISTRATION, cfg->registration_socket, cfg->registration_fd);
        if (r < 0)
                goto fail;

        r = accept_start(s);
        if (r < 0)
                goto fail;

        *ret = s;
        return 0;

fail:
        /* The fds are ours in every case: close the ones we did not get to adopt. */
        if (cfg->dra_fd >= 0 && s->listeners[GRPC_SOCKET_DRA].fd != cfg->dra_fd)
                safe_close(cfg->dra_fd);
        if (cfg->registration_fd >= 0 && s->listeners[GRPC_SOCKET_REGISTRATION].fd != cfg->registration_fd)
                safe_close(cfg->registration_fd);
        grpc_server_free(s);
        return r;
}

void grpc_server_get_stats(const GrpcServer *s, GrpcServerStats *ret) {
        GrpcServer *m = (GrpcServer *) s; /* atomics are read-only here */

        *ret = (GrpcServerStats) {
                .calls = atomic_load(&m->calls),
                .get_info_calls = atomic_load(&m->get_info_calls),
                .connections = atomic_load(&m->connections),
                .connections_dropped = atomic_load(&m->connections_dropped),
                .health_streams = s->n_streams,
                .calls_in_flight = atomic_load(&m->calls_in_flight),
        };
}

/* Serve the queue for at most timeout_usec, without the event loop (gone by now). */
static void queue_serve_for(GrpcServer *s, uint64_t timeout_usec) {
        struct pollfd p = { .fd = s->queue_fd, .events = POLLIN };

        if (poll(&p, 1, (int) ((timeout_usec + 999) / 1000)) < 0 && errno != EINTR)
                log_error_errno(-errno, "Failed to wait on the gRPC queue: %m");
        queue_drain(s);
}

/*
 * Before grpc_server_shutdown_and_notify(), which cancels every call that arrives after
 * it: we accept no more connections (they wait in systemd's backlog for the next
 * instance), but calls may still come in on connections accepted just before. Serve them
 * until none has come for GRPC_DRAIN_QUIET_USEC, at most GRPC_DRAIN_MAX_USEC.
 */
static void grpc_server_drain_connections(GrpcServer *s) {
        uint64_t start = now_usec();

        for (;;) {
                uint64_t now = now_usec(), last = atomic_load(&s->last_arrival_usec);

                if (now - start >= GRPC_DRAIN_MAX_USEC)
                        return;
                if (now - start >= GRPC_DRAIN_QUIET_USEC && now - last >= GRPC_DRAIN_QUIET_USEC)
                        return;
                queue_serve_for(s, 10 * 1000);
        }
}

/* After grpc_server_shutdown_and_notify(): until every server's calls are done, or the grace ends. */
static void queue_drain_until_servers_down(GrpcServer *s, uint64_t grace_usec) {
        uint64_t deadline = now_usec() + grace_usec;

        while (atomic_load(&s->servers_down) < s->n_servers && !s->quit) {
                uint64_t now = now_usec();

                if (now >= deadline) {
                        log_debug("gRPC calls still running after the shutdown grace period, cancelling them");
                        return;
                }
                queue_serve_for(s, deadline - now);
        }
}

/* Wait on the queue without the event loop: shutdown must finish even if the loop is gone. */
static void queue_drain_until_quit(GrpcServer *s) {
        while (!s->quit) {
                struct pollfd p = { .fd = s->queue_fd, .events = POLLIN };
                if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                        log_error_errno(-errno, "Failed to wait for gRPC shutdown: %m");
                        return;
                }
                queue_drain(s);
        }
}

/* Stop accepting: new connections wait in the listening sockets' backlog for the next
 * instance. hand_over: give the connections still waiting for their preface to gRPC. */
static void accept_stop(GrpcServer *s, bool hand_over) {
        uint64_t one = 1;

        if (!s->accept_thread_started)
                return;
        atomic_store(&s->accept_stopped, hand_over);
        if (write(s->accept_stop_fd, &one, sizeof(one)) < 0)
                log_error_errno(-errno, "Failed to stop the accept thread: %m");
        pthread_join(s->accept_thread, NULL);
        s->accept_thread_started = false;
}

/* GOAWAY on the listener's connections, then answer the calls held: their clients read
 * the GOAWAY first. Calls running go on. Health streams (DRA socket) never end by
 * themselves: cancel them (the kubelet reopens one on the next instance). */
static void listener_go_away(Listener *l) {
        GrpcServer *s = l->server;

        if (l->grpc && !l->gone_away)
                grpc_server_shutdown_and_notify(l->grpc, s->cq, &l->shutdown_tag);
        l->gone_away = true;
        if (l->kind == GRPC_SOCKET_DRA)
                for (HealthStream *h = s->streams; h; h = h->next)
                        if (!h->closed)
                                grpc_call_cancel(h->call->call, NULL);
        listener_release(l);
}

/*
 * Connections gRPC closed after its last GOAWAY whose clients have not closed them yet go
 * to systemd's file-descriptor store, which closes each when its client does; connections
 * gRPC still serves (a client that never read our GOAWAY) are shut down as gRPC does.
 */
static void kept_connections_hand_over(void) {
        int r = kept_connections_end();

        if (r < 0)
                log_warning_errno(r, "Failed to hand the connections still open to systemd: %m");
        else if (r > 0)
                log_info("%d connection(s) kept in systemd's file descriptor store until their clients close them",
                         r);
}

static void servers_go_away(GrpcServer *s) {
        for (size_t i = 0; i < ELEMENTSOF(s->listeners); i++)
                listener_go_away(&s->listeners[i]);
}

static bool servers_all_down(GrpcServer *s) {
        return atomic_load(&s->servers_down) >= s->n_servers;
}

/* No call on the listener for a while (its clients wait for the calls held),
 * or GRPC_DRAIN_MAX_USEC passed. */
static bool listener_quiet(Listener *l, uint64_t since, uint64_t now) {
        uint64_t waited = now - since, quiet = now - atomic_load(&l->last_arrival_usec),
                 need = l->kind == GRPC_SOCKET_DRA ? GRPC_DRAIN_QUIET_USEC : GRPC_DRAIN_QUIET_REGISTRATION_USEC;

        return waited >= GRPC_DRAIN_MAX_USEC || (waited >= need && quiet >= need);
}

static void stop_enter(GrpcServer *s, GrpcStopPhase phase, uint64_t now) {
        log_debug("gRPC stop: phase %d after %" PRIu64 " ms", (int) phase, (now - s->stop_start_usec) / 1000);
        s->stop_phase = phase;
        s->stop_phase_usec = now;
}

/* One step of the graceful stop; true when it is over. */
static bool stop_step(GrpcServer *s, uint64_t now) {
        Listener *dra = &s->listeners[GRPC_SOCKET_DRA], *reg = &s->listeners[GRPC_SOCKET_REGISTRATION];

        switch (s->stop_phase) {
        case STOP_QUIETING_DRA:
                listener_release_overdue(reg, now, GRPC_HOLD_MAX_REGISTRATION_USEC);
                if (listener_quiet(dra, s->stop_phase_usec, now) && listener_quiet(reg, s->stop_phase_usec, now)) {
                        listener_go_away(dra);
                        stop_enter(s, STOP_SETTLING_DRA, now);
                }
                return false;
        case STOP_SETTLING_DRA:
                /* The answers on the DRA socket follow its GOAWAY on the same connection; a
                 * GetInfo answer would not, and its client's next call (a prepare) could
                 * race the GOAWAY on the other connection. */
                if (now - s->stop_phase_usec >= GRPC_STOP_SETTLE_USEC) {
                        listener_release(reg);
                        stop_enter(s, STOP_FINISHING_DRA, now);
                }
                return false;
        case STOP_FINISHING_DRA:
                if (!s->requests || now - s->stop_phase_usec >= GRPC_STOP_GRACE_USEC) {
                        listener_hold(reg);
                        stop_enter(s, STOP_QUIETING_REGISTRATION, now);
                }
                return false;
        case STOP_QUIETING_REGISTRATION:
                listener_release_overdue(reg, now, GRPC_HOLD_MAX_REGISTRATION_USEC);
                if (listener_quiet(reg, s->stop_phase_usec, now)) {
                        listener_go_away(reg);
                        stop_enter(s, STOP_FINISHING, now);
                }
                return false;
        case STOP_FINISHING:
                /* A client that opened a call and sends no message does not hold the stop
                 * up for long: a real one sends it at once. */
                calls_reading_expire(s, now, GRPC_STOP_READ_TIMEOUT_USEC);
                /* Every call answered: give the clients a moment to read our GOAWAY and close
                 * their connections (servers_all_down), so that no call they write in the
                 * meantime meets a closed socket; the next instance's GetInfo waits for this. */
                if (servers_all_down(s) && kept_connections_reap() == 0)
                        return true;
                if (atomic_load(&s->calls_in_flight) == 0 && !s->requests) {
                        if (s->stop_answered_usec == 0)
                                s->stop_answered_usec = now;
                        if (now - s->stop_answered_usec >= GRPC_STOP_LINGER_USEC)
                                return true;
                }
                if (now - s->stop_phase_usec < GRPC_STOP_GRACE_USEC)
                        return false;
                log_warning("gRPC calls still running %llu s after GOAWAY, ending them",
                            GRPC_STOP_GRACE_USEC / USEC_PER_SEC);
                return true;
        default:
                return true;
        }
}

static int on_stop_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        GrpcServer *s = userdata;
        uint64_t now = now_usec();

        if (stop_step(s, now)) {
                log_debug("gRPC stopped gracefully in %" PRIu64 " ms; %zu connection(s) kept open past gRPC "
                          "for their clients", (now - s->stop_start_usec) / 1000, kept_connections_total());
                s->stop_phase = STOP_DONE;
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
                s->stop_done(s->stop_userdata);
                return 0;
        }
        (void) sd_event_source_set_time(source, now + GRPC_STOP_POLL_USEC);
        return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

int grpc_server_stop(GrpcServer *s, GrpcServerStopped done, void *userdata) {
        int r;

        if (s->stop_phase != STOP_NONE)
                return -EALREADY;
        accept_stop(s, true);
        /* What gRPC shuts down after its last GOAWAY stays open for clients still writing. */
        r = kept_connections_begin((const int[]) { s->listeners[GRPC_SOCKET_REGISTRATION].fd,
                                                   s->listeners[GRPC_SOCKET_DRA].fd }, 2);
        if (r < 0)
                log_debug_errno(r, "Connections are not kept past gRPC: %m");
        listener_hold(&s->listeners[GRPC_SOCKET_DRA]);
        listener_hold(&s->listeners[GRPC_SOCKET_REGISTRATION]);
        s->stop_done = done;
        s->stop_userdata = userdata;
        s->stop_start_usec = now_usec();
        stop_enter(s, STOP_QUIETING_DRA, s->stop_start_usec);
        r = sd_event_add_time(s->event, &s->stop_timer, CLOCK_MONOTONIC, s->stop_start_usec + GRPC_STOP_POLL_USEC,
                              1000, on_stop_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the stop timer: %m"); /* grpc_server_free() does it all */
        return 0;
}

GrpcServer *grpc_server_free(GrpcServer *s) {
        if (!s)
                return NULL;

        atomic_store(&s->shutting_down, true);

        /* Stop accepting; leave systemd's socket file alone so the next instance inherits the backlog. */
        accept_stop(s, false);
        s->stop_timer = sd_event_source_disable_unref(s->stop_timer);
        safe_close(s->accept_stop_fd);
        safe_close(s->accept_epoll_fd);
        for (size_t i = 0; i < ELEMENTSOF(s->listeners); i++) {
                Listener *l = &s->listeners[i];
                listener_unlink(l); /* before close: while our socket lives, its inode is ours alone */
                l->fd = safe_close(l->fd);
        }

        /* Requests the daemon still holds: end their calls, keep the shells for dra_request_complete(). */
        while (s->requests) {
                DraRequest *r = s->requests;
                LIST_REMOVE(s->requests, r);
                if (r->call)
                        call_finish(TAKE_PTR(r->call), GRPC_STATUS_UNAVAILABLE, NULL, "shutting down");
                r->server = NULL;
        }

        /*
         * A graceful stop, so that a restart loses no call: GOAWAY refuses new calls on the
         * connections we have (clients retry them on a new connection, which waits in the
         * socket's backlog for the next instance), calls already running finish, and only
         * what is still running after the grace period is cancelled. Health streams never
         * end by themselves: cancel them now (the kubelet reopens one on the next instance).
         */
        if (s->stop_phase == STOP_NONE && s->cq_thread_started) /* no graceful stop before: the short one */
                grpc_server_drain_connections(s);
        servers_go_away(s); /* where not done yet; held calls are answered "shutting down" */
        /* After a graceful stop every call is answered: the clients' closing of their
         * connections is not worth waiting for. */
        if (s->cq_thread_started && s->stop_phase != STOP_DONE)
                queue_drain_until_servers_down(s, GRPC_SHUTDOWN_GRACE_USEC);
        kept_connections_hand_over();
        for (size_t i = 0; i < ELEMENTSOF(s->listeners); i++)
                if (s->listeners[i].grpc)
                        grpc_server_cancel_all_calls(s->listeners[i].grpc);

        if (s->cq_thread_started) {
                if (s->n_servers == 0)
                        grpc_completion_queue_shutdown(s->cq);
                queue_drain_until_quit(s);
                pthread_join(s->cq_thread, NULL);
        } else if (s->cq)
                grpc_completion_queue_shutdown(s->cq);

        while (s->streams) /* normally all gone with their close tags */
                stream_free(s->streams);

        for (size_t i = 0; i < ELEMENTSOF(s->listeners); i++) {
                if (s->listeners[i].grpc)
                        grpc_server_destroy(s->listeners[i].grpc);
                free(s->listeners[i].path);
        }
        if (s->cq) {
                if (!s->cq_thread_started)
                        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
                               GRPC_QUEUE_SHUTDOWN)
                                ;
                grpc_completion_queue_destroy(s->cq);
        }
        if (s->creds)
                grpc_server_credentials_release(s->creds);
        grpc_slice_unref(s->plugin_info);
        grpc_slice_unref(s->health[0]);
        grpc_slice_unref(s->health[1]);
        s->queue_source = sd_event_source_disable_unref(s->queue_source);
        s->sweep_source = sd_event_source_disable_unref(s->sweep_source);
        safe_close(s->queue_fd);
        pthread_mutex_destroy(&s->queue_lock);
        pthread_mutex_destroy(&s->reading_lock);
        pthread_mutex_destroy(&s->held_lock);
        sd_event_unref(s->event);
        if (s->grpc_initialized)
                grpc_shutdown_blocking();
        free(s);
        return NULL;
}
