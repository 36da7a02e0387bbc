/* The overlay address map page (layout in include/ff/shm.h): the router
 * writes it, shims read it without a syscall on every connect(). */
#pragma once

#include <ff/shm.h>
#include <stdint.h>

#include "addr.h"

/* Initialises a fresh, zeroed page of FF_MAP_SIZE bytes. */
void ff_map_init(struct ff_map_hdr *m);

/* Replaces the contents with ents[0..n) (sorted in place; n <= FF_MAP_CAP).
 * Single writer. Returns 0 or -E2BIG. */
int ff_map_write(struct ff_map_hdr *m, struct ff_map_ent *ents, uint32_t n);

/* Looks ip up in a page of FF_MAP_SIZE bytes, whatever it holds. Returns 1
 * and the entry's flags in *flags if present, 0 if absent, -EAGAIN if the
 * page kept changing, -EINVAL if it is not a map. */
int ff_map_find(const struct ff_map_hdr *m, const struct ff_ip *ip, uint8_t *flags);

void ff_map_ent_set(struct ff_map_ent *e, const struct ff_ip *ip, uint8_t flags);
