/*
 * wfpsim_store.c - objects, the sorted object store, the persisted-object
 * file format and the JSON dump of the WFP simulator.
 */
#define _GNU_SOURCE
#include "wfpsim_internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- well-known layers and condition fields (values from fwpmu.h) ---- */

#define G(a, b, c, d0, d1, d2, d3, d4, d5, d6, d7)                             \
  {a, b, c, {d0, d1, d2, d3, d4, d5, d6, d7}}

const SIM_GUID sim_universal_sublayer =
    G(0xeebecc03, 0xced4, 0x4380, 0x81, 0x9a, 0x27, 0x34, 0x39, 0x7b, 0x2b,
      0x74);

static const sim_layer_info layers[] = {
    {G(0xc38d57d1, 0x05a7, 0x4c33, 0x90, 0x4f, 0x7f, 0xbc, 0xee, 0xe6, 0x0e,
       0x82),
     "FWPM_LAYER_ALE_AUTH_CONNECT_V4", 0, 1},
    {G(0x4a72393b, 0x319f, 0x44bc, 0x84, 0xc3, 0xba, 0x54, 0xdc, 0xb3, 0xb6,
       0xb4),
     "FWPM_LAYER_ALE_AUTH_CONNECT_V6", 1, 1},
    {G(0xe1cd9fe7, 0xf4b5, 0x4273, 0x96, 0xc0, 0x59, 0x2e, 0x48, 0x7b, 0x86,
       0x50),
     "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4", 0, 1},
    {G(0xa3b42c97, 0x9f04, 0x4672, 0xb8, 0x7e, 0xce, 0xe9, 0xc4, 0x83, 0x25,
       0x7f),
     "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6", 1, 1},
    {G(0x88bb5dad, 0x76d7, 0x4227, 0x9c, 0x71, 0xdf, 0x0a, 0x3e, 0xd7, 0xbe,
       0x7e),
     "FWPM_LAYER_ALE_AUTH_LISTEN_V4", 0, 1},
    {G(0x7ac9de24, 0x17dd, 0x4814, 0xb4, 0xbd, 0xa9, 0xfb, 0xc9, 0x5a, 0x32,
       0x1b),
     "FWPM_LAYER_ALE_AUTH_LISTEN_V6", 1, 1},
    {G(0xaf80470a, 0x5596, 0x4c13, 0x99, 0x92, 0x53, 0x9e, 0x6f, 0xe5, 0x79,
       0x67),
     "FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4", 0, 1},
    {G(0x7021d2b3, 0xdfa4, 0x406e, 0xaf, 0xeb, 0x6a, 0xfa, 0xf7, 0xe7, 0x0e,
       0xfd),
     "FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6", 1, 1},
    {G(0x1247d66d, 0x0b60, 0x4a15, 0x8d, 0x44, 0x71, 0x55, 0xd0, 0xf5, 0x3a,
       0x0c),
     "FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V4", 0, 1},
    {G(0x55a650e1, 0x5f0a, 0x4eca, 0xa6, 0x53, 0x88, 0xf5, 0x3b, 0x26, 0xaa,
       0x8c),
     "FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V6", 1, 1},
    {G(0x5926dfc8, 0xe3cf, 0x4426, 0xa2, 0x83, 0xdc, 0x39, 0x3f, 0x5d, 0x0f,
       0x9d),
     "FWPM_LAYER_INBOUND_TRANSPORT_V4", 0, 0},
    {G(0x634a869f, 0xfc23, 0x4b90, 0xb0, 0xc1, 0xbf, 0x62, 0x0a, 0x36, 0xae,
       0x6f),
     "FWPM_LAYER_INBOUND_TRANSPORT_V6", 1, 0},
    {G(0x09e61aea, 0xd214, 0x46e2, 0x9b, 0x21, 0xb2, 0x6b, 0x0b, 0x2f, 0x28,
       0xc8),
     "FWPM_LAYER_OUTBOUND_TRANSPORT_V4", 0, 0},
    {G(0xe1735bde, 0x013f, 0x4655, 0xb3, 0x51, 0xa4, 0x9e, 0x15, 0x76, 0x2d,
       0xf0),
     "FWPM_LAYER_OUTBOUND_TRANSPORT_V6", 1, 0},
};

