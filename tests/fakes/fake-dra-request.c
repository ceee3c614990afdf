/* SPDX-License-Identifier: Apache-2.0 */

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fake-dra-request.h"
#include "macro.h"
#include "tests.h"

struct DraRequest {
        bool prepare;
        DraClaimRef *claims;
        FakeAnswer *answers;
        size_t n;
        bool completed;
        pthread_t owner;
        FakeRequestDone done;
        void *userdata;
};

static void check_thread(const DraRequest *r) {
        if (!pthread_equal(pthread_self(), r->owner))
                TEST_FAIL("DraRequest used from another thread than the event loop's");
        if (r->completed)
                TEST_FAIL("DraRequest used after dra_request_complete()");
}

DraRequest *fake_dra_request_new(bool prepare, const char *const *claims, size_t n, FakeRequestDone done,
                                 void *userdata) {
        DraRequest *r = calloc(1, sizeof(*r));

        ASSERT_NOT_NULL(r);
        r->prepare = prepare;
        r->n = n;
        r->claims = calloc(n + 1, sizeof(DraClaimRef));
        r->answers = calloc(n + 1, sizeof(FakeAnswer));
        ASSERT_TRUE(r->claims && r->answers);
        for (size_t i = 0; i < n; i++)
                r->claims[i] = (DraClaimRef) {
                        .namespace_ = strdup(claims[3 * i]),
                        .name = strdup(claims[3 * i + 1]),
                        .uid = strdup(claims[3 * i + 2]),
                };
        r->owner = pthread_self();
        r->done = done;
        r->userdata = userdata;
        return r;
}

static void answer_clear(FakeAnswer *a) {
        free(a->error);
        for (size_t i = 0; i < a->n_devices; i++)
                dra_device_done(&a->devices[i]);
        free(a->devices);
        *a = (FakeAnswer) {};
}

void fake_dra_request_free(DraRequest *r) {
        for (size_t i = 0; i < r->n; i++) {
                free(r->claims[i].namespace_);
                free(r->claims[i].name);
                free(r->claims[i].uid);
                answer_clear(&r->answers[i]);
        }
        free(r->claims);
        free(r->answers);
        free(r);
}

const FakeAnswer *fake_dra_request_answer(const DraRequest *r, size_t i) {
        ASSERT_TRUE(i < r->n);
        return &r->answers[i];
}

bool dra_request_is_prepare(const DraRequest *r) {
        return r->prepare;
}

DraApiVersion dra_request_api_version(const DraRequest *r) {
        return DRA_API_V1;
}

size_t dra_request_n_claims(const DraRequest *r) {
        return r->n;
}

const DraClaimRef *dra_request_claim(const DraRequest *r, size_t i) {
        if (i >= r->n)
                TEST_FAIL("claim index %zu out of range", i);
        return &r->claims[i];
}

int dra_request_set_done(DraRequest *r, size_t i) {
        check_thread(r);
        if (i >= r->n)
                return -EINVAL;
        answer_clear(&r->answers[i]);
        r->answers[i].kind = FAKE_ANSWER_DONE;
        return 0;
}

int dra_request_set_error(DraRequest *r, size_t i, const char *format, ...) {
        va_list ap;

        check_thread(r);
        if (i >= r->n)
                return -EINVAL;
        answer_clear(&r->answers[i]);
        r->answers[i].kind = FAKE_ANSWER_ERROR;
        va_start(ap, format);
        ASSERT_TRUE(vasprintf(&r->answers[i].error, format, ap) >= 0);
        va_end(ap);
        return 0;
}

int dra_request_set_devices(DraRequest *r, size_t i, DraDevice *devices, size_t n_devices) {
        check_thread(r);
        if (i >= r->n || !r->prepare) {
                for (size_t k = 0; k < n_devices; k++)
                        dra_device_done(&devices[k]);
                free(devices);
                return -EINVAL;
        }
        for (size_t k = 0; k < n_devices; k++)
                if (!devices[k].pool_name || !devices[k].device_name)
                        TEST_FAIL("device without pool or name");
        answer_clear(&r->answers[i]);
        r->answers[i].kind = FAKE_ANSWER_DEVICES;
        r->answers[i].devices = devices;
        r->answers[i].n_devices = n_devices;
        return 0;
}

void dra_request_complete(DraRequest *r) {
        check_thread(r);
        r->completed = true;
        if (r->done)
                r->done(r, r->userdata);
}
