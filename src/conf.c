/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "conf.h"
#include "fsutil.h"
#include "log.h"
#include "quantity.h"

#define CONFIG_FILE_MAX (64 * 1024)
#define CONFIG_LINE_MAX 4096
#define CONFIG_DROPINS_MAX 128

typedef int (*ConfigParser)(const char *value, void *field);

typedef struct ConfigItem {
        const char *section;
        const char *key;
        ConfigParser parse;
        size_t offset;
} ConfigItem;

/* ---------------------------------------------------------------- value parsers */

int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret) {
        unsigned long v;
        char *end;

        if (isempty(s) || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno == ERANGE || v > UINT_MAX)
                return -ERANGE;
        if (*end)
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

/*
 * Sizes the way both systemd and Kubernetes users write them: 24G, 24GiB, 23028Mi, 1024.
 * The systemd spelling is rewritten into the Kubernetes one and handed to
 * quantity_parse(); text too long to be any size (the largest, 2^64 - 1, is 20 digits)
 * is -ERANGE, never copied.
 */
int parse_size(const char *s, uint64_t *ret) {
        char buf[QUANTITY_STRING_MAX];
        const char *suffix = "";
        size_t n;

        if (isempty(s))
                return -EINVAL;
        n = strnlen(s, sizeof(buf));
        if (n >= sizeof(buf))
                return -ERANGE;
        /* systemd spelling: K/M/G/T/P/E with optional "iB"/"B" are binary. */
        if (n >= 3 && streq(s + n - 2, "iB"))
                n--;                    /* "24GiB" -> "24Gi" */
        else if (n >= 2 && s[n - 1] == 'B' && strchr("KMGTPE", s[n - 2])) {
                n--;                    /* "24GB" -> "24Gi" */
                suffix = "i";
        } else if (n >= 2 && strchr("KMGTPE", s[n - 1]) && isdigit((unsigned char) s[n - 2]))
                /* "24G" -> "24Gi"; "24M" would be mega in Kubernetes, but for GPU memory a
                 * bare M means MiB, as in systemd. */
                suffix = "i";
        if (snprintf(buf, sizeof(buf), "%.*s%s", (int) n, s, suffix) >= (int) sizeof(buf))
                return -ERANGE;
        return quantity_parse(buf, ret);
}

static int parse_string_field(const char *value, void *field) {
        char **s = field, *copy;

        copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*s);
        *s = copy;
        return 0;
}

static int parse_path_field(const char *value, void *field) {
        if (value[0] != '/' || strlen(value) >= PATH_MAX || strstr(value, "/../") ||
            (strlen(value) >= 3 && streq(value + strlen(value) - 3, "/..")))
                return -EINVAL;
        return parse_string_field(value, field);
}

static int parse_optional_path_field(const char *value, void *field) {
        if (isempty(value)) {
                char **s = field;
                *s = mfree(*s);
                return 0;
        }
        return parse_path_field(value, field);
}

/* A DNS subdomain (RFC 1123): the rules for driver and node names. */
static bool dns_subdomain_valid(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (!alnum && c != '-' && c != '.')
                        return false;
                if ((i == 0 || i == n - 1) && !alnum)
                        return false;
                if (c == '.' && (s[i - 1] == '.' || s[i - 1] == '-' || s[i + 1] == '-'))
                        return false;
        }
        return true;
}

static int parse_driver_name_field(const char *value, void *field) {
        if (!dns_subdomain_valid(value, 63))
                return -EINVAL;
        return parse_string_field(value, field);
}

static int parse_node_name_field(const char *value, void *field) {
        if (!dns_subdomain_valid(value, 253))
                return -EINVAL;
        return parse_string_field(value, field);
}

static int parse_bool_field(const char *value, void *field) {
        int r = parse_boolean(value);
        if (r < 0)
                return r;
        *(bool *) field = r;
        return 0;
}

static int parse_log_level_field(const char *value, void *field) {
        int r = log_parse_level(value);
        if (r < 0)
                return r;
        *(int *) field = r;
        return 0;
}

static int parse_backend_field(const char *value, void *field) {
        if (streq(value, "nvml"))
                *(GpuBackendKind *) field = GPU_BACKEND_NVML;
        else if (streq(value, "mock"))
                *(GpuBackendKind *) field = GPU_BACKEND_MOCK;
        else
                return -EINVAL;
        return 0;
}

static int parse_mock_gpus_field(const char *value, void *field) {
        return parse_unsigned(value, 0, MOCK_GPUS_MAX, field);
}

static int parse_reconcile_interval_field(const char *value, void *field) {
        return parse_unsigned(value, 0, RECONCILE_INTERVAL_SEC_MAX, field);
}

