/*
 * wfpsim.c - a test double of the Windows Filtering Platform management API
 * (fwpuclnt.dll) for Linux: the same export names, signatures and Windows
 * x64 memory layouts, backed by an in-memory engine with transactions,
 * optional file persistence shared between processes, and test hooks.
 *
 * See README.md for what it models and what it does not.
 */
#define _GNU_SOURCE
#include "wfpsim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* Default and ceiling of the wait for another writer's transaction. */
#define TXN_WAIT_DEFAULT_MS 10000u
#define TXN_WAIT_MAX_MS 60000u
#define MAX_CONDITIONS 4096u
#define MAX_BLOB 65536u
#define MAX_STRING_UNITS 32767u
#define MAX_FAULTS 64

static const uint64_t SESSION_MAGIC = 0x5346505353455353ull;
static const uint64_t ENUM_MAGIC = 0x53465053454e554dull;
static const uint64_t ALLOC_MAGIC = 0x53465053414c4c4full;

typedef struct session {
  uint64_t magic;
  struct session *next;
  uint32_t serial;
  int dynamic;
  uint32_t wait_ms;
  int in_txn;
  int txn_readonly;
  sim_store work;
} session;

typedef struct enum_handle {
  uint64_t magic;
  struct enum_handle *next;
  session *owner;
  sim_filter **items;
  size_t n, pos;
} enum_handle;

/* Every block handed to the caller starts after this header; the list lets
 * FwpmFreeMemory0 refuse pointers it did not hand out. */
typedef struct alloc_hdr {
  struct alloc_hdr *prev, *next;
  uint64_t magic;
  uint64_t size;
} alloc_hdr;

typedef struct fault {
  char function[48];
  uint32_t remaining;
  uint32_t code;
} fault;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static sim_store g_store = {.next_id = 1};
static uint64_t g_gen;     /* generation of the file g_store came from */
static int g_gen_valid;    /* g_gen describes the current file */
static int g_foreign_dynamic; /* g_store holds other processes' sessions */
static char *g_path;       /* WFPSIM_STORE seen last */
static int g_lock_fd = -1; /* <store>.lock, opened once per path */
static session *g_lock_owner;
static session *g_sessions;
static uint32_t g_serial;
static enum_handle *g_enums;
static uint32_t g_open_handles;
static alloc_hdr *g_allocs;
static uint64_t g_nallocs;
static fault g_faults[MAX_FAULTS];
static size_t g_nfaults;

/* ---- faults ---- */

static uint32_t fault_check(const char *function) {
  uint32_t code = 0;
  size_t i = 0;
  while (i < g_nfaults) {
    fault *f = &g_faults[i];
    if (strcmp(f->function, function) == 0 && --f->remaining == 0) {
      if (!code) code = f->code;
      g_faults[i] = g_faults[--g_nfaults];
      continue;
    }
    i++;
  }
  return code;
}

static uint32_t fault_add(const char *function, uint32_t nth, uint32_t code) {
  if (!function || nth == 0 || strlen(function) >= sizeof g_faults[0].function)
    return SIM_ERROR_INVALID_PARAMETER;
  if (g_nfaults == MAX_FAULTS) return SIM_ERROR_NOT_ENOUGH_MEMORY;
  fault *f = &g_faults[g_nfaults++];
  strcpy(f->function, function);
  f->remaining = nth;
  f->code = code;
  return 0;
}

/* WFPSIM_FAULTS=Function:nth:0xCODE,... applies to the whole process. */
__attribute__((constructor)) static void load_env_faults(void) {
  const char *env = getenv("WFPSIM_FAULTS");
  if (!env || !*env) return;
  char *copy = strdup(env);
  if (!copy) return;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item;
       item = strtok_r(NULL, ",", &save)) {
    char *c1 = strchr(item, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = 0;
    unsigned long nth = strtoul(c1 + 1, NULL, 10);
    unsigned long code = strtoul(c2 + 1, NULL, 0);
    if (nth > 0 && nth <= 0xFFFFFFFFul && code <= 0xFFFFFFFFul)
      fault_add(item, (uint32_t)nth, (uint32_t)code);
  }
  free(copy);
}

/* Releases the cached store at exit so leak checkers see only what the
 * caller left open (handles, unfreed results). */
__attribute__((destructor)) static void release_cache(void) {
  if (g_lock_owner) return; /* a transaction is open: leave it alone */
  sim_store_clear(&g_store);
  free(g_path);
  g_path = NULL;
}

/* ---- allocations handed to the caller ---- */

static void *block_alloc(size_t n) {
  alloc_hdr *h = calloc(1, sizeof *h + n);
  if (!h) return NULL;
  h->magic = ALLOC_MAGIC;
  h->size = n;
  h->next = g_allocs;
  if (g_allocs) g_allocs->prev = h;
  g_allocs = h;
  g_nallocs++;
  return h + 1;
}

static int block_free(void *p) {
  for (alloc_hdr *h = g_allocs; h; h = h->next) {
    if ((void *)(h + 1) != p) continue;
    if (h->prev)
      h->prev->next = h->next;
    else
      g_allocs = h->next;
    if (h->next) h->next->prev = h->prev;
    h->magic = 0;
    free(h);
    g_nallocs--;
    return 1;
  }
  return 0;
}

/* Two-pass builder: with base NULL it only measures; with a block it fills.
 * Every pointer in a result points inside its one block. */
typedef struct arena {
  uint8_t *base;
  size_t off;
} arena;

static void *aalloc(arena *a, size_t n, size_t align) {
  a->off = (a->off + align - 1) & ~(align - 1);
  void *p = a->base ? a->base + a->off : NULL;
  a->off += n;
  return p;
}

static void *acopy(arena *a, const void *src, size_t n, size_t align) {
  void *p = aalloc(a, n, align);
  if (p && n) memcpy(p, src, n);
  return p;
}

static uint16_t *astr(arena *a, const uint16_t *s) {
  if (!s) return NULL;
  return acopy(a, s, (sim_u16len(s) + 1) * 2, 2);
}

/* ---- small helpers ---- */

static void random_guid(SIM_GUID *g) {
  uint8_t b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    static uint64_t counter;
    uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    t ^= ++counter * 0x9E3779B97F4A7C15ull;
    memcpy(b, &t, 8);
    t *= 0xBF58476D1CE4E5B9ull;
    memcpy(b + 8, &t, 8);
  }
  memcpy(g, b, 16);
  g->Data3 = (uint16_t)((g->Data3 & 0x0FFF) | 0x4000); /* version 4 */
  g->Data4[0] = (uint8_t)((g->Data4[0] & 0x3F) | 0x80);
}

static uint64_t random_u64(void) {
  SIM_GUID g;
  uint64_t v;
  random_guid(&g);
  memcpy(&v, &g, 8);
  return v;
}

static session *find_session(void *h) {
  for (session *s = g_sessions; s; s = s->next)
    if ((void *)s == h && s->magic == SESSION_MAGIC) return s;
  return NULL;
}

static enum_handle *find_enum(void *h) {
  for (enum_handle *e = g_enums; e; e = e->next)
    if ((void *)e == h && e->magic == ENUM_MAGIC) return e;
  return NULL;
}

static sim_owner owner_of(const session *s) {
  sim_owner o = {0, 0};
  if (s->dynamic) {
    o.pid = (uint32_t)getpid();
    o.serial = s->serial;
  }
  return o;
}

static int owner_alive(const sim_owner *o) {
  if (o->pid == 0) return 1;
  if (o->pid == (uint32_t)getpid()) {
    for (session *s = g_sessions; s; s = s->next)
      if (s->serial == o->serial && s->dynamic) return 1;
    return 0;
  }
  /* Limitation: a recycled process ID keeps a dead session's objects. */
  return kill((pid_t)o->pid, 0) == 0 || errno == EPERM;
}

static int owner_is(const sim_owner *o, uint32_t pid, uint32_t serial) {
  return o->pid == pid && o->serial == serial;
}

/* Removes the objects of dead sessions (only == NULL) or of one session,
 * filters first so that nothing is left referring to a removed object.
 * Returns whether objects of other processes' live sessions remain. */
