/*
 * wfpsim_internal.h - the simulator's own object model, shared by its
 * translation units. Not part of the exported interface.
 *
 * Committed objects are immutable and reference counted: a transaction
 * works on a copy of the pointer arrays, so begin is O(objects) pointer
 * copies, commit swaps the arrays in, abort drops them.
 */
#ifndef WFPSIM_INTERNAL_H
#define WFPSIM_INTERNAL_H

#include "wfpsim_types.h"

#include <stddef.h>
#include <stdint.h>

/* A condition or weight value in canonical form. Scalars live in num
 * (floats as their bit pattern); everything held by pointer on Windows is
 * copied into bytes; a range holds its two ends in range[0..1]. */
typedef struct sim_value {
  uint32_t type;
  uint64_t num;
  uint32_t len;
  uint8_t *bytes;
  struct sim_value *range;
} sim_value;

/* Owner of a dynamic-session object: the process and the session inside
 * it. pid 0 means the object is not tied to a session. */
typedef struct sim_owner {
  uint32_t pid;
  uint32_t serial;
} sim_owner;

typedef struct sim_blob {
  uint32_t size;
  uint8_t *data;
} sim_blob;

typedef struct sim_provider {
  int refs;
  SIM_GUID key;
  uint16_t *name;
  uint16_t *desc;
  uint32_t flags;
  sim_blob data;
  uint16_t *service;
  sim_owner owner;
} sim_provider;

typedef struct sim_sublayer {
  int refs;
  SIM_GUID key;
  uint16_t *name;
  uint16_t *desc;
  uint16_t flags;
  int has_provider;
  SIM_GUID provider;
  sim_blob data;
  uint16_t weight;
  sim_owner owner;
} sim_sublayer;

typedef struct sim_condition {
  SIM_GUID field;
  uint32_t match;
  sim_value value;
} sim_condition;

typedef struct sim_filter {
  int refs;
  SIM_GUID key;
  uint64_t id;
  uint16_t *name;
  uint16_t *desc;
  uint32_t flags;
  int has_provider;
  SIM_GUID provider;
  sim_blob data;
  SIM_GUID layer;
  SIM_GUID sublayer;
  uint32_t weight_type;
  uint64_t weight_value;
  uint64_t effective_weight;
  uint32_t ncond;
  sim_condition *cond;
  uint32_t action_type;
  SIM_GUID action_guid;
  uint8_t context[16];
  sim_owner owner;
} sim_filter;

/* One consistent set of objects. Providers, sublayers and filters are each
 * sorted by key. */
typedef struct sim_store {
  sim_provider **prov;
  size_t nprov, capprov;
  sim_sublayer **sub;
  size_t nsub, capsub;
  sim_filter **filt;
  size_t nfilt, capfilt;
  uint64_t next_id;
} sim_store;

/* ---- well-known layers and fields ---- */

typedef struct sim_layer_info {
  SIM_GUID key;
  const char *name;
  int v6;  /* addresses are IPv6 */
  int ale; /* application-layer enforcement: app, user, flags fields */
} sim_layer_info;

typedef struct sim_field_info {
  SIM_GUID key;
  const char *name;
  int kind; /* SIM_FIELD_* */
} sim_field_info;

enum {
  SIM_FIELD_ADDRESS = 1,
  SIM_FIELD_PORT,
  SIM_FIELD_PROTOCOL,
  SIM_FIELD_APP_ID,
  SIM_FIELD_USER_ID,
  SIM_FIELD_FLAGS,
  SIM_FIELD_INTERFACE,
  SIM_FIELD_ADDRESS_TYPE
};

extern const SIM_GUID sim_universal_sublayer;
const sim_layer_info *sim_layer_find(const SIM_GUID *key);
const sim_field_info *sim_field_find(const SIM_GUID *key);

/* ---- helpers (wfpsim_store.c) ---- */

int sim_guid_cmp(const SIM_GUID *a, const SIM_GUID *b);
int sim_guid_is_zero(const SIM_GUID *g);
void sim_guid_format(const SIM_GUID *g, char out[37]);
size_t sim_u16len(const uint16_t *s);
uint16_t *sim_u16dup(const uint16_t *s);

void sim_value_clear(sim_value *v);
int sim_value_copy(sim_value *dst, const sim_value *src);

void sim_provider_unref(sim_provider *p);
void sim_sublayer_unref(sim_sublayer *s);
void sim_filter_unref(sim_filter *f);

void sim_store_init(sim_store *s);
void sim_store_clear(sim_store *s);
int sim_store_clone(sim_store *dst, const sim_store *src);

/* Lookups return the index, or -1; *pos receives the insertion point. */
long sim_store_find_provider(const sim_store *s, const SIM_GUID *k,
                             size_t *pos);
long sim_store_find_sublayer(const sim_store *s, const SIM_GUID *k,
                             size_t *pos);
long sim_store_find_filter(const sim_store *s, const SIM_GUID *k,
                           size_t *pos);
long sim_store_find_filter_id(const sim_store *s, uint64_t id);

/* Insertions take over the caller's reference; removals drop the store's. */
int sim_store_insert_provider(sim_store *s, size_t pos, sim_provider *p);
int sim_store_insert_sublayer(sim_store *s, size_t pos, sim_sublayer *x);
int sim_store_insert_filter(sim_store *s, size_t pos, sim_filter *f);
void sim_store_remove_provider(sim_store *s, size_t i);
void sim_store_remove_sublayer(sim_store *s, size_t i);
void sim_store_remove_filter(sim_store *s, size_t i);

/* Serialisation of the persisted-object file. */
int sim_store_encode(const sim_store *s, uint64_t gen, uint8_t **out,
                     size_t *len);
int sim_store_decode(sim_store *s, const uint8_t *buf, size_t len,
                     uint64_t *gen);
int sim_store_peek_generation(const uint8_t *head, size_t len, uint64_t *gen);

/* UTF-8 JSON of a whole store; returns a malloc'd NUL-terminated string. */
char *sim_store_to_json(const sim_store *s, size_t *len);

#endif /* WFPSIM_INTERNAL_H */
