/* SPDX-License-Identifier: Apache-2.0 */
/* The shared helpers: intrusive lists and queues, the error buffer, the json-c helpers. */

#include <stdint.h>

#include "errbuf.h"
#include "json-util.h"
#include "list.h"
#include "tests.h"

typedef struct Item {
        int id;
        struct Item *next, *prev;
        struct Item *other_next, *other_prev;
} Item;

/* The ids from head to tail, checking every back pointer on the way. */
static void assert_list(Item *head, const char *expect) {
        char got[64] = "";
        size_t n = 0;

        for (Item *i = head, *prev = NULL; i; prev = i, i = i->next) {
                ASSERT_TRUE(i->prev == prev);
                n += (size_t) snprintf(got + n, sizeof(got) - n, "%d", i->id);
        }
        ASSERT_STREQ(got, expect);
}

static void test_list(void) {
        Item a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };
        Item *head = NULL, *other = NULL;

        LIST_PREPEND(head, &a);
        LIST_PREPEND(head, &b);
        LIST_PREPEND(head, &c);
        assert_list(head, "321");
        LIST_REMOVE(head, &b); /* middle */
        assert_list(head, "31");
        ASSERT_TRUE(!b.next && !b.prev);
        LIST_REMOVE(head, &c); /* head */
        assert_list(head, "1");
        LIST_REMOVE(head, &a); /* last */
        ASSERT_TRUE(!head);

        /* One item on two lists at once. */
        LIST_PREPEND(head, &a);
        LIST_PREPEND(head, &b);
        LIST_PREPEND_FIELDS(other_next, other_prev, other, &a);
        LIST_PREPEND_FIELDS(other_next, other_prev, other, &c);
        LIST_REMOVE_FIELDS(other_next, other_prev, other, &a);
        ASSERT_TRUE(other == &c && !c.other_next && !c.other_prev);
        assert_list(head, "21");
}

static void test_queue(void) {
        Item a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };
        Item *head = NULL, *tail = NULL;

        ASSERT_TRUE(!QUEUE_POP(head, tail));
        QUEUE_PUSH(head, tail, &a);
        QUEUE_PUSH(head, tail, &b);
        QUEUE_PUSH_FRONT(head, tail, &c);
        ASSERT_TRUE(QUEUE_POP(head, tail) == &c);
        ASSERT_TRUE(QUEUE_POP(head, tail) == &a);
        ASSERT_TRUE(tail == &b);
        ASSERT_TRUE(QUEUE_POP(head, tail) == &b);
        ASSERT_TRUE(!head && !tail);
        QUEUE_PUSH_FRONT(head, tail, &a); /* on an empty queue it is the tail too */
        ASSERT_TRUE(tail == &a);
        QUEUE_PUSH(head, tail, &b);
        ASSERT_TRUE(QUEUE_POP(head, tail) == &a && QUEUE_POP(head, tail) == &b && !tail);
}

static void test_errbuf(void) {
        char small[8], big[64];
        ErrBuf e = { big, sizeof(big) }, s = { small, sizeof(small) }, none = { NULL, 0 };

        ASSERT_EQ(errbuf_fail(&e, -EINVAL, "unknown field \"%s\"", "x"), -EINVAL);
        ASSERT_STREQ(big, "unknown field \"x\"");
        ASSERT_EQ(errbuf_fail(&s, -ERANGE, "%s", "a reason longer than the buffer"), -ERANGE);
        ASSERT_STREQ(small, "a reaso"); /* truncated, terminated */
        ASSERT_EQ(errbuf_fail(&none, -ENOENT, "nowhere to write"), -ENOENT);
        ASSERT_EQ(errbuf_fail(NULL, -EIO, "no buffer at all"), -EIO);
}

static void test_json(void) {
        static const char doc[] = "{\"metadata\": {\"name\": \"x\", \"n\": 42, \"big\": 18446744073709551615,"
                                  " \"ok\": true, \"nil\": null}, \"list\": [1]}";
        _cleanup_json_ json_object *o = NULL;
        json_object *p = NULL;
        char deep[300];

        ASSERT_OK(json_parse_bounded(doc, strlen(doc), 8, &o));
        ASSERT_STREQ(json_get_string(o, "metadata.name"), "x");
        ASSERT_TRUE(!json_get_string(o, "metadata.n"));          /* not a string */
        ASSERT_TRUE(!json_get(o, "metadata.missing"));
        ASSERT_TRUE(!json_get(o, "list.0"));                     /* a step through a non-object */
        ASSERT_TRUE(!json_get(o, "metadata.name.deeper"));
        ASSERT_EQ(json_get_int64(o, "metadata.n", -1), 42);
        ASSERT_EQ(json_get_int64(o, "metadata.missing", -1), -1);
        ASSERT_EQ(json_get_int64(o, "metadata.nil", -1), -1);    /* null reads as absent */
        ASSERT_EQ_U(json_get_uint64(o, "metadata.big", 0), UINT64_MAX);
        ASSERT_TRUE(json_get_bool(o, "metadata.ok", false));
        ASSERT_TRUE(json_get_bool(o, "metadata.missing", true));

        /* A key longer than the path buffer is missing, not truncated into another key. */
        memset(deep, 'k', sizeof(deep) - 1);
        deep[sizeof(deep) - 1] = '\0';
        ASSERT_TRUE(!json_get(o, deep));

        /* Exactly one value, filling the whole text, no deeper than asked. */
        ASSERT_ERROR(json_parse_bounded("{} x", 4, 8, &p), EBADMSG);
        ASSERT_ERROR(json_parse_bounded("{\"a\":", 5, 8, &p), EBADMSG);
        ASSERT_ERROR(json_parse_bounded("null", 4, 8, &p), EBADMSG);
        ASSERT_ERROR(json_parse_bounded("[[[[1]]]]", 9, 3, &p), EBADMSG);
        ASSERT_ERROR(json_parse_bounded("{}", (size_t) INT32_MAX + 1, 8, &p), EBADMSG);
        ASSERT_TRUE(!p);
        ASSERT_OK(json_parse_bounded("[[1]]", 5, 3, &p));
        json_object_put(p);

        /* json_add takes the value's reference, also when it fails (ASan/valgrind see leaks). */
        p = json_object_new_object();
        ASSERT_ERROR(json_add(p, "missing", NULL), ENOMEM);
        ASSERT_OK(json_add(p, "n", json_object_new_int(7)));
        ASSERT_EQ(json_get_int64(p, "n", 0), 7);
        json_object_put(p);
}

int main(void) {
        test_list();
        test_queue();
        test_errbuf();
        test_json();
        return 0;
}
