/*
 * modules/mock/mock_map.c - a string-keyed hash map that remembers the
 * order of insertion, so the registry can evict its oldest objects.
 *
 * Chained buckets, doubled when the load passes 1. The hash is FNV-1a mixed
 * with a per-process random seed and a final avalanche, so keys chosen by a
 * caller (idempotency keys, payment ids) cannot be aimed at one bucket.
 * Not thread-safe: the registry calls it with mock_mu held.
 */
#include "mock.h"

#include <stdlib.h>
#include <string.h>

#define MOCK_MAP_INITIAL 1024

static uint64_t mock_map_hash(uint64_t seed, const char *key)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;

    for (; *key != '\0'; key++) {
        h ^= (unsigned char)*key;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Returns 0, or -1 when the first bucket array cannot be allocated. */
int mock_map_init(mock_map *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->buckets = calloc(MOCK_MAP_INITIAL, sizeof *m->buckets);
    if (m->buckets == NULL)
        return -1;
    m->nbuckets = MOCK_MAP_INITIAL;
    m->seed = seed;
    return 0;
}

/* Free every entry (and its value through `free_val`, if not NULL). */
void mock_map_destroy(mock_map *m, void (*free_val)(void *))
{
    mock_map_entry *en = m->oldest;

    while (en != NULL) {
        mock_map_entry *next = en->newer;

        if (free_val != NULL)
            free_val(en->val);
        free(en->key);
        free(en);
        en = next;
    }
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

static mock_map_entry *mock_map_find(const mock_map *m, const char *key,
                                     uint64_t h)
{
    mock_map_entry *en;

    if (m->buckets == NULL)
        return NULL;
    for (en = m->buckets[h & (m->nbuckets - 1)]; en != NULL; en = en->chain)
        if (en->hash == h && strcmp(en->key, key) == 0)
            return en;
    return NULL;
}

void *mock_map_get(const mock_map *m, const char *key)
{
    mock_map_entry *en = mock_map_find(m, key, mock_map_hash(m->seed, key));

    return en != NULL ? en->val : NULL;
}

/* Double the bucket array. On allocation failure the map keeps working,
 * only with longer chains. */
static void mock_map_grow(mock_map *m)
{
    size_t n = m->nbuckets * 2, i;
    mock_map_entry **b = calloc(n, sizeof *b);

    if (b == NULL)
        return;
    for (i = 0; i < m->nbuckets; i++) {
        mock_map_entry *en = m->buckets[i];

        while (en != NULL) {
            mock_map_entry *next = en->chain;

            en->chain = b[en->hash & (n - 1)];
            b[en->hash & (n - 1)] = en;
            en = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

/*
 * Insert `val` under a copy of `key`, as the newest entry. Returns 0, 1 if
 * the key is already present (nothing changes), or -1 on OOM.
 */
int mock_map_put(mock_map *m, const char *key, void *val)
{
    uint64_t h = mock_map_hash(m->seed, key);
    mock_map_entry *en;

    if (m->buckets == NULL)
        return -1;
    if (mock_map_find(m, key, h) != NULL)
        return 1;
    en = calloc(1, sizeof *en);
    if (en == NULL)
        return -1;
    en->key = strdup(key);
    if (en->key == NULL) {
        free(en);
        return -1;
    }
    en->val = val;
    en->hash = h;
    en->chain = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = en;
    en->older = m->newest;
    if (m->newest != NULL)
        m->newest->newer = en;
    else
        m->oldest = en;
    m->newest = en;
    m->count++;
    if (m->count > m->nbuckets)
        mock_map_grow(m);
    return 0;
}

/* Unlink and free one entry; returns its value. */
static void *mock_map_unlink(mock_map *m, mock_map_entry *en)
{
    mock_map_entry **pp = &m->buckets[en->hash & (m->nbuckets - 1)];
    void *val = en->val;

    while (*pp != en)
        pp = &(*pp)->chain;
    *pp = en->chain;
    if (en->older != NULL)
        en->older->newer = en->newer;
    else
        m->oldest = en->newer;
    if (en->newer != NULL)
        en->newer->older = en->older;
    else
        m->newest = en->older;
    m->count--;
    free(en->key);
    free(en);
    return val;
}

/* Remove `key`; returns its value (the caller frees it) or NULL. */
void *mock_map_remove(mock_map *m, const char *key)
{
    mock_map_entry *en = mock_map_find(m, key, mock_map_hash(m->seed, key));

    return en != NULL ? mock_map_unlink(m, en) : NULL;
}

/*
 * Remove one old entry to make room: the oldest of the first `scan` entries
 * for which `prefer` says yes (e.g. a terminal intent), else the oldest of
 * all. Returns the removed value for the caller to free, or NULL if empty.
 */
void *mock_map_evict(mock_map *m, int (*prefer)(const void *val), size_t scan)
{
    mock_map_entry *en;

    if (m->oldest == NULL)
        return NULL;
    if (prefer != NULL)
        for (en = m->oldest; en != NULL && scan > 0; en = en->newer, scan--)
            if (prefer(en->val))
                return mock_map_unlink(m, en);
    return mock_map_unlink(m, m->oldest);
}
