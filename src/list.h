/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Intrusive linked lists: the item carries the pointers, the owner keeps the head.
 *
 * Doubly linked, for items that leave from anywhere (requests, streams, queries):
 *
 *     struct Item { struct Item *next, *prev; ... };
 *     LIST_PREPEND(s->items, item);
 *     LIST_REMOVE(s->items, item);            item->next/prev are NULL afterwards
 *
 * An item on two lists names the second list's fields:
 * LIST_PREPEND_FIELDS(fetch_next, fetch_prev, s->fetching, item).
 *
 * Singly linked first-in-first-out queues through ->next, with a tail pointer:
 *
 *     QUEUE_PUSH(s->queue, s->queue_tail, item);        at the tail
 *     QUEUE_PUSH_FRONT(s->queue, s->queue_tail, item);  at the head
 *     item = QUEUE_POP(s->queue, s->queue_tail);        the head, or NULL
 *
 * No locking: the owner holds whatever lock guards the head.
 */

#define LIST_PREPEND_FIELDS(next, prev, head, item)                     \
        do {                                                            \
                typeof(item) _list_item_ = (item);                      \
                _list_item_->next = (head);                             \
                _list_item_->prev = NULL;                               \
                if (_list_item_->next)                                  \
                        _list_item_->next->prev = _list_item_;          \
                (head) = _list_item_;                                   \
        } while (0)

#define LIST_REMOVE_FIELDS(next, prev, head, item)                      \
        do {                                                            \
                typeof(item) _list_item_ = (item);                      \
                if (_list_item_->prev)                                  \
                        _list_item_->prev->next = _list_item_->next;    \
                else                                                    \
                        (head) = _list_item_->next;                     \
                if (_list_item_->next)                                  \
                        _list_item_->next->prev = _list_item_->prev;    \
                _list_item_->next = _list_item_->prev = NULL;           \
        } while (0)

#define LIST_PREPEND(head, item) LIST_PREPEND_FIELDS(next, prev, head, item)
#define LIST_REMOVE(head, item) LIST_REMOVE_FIELDS(next, prev, head, item)

#define QUEUE_PUSH(head, tail, item)                                    \
        do {                                                            \
                typeof(item) _queue_item_ = (item);                     \
                _queue_item_->next = NULL;                              \
                if (tail)                                               \
                        (tail)->next = _queue_item_;                    \
                else                                                    \
                        (head) = _queue_item_;                          \
                (tail) = _queue_item_;                                  \
        } while (0)

#define QUEUE_PUSH_FRONT(head, tail, item)                              \
        do {                                                            \
                typeof(item) _queue_item_ = (item);                     \
                _queue_item_->next = (head);                            \
                (head) = _queue_item_;                                  \
                if (!(tail))                                            \
                        (tail) = _queue_item_;                          \
        } while (0)

#define QUEUE_POP(head, tail)                                           \
        ({                                                              \
                typeof(head) _queue_item_ = (head);                     \
                if (_queue_item_) {                                     \
                        (head) = _queue_item_->next;                    \
                        if (!(head))                                    \
                                (tail) = NULL;                          \
                }                                                       \
                _queue_item_;                                           \
        })