static int purge(sim_store *st, const session *only) {
  uint32_t pid = (uint32_t)getpid();
  int foreign = 0;
  for (size_t i = st->nfilt; i-- > 0;) {
    sim_owner *o = &st->filt[i]->owner;
    if (only ? owner_is(o, pid, only->serial) : !owner_alive(o))
      sim_store_remove_filter(st, i);
  }
  for (size_t i = st->nsub; i-- > 0;) {
    sim_owner *o = &st->sub[i]->owner;
    if (only ? owner_is(o, pid, only->serial) : !owner_alive(o))
      sim_store_remove_sublayer(st, i);
  }
  for (size_t i = st->nprov; i-- > 0;) {
    sim_owner *o = &st->prov[i]->owner;
    if (only ? owner_is(o, pid, only->serial) : !owner_alive(o))
      sim_store_remove_provider(st, i);
  }
  for (size_t i = 0; i < st->nfilt && !foreign; i++)
    foreign = st->filt[i]->owner.pid && st->filt[i]->owner.pid != pid;
  for (size_t i = 0; i < st->nsub && !foreign; i++)
    foreign = st->sub[i]->owner.pid && st->sub[i]->owner.pid != pid;
  for (size_t i = 0; i < st->nprov && !foreign; i++)
    foreign = st->prov[i]->owner.pid && st->prov[i]->owner.pid != pid;
  return foreign;
}

/* ---- the persisted-object file ---- */

/* Follows WFPSIM_STORE; a change of path drops everything cached. */
static const char *store_path(void) {
  const char *p = getenv("WFPSIM_STORE");
  if (p && !*p) p = NULL;
  if ((p == NULL) != (g_path == NULL) || (p && strcmp(p, g_path) != 0)) {
    free(g_path);
    g_path = p ? strdup(p) : NULL;
    g_gen_valid = 0;
    if (g_lock_fd >= 0) close(g_lock_fd);
    g_lock_fd = -1;
  }
  return g_path;
}

/* Brings g_store up to date with the file. Needs no lock: the file is only
 * ever replaced by rename, so any open sees one complete version. */
static uint32_t reload(void) {
  const char *path = store_path();
  if (!path) return 0;

  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) return SIM_ERROR_READ_FAULT;
    if (g_gen_valid && g_gen == 0) return 0;
    sim_store_clear(&g_store);
    g_store.next_id = 1;
    g_gen = 0;
    g_gen_valid = 1;
    return 0;
  }

  uint8_t head[16];
  uint64_t gen;
  ssize_t got = pread(fd, head, sizeof head, 0);
  if (got != (ssize_t)sizeof head ||
      sim_store_peek_generation(head, sizeof head, &gen)) {
    close(fd);
    return SIM_ERROR_FILE_CORRUPT;
  }
  if (g_gen_valid && gen == g_gen) {
    close(fd);
    /* The file is current, but a process that owned dynamic objects in it
     * may have died since. */
    if (g_foreign_dynamic) g_foreign_dynamic = purge(&g_store, NULL);
    return 0;
  }

  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < 16) {
    close(fd);
    return SIM_ERROR_READ_FAULT;
  }
  size_t len = (size_t)st.st_size;
  uint8_t *buf = malloc(len);
  if (!buf) {
    close(fd);
    return SIM_ERROR_NOT_ENOUGH_MEMORY;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t n = pread(fd, buf + off, len - off, (off_t)off);
    if (n <= 0) break;
    off += (size_t)n;
  }
  close(fd);
  if (off != len) {
    free(buf);
    return SIM_ERROR_READ_FAULT;
  }

  sim_store fresh;
  uint64_t fgen;
  int bad = sim_store_decode(&fresh, buf, len, &fgen);
  free(buf);
  if (bad) return SIM_ERROR_FILE_CORRUPT;
  g_foreign_dynamic = purge(&fresh, NULL);
  sim_store_clear(&g_store);
  g_store = fresh;
  g_gen = fgen;
  g_gen_valid = 1;
  return 0;
}

/* Writes a store to the file: temporary file, fsync, rename, fsync of the
 * directory. On success g_gen names the new version. */
static uint32_t write_file(const sim_store *st) {
  const char *path = store_path();
  if (!path) return 0;

  uint64_t gen = random_u64() | 1;
  uint8_t *buf;
  size_t len;
  if (sim_store_encode(st, gen, &buf, &len)) return SIM_ERROR_NOT_ENOUGH_MEMORY;

  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  char *dir = strdup(path);
  if (!tmp || !dir) {
    free(buf);
    free(tmp);
    free(dir);
    return SIM_ERROR_NOT_ENOUGH_MEMORY;
  }
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

  uint32_t rc = SIM_ERROR_WRITE_FAULT;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    size_t off = 0;
    while (off < len) {
      ssize_t n = write(fd, buf + off, len - off);
      if (n <= 0) break;
      off += (size_t)n;
    }
    int ok = off == len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) == 0) {
      char *slash = strrchr(dir, '/');
      if (slash == dir)
        slash[1] = 0;
      else if (slash)
        *slash = 0;
      else
        strcpy(dir, ".");
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
      }
      g_gen = gen;
      g_gen_valid = 1;
      rc = 0;
    } else {
      unlink(tmp);
    }
  }
  free(buf);
  free(tmp);
  free(dir);
  return rc;
}

/* Takes the engine-wide write lock for s: the flock of <store>.lock across
 * processes, and g_lock_owner inside this one. Waits at most wait_ms. */
static uint32_t lock_acquire(session *s, uint32_t wait_ms) {
  if (g_lock_owner && g_lock_owner != s) {
    /* Another handle of this process holds the engine: on Windows this
     * call would wait for it, which a single-threaded caller never ends. */
    return SIM_FWP_E_TIMEOUT;
  }
  const char *path = store_path();
  if (path) {
    if (g_lock_fd < 0) {
      size_t n = strlen(path) + 8;
      char *lp = malloc(n);
      if (!lp) return SIM_ERROR_NOT_ENOUGH_MEMORY;
      snprintf(lp, n, "%s.lock", path);
      g_lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      free(lp);
      if (g_lock_fd < 0) return SIM_ERROR_WRITE_FAULT;
    }
    uint32_t waited = 0;
    while (flock(g_lock_fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) return SIM_ERROR_WRITE_FAULT;
      if (waited >= wait_ms) return SIM_FWP_E_TIMEOUT;
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
      waited += 5;
    }
  }
  g_lock_owner = s;
  uint32_t rc = reload();
  if (rc) {
    if (path) flock(g_lock_fd, LOCK_UN);
    g_lock_owner = NULL;
  }
  return rc;
}

static void lock_release(void) {
  if (g_path && g_lock_fd >= 0) flock(g_lock_fd, LOCK_UN);
  g_lock_owner = NULL;
}

/* Makes st the committed store: file first, then memory. */
static uint32_t publish(sim_store *st) {
  uint32_t rc = write_file(st);
  if (rc) return rc;
  sim_store_clear(&g_store);
  g_store = *st;
  sim_store_init(st);
  return 0;
}

/* The objects a session sees: its transaction's, or the committed ones. */
static uint32_t view(session *s, sim_store **out) {
  if (s->in_txn) {
    *out = &s->work;
    return 0;
  }
  uint32_t rc = g_lock_owner ? 0 : reload();
  *out = &g_store;
  return rc;
}

typedef uint32_t (*write_fn)(session *s, sim_store *st, void *ctx);

/* Runs one change: inside the session's transaction, or as its own
 * implicit transaction that is written out at once. */
static uint32_t do_write(session *s, write_fn fn, void *ctx) {
  if (s->in_txn) {
    if (s->txn_readonly) return SIM_FWP_E_INCOMPATIBLE_TXN;
    return fn(s, &s->work, ctx);
  }
  uint32_t rc = lock_acquire(s, s->wait_ms);
  if (rc) return rc;
  sim_store w;
  if (sim_store_clone(&w, &g_store)) {
    lock_release();
    return SIM_ERROR_NOT_ENOUGH_MEMORY;
  }
  rc = fn(s, &w, ctx);
  if (!rc) rc = publish(&w);
  sim_store_clear(&w);
  lock_release();
  return rc;
}

static void txn_drop(session *s) {
  if (!s->in_txn) return;
  sim_store_clear(&s->work);
  sim_store_init(&s->work);
  if (!s->txn_readonly && g_lock_owner == s) lock_release();
  s->in_txn = 0;
  s->txn_readonly = 0;
}

/* ---- input conversion ---- */

static uint32_t take_blob(sim_blob *dst, const SIM_FWP_BYTE_BLOB *src) {
  dst->size = 0;
  dst->data = NULL;
  if (src->size == 0) return 0;
  if (!src->data) return SIM_FWP_E_NULL_POINTER;
  if (src->size > MAX_BLOB) return SIM_FWP_E_OUT_OF_BOUNDS;
  dst->data = malloc(src->size);
  if (!dst->data) return SIM_ERROR_NOT_ENOUGH_MEMORY;
  memcpy(dst->data, src->data, src->size);
  dst->size = src->size;
  return 0;
}