static const sim_field_info fields[] = {
    {G(0xb235ae9a, 0x1d64, 0x49b8, 0xa4, 0x4c, 0x5f, 0xf3, 0xd9, 0x09, 0x50,
       0x45),
     "FWPM_CONDITION_IP_REMOTE_ADDRESS", SIM_FIELD_ADDRESS},
    {G(0xd9ee00de, 0xc1ef, 0x4617, 0xbf, 0xe3, 0xff, 0xd8, 0xf5, 0xa0, 0x89,
       0x57),
     "FWPM_CONDITION_IP_LOCAL_ADDRESS", SIM_FIELD_ADDRESS},
    {G(0xc35a604d, 0xd22b, 0x4e1a, 0x91, 0xb4, 0x68, 0xf6, 0x74, 0xee, 0x67,
       0x4b),
     "FWPM_CONDITION_IP_REMOTE_PORT", SIM_FIELD_PORT},
    {G(0x0c1ba1af, 0x5765, 0x453f, 0xaf, 0x22, 0xa8, 0xf7, 0x91, 0xac, 0x77,
       0x5b),
     "FWPM_CONDITION_IP_LOCAL_PORT", SIM_FIELD_PORT},
    {G(0x3971ef2b, 0x623e, 0x4f9a, 0x8c, 0xb1, 0x6e, 0x79, 0xb8, 0x06, 0xb9,
       0xa7),
     "FWPM_CONDITION_IP_PROTOCOL", SIM_FIELD_PROTOCOL},
    {G(0xd78e1e87, 0x8644, 0x4ea5, 0x94, 0x37, 0xd8, 0x09, 0xec, 0xef, 0xc9,
       0x71),
     "FWPM_CONDITION_ALE_APP_ID", SIM_FIELD_APP_ID},
    {G(0xaf043a0a, 0xb34d, 0x4f86, 0x97, 0x9c, 0xc9, 0x03, 0x71, 0xaf, 0x6e,
       0x66),
     "FWPM_CONDITION_ALE_USER_ID", SIM_FIELD_USER_ID},
    {G(0x632ce23b, 0x5167, 0x435c, 0x86, 0xd7, 0xe9, 0x03, 0x68, 0x4a, 0xa8,
       0x0c),
     "FWPM_CONDITION_FLAGS", SIM_FIELD_FLAGS},
    {G(0x4cd62a49, 0x59c3, 0x4969, 0xb7, 0xf3, 0xbd, 0xa5, 0xd3, 0x28, 0x90,
       0xa4),
     "FWPM_CONDITION_IP_LOCAL_INTERFACE", SIM_FIELD_INTERFACE},
    {G(0x6ec7f6c4, 0x376b, 0x45d7, 0x9e, 0x9c, 0xd3, 0x37, 0xce, 0xdc, 0xd2,
       0x37),
     "FWPM_CONDITION_IP_LOCAL_ADDRESS_TYPE", SIM_FIELD_ADDRESS_TYPE},
};

const sim_layer_info *sim_layer_find(const SIM_GUID *key) {
  for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
    if (sim_guid_cmp(&layers[i].key, key) == 0) return &layers[i];
  return NULL;
}

const sim_field_info *sim_field_find(const SIM_GUID *key) {
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (sim_guid_cmp(&fields[i].key, key) == 0) return &fields[i];
  return NULL;
}

/* ---- small helpers ---- */

/* Orders GUIDs as their canonical text orders them. */
int sim_guid_cmp(const SIM_GUID *a, const SIM_GUID *b) {
  if (a->Data1 != b->Data1) return a->Data1 < b->Data1 ? -1 : 1;
  if (a->Data2 != b->Data2) return a->Data2 < b->Data2 ? -1 : 1;
  if (a->Data3 != b->Data3) return a->Data3 < b->Data3 ? -1 : 1;
  return memcmp(a->Data4, b->Data4, 8);
}

int sim_guid_is_zero(const SIM_GUID *g) {
  static const SIM_GUID zero;
  return memcmp(g, &zero, sizeof zero) == 0;
}

void sim_guid_format(const SIM_GUID *g, char out[37]) {
  snprintf(out, 37, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           g->Data1, g->Data2, g->Data3, g->Data4[0], g->Data4[1], g->Data4[2],
           g->Data4[3], g->Data4[4], g->Data4[5], g->Data4[6], g->Data4[7]);
}

