/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>

#include "checkpoint.h"
#include "claim.h"
#include "fsutil.h"
#include "json-util.h"
#include "json-writer.h"
#include "macro.h"

#define CHECKPOINT_MAGIC "HAMI-DRA-CHECKPOINT"
#define CHECKPOINT_STRING_MAX 4096

/* ---------------------------------------------------------------- CRC-32C */

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
                crc32c_table[i] = c;
        }
}

#if defined(__x86_64__)
/* SSE 4.2 has a CRC-32C instruction: 8 bytes per step. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len) {
        uint64_t c = ~crc;

        for (; len >= 8; p += 8, len -= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                c = __builtin_ia32_crc32di(c, v);
        }
        for (; len > 0; p++, len--)
                c = __builtin_ia32_crc32qi((uint32_t) c, *p);
        return ~(uint32_t) c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
        const uint8_t *p = data;

#if defined(__x86_64__)
        if (__builtin_cpu_supports("sse4.2"))
                return crc32c_sse42(crc, p, len);
#endif
        pthread_once(&crc32c_once, crc32c_init);
        crc = ~crc;
        while (len--)
                crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

/* ---------------------------------------------------------------- encode */

static void encode_device(JsonWriter *w, const PreparedClaimDevice *d) {
        jw_object_begin(w);
        jw_kv_string(w, "request", d->request);
        jw_kv_string(w, "pool", d->pool);
        jw_kv_string(w, "device", d->device);
        jw_kv_string(w, "cdiDeviceId", d->cdi_device_id);
        jw_kv_string(w, "shareId", d->share_id);
        jw_kv_string(w, "gpuUuid", d->gpu_uuid);
        jw_kv_uint(w, "memoryLimitMiB", d->memory_mib);
        jw_kv_uint(w, "coresLimit", d->cores);
        jw_kv_uint(w, "cudaIndex", d->cuda_index);
        jw_object_end(w);
}

int checkpoint_encode(const PreparedClaim *c, char **ret, size_t *ret_len) {
        _cleanup_(json_writer_freep) JsonWriter *w = json_writer_new();
        const char *payload;
        char header[128];
        size_t plen, slen;
        int hlen, r;
        char *buf;

        if (!w)
                return -ENOMEM;
        jw_object_begin(w);
        jw_kv_string(w, "uid", c->uid);
        jw_kv_string(w, "namespace", c->namespace_);
        jw_kv_string(w, "name", c->name);
        jw_kv_string(w, "bootId", c->boot_id);
        jw_key(w, "devices");
        jw_array_begin(w);
        for (size_t i = 0; i < c->n_devices; i++)
                encode_device(w, &c->devices[i]);
        jw_array_end(w);
        jw_object_end(w);
        r = json_writer_finish(w, &payload, &plen);
        if (r < 0)
                return r;

        /* The spec follows the payload as it is: a JSON text in a JSON string would be
         * escaped on every prepare and unescaped on every load. */
        slen = c->cdi_spec ? strlen(c->cdi_spec) : 0;
        hlen = snprintf(header, sizeof(header), CHECKPOINT_MAGIC " %d %08" PRIx32 " %zu %zu\n", CHECKPOINT_VERSION,
                        crc32c(crc32c(0, payload, plen), c->cdi_spec ?: "", slen), plen, slen);
        buf = malloc((size_t) hlen + plen + slen + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, header, (size_t) hlen);
        memcpy(buf + hlen, payload, plen);
        memcpy(buf + hlen + plen, c->cdi_spec ?: "", slen);
        buf[hlen + plen + slen] = '\0';
        *ret = buf;
        *ret_len = (size_t) hlen + plen + slen;
        return 0;
}

/* ---------------------------------------------------------------- decode */