static int parse_mock_model_field(const char *value, void *field) {
        if (isempty(value) || strlen(value) > 64)
                return -EINVAL;
        for (const char *p = value; *p; p++)
                if (!isprint((unsigned char) *p))
                        return -EINVAL;
        return parse_string_field(value, field);
}

static int parse_mock_memory_field(const char *value, void *field) {
        uint64_t v;
        int r = parse_size(value, &v);
        if (r < 0)
                return r;
        if (v < (1ULL << 20) || v > (1ULL << 50)) /* 1 MiB .. 1 PiB */
                return -ERANGE;
        *(uint64_t *) field = v;
        return 0;
}

static int parse_seccomp_field(const char *value, void *field) {
        if (streq(value, "errno"))
                *(SeccompAction *) field = SECCOMP_ACTION_ERRNO;
        else if (streq(value, "kill"))
                *(SeccompAction *) field = SECCOMP_ACTION_KILL;
        else
                return -EINVAL;
        return 0;
}

#define FIELD(f) offsetof(Config, f)

static const ConfigItem config_items[] = {
        { "Plugin", "DriverName", parse_driver_name_field, FIELD(driver_name) },
        { "Plugin", "NodeName", parse_node_name_field, FIELD(node_name) },
        { "Plugin", "RegistryDirectory", parse_path_field, FIELD(registry_dir) },
        { "Plugin", "PluginsDirectory", parse_path_field, FIELD(plugins_dir) },
        { "Plugin", "CDIDirectory", parse_path_field, FIELD(cdi_dir) },
        { "Plugin", "StateDirectory", parse_path_field, FIELD(state_dir) },
        { "Plugin", "Kubeconfig", parse_optional_path_field, FIELD(kubeconfig) },
        { "Plugin", "LogLevel", parse_log_level_field, FIELD(log_level) },
        { "Plugin", "ReconcileIntervalSec", parse_reconcile_interval_field, FIELD(reconcile_interval_sec) },
        { "GPU", "Backend", parse_backend_field, FIELD(backend) },
        { "Mock", "GPUs", parse_mock_gpus_field, FIELD(mock_gpus) },
        { "Mock", "Model", parse_mock_model_field, FIELD(mock_model) },
        { "Mock", "Memory", parse_mock_memory_field, FIELD(mock_memory) },
        { "Container", "PreloadLibrary", parse_path_field, FIELD(preload_library) },
        { "Container", "DriverFromRuntime", parse_bool_field, FIELD(driver_from_runtime) },
        { "Sandbox", "Enabled", parse_bool_field, FIELD(sandbox) },
        { "Sandbox", "Seccomp", parse_seccomp_field, FIELD(seccomp_action) },
};

/* ---------------------------------------------------------------- defaults */

static int default_node_name(char **ret) {
        char host[HOST_NAME_MAX + 1] = {};

        if (gethostname(host, sizeof(host) - 1) < 0)
                return negative_errno();
        for (char *p = host; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        /* Kubernetes node names are the lower-cased hostname. */
        if (!dns_subdomain_valid(host, 253))
                return -EINVAL;
        *ret = strdup(host);
        return *ret ? 0 : -ENOMEM;
}

int config_init(Config *c) {
        int r;

        *c = (Config) {
                .log_level = LOG_INFO,
                .reconcile_interval_sec = RECONCILE_INTERVAL_SEC_DEFAULT,
                .backend = GPU_BACKEND_NVML,
                .mock_gpus = 8,
                .mock_memory = 23028ULL << 20, /* an A10, as nvidia-smi reports it */
                .sandbox = true,
                .seccomp_action = SECCOMP_ACTION_ERRNO,
        };

        c->config_file = strdup(DEFAULT_CONFIG_FILE);
        c->driver_name = strdup(DEFAULT_DRIVER_NAME);
        c->registry_dir = strdup(DEFAULT_REGISTRY_DIR);
        c->plugins_dir = strdup(DEFAULT_PLUGINS_DIR);
        c->cdi_dir = strdup(DEFAULT_CDI_DIR);
        c->state_dir = strdup(DEFAULT_STATE_DIR);
        c->kubeconfig = strdup(DEFAULT_KUBECONFIG);
        c->mock_model = strdup("NVIDIA A10");
        c->preload_library = strdup(DEFAULT_PRELOAD_LIBRARY);
        if (!c->config_file || !c->driver_name || !c->registry_dir || !c->plugins_dir || !c->cdi_dir ||
            !c->state_dir || !c->kubeconfig || !c->mock_model || !c->preload_library) {
                config_done(c);
                return -ENOMEM;
        }

        r = default_node_name(&c->node_name);
        if (r == -ENOMEM) {
                config_done(c);
                return r;
        }
        /* An unusable hostname is not fatal here: --node-name may still come. */
        return 0;
}

void config_done(Config *c) {
        free(c->config_file);
        free(c->driver_name);
        free(c->node_name);
        free(c->registry_dir);
        free(c->plugins_dir);
        free(c->cdi_dir);
        free(c->state_dir);
        free(c->kubeconfig);
        free(c->mock_model);
        free(c->preload_library);
        *c = (Config) {};
}

/* ---------------------------------------------------------------- INI text */

static char *strip(char *s) {
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = '\0';
        return s;
}

static const ConfigItem *config_item_find(const char *section, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(config_items); i++)
                if (streq(config_items[i].section, section) && streq(config_items[i].key, key))
                        return &config_items[i];
        return NULL;
}