size_t sim_u16len(const uint16_t *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

uint16_t *sim_u16dup(const uint16_t *s) {
  if (!s) return NULL;
  size_t n = sim_u16len(s) + 1;
  uint16_t *d = malloc(n * sizeof *d);
  if (d) memcpy(d, s, n * sizeof *d);
  return d;
}

void sim_value_clear(sim_value *v) {
  if (v->range) {
    sim_value_clear(&v->range[0]);
    sim_value_clear(&v->range[1]);
    free(v->range);
  }
  free(v->bytes);
  memset(v, 0, sizeof *v);
}

int sim_value_copy(sim_value *dst, const sim_value *src) {
  memset(dst, 0, sizeof *dst);
  dst->type = src->type;
  dst->num = src->num;
  dst->len = src->len;
  if (src->len) {
    dst->bytes = malloc(src->len);
    if (!dst->bytes) return -1;
    memcpy(dst->bytes, src->bytes, src->len);
  }
  if (src->range) {
    dst->range = calloc(2, sizeof *dst->range);
    if (!dst->range || sim_value_copy(&dst->range[0], &src->range[0]) ||
        sim_value_copy(&dst->range[1], &src->range[1])) {
      sim_value_clear(dst);
      return -1;
    }
  }
  return 0;
}

void sim_provider_unref(sim_provider *p) {
  if (!p || --p->refs > 0) return;
  free(p->name);
  free(p->desc);
  free(p->data.data);
  free(p->service);
  free(p);
}

void sim_sublayer_unref(sim_sublayer *s) {
  if (!s || --s->refs > 0) return;
  free(s->name);
  free(s->desc);
  free(s->data.data);
  free(s);
}

void sim_filter_unref(sim_filter *f) {
  if (!f || --f->refs > 0) return;
  free(f->name);
  free(f->desc);
  free(f->data.data);
  for (uint32_t i = 0; i < f->ncond; i++) sim_value_clear(&f->cond[i].value);
  free(f->cond);
  free(f);
}

/* ---- the store ---- */

void sim_store_init(sim_store *s) {
  memset(s, 0, sizeof *s);
  s->next_id = 1;
}

void sim_store_clear(sim_store *s) {
  for (size_t i = 0; i < s->nprov; i++) sim_provider_unref(s->prov[i]);
  for (size_t i = 0; i < s->nsub; i++) sim_sublayer_unref(s->sub[i]);
  for (size_t i = 0; i < s->nfilt; i++) sim_filter_unref(s->filt[i]);
  free(s->prov);
  free(s->sub);
  free(s->filt);
  uint64_t next = s->next_id;
  sim_store_init(s);
  s->next_id = next;
}

#define CLONE_ARRAY(field, n, cap)                                             \
  do {                                                                         \
    dst->n = src->n;                                                           \
    dst->cap = src->n ? src->n : 0;                                            \
    if (src->n) {                                                              \
      dst->field = malloc(src->n * sizeof *dst->field);                        \
      if (!dst->field) goto fail;                                              \
      memcpy(dst->field, src->field, src->n * sizeof *dst->field);             \
      for (size_t i = 0; i < src->n; i++) dst->field[i]->refs++;               \
    }                                                                          \
  } while (0)

int sim_store_clone(sim_store *dst, const sim_store *src) {
  sim_store_init(dst);
  dst->next_id = src->next_id;
  CLONE_ARRAY(prov, nprov, capprov);
  CLONE_ARRAY(sub, nsub, capsub);
  CLONE_ARRAY(filt, nfilt, capfilt);
  return 0;
fail:
  sim_store_clear(dst);
  return -1;
}

#define FIND_BY_KEY(arr, n)                                                    \
  size_t lo = 0, hi = s->n;                                                    \
  while (lo < hi) {                                                            \
    size_t mid = lo + (hi - lo) / 2;                                           \
    int c = sim_guid_cmp(&s->arr[mid]->key, k);                                \
    if (c == 0) {                                                              \
      if (pos) *pos = mid;                                                     \
      return (long)mid;                                                        \
    }                                                                          \
    if (c < 0)                                                                 \
      lo = mid + 1;                                                            \
    else                                                                       \
      hi = mid;                                                                \
  }                                                                            \
  if (pos) *pos = lo;                                                          \
  return -1

long sim_store_find_provider(const sim_store *s, const SIM_GUID *k,
                             size_t *pos) {
  FIND_BY_KEY(prov, nprov);
}

long sim_store_find_sublayer(const sim_store *s, const SIM_GUID *k,
                             size_t *pos) {
  FIND_BY_KEY(sub, nsub);
}

long sim_store_find_filter(const sim_store *s, const SIM_GUID *k,
                           size_t *pos) {
  FIND_BY_KEY(filt, nfilt);
}

long sim_store_find_filter_id(const sim_store *s, uint64_t id) {
  for (size_t i = 0; i < s->nfilt; i++)
    if (s->filt[i]->id == id) return (long)i;
  return -1;
}

#define INSERT_AT(arr, n, cap, obj)                                            \
  do {                                                                         \
    if (s->n == s->cap) {                                                      \
      size_t ncap = s->cap ? s->cap * 2 : 16;                                  \
      void *np = realloc(s->arr, ncap * sizeof *s->arr);                       \
      if (!np) return -1;                                                      \
      s->arr = np;                                                             \
      s->cap = ncap;                                                           \
    }                                                                          \
    memmove(&s->arr[pos + 1], &s->arr[pos], (s->n - pos) * sizeof *s->arr);    \
    s->arr[pos] = obj;                                                         \
    s->n++;                                                                    \
    return 0;                                                                  \
  } while (0)

int sim_store_insert_provider(sim_store *s, size_t pos, sim_provider *p) {
  INSERT_AT(prov, nprov, capprov, p);
}

int sim_store_insert_sublayer(sim_store *s, size_t pos, sim_sublayer *x) {
  INSERT_AT(sub, nsub, capsub, x);
}

int sim_store_insert_filter(sim_store *s, size_t pos, sim_filter *f) {
  INSERT_AT(filt, nfilt, capfilt, f);
}

#define REMOVE_AT(arr, n, unref)                                               \
  do {                                                                         \
    unref(s->arr[i]);                                                          \
    memmove(&s->arr[i], &s->arr[i + 1], (s->n - i - 1) * sizeof *s->arr);     \
    s->n--;                                                                    \
  } while (0)

void sim_store_remove_provider(sim_store *s, size_t i) {
  REMOVE_AT(prov, nprov, sim_provider_unref);
}

void sim_store_remove_sublayer(sim_store *s, size_t i) {
  REMOVE_AT(sub, nsub, sim_sublayer_unref);
}

void sim_store_remove_filter(sim_store *s, size_t i) {
  REMOVE_AT(filt, nfilt, sim_filter_unref);
}

/* ---- persisted-object file ----
 * Little-endian binary, native x86-64 field order:
 *   "WFPSIM\0\2", u64 generation, u64 next_id, u32 nprov, u32 nsub,
 *   u32 nfilt, records. The generation is random per write, so a reader
 *   knows from the first 16 bytes whether its copy is current.
 * Strings are u32 unit count (0xFFFFFFFF = NULL) then UTF-16 units with
 * the terminating NUL; blobs are u32 size then bytes. */

static const uint8_t magic[8] = {'W', 'F', 'P', 'S', 'I', 'M', 0, 2};

int sim_store_peek_generation(const uint8_t *head, size_t len, uint64_t *gen) {
  if (len < 16 || memcmp(head, magic, 8) != 0) return -1;
  memcpy(gen, head + 8, 8);
  return 0;
}

typedef struct wbuf {
  uint8_t *p;
  size_t len, cap;
  int err;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
  if (b->err) return;
  if (b->len + n > b->cap) {
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + n) ncap *= 2;
    uint8_t *np = realloc(b->p, ncap);
    if (!np) {
      b->err = 1;
      return;
    }
    b->p = np;
    b->cap = ncap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put16(wbuf *b, uint16_t v) { put(b, &v, 2); }
static void put8(wbuf *b, uint8_t v) { put(b, &v, 1); }
static void putguid(wbuf *b, const SIM_GUID *g) { put(b, g, 16); }

static void putstr(wbuf *b, const uint16_t *s) {
  if (!s) {
    put32(b, 0xFFFFFFFFu);
    return;
  }
  uint32_t n = (uint32_t)sim_u16len(s) + 1;
  put32(b, n);
  put(b, s, n * 2u);
}

static void putblob(wbuf *b, const sim_blob *x) {
  put32(b, x->size);
  if (x->size) put(b, x->data, x->size);
}

static void putowner(wbuf *b, const sim_owner *o) {
  put32(b, o->pid);
  put32(b, o->serial);
}

static void putvalue(wbuf *b, const sim_value *v) {
  put32(b, v->type);
  put64(b, v->num);
  put32(b, v->len);
  if (v->len) put(b, v->bytes, v->len);
  if (v->type == SIM_FWP_RANGE_TYPE) {
    putvalue(b, &v->range[0]);
    putvalue(b, &v->range[1]);
  }
}

int sim_store_encode(const sim_store *s, uint64_t gen, uint8_t **out,
                     size_t *len) {
  wbuf b = {0};
  put(&b, magic, sizeof magic);
  put64(&b, gen);
  put64(&b, s->next_id);
  put32(&b, (uint32_t)s->nprov);
  put32(&b, (uint32_t)s->nsub);
  put32(&b, (uint32_t)s->nfilt);
  for (size_t i = 0; i < s->nprov; i++) {
    const sim_provider *p = s->prov[i];
    putguid(&b, &p->key);
    put32(&b, p->flags);
    putowner(&b, &p->owner);
    putstr(&b, p->name);
    putstr(&b, p->desc);
    putblob(&b, &p->data);
    putstr(&b, p->service);
  }
  for (size_t i = 0; i < s->nsub; i++) {
    const sim_sublayer *x = s->sub[i];
    putguid(&b, &x->key);
    put16(&b, x->flags);
    put16(&b, x->weight);
    putowner(&b, &x->owner);
    put8(&b, (uint8_t)x->has_provider);
    putguid(&b, &x->provider);
    putstr(&b, x->name);
    putstr(&b, x->desc);
    putblob(&b, &x->data);
  }
  for (size_t i = 0; i < s->nfilt; i++) {
    const sim_filter *f = s->filt[i];
    putguid(&b, &f->key);
    put64(&b, f->id);
    put32(&b, f->flags);
    putowner(&b, &f->owner);
    put8(&b, (uint8_t)f->has_provider);
    putguid(&b, &f->provider);
    putguid(&b, &f->layer);
    putguid(&b, &f->sublayer);
    put32(&b, f->weight_type);
    put64(&b, f->weight_value);
    put64(&b, f->effective_weight);
    put32(&b, f->action_type);
    putguid(&b, &f->action_guid);
    put(&b, f->context, 16);
    putstr(&b, f->name);
    putstr(&b, f->desc);
    putblob(&b, &f->data);
    put32(&b, f->ncond);
    for (uint32_t c = 0; c < f->ncond; c++) {
      putguid(&b, &f->cond[c].field);
      put32(&b, f->cond[c].match);
      putvalue(&b, &f->cond[c].value);
    }
  }
  if (b.err) {
    free(b.p);
    return -1;
  }
  *out = b.p;
  *len = b.len;
  return 0;
}

typedef struct rbuf {
  const uint8_t *p;
  size_t len, off;
  int err;
} rbuf;

static void get(rbuf *b, void *dst, size_t n) {
  if (b->err || n > b->len - b->off) {
    b->err = 1;
    memset(dst, 0, n);
    return;
  }
  memcpy(dst, b->p + b->off, n);
  b->off += n;
}

static uint32_t get32(rbuf *b) {
  uint32_t v;
  get(b, &v, 4);
  return v;
}

static uint64_t get64(rbuf *b) {
  uint64_t v;
  get(b, &v, 8);
  return v;
}

static uint16_t get16(rbuf *b) {
  uint16_t v;
  get(b, &v, 2);
  return v;
}

static uint8_t get8(rbuf *b) {
  uint8_t v;
  get(b, &v, 1);
  return v;
}

static uint8_t *getbytes(rbuf *b, uint32_t n) {
  if (b->err || n > b->len - b->off) {
    b->err = 1;
    return NULL;
  }
  uint8_t *d = malloc(n ? n : 1);
  if (!d) {
    b->err = 1;
    return NULL;
  }
  get(b, d, n);
  return d;
}

static uint16_t *getstr(rbuf *b) {
  uint32_t n = get32(b);
  if (b->err || n == 0xFFFFFFFFu) return NULL;
  if (n == 0 || n > (b->len - b->off) / 2) {
    b->err = 1;
    return NULL;
  }
  uint16_t *s = (uint16_t *)getbytes(b, n * 2u);
  if (s && s[n - 1] != 0) b->err = 1;
  return s;
}

static void getblob(rbuf *b, sim_blob *x) {
  x->size = get32(b);
  x->data = x->size ? getbytes(b, x->size) : NULL;
}

static void getowner(rbuf *b, sim_owner *o) {
  o->pid = get32(b);
  o->serial = get32(b);
}

static void getvalue(rbuf *b, sim_value *v, int depth) {
  memset(v, 0, sizeof *v);
  v->type = get32(b);
  v->num = get64(b);
  v->len = get32(b);
  if (v->len) v->bytes = getbytes(b, v->len);
  if (!b->err && v->type == SIM_FWP_RANGE_TYPE) {
    v->range = calloc(2, sizeof *v->range);
    if (!v->range || depth > 0) {
      b->err = 1;
      return;
    }
    getvalue(b, &v->range[0], depth + 1);
    getvalue(b, &v->range[1], depth + 1);
  }
}

int sim_store_decode(sim_store *s, const uint8_t *buf, size_t len,
                     uint64_t *gen) {
  rbuf b = {buf, len, 0, 0};
  uint8_t m[8];
  sim_store_init(s);
  get(&b, m, 8);
  if (b.err || memcmp(m, magic, 8) != 0) return -1;
  *gen = get64(&b);
  s->next_id = get64(&b);
  uint32_t np = get32(&b), ns = get32(&b), nf = get32(&b);
  if (b.err) return -1;
  for (uint32_t i = 0; i < np && !b.err; i++) {
    sim_provider *p = calloc(1, sizeof *p);
    if (!p) break;
    p->refs = 1;
    get(&b, &p->key, 16);
    p->flags = get32(&b);
    getowner(&b, &p->owner);
    p->name = getstr(&b);
    p->desc = getstr(&b);
    getblob(&b, &p->data);
    p->service = getstr(&b);
    size_t pos;
    if (b.err || !p->name || sim_store_find_provider(s, &p->key, &pos) >= 0 ||
        sim_store_insert_provider(s, pos, p)) {
      sim_provider_unref(p);
      b.err = 1;
    }
  }
  for (uint32_t i = 0; i < ns && !b.err; i++) {
    sim_sublayer *x = calloc(1, sizeof *x);
    if (!x) break;
    x->refs = 1;
    get(&b, &x->key, 16);
    x->flags = get16(&b);
    x->weight = get16(&b);
    getowner(&b, &x->owner);
    x->has_provider = get8(&b);
    get(&b, &x->provider, 16);
    x->name = getstr(&b);
    x->desc = getstr(&b);
    getblob(&b, &x->data);
    size_t pos;
    if (b.err || !x->name || sim_store_find_sublayer(s, &x->key, &pos) >= 0 ||
        sim_store_insert_sublayer(s, pos, x)) {
      sim_sublayer_unref(x);
      b.err = 1;
    }
  }
  for (uint32_t i = 0; i < nf && !b.err; i++) {
    sim_filter *f = calloc(1, sizeof *f);
    if (!f) break;
    f->refs = 1;
    get(&b, &f->key, 16);
    f->id = get64(&b);
    f->flags = get32(&b);
    getowner(&b, &f->owner);
    f->has_provider = get8(&b);
    get(&b, &f->provider, 16);
    get(&b, &f->layer, 16);
    get(&b, &f->sublayer, 16);
    f->weight_type = get32(&b);
    f->weight_value = get64(&b);
    f->effective_weight = get64(&b);
    f->action_type = get32(&b);
    get(&b, &f->action_guid, 16);
    get(&b, f->context, 16);
    f->name = getstr(&b);
    f->desc = getstr(&b);
    getblob(&b, &f->data);
    uint32_t nc = get32(&b);
    if (!b.err && nc > 0) {
      if (nc > (b.len - b.off) / 36) {
        b.err = 1;
      } else {
        f->cond = calloc(nc, sizeof *f->cond);
        if (!f->cond) b.err = 1;
      }
    }
    for (uint32_t c = 0; c < nc && !b.err; c++) {
      get(&b, &f->cond[c].field, 16);
      f->cond[c].match = get32(&b);
      getvalue(&b, &f->cond[c].value, 0);
      f->ncond = c + 1;
    }
    size_t pos;
    if (b.err || !f->name || sim_store_find_filter(s, &f->key, &pos) >= 0 ||
        sim_store_insert_filter(s, pos, f)) {
      sim_filter_unref(f);
      b.err = 1;
    }
  }
  if (b.err || b.off != b.len) {
    sim_store_clear(s);
    return -1;
  }
  return 0;
}

/* ---- JSON dump ---- */

typedef struct jbuf {
  char *p;
  size_t len, cap;
  int err;
} jbuf;

static void jput(jbuf *j, const char *s, size_t n) {
  if (j->err) return;
  if (j->len + n + 1 > j->cap) {
    size_t ncap = j->cap ? j->cap : 4096;
    while (ncap < j->len + n + 1) ncap *= 2;
    char *np = realloc(j->p, ncap);
    if (!np) {
      j->err = 1;
      return;
    }
    j->p = np;
    j->cap = ncap;
  }
  memcpy(j->p + j->len, s, n);
  j->len += n;
  j->p[j->len] = 0;
}

static void js(jbuf *j, const char *s) { jput(j, s, strlen(s)); }

static void jf(jbuf *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void jf(jbuf *j, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    j->err = 1;
    return;
  }
  jput(j, tmp, (size_t)n);
}

static void jguid(jbuf *j, const SIM_GUID *g) {
  char t[37];
  sim_guid_format(g, t);
  jf(j, "\"%s\"", t);
}

static void jutf8(jbuf *j, uint32_t cp) {
  char o[4];
  if (cp < 0x80) {
    if (cp == '"' || cp == '\\') {
      char e[2] = {'\\', (char)cp};
      jput(j, e, 2);
    } else if (cp < 0x20) {
      jf(j, "\\u%04x", cp);
    } else {
      o[0] = (char)cp;
      jput(j, o, 1);
    }
  } else if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    jput(j, o, 2);
  } else if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    jput(j, o, 3);
  } else {
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    jput(j, o, 4);
  }
}

