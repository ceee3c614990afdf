/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A strict stand-in for the gRPC layer's DraRequest (grpc-server.h) so the DRA service
 * (dra-service.c) can be tested without sockets. Like the real one it must be answered and
 * completed exactly once, only from the thread that created it, and set_devices is
 * refused for unprepare.
 */

#include "grpc-server.h"

typedef enum FakeAnswerKind {
        FAKE_ANSWER_NONE,
        FAKE_ANSWER_ERROR,
        FAKE_ANSWER_DEVICES,
        FAKE_ANSWER_DONE,
} FakeAnswerKind;

typedef struct FakeAnswer {
        FakeAnswerKind kind;
        char *error;
        DraDevice *devices;
        size_t n_devices;
} FakeAnswer;

typedef void (*FakeRequestDone)(DraRequest *r, void *userdata);

/* claims: n triples (namespace, name, uid). done is called from dra_request_complete(). */
DraRequest *fake_dra_request_new(bool prepare, const char *const *claims, size_t n, FakeRequestDone done,
                                 void *userdata);
const FakeAnswer *fake_dra_request_answer(const DraRequest *r, size_t i);
/* Free after done() was called. */
void fake_dra_request_free(DraRequest *r);