static uint32_t take_string(uint16_t **dst, const uint16_t *src) {
  *dst = NULL;
  if (!src) return 0;
  size_t n = 0;
  while (src[n] && n <= MAX_STRING_UNITS) n++;
  if (n > MAX_STRING_UNITS) return SIM_FWP_E_OUT_OF_BOUNDS;
  *dst = sim_u16dup(src);
  return *dst ? 0 : SIM_ERROR_NOT_ENOUGH_MEMORY;
}

static uint32_t take_bytes(sim_value *v, const void *src, uint32_t n) {
  if (!src) return SIM_FWP_E_NULL_POINTER;
  v->bytes = malloc(n);
  if (!v->bytes) return SIM_ERROR_NOT_ENOUGH_MEMORY;
  memcpy(v->bytes, src, n);
  v->len = n;
  return 0;
}

/* Copies a caller's FWP_VALUE0 or FWP_CONDITION_VALUE0 (same layout up to
 * the union members) into canonical form. Masks and ranges only exist in
 * condition values. */
static uint32_t take_value(sim_value *v, const SIM_FWP_CONDITION_VALUE0 *in,
                           int condition) {
  memset(v, 0, sizeof *v);
  v->type = in->type;
  switch (in->type) {
  case SIM_FWP_EMPTY: return 0;
  case SIM_FWP_UINT8: v->num = in->u.uint8; return 0;
  case SIM_FWP_UINT16: v->num = in->u.uint16; return 0;
  case SIM_FWP_UINT32: v->num = in->u.uint32; return 0;
  case SIM_FWP_INT8: v->num = (uint64_t)(int64_t)in->u.int8; return 0;
  case SIM_FWP_INT16: v->num = (uint64_t)(int64_t)in->u.int16; return 0;
  case SIM_FWP_INT32: v->num = (uint64_t)(int64_t)in->u.int32; return 0;
  case SIM_FWP_FLOAT: {
    uint32_t bits;
    memcpy(&bits, &in->u.float32, 4);
    v->num = bits;
    return 0;
  }
  case SIM_FWP_UINT64:
  case SIM_FWP_INT64:
  case SIM_FWP_DOUBLE:
    if (!in->u.uint64) return SIM_FWP_E_NULL_POINTER;
    memcpy(&v->num, in->u.uint64, 8);
    return 0;
  case SIM_FWP_BYTE_ARRAY16_TYPE:
    return take_bytes(v, in->u.byteArray16, 16);
  case SIM_FWP_BYTE_ARRAY6_TYPE: return take_bytes(v, in->u.byteArray6, 6);
  case SIM_FWP_BYTE_BLOB_TYPE:
  case SIM_FWP_SECURITY_DESCRIPTOR_TYPE:
  case SIM_FWP_TOKEN_ACCESS_INFORMATION_TYPE: {
    const SIM_FWP_BYTE_BLOB *b = in->u.byteBlob;
    if (!b) return SIM_FWP_E_NULL_POINTER;
    if (b->size == 0) return SIM_FWP_E_ZERO_LENGTH_ARRAY;
    if (b->size > MAX_BLOB) return SIM_FWP_E_OUT_OF_BOUNDS;
    return take_bytes(v, b->data, b->size);
  }
  case SIM_FWP_SID: {
    const SIM_SID *sid = in->u.sid;
    if (!sid) return SIM_FWP_E_NULL_POINTER;
    if (sid->SubAuthorityCount > 15) return SIM_FWP_E_OUT_OF_BOUNDS;
    return take_bytes(v, sid, 8u + 4u * sid->SubAuthorityCount);
  }
  case SIM_FWP_UNICODE_STRING_TYPE: {
    const uint16_t *s = in->u.unicodeString;
    if (!s) return SIM_FWP_E_NULL_POINTER;
    size_t n = 0;
    while (s[n] && n <= MAX_STRING_UNITS) n++;
    if (n > MAX_STRING_UNITS) return SIM_FWP_E_OUT_OF_BOUNDS;
    return take_bytes(v, s, (uint32_t)(n + 1) * 2u);
  }
  case SIM_FWP_V4_ADDR_MASK:
    if (!condition) return SIM_FWP_E_TYPE_MISMATCH;
    return take_bytes(v, in->u.v4AddrMask, 8);
  case SIM_FWP_V6_ADDR_MASK:
    if (!condition) return SIM_FWP_E_TYPE_MISMATCH;
    return take_bytes(v, in->u.v6AddrMask, 17);
  case SIM_FWP_RANGE_TYPE: {
    if (!condition) return SIM_FWP_E_TYPE_MISMATCH;
    const SIM_FWP_RANGE0 *r = in->u.rangeValue;
    if (!r) return SIM_FWP_E_NULL_POINTER;
    v->range = calloc(2, sizeof *v->range);
    if (!v->range) return SIM_ERROR_NOT_ENOUGH_MEMORY;
    SIM_FWP_CONDITION_VALUE0 ends[2];
    memcpy(&ends[0], &r->valueLow, sizeof ends[0]);
    memcpy(&ends[1], &r->valueHigh, sizeof ends[1]);
    for (int i = 0; i < 2; i++) {
      uint32_t rc = take_value(&v->range[i], &ends[i], 0);
      if (rc) return rc;
    }
    return 0;
  }
  case SIM_FWP_TOKEN_INFORMATION_TYPE:
    /* Limitation: FWP_TOKEN_INFORMATION values are not modelled. */
    return SIM_ERROR_NOT_SUPPORTED;
  default: return SIM_ERROR_INVALID_PARAMETER;
  }
}

static int is_unsigned_int(uint32_t t) {
  return t == SIM_FWP_UINT8 || t == SIM_FWP_UINT16 || t == SIM_FWP_UINT32 ||
         t == SIM_FWP_UINT64;
}

/* The data types a field accepts at a layer (besides ranges of the
 * scalar ones). */
static int field_accepts(const sim_field_info *fi, const sim_layer_info *l,
                         uint32_t t) {
  switch (fi->kind) {
  case SIM_FIELD_ADDRESS:
    return l->v6 ? t == SIM_FWP_BYTE_ARRAY16_TYPE || t == SIM_FWP_V6_ADDR_MASK
                 : t == SIM_FWP_UINT32 || t == SIM_FWP_V4_ADDR_MASK;
  case SIM_FIELD_PORT: return t == SIM_FWP_UINT16;
  case SIM_FIELD_PROTOCOL: return t == SIM_FWP_UINT8;
  case SIM_FIELD_APP_ID: return t == SIM_FWP_BYTE_BLOB_TYPE;
  case SIM_FIELD_USER_ID: return t == SIM_FWP_SECURITY_DESCRIPTOR_TYPE;
  case SIM_FIELD_FLAGS: return t == SIM_FWP_UINT32;
  case SIM_FIELD_INTERFACE: return t == SIM_FWP_UINT64;
  case SIM_FIELD_ADDRESS_TYPE: return t == SIM_FWP_UINT8;
  default: return 0;
  }
}

static int value_cmp(const sim_value *a, const sim_value *b) {
  if (a->type == SIM_FWP_INT8 || a->type == SIM_FWP_INT16 ||
      a->type == SIM_FWP_INT32 || a->type == SIM_FWP_INT64) {
    int64_t x = (int64_t)a->num, y = (int64_t)b->num;
    return x < y ? -1 : x > y;
  }
  if (a->len || b->len) {
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return memcmp(a->bytes, b->bytes, a->len);
  }
  return a->num < b->num ? -1 : a->num > b->num;
}