/* UTF-16 (n units, or up to NUL when n is SIZE_MAX) as a JSON string; lone
 * surrogates become U+FFFD. */
static void jstr16(jbuf *j, const uint16_t *s, size_t n) {
  if (!s) {
    js(j, "null");
    return;
  }
  js(j, "\"");
  for (size_t i = 0; i < n && s[i]; i++) {
    uint32_t cp = s[i];
    if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < n && s[i + 1] >= 0xDC00 &&
        s[i + 1] < 0xE000) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (s[i + 1] - 0xDC00);
      i++;
    } else if (cp >= 0xD800 && cp < 0xE000) {
      cp = 0xFFFD;
    }
    jutf8(j, cp);
  }
  js(j, "\"");
}

static void jhex(jbuf *j, const uint8_t *p, size_t n) {
  js(j, "\"");
  for (size_t i = 0; i < n; i++) jf(j, "%02x", p[i]);
  js(j, "\"");
}

static const char *type_name(uint32_t t) {
  switch (t) {
  case SIM_FWP_EMPTY: return "FWP_EMPTY";
  case SIM_FWP_UINT8: return "FWP_UINT8";
  case SIM_FWP_UINT16: return "FWP_UINT16";
  case SIM_FWP_UINT32: return "FWP_UINT32";
  case SIM_FWP_UINT64: return "FWP_UINT64";
  case SIM_FWP_INT8: return "FWP_INT8";
  case SIM_FWP_INT16: return "FWP_INT16";
  case SIM_FWP_INT32: return "FWP_INT32";
  case SIM_FWP_INT64: return "FWP_INT64";
  case SIM_FWP_FLOAT: return "FWP_FLOAT";
  case SIM_FWP_DOUBLE: return "FWP_DOUBLE";
  case SIM_FWP_BYTE_ARRAY16_TYPE: return "FWP_BYTE_ARRAY16_TYPE";
  case SIM_FWP_BYTE_BLOB_TYPE: return "FWP_BYTE_BLOB_TYPE";
  case SIM_FWP_SID: return "FWP_SID";
  case SIM_FWP_SECURITY_DESCRIPTOR_TYPE: return "FWP_SECURITY_DESCRIPTOR_TYPE";
  case SIM_FWP_TOKEN_ACCESS_INFORMATION_TYPE:
    return "FWP_TOKEN_ACCESS_INFORMATION_TYPE";
  case SIM_FWP_UNICODE_STRING_TYPE: return "FWP_UNICODE_STRING_TYPE";
  case SIM_FWP_BYTE_ARRAY6_TYPE: return "FWP_BYTE_ARRAY6_TYPE";
  case SIM_FWP_V4_ADDR_MASK: return "FWP_V4_ADDR_MASK";
  case SIM_FWP_V6_ADDR_MASK: return "FWP_V6_ADDR_MASK";
  case SIM_FWP_RANGE_TYPE: return "FWP_RANGE_TYPE";
  default: return "FWP_UNKNOWN";
  }
}