static bool config_section_known(const char *section) {
        for (size_t i = 0; i < ELEMENTSOF(config_items); i++)
                if (streq(config_items[i].section, section))
                        return true;
        return false;
}

static int config_apply(Config *c, const ConfigItem *item, const char *value, const char *origin,
                        unsigned line) {
        int r = item->parse(value, (uint8_t *) c + item->offset);

        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r == -ERANGE ? r : -EINVAL,
                                       "%s:%u: invalid value for %s=: \"%s\"%s", origin, line,
                                       item->key, value, r == -ERANGE ? " (out of range)" : "");
        return 0;
}

int config_parse_text(Config *c, const char *text, const char *origin) {
        _cleanup_free_ char *copy = NULL;
        char section[64] = "";
        unsigned line_no = 0;
        int r = 0;

        if (strlen(text) > CONFIG_FILE_MAX)
                return log_error_errno(-EFBIG, "%s: larger than %u bytes, refusing", origin,
                                       CONFIG_FILE_MAX);
        copy = strdup(text);
        if (!copy)
                return log_oom();

        for (char *raw = copy, *next; raw; raw = next) {
                next = strchr(raw, '\n');
                if (next)
                        *next++ = '\0';
                line_no++;
                char *l = strip(raw);

                if (strlen(l) > CONFIG_LINE_MAX) {
                        r = log_error_errno(-EINVAL, "%s:%u: line too long", origin, line_no);
                        continue;
                }
                if (l[0] == '\0' || l[0] == '#' || l[0] == ';')
                        continue;

                if (l[0] == '[') {
                        size_t n = strlen(l);
                        if (l[n - 1] != ']' || n - 2 >= sizeof(section) || n < 3) {
                                r = log_error_errno(-EINVAL, "%s:%u: bad section header: %s", origin,
                                                    line_no, l);
                                section[0] = '\0';
                                continue;
                        }
                        memcpy(section, l + 1, n - 2);
                        section[n - 2] = '\0';
                        if (!config_section_known(section))
                                log_warning("%s:%u: unknown section [%s], ignoring", origin, line_no,
                                            section);
                        continue;
                }

                char *eq = strchr(l, '=');
                if (!eq) {
                        r = log_error_errno(-EINVAL, "%s:%u: expected Key=Value: %s", origin, line_no,
                                            l);
                        continue;
                }
                *eq = '\0';
                char *key = strip(l), *value = strip(eq + 1);

                if (section[0] == '\0') {
                        r = log_error_errno(-EINVAL, "%s:%u: %s= outside of a section", origin,
                                            line_no, key);
                        continue;
                }
                const ConfigItem *item = config_item_find(section, key);
                if (!item) {
                        if (config_section_known(section))
                                log_warning("%s:%u: unknown key %s= in [%s], ignoring", origin,
                                            line_no, key, section);
                        continue;
                }
                int q = config_apply(c, item, value, origin, line_no);
                if (q == -ENOMEM)
                        return q;
                if (q < 0)
                        r = q;
        }
        return r;
}

/* ---------------------------------------------------------------- files */

static int read_config_file(const char *path, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t n;
        int r;

        r = read_file_bounded(path, CONFIG_FILE_MAX, &buf, &n);
        if (r < 0)
                return r;
        if (memchr(buf, '\0', n))
                return -EBADMSG;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int config_load_one(Config *c, const char *path, bool missing_ok) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_config_file(path, &text);
        if (r == -ENOENT && missing_ok)
                return 0;
        if (r == -EFBIG)
                return log_error_errno(r, "%s: larger than %u bytes, refusing", path, CONFIG_FILE_MAX);
        if (r == -EBADMSG)
                return log_error_errno(r, "%s: contains a NUL byte, not a text file", path);
        if (r == -EBADFD)
                return log_error_errno(r, "%s: not a regular file", path);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        log_debug("Reading %s", path);
        return config_parse_text(c, text, path);
}

