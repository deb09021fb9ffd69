/* SPDX-License-Identifier: MIT */
/*
 * base/list.h - the one intrusive doubly linked list of libexecutor (libuv's queue.h idea):
 * a circular list with a head node, so that insert and remove never branch on "first" or
 * "last". An element embeds a struct exec__list and is found back with EXEC__CONTAINER_OF.
 * A node that is in no list has next == NULL (exec__list_unlinked()), so a removal can be
 * asked for twice. No locking: the owner of the list says which lock protects it.
 */
#ifndef EXEC_BASE_LIST_H
#define EXEC_BASE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"

struct exec__list {
    struct exec__list *next, *prev;
};

static inline void exec__list_init(struct exec__list *h)
{
    h->next = h->prev = h;
}

static inline bool exec__list_empty(const struct exec__list *h)
{
    return h->next == h;
}

/* Whether node @n is in no list (removed, or never inserted and zeroed). */
static inline bool exec__list_unlinked(const struct exec__list *n)
{
    return n->next == NULL;
}

static inline void exec__list_insert_before(struct exec__list *pos, struct exec__list *n)
{
    n->next = pos;
    n->prev = pos->prev;
    pos->prev->next = n;
    pos->prev = n;
}

static inline void exec__list_push_back(struct exec__list *h, struct exec__list *n)
{
    exec__list_insert_before(h, n);
}

static inline void exec__list_push_front(struct exec__list *h, struct exec__list *n)
{
    exec__list_insert_before(h->next, n);
}

static inline void exec__list_remove(struct exec__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/* The first node, or NULL when the list is empty. */
static inline struct exec__list *exec__list_first(const struct exec__list *h)
{
    return h->next == h ? NULL : h->next;
}

/* The node after @n, or NULL at the end of list @h. */
static inline struct exec__list *exec__list_next(const struct exec__list *h,
                                                 const struct exec__list *n)
{
    return n->next == h ? NULL : n->next;
}

/* Move every node of @from to the end of @to; @from is left empty. */
static inline void exec__list_splice(struct exec__list *to, struct exec__list *from)
{
    if (exec__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    exec__list_init(from);
}

#endif /* EXEC_BASE_LIST_H */