static const char *match_name(uint32_t m) {
  static const char *names[] = {
      "FWP_MATCH_EQUAL",
      "FWP_MATCH_GREATER",
      "FWP_MATCH_LESS",
      "FWP_MATCH_GREATER_OR_EQUAL",
      "FWP_MATCH_LESS_OR_EQUAL",
      "FWP_MATCH_RANGE",
      "FWP_MATCH_FLAGS_ALL_SET",
      "FWP_MATCH_FLAGS_ANY_SET",
      "FWP_MATCH_FLAGS_NONE_SET",
      "FWP_MATCH_EQUAL_CASE_INSENSITIVE",
      "FWP_MATCH_NOT_EQUAL",
  };
  return m < SIM_FWP_MATCH_TYPE_MAX ? names[m] : "FWP_MATCH_UNKNOWN";
}

static const char *action_name(uint32_t a) {
  switch (a) {
  case SIM_FWP_ACTION_BLOCK: return "FWP_ACTION_BLOCK";
  case SIM_FWP_ACTION_PERMIT: return "FWP_ACTION_PERMIT";
  case SIM_FWP_ACTION_CALLOUT_TERMINATING:
    return "FWP_ACTION_CALLOUT_TERMINATING";
  case SIM_FWP_ACTION_CALLOUT_INSPECTION:
    return "FWP_ACTION_CALLOUT_INSPECTION";
  case SIM_FWP_ACTION_CALLOUT_UNKNOWN: return "FWP_ACTION_CALLOUT_UNKNOWN";
  default: return "FWP_ACTION_UNKNOWN";
  }
}

