/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A stand-in for hami-dra-plugin in the system suite until the daemon links (it waits
 * for the gRPC and GPU back-end branches): it takes the two sockets by name exactly
 * as the daemon does, installs the real sandbox (sandbox.c) after start-up, says
 * READY=1 and answers every connection with one line:
 *
 *   "hami-dra-standin <fd name> pid=<pid>\n"
 *
 * The client sends one request line first; "violate" gets the result of a forbidden
 * system call (personality(2)) instead: "violate personality=-1 errno=EPERM".
 * The system suite switches to the real daemon as soon as build/src/hami-dra-plugin
 * exists.
 */

#include <signal.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "log.h"
#include "sandbox.h"

typedef struct Listener {
        int fd;
        char name[32];
} Listener;

static int on_connection(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        _cleanup_close_ int c = -EBADF;
        char buf[16] = {};

        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
                return 0;
        /* One request line; a client that sends nothing gets its answer after 1 s. */
        (void) setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval) { .tv_sec = 1 },
                          sizeof(struct timeval));
        if (recv(c, buf, sizeof(buf) - 1, 0) > 0 && strncmp(buf, "violate", 7) == 0) {
                errno = 0;
                int r = personality(0xffffffff);
                dprintf(c, "violate personality=%d errno=%s\n", r, errno ? strerrorname_np(errno) : "0");
                return 0;
        }
        dprintf(c, "hami-dra-standin %s pid=%d\n", l->name, (int) getpid());
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) sd_notify(false, "RELOADING=1");
        log_info("Reloading (stand-in: nothing to re-read)");
        (void) sd_notify(false, "READY=1");
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(config_done) Config config = {};
        _cleanup_strv_free_ char **names = NULL;
        Listener listeners[2] = {};
        sd_event *e = NULL;
        int n, r;

        log_set_ident("hami-dra-plugin");
        r = config_init(&config);
        if (r < 0)
                return r;
        r = sandbox_drop_capabilities(&config);
        if (r < 0)
                return r;

        n = sd_listen_fds_with_names(true, &names);
        if (n != 2)
                return log_error_errno(EINVAL, "Expected the two sockets from systemd, got %d", n);
        for (int i = 0; i < n; i++) {
                if (!streq(names[i], "registration") && !streq(names[i], "dra"))
                        return log_error_errno(EINVAL, "Unexpected socket name %s", names[i]);
                listeners[i].fd = SD_LISTEN_FDS_START + i;
                snprintf(listeners[i].name, sizeof(listeners[i].name), "%s", names[i]);
        }

        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGHUP);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        r = sd_event_default(&e);
        if (r < 0)
                return r;
        (void) sd_event_set_watchdog(e, true);
        r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGHUP, on_sighup, NULL);
        for (int i = 0; i < n && r >= 0; i++)
                r = sd_event_add_io(e, NULL, listeners[i].fd, EPOLLIN, on_connection, &listeners[i]);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m");

        r = sandbox_apply(&config);
        if (r < 0)
                return r;
        (void) sd_notify(false, "READY=1\nSTATUS=stand-in serving");
        log_info("hami-dra-plugin stand-in ready");
        r = sd_event_loop(e);
        (void) sd_notify(false, "STOPPING=1");
        sd_event_unref(e);
        return r;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