static int get_str(json_object *o, const char *key, bool required, char **ret) {
        json_object *v;
        const char *s;

        if (!json_object_object_get_ex(o, key, &v)) {
                *ret = NULL;
                return required ? -EBADMSG : 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = json_object_get_string(v);
        if (strlen(s) > (streq(key, "cdiSpec") ? CHECKPOINT_FILE_MAX : CHECKPOINT_STRING_MAX))
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int get_uint(json_object *o, const char *key, uint64_t max, uint64_t *ret) {
        json_object *v;
        int64_t x;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        x = json_object_get_int64(v);
        if (x < 0 || (uint64_t) x > max)
                return -EBADMSG;
        *ret = (uint64_t) x;
        return 0;
}

static int decode_device(json_object *o, PreparedClaimDevice *d) {
        uint64_t cores, index = 0;
        json_object *v;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if ((r = get_str(o, "request", true, &d->request)) < 0 || (r = get_str(o, "pool", true, &d->pool)) < 0 ||
            (r = get_str(o, "device", true, &d->device)) < 0 ||
            (r = get_str(o, "cdiDeviceId", true, &d->cdi_device_id)) < 0 ||
            (r = get_str(o, "shareId", false, &d->share_id)) < 0 ||
            (r = get_str(o, "gpuUuid", true, &d->gpu_uuid)) < 0 ||
            (r = get_uint(o, "memoryLimitMiB", UINT64_C(1) << 40, &d->memory_mib)) < 0 ||
            (r = get_uint(o, "coresLimit", 100, &cores)) < 0)
                return r;
        d->cores = (unsigned) cores;
        /* Optional: absent in checkpoints written before it existed. */
        if (json_object_object_get_ex(o, "cudaIndex", &v) &&
            (r = get_uint(o, "cudaIndex", PREPARED_CLAIM_DEVICES_MAX - 1, &index)) < 0)
                return r;
        d->cuda_index = (unsigned) index;
        return 0;
}

static int decode_payload(json_object *root, bool spec_in_payload, PreparedClaim *c) {
        _cleanup_free_ char *boot = NULL;
        json_object *devs;
        size_t n;
        int r;

        if (!json_object_is_type(root, json_type_object))
                return -EBADMSG;
        if ((r = get_str(root, "uid", true, &c->uid)) < 0 || (r = get_str(root, "namespace", true, &c->namespace_)) < 0 ||
            (r = get_str(root, "name", true, &c->name)) < 0 || (r = get_str(root, "bootId", true, &boot)) < 0)
                return r;
        if (spec_in_payload && (r = get_str(root, "cdiSpec", true, &c->cdi_spec)) < 0)
                return r;
        if (!spec_in_payload && json_object_object_get_ex(root, "cdiSpec", NULL))
                return -EBADMSG;
        if (!claim_uid_is_valid(c->uid) || strlen(boot) != 32)
                return -EBADMSG;
        for (const char *p = boot; *p; p++)
                if (!isxdigit((unsigned char) *p))
                        return -EBADMSG;
        memcpy(c->boot_id, boot, 33);

        if (!json_object_object_get_ex(root, "devices", &devs) || !json_object_is_type(devs, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(devs);
        if (n > PREPARED_CLAIM_DEVICES_MAX)
                return -EBADMSG;
        if (n > 0) {
                c->devices = calloc(n, sizeof(PreparedClaimDevice));
                if (!c->devices)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                c->n_devices++;
                r = decode_device(json_object_array_get_idx(devs, i), &c->devices[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * The header: "<magic> 1 <crc> <payload length>" (the spec inside the payload) or
 * "<magic> 2 <crc> <payload length> <spec length>" (the spec after it), in canonical
 * spelling only: no upper-case hex, signs, spaces or leading zeros.
 */
static int decode_header(const char *header, unsigned *ret_version, uint32_t *ret_crc, size_t *ret_plen,
                         size_t *ret_slen) {
        const char *rest = header + strlen(CHECKPOINT_MAGIC) + 1;
        char canonical[128];
        unsigned version;
        size_t plen, slen = 0;
        uint32_t crc;
        int consumed = 0;

        if (strncmp(header, CHECKPOINT_MAGIC " ", strlen(CHECKPOINT_MAGIC) + 1) != 0)
                return -EBADMSG;
        if (sscanf(rest, "%u", &version) != 1)
                return -EBADMSG;
        if (version == 1) {
                if (sscanf(rest, "%u %8" SCNx32 " %zu%n", &version, &crc, &plen, &consumed) != 3)
                        return -EBADMSG;
                snprintf(canonical, sizeof(canonical), CHECKPOINT_MAGIC " 1 %08" PRIx32 " %zu", crc, plen);
        } else if (version == 2) {
                if (sscanf(rest, "%u %8" SCNx32 " %zu %zu%n", &version, &crc, &plen, &slen, &consumed) != 4)
                        return -EBADMSG;
                snprintf(canonical, sizeof(canonical), CHECKPOINT_MAGIC " 2 %08" PRIx32 " %zu %zu", crc, plen, slen);
        } else
                return -EPROTONOSUPPORT;
        if (rest[consumed] != '\0' || !streq(canonical, header))
                return -EBADMSG;
        *ret_version = version;
        *ret_crc = crc;
        *ret_plen = plen;
        *ret_slen = slen;
        return 0;
}

int checkpoint_decode(const void *data, size_t len, PreparedClaim *ret) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        const char *nl, *text = data, *body;
        char header[128];
        unsigned version;
        uint32_t crc;
        size_t plen, slen, blen;
        json_object *root;
        int r;

        if (len > CHECKPOINT_FILE_MAX)
                return -EBADMSG;
        nl = memchr(text, '\n', MIN(len, sizeof(header) - 1));
        if (!nl)
                return -EBADMSG;
        memcpy(header, text, (size_t) (nl - text));
        header[nl - text] = '\0';
        r = decode_header(header, &version, &crc, &plen, &slen);
        if (r < 0)
                return r;
        body = nl + 1;
        blen = len - (size_t) (body - text);
        if (plen > blen || slen != blen - plen)
                return -EBADMSG;
        if (crc32c(0, body, blen) != crc)
                return -EBADMSG;
        if (plen == 0 || memchr(body, '\0', blen))
                return -EBADMSG;

        r = json_parse_bounded(body, plen, 8, &root);
        if (r < 0)
                return r;
        r = decode_payload(root, version == 1, &c);
        json_object_put(root);
        if (r < 0)
                return r;
        if (version == 2) {
                c.cdi_spec = strndup(body + plen, slen);
                if (!c.cdi_spec)
                        return -ENOMEM;
        }
        *ret = c;
        c = (PreparedClaim) {};
        return 0;
}

/* ---------------------------------------------------------------- files */

static int checkpoint_file_name(const char *uid, char *name, size_t size) {
        if (!claim_uid_is_valid(uid))
                return -EINVAL;
        return snprintf(name, size, "%s" CHECKPOINT_SUFFIX, uid) >= (int) size ? -ENAMETOOLONG : 0;
}

int checkpoint_save_at(int dfd, const PreparedClaim *c) {
        _cleanup_free_ char *data = NULL;
        char name[NAME_MAX];
        size_t len;
        int r;

        r = checkpoint_file_name(c->uid, name, sizeof(name));
        if (r < 0)
                return r;
        r = checkpoint_encode(c, &data, &len);
        if (r < 0)
                return r;
        if (len > CHECKPOINT_FILE_MAX)
                return -E2BIG;
        return write_file_atomic_at(dfd, name, data, len, 0600, WRITE_DURABLE);
}

int checkpoint_load_at(int dfd, const char *uid, PreparedClaim *ret) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        _cleanup_free_ char *data = NULL;
        char name[NAME_MAX];
        size_t len;
        int r;

        r = checkpoint_file_name(uid, name, sizeof(name));
        if (r < 0)
                return r;
        r = read_file_bounded_at(dfd, name, CHECKPOINT_FILE_MAX, READ_FILE_NOFOLLOW, &data, &len);
        if (r < 0)
                return IN_SET(r, -EFBIG, -EBADFD) ? -EBADMSG : r;
        r = checkpoint_decode(data, len, &c);
        if (r < 0)
                return r;
        if (!streq(c.uid, uid))
                return -EBADMSG;  /* a file renamed under another claim's name */
        *ret = c;
        c = (PreparedClaim) {};
        return 0;
}

int checkpoint_remove_at(int dfd, const char *uid) {
        char name[NAME_MAX];
        int r;

        r = checkpoint_file_name(uid, name, sizeof(name));
        if (r < 0)
                return r;
        return unlinkat(dfd, name, 0) < 0 ? negative_errno() : 0;
}

static int checkpoint_dir_open(const char *state_dir, bool create) {
        char dir[PATH_MAX];
        int r;

        if (snprintf(dir, sizeof(dir), "%s/" CHECKPOINT_DIR_NAME, state_dir) >= (int) sizeof(dir))
                return -ENAMETOOLONG;
        if (create) {
                r = mkdir_parents(dir, 0700);
                if (r < 0)
                        return r;
        }
        return open_directory(dir);
}

int checkpoint_save(const char *state_dir, const PreparedClaim *c) {
        _cleanup_close_ int dfd = checkpoint_dir_open(state_dir, true);
        return dfd < 0 ? dfd : checkpoint_save_at(dfd, c);
}

int checkpoint_load(const char *state_dir, const char *uid, PreparedClaim *ret) {
        _cleanup_close_ int dfd = -EBADF;

        if (!claim_uid_is_valid(uid))
                return -EINVAL;
        dfd = checkpoint_dir_open(state_dir, false);
        return dfd < 0 ? dfd : checkpoint_load_at(dfd, uid, ret);
}

int checkpoint_remove(const char *state_dir, const char *uid) {
        _cleanup_close_ int dfd = -EBADF;

        if (!claim_uid_is_valid(uid))
                return -EINVAL;
        dfd = checkpoint_dir_open(state_dir, false);
        return dfd < 0 ? dfd : checkpoint_remove_at(dfd, uid);
}
