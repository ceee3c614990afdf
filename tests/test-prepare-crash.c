/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Crash safety: a child runs a storm of concurrent prepares and unprepares (start-up
 * recovery first, as the daemon does) and is SIGKILLed at a random moment, again and
 * again. After each kill, recovery must leave every claim fully prepared (checkpoint,
 * CDI spec, shared region, ld.so.preload) or fully absent, and a retried call must
 * converge. Every tenth round simulates a reboot: new boot ID, empty CDI directory.
 *
 * The kill moments are random but the assertions hold for any of them, so the test
 * does not depend on timing luck; HAMI_CRASH_KILLS sets the number of rounds (>= 50).
 */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "checkpoint.h"
#include "fsutil.h"
#include "log.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "prepare.h"
#include "tests.h"

#define N_CLAIMS 12
#define N_THREADS 4

static Fixture fx;
static char uids[N_CLAIMS][40];
static char *jsons[N_CLAIMS];
static char boot_id[33] = FIXTURE_BOOT_ID;

static Preparer *open_preparer(void) {
        PrepareOptions o = fx.options;
        Preparer *p;

        o.boot_id = boot_id;
        ASSERT_OK(preparer_new(&o, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, NULL, NULL));
        return p;
}

static int prepare(Preparer *p, size_t i, PreparedClaim *c, char *err) {
        PrepareClaimRef ref = { .namespace_ = "default", .name = "c", .uid = uids[i] };
        return preparer_prepare(p, &ref, jsons[i], strlen(jsons[i]), c, err, 512);
}

static void *storm(void *userdata) {
        Preparer *p = userdata;
        unsigned seed = (unsigned) (uintptr_t) pthread_self() ^ (unsigned) getpid();

        for (;;) {
                size_t i = (size_t) rand_r(&seed) % N_CLAIMS;
                char err[512];
                if (rand_r(&seed) % 2) {
                        PreparedClaim c = {};
                        if (prepare(p, i, &c, err) < 0)
                                TEST_FAIL("prepare %s: %s", uids[i], err);
                        prepared_claim_done(&c);
                } else if (preparer_unprepare(p, uids[i], err, sizeof(err)) < 0)
                        TEST_FAIL("unprepare %s: %s", uids[i], err);
        }
        return NULL;
}

static _noreturn_ void child(void) {
        pthread_t t[N_THREADS];
        Preparer *p = open_preparer();

        for (size_t i = 0; i < N_THREADS; i++)
                pthread_create(&t[i], NULL, storm, p);
        for (;;)
                pause();
}

static int state_of(size_t i) {
        bool ckpt = fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uids[i]);
        bool spec = fixture_exists("%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, uids[i]);
        bool cache = fixture_exists("%s/claims/%s/vgpu/vgpu.cache", fx.state_dir, uids[i]);
        bool preload = fixture_exists("%s/ld.so.preload", fx.state_dir);
        bool dir = fixture_exists("%s/claims/%s", fx.state_dir, uids[i]);

        if (ckpt && spec && cache && preload) {
                PreparedClaim c = {};
                ASSERT_OK(checkpoint_load(fx.state_dir, uids[i], &c));
                ASSERT_STREQ(c.boot_id, boot_id);
                prepared_claim_done(&c);
                return 1;
        }
        if (!ckpt && !spec && !dir)
                return 0;
        TEST_FAIL("claim %s half there: checkpoint %d spec %d cache %d preload %d dir %d", uids[i], ckpt, spec, cache,
                  preload, dir);
}

static size_t count_temp_files(const char *dir) {
        char cmd[1024];
        FILE *f;
        size_t n = 0;
        int ch;

        snprintf(cmd, sizeof(cmd), "find %s -name '.*.tmp' 2>/dev/null", dir);
        f = popen(cmd, "r");
        ASSERT_NOT_NULL(f);
        while ((ch = fgetc(f)) != EOF)
                n += ch == '\n';
        pclose(f);
        return n;
}

int main(void) {
        const char *env = getenv("HAMI_CRASH_KILLS");
        unsigned kills = env ? (unsigned) atoi(env) : 60, seed = (unsigned) time(NULL);
        size_t prepared_seen = 0, absent_seen = 0;

        fprintf(stderr, "seed %u, %u kills\n", seed, kills);
        log_set_max_level(LOG_ERR);
        fixture_init(&fx, 4);
        for (size_t i = 0; i < N_CLAIMS; i++) {
                char share[40];
                FixtureResult r[2] = {
                        { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" },
                        { .request = "b", .device = "hami-gpu-1", .share_id = share, .memory = "2Gi", .cores = "5" },
                };
                r[0].device = (i % 2) ? "hami-gpu-2" : "hami-gpu-3";
                snprintf(uids[i], sizeof(uids[i]), "%08zx-2f8e-4c6b-9b7e-4a2a0f1c9d11", i);
                snprintf(share, sizeof(share), "6f1c2f1e-0000-4000-8000-%012zx", i);
                jsons[i] = fixture_claim(uids[i], "c", r, 1 + i % 2, NULL);
        }

        for (unsigned k = 0; k < kills; k++) {
                pid_t pid;
                int status;

                pid = fork();
                ASSERT_TRUE(pid >= 0);
                if (pid == 0)
                        child();
                usleep(500 + (unsigned) rand_r(&seed) % 20000);
                ASSERT_OK(kill(pid, SIGKILL));
                ASSERT_EQ(waitpid(pid, &status, 0), pid);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                        TEST_FAIL("the storm child failed by itself (status %d)", status);

                if (k % 10 == 9) {
                        /* Reboot: /run is a new tmpfs, the boot ID changes. */
                        ASSERT_OK(rm_rf(fx.cdi_dir));
                        snprintf(boot_id, sizeof(boot_id), "%032x", k);
                }

                Preparer *p = open_preparer();
                ASSERT_EQ(count_temp_files(fx.root), 0);
                for (size_t i = 0; i < N_CLAIMS; i++) {
                        char err[512];
                        int s = state_of(i);
                        PreparedClaim c = {};

                        prepared_seen += s == 1;
                        absent_seen += s == 0;
                        /* A retried call converges, whatever the kubelet retries. */
                        if (rand_r(&seed) % 2) {
                                ASSERT_OK(prepare(p, i, &c, err));
                                ASSERT_EQ(state_of(i), 1);
                                ASSERT_TRUE(strstr(c.devices[0].cdi_device_id, uids[i]) != NULL);
                                prepared_claim_done(&c);
                        } else if (s == 1 && rand_r(&seed) % 2) {
                                ASSERT_OK(preparer_unprepare(p, uids[i], err, sizeof(err)));
                                ASSERT_EQ(state_of(i), 0);
                        }
                }
                preparer_free(p);
        }
        fprintf(stderr, "after %u kills: %zu claims found prepared, %zu absent, none half-done\n", kills,
                prepared_seen, absent_seen);
        ASSERT_TRUE(prepared_seen > 0 && absent_seen > 0);
        for (size_t i = 0; i < N_CLAIMS; i++)
                free(jsons[i]);
        fixture_done(&fx);
        return 0;
}
