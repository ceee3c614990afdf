/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "manager.h"
#include "rlimit-util.h"

static int block_signals(void) {
        sigset_t ss;

        /*
         * Before anything starts a thread (gRPC starts several in grpc_init): every thread
         * inherits this mask, so these signals reach only the sd-event signalfd.
         */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, SIGUSR1);
        sigaddset(&ss, SIGUSR2);
        if (pthread_sigmask(SIG_BLOCK, &ss, NULL) != 0)
                return -EINVAL;
        signal(SIGPIPE, SIG_IGN);
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        uint64_t nofile = 0;
        int r;

        log_set_ident("hami-dra-plugin");
        r = block_signals();
        if (r < 0)
                return log_error_errno(r, "Failed to block signals: %m");

        /* Every kubelet connection, claim and GPU takes fds: 1,024 is not much. */
        r = rlimit_nofile_bump(&nofile);
        if (r < 0)
                log_warning_errno(r, "Failed to raise the open file limit from %" PRIu64 ": %m", nofile);
        else if (r > 0)
                log_debug("Raised the open file limit to %" PRIu64 ".", nofile);

        r = manager_new(argc, argv, &m);
        if (r != 0)
                return r; /* > 0: --help or --version */

        r = manager_start(m);
        if (r < 0) {
                (void) sd_notifyf(false, "STATUS=Failed to start: %s\nERRNO=%d", strerror(-r), -r);
                return r;
        }

        r = manager_run(m);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        if (r == MANAGER_EXIT_RESTART)
                return r;
        log_info("Stopped");
        return 0;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        if (r == MANAGER_EXIT_RESTART)
                return r;
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