static void jipv4(jbuf *j, uint32_t host) {
  jf(j, "\"%u.%u.%u.%u\"", host >> 24, (host >> 16) & 255, (host >> 8) & 255,
     host & 255);
}

static void jipv6(jbuf *j, const uint8_t *a) {
  char t[INET6_ADDRSTRLEN];
  if (!inet_ntop(AF_INET6, a, t, sizeof t)) {
    j->err = 1;
    return;
  }
  jf(j, "\"%s\"", t);
}

static void jvalue(jbuf *j, const sim_value *v, int kind) {
  jf(j, "{\"type\":\"%s\"", type_name(v->type));
  switch (v->type) {
  case SIM_FWP_EMPTY: break;
  case SIM_FWP_UINT8:
  case SIM_FWP_UINT16:
  case SIM_FWP_UINT32:
    jf(j, ",\"value\":%" PRIu64, v->num);
    if (kind == SIM_FIELD_ADDRESS && v->type == SIM_FWP_UINT32) {
      js(j, ",\"address\":");
      jipv4(j, (uint32_t)v->num);
    }
    break;
  case SIM_FWP_INT8:
  case SIM_FWP_INT16:
  case SIM_FWP_INT32: jf(j, ",\"value\":%" PRId64, (int64_t)v->num); break;
  case SIM_FWP_UINT64: jf(j, ",\"value\":\"%" PRIu64 "\"", v->num); break;
  case SIM_FWP_INT64:
    jf(j, ",\"value\":\"%" PRId64 "\"", (int64_t)v->num);
    break;
  case SIM_FWP_FLOAT: {
    float f;
    uint32_t bits = (uint32_t)v->num;
    memcpy(&f, &bits, 4);
    jf(j, ",\"value\":%.9g", (double)f);
    break;
  }
  case SIM_FWP_DOUBLE: {
    double d;
    memcpy(&d, &v->num, 8);
    jf(j, ",\"value\":%.17g", d);
    break;
  }
  case SIM_FWP_BYTE_ARRAY16_TYPE:
    js(j, ",\"hex\":");
    jhex(j, v->bytes, v->len);
    if (kind == SIM_FIELD_ADDRESS && v->len == 16) {
      js(j, ",\"address\":");
      jipv6(j, v->bytes);
    }
    break;
  case SIM_FWP_UNICODE_STRING_TYPE:
    js(j, ",\"value\":");
    jstr16(j, (const uint16_t *)v->bytes, v->len / 2);
    break;
  case SIM_FWP_V4_ADDR_MASK: {
    uint32_t a, m;
    memcpy(&a, v->bytes, 4);
    memcpy(&m, v->bytes + 4, 4);
    js(j, ",\"address\":");
    jipv4(j, a);
    js(j, ",\"mask\":");
    jipv4(j, m);
    break;
  }
  case SIM_FWP_V6_ADDR_MASK:
    js(j, ",\"address\":");
    jipv6(j, v->bytes);
    jf(j, ",\"prefixLength\":%u", v->bytes[16]);
    break;
  case SIM_FWP_SID: {
    /* S-R-I-S-S..., with the 48-bit authority in big-endian order. */
    uint64_t auth = 0;
    for (int i = 0; i < 6; i++) auth = (auth << 8) | v->bytes[2 + i];
    jf(j, ",\"sid\":\"S-%u-%" PRIu64, v->bytes[0], auth);
    for (uint32_t i = 0; i < v->bytes[1]; i++) {
      uint32_t sub;
      memcpy(&sub, v->bytes + 8 + 4 * i, 4);
      jf(j, "-%u", sub);
    }
    js(j, "\"");
    break;
  }
  case SIM_FWP_RANGE_TYPE:
    js(j, ",\"low\":");
    jvalue(j, &v->range[0], kind);
    js(j, ",\"high\":");
    jvalue(j, &v->range[1], kind);
    break;
  default:
    jf(j, ",\"size\":%u,\"hex\":", v->len);
    jhex(j, v->bytes, v->len);
    if (kind == SIM_FIELD_APP_ID && v->len % 2 == 0) {
      js(j, ",\"text\":");
      jstr16(j, (const uint16_t *)v->bytes, v->len / 2);
    }
    break;
  }
  js(j, "}");
}