static int dropin_filter(const struct dirent *de) {
        size_t n = strlen(de->d_name);
        return de->d_name[0] != '.' && n > 5 && streq(de->d_name + n - 5, ".conf");
}

int config_load_files(Config *c) {
        _cleanup_free_ char *dir = NULL;
        struct dirent **names = NULL;
        int n, r;

        if (!c->config_file)
                return 0;

        r = config_load_one(c, c->config_file, true);
        if (r < 0)
                return r;

        if (asprintf(&dir, "%s.d", c->config_file) < 0)
                return log_oom();
        n = scandir(dir, &names, dropin_filter, alphasort);
        if (n < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return 0;
                return log_error_errno(negative_errno(), "Failed to list %s: %m", dir);
        }

        r = 0;
        for (int i = 0; i < n; i++) {
                if (i < CONFIG_DROPINS_MAX && r >= 0) {
                        _cleanup_free_ char *p = NULL;
                        if (asprintf(&p, "%s/%s", dir, names[i]->d_name) < 0)
                                r = log_oom();
                        else
                                r = config_load_one(c, p, true);
                } else if (i == CONFIG_DROPINS_MAX)
                        log_warning("%s: more than %d drop-ins, ignoring the rest", dir,
                                    CONFIG_DROPINS_MAX);
                free(names[i]);
        }
        free(names);
        return r;
}

/* ---------------------------------------------------------------- derived */

static char *path_join3(const char *a, const char *b, const char *c) {
        char *p;
        if (asprintf(&p, "%s/%s%s", a, b, c) < 0)
                return NULL;
        return p;
}

char *config_registration_socket(const Config *c) {
        return path_join3(c->registry_dir, c->driver_name, "-reg.sock");
}

char *config_dra_socket_dir(const Config *c) {
        return path_join3(c->plugins_dir, c->driver_name, "");
}

char *config_dra_socket(const Config *c) {
        return path_join3(c->plugins_dir, c->driver_name, "/dra.sock");
}

/* After everything is merged: the checks that need several keys at once. */
static int config_verify(const Config *c) {
        _cleanup_free_ char *reg = config_registration_socket(c), *dra = config_dra_socket(c);

        if (!reg || !dra)
                return log_oom();
        if (!c->node_name)
                return log_error_errno(-EINVAL,
                                       "The hostname is not a valid Kubernetes node name; set --node-name= or NodeName=");
        if (strlen(reg) >= sizeof_field(struct sockaddr_un, sun_path))
                return log_error_errno(-ENAMETOOLONG, "Registration socket path too long for AF_UNIX: %s",
                                       reg);
        if (strlen(dra) >= sizeof_field(struct sockaddr_un, sun_path))
                return log_error_errno(-ENAMETOOLONG, "DRA socket path too long for AF_UNIX: %s", dra);
        return 0;
}

/* ---------------------------------------------------------------- command line */

enum {
        ARG_VERSION = 0x100,
        ARG_CONFIG,
        ARG_DRIVER_NAME,
        ARG_NODE_NAME,
        ARG_REGISTRY_DIR,
        ARG_PLUGINS_DIR,
        ARG_CDI_DIR,
        ARG_STATE_DIR,
        ARG_BACKEND,
        ARG_MOCK_GPUS,
        ARG_KUBECONFIG,
        ARG_LOG_LEVEL,
        ARG_NO_SANDBOX,
};

static const struct option config_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        { "config", required_argument, NULL, ARG_CONFIG },
        { "driver-name", required_argument, NULL, ARG_DRIVER_NAME },
        { "node-name", required_argument, NULL, ARG_NODE_NAME },
        { "registry-dir", required_argument, NULL, ARG_REGISTRY_DIR },
        { "plugins-dir", required_argument, NULL, ARG_PLUGINS_DIR },
        { "cdi-dir", required_argument, NULL, ARG_CDI_DIR },
        { "state-dir", required_argument, NULL, ARG_STATE_DIR },
        { "backend", required_argument, NULL, ARG_BACKEND },
        { "mock-gpus", required_argument, NULL, ARG_MOCK_GPUS },
        { "kubeconfig", required_argument, NULL, ARG_KUBECONFIG },
        { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
        { "no-sandbox", no_argument, NULL, ARG_NO_SANDBOX },
        {}
};

