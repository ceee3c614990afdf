/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Configuration: built-in defaults, then /etc/hami-dra/hami-dra.conf, then the
 * drop-ins in hami-dra.conf.d/ (lexical order, later wins), then command-line flags.
 * INI syntax in systemd's style: [Section], Key=Value, '#' and ';' comments.
 */

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define DEFAULT_DRIVER_NAME "hami-core-gpu.project-hami.io"
#define DEFAULT_CONFIG_FILE SYSCONFDIR "/hami-dra/hami-dra.conf"
#define DEFAULT_REGISTRY_DIR "/var/lib/kubelet/plugins_registry"
#define DEFAULT_PLUGINS_DIR "/var/lib/kubelet/plugins"
#define DEFAULT_CDI_DIR "/var/run/cdi"
#define DEFAULT_STATE_DIR "/var/lib/hami-dra"
#define DEFAULT_KUBECONFIG "/etc/kubernetes/kubelet.conf"

#define MOCK_GPUS_MAX 64
#define RECONCILE_INTERVAL_SEC_DEFAULT 300
#define RECONCILE_INTERVAL_SEC_MAX 86400

typedef enum GpuBackendKind {
        GPU_BACKEND_NVML,
        GPU_BACKEND_MOCK,
} GpuBackendKind;

typedef enum SeccompAction {
        SECCOMP_ACTION_ERRNO, /* the call fails with EPERM, the daemon logs and goes on */
        SECCOMP_ACTION_KILL,  /* the process dies with SIGSYS: a core dump names the call */
} SeccompAction;

typedef struct Config {
        char *config_file;        /* NULL: no file at all (--config=) */

        /* [Plugin] */
        char *driver_name;
        char *node_name;
        char *registry_dir;
        char *plugins_dir;
        char *cdi_dir;
        char *state_dir;
        char *kubeconfig;
        int log_level;            /* syslog level */
        unsigned reconcile_interval_sec; /* checking prepared claims against the API server; 0: off */

        /* [GPU] */
        GpuBackendKind backend;

        /* [Mock] */
        unsigned mock_gpus;
        char *mock_model;
        uint64_t mock_memory;     /* bytes per GPU */

        /* [Container] */
        char *preload_library;
        bool driver_from_runtime; /* the NVIDIA container runtime injects libraries and binaries */

        /* [Sandbox] */
        bool sandbox;
        SeccompAction seccomp_action;
} Config;

/* Defaults only. */
int config_init(Config *c);
void config_done(Config *c);

/*
 * Parse one INI text (a file's contents) into c. `origin` names it in error messages
 * ("/etc/hami-dra/hami-dra.conf:12"). Unknown sections and keys are warnings; bad
 * values are errors (-EINVAL) that leave c unchanged for that key.
 */
int config_parse_text(Config *c, const char *text, const char *origin);

/* Load c->config_file and its .conf.d/ directory. A missing main file is not an error. */
int config_load_files(Config *c);

/*
 * Parse argv: first --config and friends, then the files, then the flags again so
 * they override. Returns 0 to go on, 1 when --help/--version was handled, <0 on error.
 */
int config_parse_argv(Config *c, int argc, char *argv[]);

/* Derived paths. Returned strings are freshly allocated. */
char *config_registration_socket(const Config *c);  /* <registry>/<driver>-reg.sock */
char *config_dra_socket_dir(const Config *c);       /* <plugins>/<driver> */
char *config_dra_socket(const Config *c);           /* <plugins>/<driver>/dra.sock */

/* Value parsers shared with other modules and fuzzers. */
int parse_boolean(const char *s);                   /* 1/0, or -EINVAL */
int parse_size(const char *s, uint64_t *ret);       /* "24GiB", "23028Mi", "1024" bytes */
int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret);