static int owner_dynamic(const sim_owner *o) { return o->pid != 0; }

char *sim_store_to_json(const sim_store *s, size_t *len) {
  jbuf j = {0};
  js(&j, "{\"providers\":[");
  for (size_t i = 0; i < s->nprov; i++) {
    const sim_provider *p = s->prov[i];
    js(&j, i ? ",{\"key\":" : "{\"key\":");
    jguid(&j, &p->key);
    js(&j, ",\"name\":");
    jstr16(&j, p->name, SIZE_MAX);
    js(&j, ",\"description\":");
    jstr16(&j, p->desc, SIZE_MAX);
    jf(&j, ",\"flags\":%u,\"persistent\":%s}", p->flags,
       owner_dynamic(&p->owner) ? "false" : "true");
  }
  js(&j, "],\"sublayers\":[");
  for (size_t i = 0; i < s->nsub; i++) {
    const sim_sublayer *x = s->sub[i];
    js(&j, i ? ",{\"key\":" : "{\"key\":");
    jguid(&j, &x->key);
    js(&j, ",\"name\":");
    jstr16(&j, x->name, SIZE_MAX);
    js(&j, ",\"providerKey\":");
    if (x->has_provider)
      jguid(&j, &x->provider);
    else
      js(&j, "null");
    jf(&j, ",\"weight\":%u,\"flags\":%u}", x->weight, x->flags);
  }
  js(&j, "],\"filters\":[");
  for (size_t i = 0; i < s->nfilt; i++) {
    const sim_filter *f = s->filt[i];
    const sim_layer_info *layer = sim_layer_find(&f->layer);
    jf(&j, "%s{\"id\":\"%" PRIu64 "\",\"key\":", i ? "," : "", f->id);
    jguid(&j, &f->key);
    js(&j, ",\"name\":");
    jstr16(&j, f->name, SIZE_MAX);
    js(&j, ",\"description\":");
    jstr16(&j, f->desc, SIZE_MAX);
    js(&j, ",\"layerKey\":");
    jguid(&j, &f->layer);
    js(&j, ",\"layer\":");
    if (layer)
      jf(&j, "\"%s\"", layer->name);
    else
      js(&j, "null");
    js(&j, ",\"subLayerKey\":");
    jguid(&j, &f->sublayer);
    js(&j, ",\"providerKey\":");
    if (f->has_provider)
      jguid(&j, &f->provider);
    else
      js(&j, "null");
    jf(&j, ",\"weight\":\"%" PRIu64 "\",\"action\":\"%s\",\"flags\":%u",
       f->effective_weight, action_name(f->action_type), f->flags);
    js(&j, ",\"conditions\":[");
    for (uint32_t c = 0; c < f->ncond; c++) {
      const sim_field_info *fi = sim_field_find(&f->cond[c].field);
      js(&j, c ? ",{\"field\":" : "{\"field\":");
      jguid(&j, &f->cond[c].field);
      jf(&j, ",\"fieldName\":\"%s\",\"match\":\"%s\",\"value\":",
         fi ? fi->name : "unknown", match_name(f->cond[c].match));
      jvalue(&j, &f->cond[c].value, fi ? fi->kind : 0);
      js(&j, "}");
    }
    js(&j, "]}");
  }
  js(&j, "]}");
  if (j.err) {
    free(j.p);
    return NULL;
  }
  *len = j.len;
  return j.p;
}