/* Checks one condition the way BFE does when the filter is added. */
static uint32_t check_condition(const sim_layer_info *layer,
                                const sim_condition *c) {
  const sim_field_info *fi = sim_field_find(&c->field);
  if (!fi) return SIM_FWP_E_CONDITION_NOT_FOUND;
  if ((fi->kind == SIM_FIELD_APP_ID || fi->kind == SIM_FIELD_USER_ID) &&
      !layer->ale)
    return SIM_FWP_E_CONDITION_NOT_FOUND;
  if (c->match >= SIM_FWP_MATCH_TYPE_MAX) return SIM_FWP_E_OUT_OF_BOUNDS;

  const sim_value *v = &c->value;
  if (v->type == SIM_FWP_RANGE_TYPE) {
    if (c->match != SIM_FWP_MATCH_RANGE) return SIM_FWP_E_MATCH_TYPE_MISMATCH;
    const sim_value *lo = &v->range[0], *hi = &v->range[1];
    if (lo->type != hi->type) return SIM_FWP_E_TYPE_MISMATCH;
    if (!field_accepts(fi, layer, lo->type)) return SIM_FWP_E_TYPE_MISMATCH;
    if (value_cmp(lo, hi) > 0) return SIM_FWP_E_INVALID_RANGE;
    return 0;
  }
  if (c->match == SIM_FWP_MATCH_RANGE) return SIM_FWP_E_MATCH_TYPE_MISMATCH;
  if (!field_accepts(fi, layer, v->type)) return SIM_FWP_E_TYPE_MISMATCH;

  switch (c->match) {
  case SIM_FWP_MATCH_EQUAL:
  case SIM_FWP_MATCH_NOT_EQUAL: break;
  case SIM_FWP_MATCH_FLAGS_ALL_SET:
  case SIM_FWP_MATCH_FLAGS_ANY_SET:
  case SIM_FWP_MATCH_FLAGS_NONE_SET:
    if (!is_unsigned_int(v->type)) return SIM_FWP_E_MATCH_TYPE_MISMATCH;
    break;
  case SIM_FWP_MATCH_EQUAL_CASE_INSENSITIVE:
    if (v->type != SIM_FWP_UNICODE_STRING_TYPE)
      return SIM_FWP_E_MATCH_TYPE_MISMATCH;
    break;
  default: /* greater / less */
    if (v->len && v->type != SIM_FWP_BYTE_ARRAY16_TYPE)
      return SIM_FWP_E_MATCH_TYPE_MISMATCH;
    break;
  }

  if (v->type == SIM_FWP_V4_ADDR_MASK) {
    uint32_t mask;
    memcpy(&mask, v->bytes + 4, 4);
    uint32_t inv = ~mask;
    if (inv & (inv + 1)) return SIM_FWP_E_INVALID_NET_MASK;
  }
  if (v->type == SIM_FWP_V6_ADDR_MASK && v->bytes[16] > 128)
    return SIM_FWP_E_INVALID_NET_MASK;
  return 0;
}

/* ---- output builders ---- */

static void put_value(arena *a, const sim_value *v,
                      SIM_FWP_CONDITION_VALUE0 *out) {
  SIM_FWP_CONDITION_VALUE0 t;
  memset(&t, 0, sizeof t);
  t.type = v->type;
  switch (v->type) {
  case SIM_FWP_UINT8: t.u.uint8 = (uint8_t)v->num; break;
  case SIM_FWP_UINT16: t.u.uint16 = (uint16_t)v->num; break;
  case SIM_FWP_UINT32: t.u.uint32 = (uint32_t)v->num; break;
  case SIM_FWP_INT8: t.u.int8 = (int8_t)v->num; break;
  case SIM_FWP_INT16: t.u.int16 = (int16_t)v->num; break;
  case SIM_FWP_INT32: t.u.int32 = (int32_t)v->num; break;
  case SIM_FWP_FLOAT: {
    uint32_t bits = (uint32_t)v->num;
    memcpy(&t.u.float32, &bits, 4);
    break;
  }
  case SIM_FWP_UINT64:
  case SIM_FWP_INT64:
  case SIM_FWP_DOUBLE: t.u.uint64 = acopy(a, &v->num, 8, 8); break;
  case SIM_FWP_BYTE_ARRAY16_TYPE:
    t.u.byteArray16 = acopy(a, v->bytes, 16, 1);
    break;
  case SIM_FWP_BYTE_ARRAY6_TYPE:
    t.u.byteArray6 = acopy(a, v->bytes, 6, 1);
    break;
  case SIM_FWP_BYTE_BLOB_TYPE:
  case SIM_FWP_SECURITY_DESCRIPTOR_TYPE:
  case SIM_FWP_TOKEN_ACCESS_INFORMATION_TYPE: {
    SIM_FWP_BYTE_BLOB *b = aalloc(a, sizeof *b, 8);
    uint8_t *d = acopy(a, v->bytes, v->len, 1);
    if (b) {
      b->size = v->len;
      b->data = d;
    }
    t.u.byteBlob = b;
    break;
  }
  case SIM_FWP_SID: t.u.sid = acopy(a, v->bytes, v->len, 4); break;
  case SIM_FWP_UNICODE_STRING_TYPE:
    t.u.unicodeString = acopy(a, v->bytes, v->len, 2);
    break;
  case SIM_FWP_V4_ADDR_MASK:
    t.u.v4AddrMask = acopy(a, v->bytes, 8, 4);
    break;
  case SIM_FWP_V6_ADDR_MASK:
    t.u.v6AddrMask = acopy(a, v->bytes, 17, 1);
    break;
  case SIM_FWP_RANGE_TYPE: {
    SIM_FWP_RANGE0 *r = aalloc(a, sizeof *r, 8);
    SIM_FWP_CONDITION_VALUE0 lo, hi;
    put_value(a, &v->range[0], &lo);
    put_value(a, &v->range[1], &hi);
    if (r) {
      memcpy(&r->valueLow, &lo, sizeof r->valueLow);
      memcpy(&r->valueHigh, &hi, sizeof r->valueHigh);
    }
    t.u.rangeValue = r;
    break;
  }
  default: break;
  }
  *out = t;
}

static void put_filter(arena *a, const sim_filter *f, SIM_FWPM_FILTER0 *out) {
  SIM_FWPM_FILTER0 t;
  memset(&t, 0, sizeof t);
  t.filterKey = f->key;
  t.displayData.name = astr(a, f->name);
  t.displayData.description = astr(a, f->desc);
  t.flags = f->flags;
  if (f->has_provider) t.providerKey = acopy(a, &f->provider, 16, 4);
  t.providerData.size = f->data.size;
  t.providerData.data = acopy(a, f->data.data, f->data.size, 1);
  if (!f->data.size) t.providerData.data = NULL;
  t.layerKey = f->layer;
  t.subLayerKey = f->sublayer;

  sim_value w = {f->weight_type, f->weight_value, 0, NULL, NULL};
  SIM_FWP_CONDITION_VALUE0 wv;
  put_value(a, &w, &wv);
  memcpy(&t.weight, &wv, sizeof t.weight);

  t.numFilterConditions = f->ncond;
  SIM_FWPM_FILTER_CONDITION0 *conds =
      f->ncond ? aalloc(a, f->ncond * sizeof *conds, 8) : NULL;
  for (uint32_t i = 0; i < f->ncond; i++) {
    SIM_FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof c);
    c.fieldKey = f->cond[i].field;
    c.matchType = f->cond[i].match;
    put_value(a, &f->cond[i].value, &c.conditionValue);
    if (conds) conds[i] = c;
  }
  t.filterCondition = conds;
  t.action.type = f->action_type;
  t.action.u.filterType = f->action_guid;
  memcpy(&t.u, f->context, 16);
  t.reserved = NULL;
  t.filterId = f->id;
  t.effectiveWeight.type = SIM_FWP_UINT64;
  t.effectiveWeight.u.uint64 = acopy(a, &f->effective_weight, 8, 8);
  if (out) *out = t;
}

/* Runs a builder twice (measure, fill) into one counted block. */
typedef void (*build_fn)(arena *a, const void *ctx);

static void *build_block(build_fn fn, const void *ctx) {
  arena m = {NULL, 0};
  fn(&m, ctx);
  uint8_t *block = block_alloc(m.off ? m.off : 1);
  if (!block) return NULL;
  arena f = {block, 0};
  fn(&f, ctx);
  return block;
}

static void build_filter(arena *a, const void *ctx) {
  SIM_FWPM_FILTER0 *out = aalloc(a, sizeof *out, 8);
  put_filter(a, ctx, out);
}

typedef struct enum_batch {
  sim_filter **items;
  size_t n;
} enum_batch;

static void build_enum(arena *a, const void *ctx) {
  const enum_batch *b = ctx;
  SIM_FWPM_FILTER0 **arr = aalloc(a, b->n * sizeof *arr, 8);
  for (size_t i = 0; i < b->n; i++) {
    SIM_FWPM_FILTER0 *out = aalloc(a, sizeof *out, 8);
    put_filter(a, b->items[i], out);
    if (arr) arr[i] = out;
  }
}

