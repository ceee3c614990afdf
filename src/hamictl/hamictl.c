/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl: options, the verb table, and the bus connection. Each verb is hamictl-<verb>.c. */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "hamictl.h"

static const Verb verbs[] = {
        { "status", 0, 0, verb_status, "status                  Show the daemon's state" },
        { "devices", 0, 0, verb_devices, "devices                 List the GPUs and their allocations" },
        { "claims", 0, 0, verb_claims, "claims                  List the prepared claims" },
        { "claim", 1, 1, verb_claim, "claim UID               Show one prepared claim" },
        { "release", 1, 1, verb_release, "release UID             Force the cleanup of a stale claim" },
        { "reload", 0, 0, verb_reload, "reload                  Reload the configuration" },
        { "rescan", 0, 0, verb_rescan, "rescan                  Rediscover the GPUs" },
        { "schedulable", 2, 2, verb_schedulable, "schedulable NAME yes|no Take a GPU out of scheduling or put it back" },
        { "monitor", 0, 0, verb_monitor, "monitor                 Follow claims and device changes" },
        { "top", 0, 0, verb_top, "top                     Show live usage per claim and GPU, refreshed" },
};

static void help(void) {
        printf("hamictl [OPTIONS...] COMMAND ...\n\n"
               "Look inside the hami-dra node service (org.projecthami.Dra1).\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %s\n", verbs[i].usage);
        printf("\nOptions:\n"
               "  -h --help               Show this help\n"
               "     --version            Show the version\n"
               "     --json               Print JSON instead of tables\n"
               "     --no-legend          Leave out table headers\n"
               "     --no-ask-password    Never ask for a password (polkit)\n"
               "     --timeout=SECONDS    How long the daemon has to answer (default 2)\n"
               "\ntop:\n"
               "     --once               Print one table and exit\n"
               "  -d --delay=SECONDS      Refresh every SECONDS (default 1)\n"
               "  -n --iterations=N       Stop after N refreshes\n"
               "     --order=KEY          Sort rows by memory (default), sm or name\n"
               "\nSee hamictl(1) for the exit codes.\n");
}

typedef struct Args {
        Ctl ctl;
        int verb_index;            /* optind of the verb */
} Args;

static int parse_argv(int argc, char *argv[], Args *a) {
        enum { ARG_VERSION = 0x100, ARG_JSON, ARG_NO_LEGEND, ARG_NO_ASK_PASSWORD, ARG_TIMEOUT, ARG_ONCE, ARG_ORDER };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "once", no_argument, NULL, ARG_ONCE },
                { "delay", required_argument, NULL, 'd' },
                { "iterations", required_argument, NULL, 'n' },
                { "order", required_argument, NULL, ARG_ORDER },
                {}
        };
        int c;

        /* Options may come anywhere ("hamictl claims --json"); "--" ends them. */
        while ((c = getopt_long(argc, argv, "hd:n:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("hamictl %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_JSON:
                        a->ctl.json = true;
                        break;
                case ARG_NO_LEGEND:
                        a->ctl.legend = false;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        a->ctl.ask_password = false;
                        break;
                case ARG_TIMEOUT:
                        if (ctl_parse_timeout(optarg, &a->ctl.timeout_usec) < 0) {
                                fprintf(stderr, "Invalid --timeout \"%s\": seconds, more than 0 and at most 3600.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_ONCE:
                        a->ctl.top_once = true;
                        break;
                case 'd':
                        if (ctl_parse_timeout(optarg, &a->ctl.top_delay_usec) < 0) {
                                fprintf(stderr, "Invalid --delay \"%s\": seconds, more than 0 and at most 3600.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case 'n': {
                        char *end;
                        unsigned long v;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' || v == 0 || v > UINT_MAX) {
                                fprintf(stderr, "Invalid --iterations \"%s\": a number more than 0.\n", optarg);
                                return -EINVAL;
                        }
                        a->ctl.top_iterations = (unsigned) v;
                        break;
                }
                case ARG_ORDER:
                        if (ctl_parse_order(optarg, &a->ctl.top_order) < 0) {
                                fprintf(stderr, "Invalid --order \"%s\": memory, sm or name.\n", optarg);
                                return -EINVAL;
                        }
                        break;
                default:
                        return -EINVAL;
                }
        a->verb_index = optind;
        return 1;
}

static const Verb *verb_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        return &verbs[i];
        return NULL;
}

int main(int argc, char *argv[]) {
        Args a = { .ctl = { .legend = true, .ask_password = isatty(STDIN_FILENO) > 0,
                            .timeout_usec = CTL_TIMEOUT_DEFAULT_USEC,
                            .top_delay_usec = CTL_TOP_DELAY_DEFAULT_USEC } };
        const Verb *v;
        int r, n_args;

        r = parse_argv(argc, argv, &a);
        if (r < 0)
                return EXIT_USAGE;
        if (r == 0)
                return EXIT_OK;

        if (a.verb_index >= argc) {
                v = verb_find("status");
                n_args = 0;
        } else {
                v = verb_find(argv[a.verb_index]);
                if (!v) {
                        fprintf(stderr, "Unknown command \"%s\"; see hamictl --help.\n", argv[a.verb_index]);
                        return EXIT_USAGE;
                }
                n_args = argc - a.verb_index - 1;
        }
        if (n_args < v->min_args || n_args > v->max_args) {
                fprintf(stderr, "Usage: hamictl %s\n", v->usage);
                return EXIT_USAGE;
        }

        r = sd_bus_open_system(&a.ctl.bus);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the system bus: %s\n", strerror(-r));
                return EXIT_NOT_RUNNING;
        }
        (void) sd_bus_set_allow_interactive_authorization(a.ctl.bus, a.ctl.ask_password);
        /* Every call, property reads included; ctl_call gives polkit's methods longer. */
        (void) sd_bus_set_method_call_timeout(a.ctl.bus, a.ctl.timeout_usec);

        r = ctl_reach(&a.ctl);
        if (r == EXIT_OK)
                r = v->run(&a.ctl, n_args, argv + argc - n_args);
        sd_bus_flush_close_unref(a.ctl.bus);
        return r;
}