static void config_help(const char *argv0) {
        printf("%s [OPTIONS...]\n\n"
               "Kubernetes DRA kubelet plugin that shares NVIDIA GPUs with memory and compute limits.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --config=PATH          Configuration file (default %s; empty: none)\n"
               "     --driver-name=NAME     DRA driver name (default %s)\n"
               "     --node-name=NAME       Kubernetes node name (default: the hostname)\n"
               "     --registry-dir=DIR     Kubelet plugin registry (default %s)\n"
               "     --plugins-dir=DIR      Kubelet plugins directory (default %s)\n"
               "     --cdi-dir=DIR          CDI spec directory (default %s)\n"
               "     --state-dir=DIR        Checkpoints and claim directories (default %s)\n"
               "     --backend=nvml|mock    GPU discovery backend (default nvml)\n"
               "     --mock-gpus=N          Number of mock GPUs (0-%d, implies nothing about --backend)\n"
               "     --kubeconfig=PATH      Credentials for the API server (default %s)\n"
               "     --log-level=LEVEL      debug, info, notice, warning, err (default info)\n"
               "     --no-sandbox           Development only: no capability drop, no seccomp\n"
               "\nSee hami-dra-plugin(8) and hami-dra.conf(5).\n",
               argv0, DEFAULT_CONFIG_FILE, DEFAULT_DRIVER_NAME, DEFAULT_REGISTRY_DIR,
               DEFAULT_PLUGINS_DIR, DEFAULT_CDI_DIR, DEFAULT_STATE_DIR, MOCK_GPUS_MAX,
               DEFAULT_KUBECONFIG);
}

static const ConfigItem *config_item_for_option(int opt) {
        static const struct {
                int opt;
                const char *section, *key;
        } map[] = {
                { ARG_DRIVER_NAME, "Plugin", "DriverName" },
                { ARG_NODE_NAME, "Plugin", "NodeName" },
                { ARG_REGISTRY_DIR, "Plugin", "RegistryDirectory" },
                { ARG_PLUGINS_DIR, "Plugin", "PluginsDirectory" },
                { ARG_CDI_DIR, "Plugin", "CDIDirectory" },
                { ARG_STATE_DIR, "Plugin", "StateDirectory" },
                { ARG_BACKEND, "GPU", "Backend" },
                { ARG_MOCK_GPUS, "Mock", "GPUs" },
                { ARG_KUBECONFIG, "Plugin", "Kubeconfig" },
                { ARG_LOG_LEVEL, "Plugin", "LogLevel" },
        };

        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (map[i].opt == opt)
                        return config_item_find(map[i].section, map[i].key);
        return NULL;
}

static const char *option_name(int opt) {
        for (const struct option *o = config_options; o->name; o++)
                if (o->val == opt)
                        return o->name;
        return "?";
}

/* One pass over argv. First pass: only --config, --help, --version. Second: the rest. */
static int config_parse_argv_pass(Config *c, int argc, char *argv[], bool first) {
        int opt;

        optind = 0; /* glibc: full re-initialisation */
        opterr = first;
        while ((opt = getopt_long(argc, argv, "h", config_options, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        if (first) {
                                config_help(program_invocation_short_name);
                                return 1;
                        }
                        break;
                case ARG_VERSION:
                        if (first) {
                                printf("hami-dra-plugin %s\n", PACKAGE_VERSION);
                                return 1;
                        }
                        break;
                case ARG_CONFIG:
                        if (first) {
                                free(c->config_file);
                                c->config_file = isempty(optarg) ? NULL : strdup(optarg);
                                if (!isempty(optarg) && !c->config_file)
                                        return log_oom();
                        }
                        break;
                case ARG_NO_SANDBOX:
                        if (!first)
                                c->sandbox = false;
                        break;
                case '?':
                        if (first)
                                return -EINVAL; /* getopt said why */
                        break;
                default:
                        if (!first) {
                                const ConfigItem *item = config_item_for_option(opt);
                                int r = item->parse(optarg, (uint8_t *) c + item->offset);
                                if (r == -ENOMEM)
                                        return log_oom();
                                if (r < 0)
                                        return log_error_errno(-EINVAL, "Invalid value for --%s: \"%s\"%s",
                                                               option_name(opt), optarg,
                                                               r == -ERANGE ? " (out of range)" : "");
                        }
                }
        }
        if (first && optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument: %s", argv[optind]);
        return 0;
}

int config_parse_argv(Config *c, int argc, char *argv[]) {
        int r;

        r = config_parse_argv_pass(c, argc, argv, true);
        if (r != 0)
                return r;
        r = config_load_files(c);
        if (r < 0)
                return r;
        r = config_parse_argv_pass(c, argc, argv, false);
        if (r < 0)
                return r;
        return config_verify(c);
}