static void build_provider(arena *a, const void *ctx) {
  const sim_provider *p = ctx;
  SIM_FWPM_PROVIDER0 *out = aalloc(a, sizeof *out, 8);
  SIM_FWPM_PROVIDER0 t;
  memset(&t, 0, sizeof t);
  t.providerKey = p->key;
  t.displayData.name = astr(a, p->name);
  t.displayData.description = astr(a, p->desc);
  t.flags = p->flags;
  t.providerData.size = p->data.size;
  t.providerData.data =
      p->data.size ? acopy(a, p->data.data, p->data.size, 1) : NULL;
  t.serviceName = astr(a, p->service);
  if (out) *out = t;
}

static void build_sublayer(arena *a, const void *ctx) {
  const sim_sublayer *x = ctx;
  SIM_FWPM_SUBLAYER0 *out = aalloc(a, sizeof *out, 8);
  SIM_FWPM_SUBLAYER0 t;
  memset(&t, 0, sizeof t);
  t.subLayerKey = x->key;
  t.displayData.name = astr(a, x->name);
  t.displayData.description = astr(a, x->desc);
  t.flags = x->flags;
  if (x->has_provider) t.providerKey = acopy(a, &x->provider, 16, 4);
  t.providerData.size = x->data.size;
  t.providerData.data =
      x->data.size ? acopy(a, x->data.data, x->data.size, 1) : NULL;
  t.weight = x->weight;
  if (out) *out = t;
}

/* ---- entry points ---- */

#define ENTER(name)                                                            \
  pthread_mutex_lock(&g_mu);                                                   \
  uint32_t injected_ = fault_check(name);                                      \
  if (injected_) {                                                             \
    pthread_mutex_unlock(&g_mu);                                               \
    return injected_;                                                          \
  }

#define LEAVE(rc)                                                              \
  do {                                                                         \
    uint32_t rc_ = (rc);                                                       \
    pthread_mutex_unlock(&g_mu);                                               \
    return rc_;                                                                \
  } while (0)

#define SESSION_OR_LEAVE(var, h)                                               \
  session *var = find_session(h);                                              \
  if (!var) LEAVE(SIM_ERROR_INVALID_HANDLE)

EXPORT uint32_t FwpmEngineOpen0(const uint16_t *serverName,
                                uint32_t authnService, void *authIdentity,
                                const SIM_FWPM_SESSION0 *sess,
                                SIM_HANDLE *engineHandle) {
  (void)authIdentity;
  ENTER("FwpmEngineOpen0");
  const char *fail = getenv("WFPSIM_FAIL_OPEN");
  if (fail && *fail) {
    unsigned long code = strtoul(fail, NULL, 0);
    if (code) LEAVE((uint32_t)code);
  }
  if (!engineHandle) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  /* Limitation: only the local engine exists; no remote servers. */
  if (serverName && serverName[0]) LEAVE(SIM_ERROR_NOT_SUPPORTED);
  if (authnService != SIM_RPC_C_AUTHN_WINNT &&
      authnService != SIM_RPC_C_AUTHN_DEFAULT)
    LEAVE(SIM_ERROR_INVALID_PARAMETER);
  if (!g_lock_owner) {
    uint32_t rc = reload();
    if (rc) LEAVE(rc);
  }

  session *s = calloc(1, sizeof *s);
  if (!s) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  s->magic = SESSION_MAGIC;
  s->serial = ++g_serial;
  s->dynamic = sess && (sess->flags & SIM_FWPM_SESSION_FLAG_DYNAMIC);
  uint32_t wait = sess ? sess->txnWaitTimeoutInMSec : 0;
  s->wait_ms = wait == 0 ? TXN_WAIT_DEFAULT_MS
                         : (wait > TXN_WAIT_MAX_MS ? TXN_WAIT_MAX_MS : wait);
  sim_store_init(&s->work);
  s->next = g_sessions;
  g_sessions = s;
  g_open_handles++;
  *engineHandle = s;
  LEAVE(0);
}

static void enum_destroy(enum_handle *e) {
  for (enum_handle **pp = &g_enums; *pp; pp = &(*pp)->next) {
    if (*pp == e) {
      *pp = e->next;
      break;
    }
  }
  for (size_t i = 0; i < e->n; i++) sim_filter_unref(e->items[i]);
  free(e->items);
  e->magic = 0;
  free(e);
  g_open_handles--;
}

/* Drops a closing dynamic session's objects everywhere they are visible. */
static void drop_dynamic_objects(session *s) {
  for (session *o = g_sessions; o; o = o->next)
    if (o->in_txn) purge(&o->work, s);
  if (!g_path) {
    purge(&g_store, s);
    return;
  }
  if (g_lock_owner || lock_acquire(s, s->wait_ms) != 0) {
    /* An open transaction here writes the purged copy if it commits; the
     * next full reload drops them from this process's view in any case.
     * Limitation: until some write of this process, other processes still
     * see them in the file (at the latest until this process exits). */
    purge(&g_store, s);
    g_gen_valid = 0;
    return;
  }
  sim_store w;
  if (sim_store_clone(&w, &g_store) == 0) {
    purge(&w, s);
    publish(&w);
    sim_store_clear(&w);
  }
  lock_release();
}

EXPORT uint32_t FwpmEngineClose0(SIM_HANDLE engineHandle) {
  ENTER("FwpmEngineClose0");
  SESSION_OR_LEAVE(s, engineHandle);
  txn_drop(s);
  enum_handle *e = g_enums;
  while (e) {
    enum_handle *next = e->next;
    if (e->owner == s) enum_destroy(e);
    e = next;
  }
  if (s->dynamic) drop_dynamic_objects(s);
  for (session **pp = &g_sessions; *pp; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  }
  s->magic = 0;
  free(s);
  g_open_handles--;
  LEAVE(0);
}

