/* SPDX-License-Identifier: Apache-2.0 */
/* Several processes race to the limit through cuMemAlloc; the sum never exceeds it.
 * Then one is SIGKILLed and its memory is reclaimed for the others, and a forked child
 * accounts separately from its parent. */
#include <signal.h>
#include <sys/wait.h>

#include "preload-test.h"

#define N 6
#define CHUNK (1 * MiB)

int main(void) {
        uint64_t limit, total = 0;
        pid_t pids[N];
        int fds[2], go[2];

        test_fresh_state();
        test_context(0);
        limit = test_limit();
        ASSERT_OK(pipe(fds));
        ASSERT_OK(pipe(go));
        for (int c = 0; c < N; c++) {
                pids[c] = fork();
                ASSERT_TRUE(pids[c] >= 0);
                if (pids[c] == 0) {
                        uint64_t got = 0;
                        CuDevicePtr p;
                        char b;
                        test_context(0);
                        if (read(go[0], &b, 1) != 1)
                                _exit(2);
                        for (int i = 0; i < 40; i++)
                                if (cuMemAlloc_v2(&p, CHUNK) == VG_CUDA_SUCCESS)
                                        got += CHUNK;
                        if (write(fds[1], &got, sizeof(got)) != sizeof(got))
                                _exit(3);
                        pause();
                        _exit(0);
                }
        }
        for (int c = 0; c < N; c++)
                ASSERT_EQ(write(go[1], "x", 1), 1);
        for (int c = 0; c < N; c++) {
                uint64_t got;
                ASSERT_EQ(read(fds[0], &got, sizeof(got)), sizeof(got));
                total += got;
        }
        if (limit)
                ASSERT_EQ_U(total, limit); /* 6 x 40 MiB asked, exactly the 64 MiB granted */
        else
                ASSERT_EQ_U(total, N * 40 * CHUNK);

        /* Kill them all: their memory comes back to the container. */
        for (int c = 0; c < N; c++) {
                ASSERT_OK(kill(pids[c], SIGKILL));
                ASSERT_TRUE(waitpid(pids[c], NULL, 0) == pids[c]);
        }
        CuDevicePtr p;
        ASSERT_CU(cuMemAlloc_v2(&p, 64 * MiB));
        /* (The driver frees a killed process's memory too, the fake as the real one.) */
        if (limit)
                ASSERT_EQ_U(test_free(), 0);

        /* A forked child starts with nothing of its parent's and its own slot. */
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                CuDevicePtr q;
                test_context(0);
                _exit(cuMemAlloc_v2(&q, 1) == (limit ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS) ? 0 : 1);
        }
        int status;
        ASSERT_TRUE(waitpid(pid, &status, 0) == pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ASSERT_CU(cuMemFree_v2(p));
        if (limit)
                ASSERT_EQ_U(test_free(), limit);
        return 0;
}