EXPORT uint32_t FwpmTransactionBegin0(SIM_HANDLE engineHandle,
                                      uint32_t flags) {
  ENTER("FwpmTransactionBegin0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (flags & ~SIM_FWPM_TXN_READ_ONLY) LEAVE(SIM_FWP_E_INVALID_FLAGS);
  if (s->in_txn) LEAVE(SIM_FWP_E_TXN_IN_PROGRESS);
  if (flags & SIM_FWPM_TXN_READ_ONLY) {
    uint32_t rc = g_lock_owner ? 0 : reload();
    if (rc) LEAVE(rc);
  } else {
    uint32_t rc = lock_acquire(s, s->wait_ms);
    if (rc) LEAVE(rc);
  }
  if (sim_store_clone(&s->work, &g_store)) {
    if (!(flags & SIM_FWPM_TXN_READ_ONLY)) lock_release();
    LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  }
  s->in_txn = 1;
  s->txn_readonly = (flags & SIM_FWPM_TXN_READ_ONLY) != 0;
  LEAVE(0);
}

EXPORT uint32_t FwpmTransactionCommit0(SIM_HANDLE engineHandle) {
  ENTER("FwpmTransactionCommit0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!s->in_txn) LEAVE(SIM_FWP_E_NO_TXN_IN_PROGRESS);
  if (s->txn_readonly) {
    txn_drop(s);
    LEAVE(0);
  }
  uint32_t rc = publish(&s->work);
  /* A commit that fails for real (not injected) aborts, as on Windows. */
  txn_drop(s);
  LEAVE(rc);
}

EXPORT uint32_t FwpmTransactionAbort0(SIM_HANDLE engineHandle) {
  ENTER("FwpmTransactionAbort0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!s->in_txn) LEAVE(SIM_FWP_E_NO_TXN_IN_PROGRESS);
  txn_drop(s);
  LEAVE(0);
}

/* ---- providers ---- */

static uint32_t provider_add(session *s, sim_store *st, void *ctx) {
  (void)s;
  sim_provider *p = ctx;
  size_t pos;
  if (sim_store_find_provider(st, &p->key, &pos) >= 0)
    return SIM_FWP_E_ALREADY_EXISTS;
  if (sim_store_insert_provider(st, pos, p)) return SIM_ERROR_NOT_ENOUGH_MEMORY;
  p->refs++; /* the store's reference; the caller drops its own */
  return 0;
}

EXPORT uint32_t FwpmProviderAdd0(SIM_HANDLE engineHandle,
                                 const SIM_FWPM_PROVIDER0 *provider,
                                 void *sd) {
  (void)sd; /* Limitation: security descriptors are ignored. */
  ENTER("FwpmProviderAdd0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!provider) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  if (!provider->displayData.name) LEAVE(SIM_FWP_E_NULL_DISPLAY_NAME);
  if (provider->flags & ~(SIM_FWPM_PROVIDER_FLAG_PERSISTENT |
                          SIM_FWPM_PROVIDER_FLAG_DISABLED))
    LEAVE(SIM_FWP_E_INVALID_FLAGS);
  if (s->dynamic && (provider->flags & SIM_FWPM_PROVIDER_FLAG_PERSISTENT))
    LEAVE(SIM_FWP_E_DYNAMIC_SESSION_IN_PROGRESS);

  sim_provider *p = calloc(1, sizeof *p);
  if (!p) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  p->refs = 1;
  p->key = provider->providerKey;
  if (sim_guid_is_zero(&p->key)) random_guid(&p->key);
  p->flags = provider->flags;
  p->owner = owner_of(s);
  uint32_t rc = take_string(&p->name, provider->displayData.name);
  if (!rc) rc = take_string(&p->desc, provider->displayData.description);
  if (!rc) rc = take_string(&p->service, provider->serviceName);
  if (!rc) rc = take_blob(&p->data, &provider->providerData);
  if (!rc) rc = do_write(s, provider_add, p);
  sim_provider_unref(p);
  LEAVE(rc);
}

static uint32_t provider_delete(session *s, sim_store *st, void *ctx) {
  (void)s;
  const SIM_GUID *key = ctx;
  long i = sim_store_find_provider(st, key, NULL);
  if (i < 0) return SIM_FWP_E_PROVIDER_NOT_FOUND;
  for (size_t j = 0; j < st->nsub; j++)
    if (st->sub[j]->has_provider &&
        sim_guid_cmp(&st->sub[j]->provider, key) == 0)
      return SIM_FWP_E_IN_USE;
  for (size_t j = 0; j < st->nfilt; j++)
    if (st->filt[j]->has_provider &&
        sim_guid_cmp(&st->filt[j]->provider, key) == 0)
      return SIM_FWP_E_IN_USE;
  sim_store_remove_provider(st, (size_t)i);
  return 0;
}

EXPORT uint32_t FwpmProviderDeleteByKey0(SIM_HANDLE engineHandle,
                                         const SIM_GUID *key) {
  ENTER("FwpmProviderDeleteByKey0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!key) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  SIM_GUID k = *key;
  LEAVE(do_write(s, provider_delete, &k));
}

EXPORT uint32_t FwpmProviderGetByKey0(SIM_HANDLE engineHandle,
                                      const SIM_GUID *key,
                                      SIM_FWPM_PROVIDER0 **provider) {
  ENTER("FwpmProviderGetByKey0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!key || !provider) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  sim_store *st;
  uint32_t rc = view(s, &st);
  if (rc) LEAVE(rc);
  long i = sim_store_find_provider(st, key, NULL);
  if (i < 0) LEAVE(SIM_FWP_E_PROVIDER_NOT_FOUND);
  SIM_FWPM_PROVIDER0 *out = build_block(build_provider, st->prov[i]);
  if (!out) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  *provider = out;
  LEAVE(0);
}

/* ---- sublayers ---- */

/* A non-dynamic object may not refer to a dynamic one, and a persistent
 * object only to persistent ones (FWP_E_LIFETIME_MISMATCH on Windows). */
static int lifetime_ok(const sim_owner *self, int self_persistent,
                       const sim_owner *ref, int ref_persistent) {
  if (self->pid == 0 && ref->pid != 0) return 0;
  if (self_persistent && !ref_persistent) return 0;
  return 1;
}

static uint32_t sublayer_add(session *s, sim_store *st, void *ctx) {
  (void)s;
  sim_sublayer *x = ctx;
  size_t pos;
  if (sim_guid_cmp(&x->key, &sim_universal_sublayer) == 0 ||
      sim_store_find_sublayer(st, &x->key, &pos) >= 0)
    return SIM_FWP_E_ALREADY_EXISTS;
  if (x->has_provider) {
    long pi = sim_store_find_provider(st, &x->provider, NULL);
    if (pi < 0) return SIM_FWP_E_PROVIDER_NOT_FOUND;
    const sim_provider *p = st->prov[pi];
    if (!lifetime_ok(&x->owner, x->flags & SIM_FWPM_SUBLAYER_FLAG_PERSISTENT,
                     &p->owner, p->flags & SIM_FWPM_PROVIDER_FLAG_PERSISTENT))
      return SIM_FWP_E_LIFETIME_MISMATCH;
  }
  if (sim_store_insert_sublayer(st, pos, x)) return SIM_ERROR_NOT_ENOUGH_MEMORY;
  x->refs++;
  return 0;
}

EXPORT uint32_t FwpmSubLayerAdd0(SIM_HANDLE engineHandle,
                                 const SIM_FWPM_SUBLAYER0 *subLayer,
                                 void *sd) {
  (void)sd; /* Limitation: security descriptors are ignored. */
  ENTER("FwpmSubLayerAdd0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!subLayer) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  if (!subLayer->displayData.name) LEAVE(SIM_FWP_E_NULL_DISPLAY_NAME);
  if (subLayer->flags & ~SIM_FWPM_SUBLAYER_FLAG_PERSISTENT)
    LEAVE(SIM_FWP_E_INVALID_FLAGS);
  if (s->dynamic && (subLayer->flags & SIM_FWPM_SUBLAYER_FLAG_PERSISTENT))
    LEAVE(SIM_FWP_E_DYNAMIC_SESSION_IN_PROGRESS);

  sim_sublayer *x = calloc(1, sizeof *x);
  if (!x) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  x->refs = 1;
  x->key = subLayer->subLayerKey;
  if (sim_guid_is_zero(&x->key)) random_guid(&x->key);
  x->flags = subLayer->flags;
  x->weight = subLayer->weight;
  x->owner = owner_of(s);
  if (subLayer->providerKey) {
    x->has_provider = 1;
    x->provider = *subLayer->providerKey;
  }
  uint32_t rc = take_string(&x->name, subLayer->displayData.name);
  if (!rc) rc = take_string(&x->desc, subLayer->displayData.description);
  if (!rc) rc = take_blob(&x->data, &subLayer->providerData);
  if (!rc) rc = do_write(s, sublayer_add, x);
  sim_sublayer_unref(x);
  LEAVE(rc);
}

static uint32_t sublayer_delete(session *s, sim_store *st, void *ctx) {
  (void)s;
  const SIM_GUID *key = ctx;
  if (sim_guid_cmp(key, &sim_universal_sublayer) == 0)
    return SIM_FWP_E_BUILTIN_OBJECT;
  long i = sim_store_find_sublayer(st, key, NULL);
  if (i < 0) return SIM_FWP_E_SUBLAYER_NOT_FOUND;
  for (size_t j = 0; j < st->nfilt; j++)
    if (sim_guid_cmp(&st->filt[j]->sublayer, key) == 0) return SIM_FWP_E_IN_USE;
  sim_store_remove_sublayer(st, (size_t)i);
  return 0;
}

EXPORT uint32_t FwpmSubLayerDeleteByKey0(SIM_HANDLE engineHandle,
                                         const SIM_GUID *key) {
  ENTER("FwpmSubLayerDeleteByKey0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!key) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  SIM_GUID k = *key;
  LEAVE(do_write(s, sublayer_delete, &k));
}

EXPORT uint32_t FwpmSubLayerGetByKey0(SIM_HANDLE engineHandle,
                                      const SIM_GUID *key,
                                      SIM_FWPM_SUBLAYER0 **subLayer) {
  ENTER("FwpmSubLayerGetByKey0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!key || !subLayer) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  sim_store *st;
  uint32_t rc = view(s, &st);
  if (rc) LEAVE(rc);
  long i = sim_store_find_sublayer(st, key, NULL);
  if (i < 0) LEAVE(SIM_FWP_E_SUBLAYER_NOT_FOUND);
  SIM_FWPM_SUBLAYER0 *out = build_block(build_sublayer, st->sub[i]);
  if (!out) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  *subLayer = out;
  LEAVE(0);
}

/* ---- filters ---- */

typedef struct filter_add_ctx {
  sim_filter *f;
} filter_add_ctx;

static uint32_t filter_add(session *s, sim_store *st, void *ctx) {
  (void)s;
  sim_filter *f = ((filter_add_ctx *)ctx)->f;
  int persistent = (f->flags & SIM_FWPM_FILTER_FLAG_PERSISTENT) != 0;

  if (sim_guid_cmp(&f->sublayer, &sim_universal_sublayer) != 0) {
    long si = sim_store_find_sublayer(st, &f->sublayer, NULL);
    if (si < 0) return SIM_FWP_E_SUBLAYER_NOT_FOUND;
    const sim_sublayer *x = st->sub[si];
    if (!lifetime_ok(&f->owner, persistent, &x->owner,
                     x->flags & SIM_FWPM_SUBLAYER_FLAG_PERSISTENT))
      return SIM_FWP_E_LIFETIME_MISMATCH;
  }
  if (f->has_provider) {
    long pi = sim_store_find_provider(st, &f->provider, NULL);
    if (pi < 0) return SIM_FWP_E_PROVIDER_NOT_FOUND;
    const sim_provider *p = st->prov[pi];
    if (!lifetime_ok(&f->owner, persistent, &p->owner,
                     p->flags & SIM_FWPM_PROVIDER_FLAG_PERSISTENT))
      return SIM_FWP_E_LIFETIME_MISMATCH;
  }
  size_t pos;
  if (sim_store_find_filter(st, &f->key, &pos) >= 0)
    return SIM_FWP_E_ALREADY_EXISTS;
  f->id = st->next_id;
  if (sim_store_insert_filter(st, pos, f)) return SIM_ERROR_NOT_ENOUGH_MEMORY;
  st->next_id++;
  f->refs++;
  return 0;
}

/* Weight rules of FWPM_FILTER0: FWP_EMPTY lets BFE choose, FWP_UINT8 picks
 * one of 16 ranges, FWP_UINT64 is exact. */
static uint32_t take_weight(sim_filter *f, const SIM_FWP_VALUE0 *w) {
  f->weight_type = w->type;
  switch (w->type) {
  case SIM_FWP_EMPTY:
  case SIM_FWP_UINT8: {
    uint64_t range = w->type == SIM_FWP_UINT8 ? w->u.uint8 : 0;
    if (range > SIM_FWPM_WEIGHT_RANGE_MAX) return SIM_FWP_E_INVALID_WEIGHT;
    f->weight_value = range;
    /* Limitation: the automatic low 60 bits are the condition count, a
     * simple stand-in for BFE's specificity-based auto weight. */
    f->effective_weight = (range << SIM_FWPM_AUTO_WEIGHT_BITS) | f->ncond;
    return 0;
  }
  case SIM_FWP_UINT64:
    if (!w->u.uint64) return SIM_FWP_E_NULL_POINTER;
    f->weight_value = *w->u.uint64;
    f->effective_weight = f->weight_value;
    return 0;
  default: return SIM_FWP_E_INVALID_WEIGHT;
  }
}

static uint32_t take_filter(session *s, const SIM_FWPM_FILTER0 *in,
                            sim_filter *f) {
  const uint32_t known_flags =
      SIM_FWPM_FILTER_FLAG_PERSISTENT | SIM_FWPM_FILTER_FLAG_BOOTTIME |
      SIM_FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT |
      SIM_FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT |
      SIM_FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED |
      SIM_FWPM_FILTER_FLAG_DISABLED | SIM_FWPM_FILTER_FLAG_INDEXED;

  if (!in->displayData.name) return SIM_FWP_E_NULL_DISPLAY_NAME;
  if (in->flags & ~known_flags) return SIM_FWP_E_INVALID_FLAGS;
  if ((in->flags & SIM_FWPM_FILTER_FLAG_PERSISTENT) &&
      (in->flags & SIM_FWPM_FILTER_FLAG_BOOTTIME))
    return SIM_FWP_E_INVALID_FLAGS;
  if (s->dynamic && (in->flags & SIM_FWPM_FILTER_FLAG_PERSISTENT))
    return SIM_FWP_E_DYNAMIC_SESSION_IN_PROGRESS;
  /* Limitation: provider contexts are not modelled. */
  if (in->flags & SIM_FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT)
    return SIM_FWP_E_PROVIDER_CONTEXT_NOT_FOUND;

  const sim_layer_info *layer = sim_layer_find(&in->layerKey);
  if (!layer) return SIM_FWP_E_LAYER_NOT_FOUND;

  f->key = in->filterKey;
  if (sim_guid_is_zero(&f->key)) random_guid(&f->key);
  f->flags = in->flags;
  f->owner = owner_of(s);
  f->layer = in->layerKey;
  f->sublayer = sim_guid_is_zero(&in->subLayerKey) ? sim_universal_sublayer
                                                   : in->subLayerKey;
  if (in->providerKey) {
    f->has_provider = 1;
    f->provider = *in->providerKey;
  }
  uint32_t rc = take_string(&f->name, in->displayData.name);
  if (!rc) rc = take_string(&f->desc, in->displayData.description);
  if (!rc) rc = take_blob(&f->data, &in->providerData);
  if (rc) return rc;

  if (in->numFilterConditions) {
    if (!in->filterCondition) return SIM_FWP_E_NULL_POINTER;
    if (in->numFilterConditions > MAX_CONDITIONS)
      return SIM_FWP_E_OUT_OF_BOUNDS;
    f->cond = calloc(in->numFilterConditions, sizeof *f->cond);
    if (!f->cond) return SIM_ERROR_NOT_ENOUGH_MEMORY;
    for (uint32_t i = 0; i < in->numFilterConditions; i++) {
      const SIM_FWPM_FILTER_CONDITION0 *c = &in->filterCondition[i];
      f->cond[i].field = c->fieldKey;
      f->cond[i].match = c->matchType;
      f->ncond = i + 1;
      rc = take_value(&f->cond[i].value, &c->conditionValue, 1);
      if (!rc) rc = check_condition(layer, &f->cond[i]);
      if (rc) return rc;
    }
  }

  rc = take_weight(f, &in->weight);
  if (rc) return rc;

  f->action_type = in->action.type;
  switch (in->action.type) {
  case SIM_FWP_ACTION_BLOCK:
  case SIM_FWP_ACTION_PERMIT: break;
  case SIM_FWP_ACTION_CALLOUT_TERMINATING:
  case SIM_FWP_ACTION_CALLOUT_INSPECTION:
  case SIM_FWP_ACTION_CALLOUT_UNKNOWN:
    /* Limitation: no callouts are registered, so none is ever found. */
    return SIM_FWP_E_CALLOUT_NOT_FOUND;
  default: return SIM_FWP_E_INVALID_ACTION_TYPE;
  }
  f->action_guid = in->action.u.filterType;
  memcpy(f->context, &in->u, 16);
  return 0;
}

EXPORT uint32_t FwpmFilterAdd0(SIM_HANDLE engineHandle,
                               const SIM_FWPM_FILTER0 *filter, void *sd,
                               uint64_t *id) {
  (void)sd; /* Limitation: security descriptors are ignored. */
  ENTER("FwpmFilterAdd0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!filter) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  sim_filter *f = calloc(1, sizeof *f);
  if (!f) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  f->refs = 1;
  uint32_t rc = take_filter(s, filter, f);
  if (!rc) {
    filter_add_ctx ctx = {f};
    rc = do_write(s, filter_add, &ctx);
  }
  if (!rc && id) *id = f->id;
  sim_filter_unref(f);
  LEAVE(rc);
}

typedef struct filter_del_ctx {
  int by_id;
  uint64_t id;
  SIM_GUID key;
} filter_del_ctx;

static uint32_t filter_delete(session *s, sim_store *st, void *ctx) {
  (void)s;
  filter_del_ctx *c = ctx;
  long i = c->by_id ? sim_store_find_filter_id(st, c->id)
                    : sim_store_find_filter(st, &c->key, NULL);
  if (i < 0) return SIM_FWP_E_FILTER_NOT_FOUND;
  sim_store_remove_filter(st, (size_t)i);
  return 0;
}

EXPORT uint32_t FwpmFilterDeleteById0(SIM_HANDLE engineHandle, uint64_t id) {
  ENTER("FwpmFilterDeleteById0");
  SESSION_OR_LEAVE(s, engineHandle);
  filter_del_ctx c = {1, id, {0, 0, 0, {0}}};
  LEAVE(do_write(s, filter_delete, &c));
}

EXPORT uint32_t FwpmFilterDeleteByKey0(SIM_HANDLE engineHandle,
                                       const SIM_GUID *key) {
  ENTER("FwpmFilterDeleteByKey0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!key) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  filter_del_ctx c = {0, 0, *key};
  LEAVE(do_write(s, filter_delete, &c));
}

EXPORT uint32_t FwpmFilterGetByKey0(SIM_HANDLE engineHandle,
                                    const SIM_GUID *key,
                                    SIM_FWPM_FILTER0 **filter) {
  ENTER("FwpmFilterGetByKey0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!key || !filter) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  sim_store *st;
  uint32_t rc = view(s, &st);
  if (rc) LEAVE(rc);
  long i = sim_store_find_filter(st, key, NULL);
  if (i < 0) LEAVE(SIM_FWP_E_FILTER_NOT_FOUND);
  SIM_FWPM_FILTER0 *out = build_block(build_filter, st->filt[i]);
  if (!out) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  *filter = out;
  LEAVE(0);
}

static int by_id(const void *a, const void *b) {
  const sim_filter *x = *(sim_filter *const *)a, *y = *(sim_filter *const *)b;
  return x->id < y->id ? -1 : x->id > y->id;
}

EXPORT uint32_t FwpmFilterCreateEnumHandle0(
    SIM_HANDLE engineHandle, const SIM_FWPM_FILTER_ENUM_TEMPLATE0 *tmpl,
    SIM_HANDLE *enumHandle) {
  ENTER("FwpmFilterCreateEnumHandle0");
  SESSION_OR_LEAVE(s, engineHandle);
  if (!enumHandle) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  if (tmpl) {
    if (!sim_layer_find(&tmpl->layerKey)) LEAVE(SIM_FWP_E_LAYER_NOT_FOUND);
    if (tmpl->enumType > SIM_FWP_FILTER_ENUM_OVERLAPPING)
      LEAVE(SIM_FWP_E_INVALID_ENUMERATOR);
    /* Limitation: templates with conditions, provider contexts or the
     * best-terminating-match flag are not modelled. */
    if (tmpl->numFilterConditions || tmpl->providerContextTemplate ||
        (tmpl->flags & 0x1u))
      LEAVE(SIM_ERROR_NOT_SUPPORTED);
  }
  sim_store *st;
  uint32_t rc = view(s, &st);
  if (rc) LEAVE(rc);

  enum_handle *e = calloc(1, sizeof *e);
  if (!e) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  e->items = malloc((st->nfilt ? st->nfilt : 1) * sizeof *e->items);
  if (!e->items) {
    free(e);
    LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  }
  for (size_t i = 0; i < st->nfilt; i++) {
    sim_filter *f = st->filt[i];
    if (tmpl) {
      if (sim_guid_cmp(&f->layer, &tmpl->layerKey) != 0) continue;
      if (tmpl->providerKey &&
          (!f->has_provider ||
           sim_guid_cmp(&f->provider, tmpl->providerKey) != 0))
        continue;
      if ((f->action_type & tmpl->actionMask) == 0) continue;
      if (tmpl->calloutKey) continue; /* no filter calls a callout */
    }
    f->refs++;
    e->items[e->n++] = f;
  }
  qsort(e->items, e->n, sizeof *e->items, by_id);
  e->magic = ENUM_MAGIC;
  e->owner = s;
  e->next = g_enums;
  g_enums = e;
  g_open_handles++;
  *enumHandle = e;
  LEAVE(0);
}

EXPORT uint32_t FwpmFilterEnum0(SIM_HANDLE engineHandle, SIM_HANDLE enumHandle,
                                uint32_t numEntriesRequested,
                                SIM_FWPM_FILTER0 ***entries,
                                uint32_t *numEntriesReturned) {
  ENTER("FwpmFilterEnum0");
  SESSION_OR_LEAVE(s, engineHandle);
  enum_handle *e = find_enum(enumHandle);
  if (!e || e->owner != s) LEAVE(SIM_ERROR_INVALID_HANDLE);
  if (!entries || !numEntriesReturned) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  size_t left = e->n - e->pos;
  size_t n = numEntriesRequested < left ? numEntriesRequested : left;
  *entries = NULL;
  *numEntriesReturned = 0;
  if (n == 0) LEAVE(0);
  enum_batch b = {e->items + e->pos, n};
  SIM_FWPM_FILTER0 **out = build_block(build_enum, &b);
  if (!out) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  e->pos += n;
  *entries = out;
  *numEntriesReturned = (uint32_t)n;
  LEAVE(0);
}

EXPORT uint32_t FwpmFilterDestroyEnumHandle0(SIM_HANDLE engineHandle,
                                             SIM_HANDLE enumHandle) {
  ENTER("FwpmFilterDestroyEnumHandle0");
  SESSION_OR_LEAVE(s, engineHandle);
  enum_handle *e = find_enum(enumHandle);
  if (!e || e->owner != s) LEAVE(SIM_ERROR_INVALID_HANDLE);
  enum_destroy(e);
  LEAVE(0);
}

EXPORT void FwpmFreeMemory0(void **p) {
  pthread_mutex_lock(&g_mu);
  if (p && *p && block_free(*p)) *p = NULL;
  pthread_mutex_unlock(&g_mu);
}

typedef struct app_id_ctx {
  const uint16_t *name;
  size_t units; /* with the terminating NUL */
} app_id_ctx;

static uint16_t lower16(uint16_t c) {
  if (c >= 'A' && c <= 'Z') return (uint16_t)(c + 32);
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return (uint16_t)(c + 32);
  return c;
}

static void build_app_id(arena *a, const void *ctx) {
  const app_id_ctx *c = ctx;
  SIM_FWP_BYTE_BLOB *b = aalloc(a, sizeof *b, 8);
  uint16_t *d = aalloc(a, c->units * 2, 2);
  if (!b) return;
  for (size_t i = 0; i < c->units; i++) d[i] = lower16(c->name[i]);
  b->size = (uint32_t)(c->units * 2);
  b->data = (uint8_t *)d;
}

/* Windows returns the NT device path (\device\harddiskvolume1\...) of the
 * file, lower-cased and NUL-terminated; the simulator lower-cases the path
 * it is given and does not require the file to exist. */
EXPORT uint32_t FwpmGetAppIdFromFileName0(const uint16_t *fileName,
                                          SIM_FWP_BYTE_BLOB **appId) {
  ENTER("FwpmGetAppIdFromFileName0");
  if (!fileName || !appId || !fileName[0]) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  size_t n = 0;
  while (fileName[n] && n <= MAX_STRING_UNITS) n++;
  if (n > MAX_STRING_UNITS) LEAVE(SIM_ERROR_INVALID_PARAMETER);
  app_id_ctx c = {fileName, n + 1};
  SIM_FWP_BYTE_BLOB *out = build_block(build_app_id, &c);
  if (!out) LEAVE(SIM_ERROR_NOT_ENOUGH_MEMORY);
  *appId = out;
  LEAVE(0);
}

/* ---- test hooks ---- */

EXPORT uint32_t WfpsimInjectFault(const char *function, uint32_t nth,
                                  uint32_t code) {
  pthread_mutex_lock(&g_mu);
  uint32_t rc = fault_add(function, nth, code);
  pthread_mutex_unlock(&g_mu);
  return rc;
}

EXPORT void WfpsimClearFaults(void) {
  pthread_mutex_lock(&g_mu);
  g_nfaults = 0;
  pthread_mutex_unlock(&g_mu);
}

EXPORT uint32_t WfpsimOpenHandles(void) {
  pthread_mutex_lock(&g_mu);
  uint32_t n = g_open_handles;
  pthread_mutex_unlock(&g_mu);
  return n;
}

EXPORT uint64_t WfpsimUnfreedAllocations(void) {
  pthread_mutex_lock(&g_mu);
  uint64_t n = g_nallocs;
  pthread_mutex_unlock(&g_mu);
  return n;
}

EXPORT uint32_t WfpsimReset(void) {
  pthread_mutex_lock(&g_mu);
  for (session *s = g_sessions; s; s = s->next) txn_drop(s);
  uint32_t rc = 0;
  sim_store empty;
  sim_store_init(&empty);
  if (store_path()) {
    rc = lock_acquire(NULL, TXN_WAIT_DEFAULT_MS);
    if (!rc) {
      rc = publish(&empty);
      lock_release();
    }
  } else {
    sim_store_clear(&g_store);
    g_store.next_id = 1;
  }
  sim_store_clear(&empty);
  pthread_mutex_unlock(&g_mu);
  return rc;
}

EXPORT uint64_t WfpsimDump(uint8_t *buf, uint64_t cap) {
  pthread_mutex_lock(&g_mu);
  uint64_t needed = 0;
  if (g_lock_owner || reload() == 0) {
    size_t len;
    char *json = sim_store_to_json(&g_store, &len);
    if (json) {
      needed = len;
      if (buf && cap) {
        size_t n = len < cap ? len : (size_t)cap;
        memcpy(buf, json, n);
        if (len < cap) buf[len] = 0;
      }
      free(json);
    }
  }
  pthread_mutex_unlock(&g_mu);
  return needed;
}
