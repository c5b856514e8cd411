/* celerylab.core._cdecode: a cProfile/pstats file's marshal bytes -> columns, without Python objects per row.
 *
 * A pstats file is a marshal dump of {(file, line, name): (cc, nc, tt, ct, {(file, line, name): (nc, cc, tt, ct)})}.
 * marshal.loads builds a dict, a tuple and several ints and floats per function and per caller edge; the loader
 * then walks them again to make columns.  This module walks the bytes once instead and writes the columns
 * directly.  Function keys are interned in a C hash table (the strings of a key are hashed once per file, and a
 * caller key written as a marshal back-reference costs one array lookup); a key the table has not met gets its id
 * there, and its Python tuple only at the next sync().  So a file is read and decoded without the GIL, and the
 * threads of a parallel load, each with its own Interner, decode at once.
 *
 * It decodes exactly the shape cProfile, pstats and pyinstrument write and nothing else: every other byte -- a
 * type code it does not expect, a bare-count caller value (the `profile` module), a float among counts, NaN or
 * infinity, a duplicate key, data cut short -- makes decode() return None having changed nothing, and the Python
 * path (marshal.loads, then celerylab.core.decode) takes the file and words any error.  Numbers are converted as
 * the Python path converts them (array('q') / array('d')), so both paths give the same bits.
 *
 * Limited API (abi3): one wheel per platform serves every CPython >= 3.11.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/stat.h>
#endif

/* marshal type codes (CPython Python/marshal.c) */
#define T_NULL '0'
#define T_INT 'i'
#define T_LONG 'l'
#define T_BINARY_FLOAT 'g'
#define T_TUPLE '('
#define T_SMALL_TUPLE ')'
#define T_DICT '{'
#define T_REF 'r'
#define T_UNICODE 'u'
#define T_INTERNED 't'
#define T_ASCII 'a'
#define T_ASCII_INTERNED 'A'
#define T_SHORT_ASCII 'z'
#define T_SHORT_ASCII_INTERNED 'Z'
#define FLAG_REF 0x80

/* ---------------------------------------------------------------- small growable arrays */

typedef struct {
    void *p;
    size_t n, cap, size;
} Vec;

static int vec_reserve(Vec *v, size_t want) {
    if (want <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < want) cap *= 2;
    void *np_ = realloc(v->p, cap * v->size);
    if (!np_) return -1;
    v->p = np_;
    v->cap = cap;
    return 0;
}

/* pointer to a new zeroed element, or NULL when out of memory */
static void *vec_push(Vec *v) {
    if (v->n == v->cap && vec_reserve(v, v->n + 1)) return NULL;
    char *e = (char *)v->p + v->n * v->size;
    memset(e, 0, v->size);
    v->n++;
    return e;
}

#define VEC_AT(v, T, i) (((T *)(v).p)[i])

/* ---------------------------------------------------------------- hashing */

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0x100000001b3ULL;
    return mix64(h);
}

static inline uint64_t key_hash(uint64_t fh, int64_t line, uint64_t nh) {
    return mix64(fh ^ mix64(nh + 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)line * 0xc2b2ae3d27d4eb4fULL));
}

/* ---------------------------------------------------------------- the interner (one per chunk of files) */

typedef struct {
    uint64_t h;
    uint64_t fh; /* hash of the file bytes alone (sync() finds the file's str object by it) */
    int64_t line;
    size_t off; /* file bytes then name bytes, in the arena */
    uint32_t flen, nlen;
    int32_t id;
} Entry;

/* sync()'s memory of the str object made for a file name: a key's file bytes are compared with the bytes of the
 * entry that made it, and on a match the str is reused without decoding or hashing (most keys share a file) */
typedef struct {
    uint64_t fh;
    size_t off;
    uint32_t flen;
    PyObject *s; /* borrowed: the files dict holds it for the interner's life */
} FileMemo;
#define FILE_MEMO 2048

typedef struct {
    Vec s_prof, s_id, s_nc, s_pc, s_tt, s_ct;
    Vec e_prof, e_caller, e_callee, e_nc, e_cc, e_tt, e_ct;
    int wide; /* a call count beyond 32 bits */
} Cols;

typedef struct {
    PyObject_HEAD
    PyObject *funcs; /* list of (file, line, name): the chunk's functions, shared with the Python path */
    PyObject *index; /* dict key -> id, shared with the Python path */
    PyObject *files; /* dict: each file name's one str object */
    Vec entries;     /* Entry */
    int32_t *slots;  /* open addressing: index into entries, -1 empty */
    size_t nslots;
    char *arena;
    size_t arena_n, arena_cap;
    uint32_t *stamp; /* per function id: the last duplicate-check group that saw it */
    size_t nstamp;
    uint32_t gen;
    /* per-file scratch, kept between calls */
    Vec refs, keys, rows, edges;
    Cols cols; /* the chunk's columns (Interner.add appends, Interner.take hands them over) */
    int busy;  /* add() is running (with the GIL released for part of it): one thread at a time */
    Vec file;  /* add_paths: the bytes of the file being decoded */
    int32_t n_ids; /* ids given out: funcs holds the first ones, sync() makes the Python keys of the rest */
    FileMemo *memo; /* FILE_MEMO slots, by file hash */
} Interner;

static int table_rebuild(Interner *t, size_t nslots) {
    int32_t *s = malloc(nslots * sizeof(int32_t));
    if (!s) return -1;
    memset(s, 0xff, nslots * sizeof(int32_t));
    for (size_t i = 0; i < t->entries.n; i++) {
        Entry *e = &VEC_AT(t->entries, Entry, i);
        size_t j = e->h & (nslots - 1);
        while (s[j] >= 0) j = (j + 1) & (nslots - 1);
        s[j] = (int32_t)i;
    }
    free(t->slots);
    t->slots = s;
    t->nslots = nslots;
    return 0;
}

typedef struct {
    const char *p;
    uint32_t len;
    uint64_t h;
} Str;

/* the id of (file, line, name), interning it (in the C table, and in funcs/index unless the Python path already
 * has it) on first sight; -1 with a Python error set, -2 when the text cannot be decoded (the Python path words it) */
/* the id of (file, line, name) in the C table, or -1 (no Python object touched: callable without the GIL) */
static int32_t lookup_key(const Interner *t, const Str *f, int64_t line, const Str *n, uint64_t h, size_t *slot) {
    size_t mask = t->nslots - 1;
    size_t j = h & mask;
    for (;;) {
        int32_t k = t->slots[j];
        if (k < 0) break;
        const Entry *e = &VEC_AT(t->entries, Entry, k);
        if (e->h == h && e->line == line && e->flen == f->len && e->nlen == n->len &&
            memcmp(t->arena + e->off, f->p, f->len) == 0 && memcmp(t->arena + e->off + f->len, n->p, n->len) == 0)
            return e->id;
        j = (j + 1) & mask;
    }
    *slot = j;
    return -1;
}

/* text that PyUnicode_DecodeUTF8(..., "surrogatepass") decodes: UTF-8, where the surrogates U+D800..U+DFFF are
 * allowed as marshal writes them (three bytes ED A0..BF xx) */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && s[i + 1] < 0xA0) return 0; /* overlong */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* A key the chunk has not met gets the next id in the C table only (no Python object: no GIL); sync() makes its
 * Python tuple later.  -1: out of memory or of ids; -2: text the Python path must word (nothing changed). */
static int32_t new_key(Interner *t, const Str *f, int64_t line, const Str *n, uint64_t h, size_t j) {
    if (!utf8_ok((const unsigned char *)f->p, f->len) || !utf8_ok((const unsigned char *)n->p, n->len)) return -2;
    if (t->n_ids >= INT32_MAX) return -1;
    size_t need = (size_t)f->len + n->len;
    if (t->arena_n + need > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 1 << 16;
        while (cap < t->arena_n + need) cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a) return -1;
        t->arena = a;
        t->arena_cap = cap;
    }
    Entry *e = vec_push(&t->entries);
    if (!e) return -1;
    e->h = h;
    e->fh = f->h;
    e->line = line;
    e->off = t->arena_n;
    e->flen = f->len;
    e->nlen = n->len;
    e->id = t->n_ids++;
    memcpy(t->arena + t->arena_n, f->p, f->len);
    memcpy(t->arena + t->arena_n + f->len, n->p, n->len);
    t->arena_n += need;
    if (t->entries.n * 2 > t->nslots) {
        if (table_rebuild(t, t->nslots * 2)) {
            t->entries.n--; /* the table still holds every other entry */
            t->n_ids--;
            t->arena_n -= need;
            return -1;
        }
    } else {
        t->slots[j] = (int32_t)(t->entries.n - 1);
    }
    return e->id;
}

/* forget the C table's keys with an id >= n (no Python object: no GIL); 0, or -1 out of memory */
static int forget_ids(Interner *t, int32_t n) {
    size_t w = 0;
    for (size_t i = 0; i < t->entries.n; i++) {
        Entry e = VEC_AT(t->entries, Entry, i);
        if (e.id < n) VEC_AT(t->entries, Entry, w++) = e;
    }
    if (t->n_ids > n) t->n_ids = n;
    if (w == t->entries.n) return 0;
    t->entries.n = w;
    return table_rebuild(t, t->nslots);
}

/* the Python keys (file, line, name) of the ids the C table gave out since the last sync, appended to funcs and
 * index in id order (with the GIL); 0, or -1 with a Python error */
static int sync_keys(Interner *t) {
    Py_ssize_t have = PyList_Size(t->funcs);
    if (have < 0) return -1;
    if (have >= t->n_ids) return 0;
    size_t first = t->entries.n;
    while (first > 0 && VEC_AT(t->entries, Entry, first - 1).id >= have) first--;
    for (size_t i = first; i < t->entries.n; i++) {
        const Entry *e = &VEC_AT(t->entries, Entry, i);
        if (e->id != have) {
            PyErr_SetString(PyExc_RuntimeError, "celerylab: the interner's ids are out of step with its keys");
            return -1;
        }
        /* one str object per source file, shared by its functions' keys: pickled once per chunk, hashed once */
        FileMemo *m = &t->memo[e->fh & (FILE_MEMO - 1)];
        PyObject *fs;
        if (m->s && m->fh == e->fh && m->flen == e->flen && memcmp(t->arena + m->off, t->arena + e->off, e->flen) == 0) {
            fs = m->s;
            Py_INCREF(fs);
        } else {
            fs = PyUnicode_DecodeUTF8(t->arena + e->off, e->flen, "surrogatepass");
            if (!fs) return -1;
            PyObject *same = PyDict_GetItemWithError(t->files, fs); /* borrowed */
            if (same) {
                Py_INCREF(same);
                Py_DECREF(fs);
                fs = same;
            } else if (PyErr_Occurred() || PyDict_SetItem(t->files, fs, fs) < 0) {
                Py_DECREF(fs);
                return -1;
            }
            m->fh = e->fh;
            m->off = e->off;
            m->flen = e->flen;
            m->s = fs;
        }
        PyObject *ns = PyUnicode_DecodeUTF8(t->arena + e->off + e->flen, e->nlen, "surrogatepass");
        PyObject *ln = ns ? PyLong_FromLongLong(e->line) : NULL;
        PyObject *key = ln ? PyTuple_Pack(3, fs, ln, ns) : NULL;
        Py_DECREF(fs);
        Py_XDECREF(ns);
        Py_XDECREF(ln);
        if (!key) return -1;
        PyObject *idobj = PyLong_FromSsize_t(have);
        /* a key the C table gave a new id must be new to the dict too: it grows by one (one hash, not two) */
        Py_ssize_t before = PyDict_Size(t->index);
        int bad = !idobj || PyDict_SetItem(t->index, key, idobj) < 0;
        int known = !bad && PyDict_Size(t->index) == before;
        bad = bad || known || PyList_Append(t->funcs, key) < 0;
        if (known)
            PyErr_SetString(PyExc_RuntimeError, "celerylab: a key the interner gave a new id was already known");
        Py_XDECREF(idobj);
        Py_DECREF(key);
        if (bad) return -1;
        have++;
    }
    return 0;
}

/* forget every function with an id >= n: in funcs, index and the C table (a file that failed half-way) */
static int truncate_to(Interner *t, Py_ssize_t n) {
    Py_ssize_t nf = PyList_Size(t->funcs);
    if (nf < 0) return -1;
    for (Py_ssize_t i = n; i < nf; i++) {
        PyObject *k = PyList_GetItem(t->funcs, i); /* borrowed */
        if (!k || PyDict_DelItem(t->index, k) < 0) return -1;
    }
    if (n < nf && PyList_SetSlice(t->funcs, n, nf, NULL) < 0) return -1;
    if (forget_ids(t, (int32_t)n)) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* the keys the Python path added to funcs[start:] (it has every earlier key: sync() ran before it), into the C
 * table with their ids, so that the compiled path finds them without looking at the Python dict */
static int register_keys(Interner *t, Py_ssize_t start) {
    Py_ssize_t nf = PyList_Size(t->funcs);
    if (nf < 0) return -1;
    if (start != t->n_ids || nf > INT32_MAX) {
        PyErr_SetString(PyExc_RuntimeError, "celerylab: register() needs the interner in step with funcs");
        return -1;
    }
    for (Py_ssize_t i = start; i < nf; i++) {
        PyObject *k = PyList_GetItem(t->funcs, i); /* borrowed */
        if (!k || !PyTuple_Check(k) || PyTuple_Size(k) != 3) continue;
        PyObject *f = PyTuple_GetItem(k, 0), *l = PyTuple_GetItem(k, 1), *n = PyTuple_GetItem(k, 2);
        if (!PyUnicode_Check(f) || !PyUnicode_Check(n) || !PyLong_Check(l)) continue;
        int overflow = 0;
        long long line = PyLong_AsLongLongAndOverflow(l, &overflow);
        if (overflow || (line == -1 && PyErr_Occurred())) { /* no file can give the compiled path this key */
            PyErr_Clear();
            continue;
        }
        PyObject *fb = PyUnicode_AsEncodedString(f, "utf-8", "surrogatepass");
        PyObject *nb = fb ? PyUnicode_AsEncodedString(n, "utf-8", "surrogatepass") : NULL;
        if (!nb) {
            Py_XDECREF(fb);
            return -1;
        }
        Str fs = {PyBytes_AsString(fb), (uint32_t)PyBytes_Size(fb), 0}, ns = {PyBytes_AsString(nb), (uint32_t)PyBytes_Size(nb), 0};
        fs.h = hash_bytes(fs.p, fs.len);
        ns.h = hash_bytes(ns.p, ns.len);
        size_t j;
        uint64_t h = key_hash(fs.h, line, ns.h);
        int32_t rc = 0;
        if (lookup_key(t, &fs, line, &ns, h, &j) < 0) {
            t->n_ids = (int32_t)i; /* new_key gives it the next id: i */
            rc = new_key(t, &fs, line, &ns, h, j);
        }
        Py_DECREF(fb);
        Py_DECREF(nb);
        if (rc == -1) {
            PyErr_NoMemory();
            return -1;
        }
    }
    t->n_ids = (int32_t)nf;
    return 0;
}

/* ---------------------------------------------------------------- the per-file parser */

enum { R_PENDING = 0, R_STR, R_INT, R_FLOAT, R_KEY, R_VAL4, R_OTHER };

typedef struct {
    int kind;
    int64_t i;
    double d;
    Str s;
    int32_t key; /* R_KEY: index into keys; R_VAL4: index into the file's val4 list (in refs itself: see below) */
    int64_t v_nc, v_cc;
    double v_tt, v_ct;
} Ref;

typedef struct {
    Str f, n;
    int64_t line;
    int32_t id;
} Key;

typedef struct {
    int32_t key;
    int64_t nc, pc;
    double tt, ct;
    size_t e0, ne;
} Row;

typedef struct {
    int32_t key;
    int64_t nc, cc;
    double tt, ct;
} Edge;

typedef struct {
    const unsigned char *p, *end;
    Interner *t;
} P;

#define NEED(ps, k)                                    \
    do {                                               \
        if ((size_t)((ps)->end - (ps)->p) < (size_t)(k)) return -1; \
    } while (0)

static inline int32_t rd_i32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

static inline double rd_f64(const unsigned char *p) {
    uint64_t u = 0;
    for (int k = 7; k >= 0; k--) u = (u << 8) | p[k];
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* a new ref slot when the type byte carries FLAG_REF; its index, or -1 (none) / -3 (out of memory) */
static long ref_reserve(P *ps, int flag) {
    if (!flag) return -1;
    Ref *r = vec_push(&ps->t->refs);
    if (!r) return -3;
    return (long)(ps->t->refs.n - 1);
}

/* the object a back-reference points at (its type byte already read), or NULL when the index is out of range */
static Ref *read_ref(P *ps) {
    if ((size_t)(ps->end - ps->p) < 4) return NULL;
    int32_t k = rd_i32(ps->p);
    ps->p += 4;
    if (k < 0 || (size_t)k >= ps->t->refs.n) return NULL;
    return &VEC_AT(ps->t->refs, Ref, k);
}

/* Every parse_* returns 0 on success and -1 when the bytes are not the expected shape (the caller gives up). */

static int parse_str(P *ps, Str *out) {
    NEED(ps, 1);
    int code = *ps->p++;
    int flag = code & FLAG_REF;
    code &= ~FLAG_REF;
    size_t len;
    int ascii;
    switch (code) {
    case T_REF: {
        Ref *r = read_ref(ps);
        if (!r || r->kind != R_STR) return -1;
        *out = r->s;
        return 0;
    }
    case T_UNICODE:
    case T_INTERNED:
    case T_ASCII:
    case T_ASCII_INTERNED: {
        NEED(ps, 4);
        int32_t n = rd_i32(ps->p);
        ps->p += 4;
        if (n < 0) return -1;
        len = (size_t)n;
        ascii = code == T_ASCII || code == T_ASCII_INTERNED;
        break;
    }
    case T_SHORT_ASCII:
    case T_SHORT_ASCII_INTERNED:
        NEED(ps, 1);
        len = *ps->p++;
        ascii = 1;
        break;
    default:
        return -1;
    }
    if (len > UINT32_MAX) return -1;
    NEED(ps, len);
    if (ascii) { /* marshal reads these as Latin-1: only plain ASCII has the same bytes as UTF-8 */
        unsigned char acc = 0;
        for (size_t k = 0; k < len; k++) acc |= ps->p[k];
        if (acc & 0x80) return -1;
    }
    out->p = (const char *)ps->p;
    out->len = (uint32_t)len;
    out->h = hash_bytes(out->p, len);
    ps->p += len;
    if (flag) {
        Ref *r = vec_push(&ps->t->refs);
        if (!r) return -1;
        r->kind = R_STR;
        r->s = *out;
    }
    return 0;
}

/* an int (counts and line numbers): 'i', a 'l' that fits in 63 bits, or a reference to one */
static int parse_int(P *ps, int64_t *out) {
    NEED(ps, 1);
    int code = *ps->p++;
    int flag = code & FLAG_REF;
    code &= ~FLAG_REF;
    int64_t v;
    if (code == T_INT) {
        NEED(ps, 4);
        v = rd_i32(ps->p);
        ps->p += 4;
    } else if (code == T_LONG) {
        NEED(ps, 4);
        int32_t n = rd_i32(ps->p);
        ps->p += 4;
        if (n == 0 || n < -4 || n > 4) return -1; /* 4 digits of 15 bits: 60 bits, always within int64 */
        int32_t an = n < 0 ? -n : n;
        NEED(ps, (size_t)an * 2);
        uint64_t u = 0;
        for (int k = an - 1; k >= 0; k--) {
            unsigned d = (unsigned)ps->p[2 * k] | ((unsigned)ps->p[2 * k + 1] << 8);
            if (d > 0x7fff) return -1;
            u = (u << 15) | d;
        }
        if (ps->p[2 * (an - 1)] == 0 && ps->p[2 * (an - 1) + 1] == 0) return -1; /* unnormalised */
        ps->p += (size_t)an * 2;
        v = n < 0 ? -(int64_t)u : (int64_t)u;
    } else if (code == T_REF) {
        Ref *r = read_ref(ps);
        if (!r || r->kind != R_INT) return -1;
        *out = r->i;
        return 0;
    } else {
        return -1;
    }
    if (flag) {
        Ref *r = vec_push(&ps->t->refs);
        if (!r) return -1;
        r->kind = R_INT;
        r->i = v;
    }
    *out = v;
    return 0;
}

/* a time: a finite binary float, an int as array('d') takes it, or a reference to either */
static int parse_time(P *ps, double *out) {
    NEED(ps, 1);
    int code = ps->p[0];
    int flag = code & FLAG_REF;
    code &= ~FLAG_REF;
    double d;
    if (code == T_BINARY_FLOAT) {
        ps->p++;
        NEED(ps, 8);
        d = rd_f64(ps->p);
        ps->p += 8;
        if (flag) {
            Ref *r = vec_push(&ps->t->refs);
            if (!r) return -1;
            r->kind = R_FLOAT;
            r->d = d;
        }
    } else if (code == T_REF) {
        ps->p++;
        Ref *r = read_ref(ps);
        if (!r) return -1;
        if (r->kind == R_FLOAT)
            d = r->d;
        else if (r->kind == R_INT)
            d = (double)r->i;
        else
            return -1;
    } else if (code == T_INT || code == T_LONG) {
        int64_t v;
        if (parse_int(ps, &v)) return -1;
        d = (double)v;
    } else {
        return -1;
    }
    if (!isfinite(d)) return -1;
    *out = d;
    return 0;
}

/* the header of a tuple of n items: reserves its ref slot (before its items, as marshal does) */
static int parse_tuple_head(P *ps, size_t n, long *slot) {
    NEED(ps, 1);
    int code = *ps->p++;
    int flag = code & FLAG_REF;
    code &= ~FLAG_REF;
    size_t got;
    if (code == T_SMALL_TUPLE) {
        NEED(ps, 1);
        got = *ps->p++;
    } else if (code == T_TUPLE) {
        NEED(ps, 4);
        int32_t k = rd_i32(ps->p);
        ps->p += 4;
        if (k < 0) return -1;
        got = (size_t)k;
    } else {
        return -1;
    }
    if (got != n) return -1;
    *slot = ref_reserve(ps, flag);
    return *slot == -3 ? -1 : 0;
}

/* a function key (file, line, name), or a reference to one; *out is its index in the file's keys */
static int parse_key(P *ps, int32_t *out) {
    NEED(ps, 1);
    if ((ps->p[0] & ~FLAG_REF) == T_REF) {
        ps->p++;
        Ref *r = read_ref(ps);
        if (!r || r->kind != R_KEY) return -1;
        *out = r->key;
        return 0;
    }
    long slot;
    if (parse_tuple_head(ps, 3, &slot)) return -1;
    Key key;
    if (parse_str(ps, &key.f) || parse_int(ps, &key.line) || parse_str(ps, &key.n)) return -1;
    key.id = -1;
    Key *k = vec_push(&ps->t->keys);
    if (!k) return -1;
    *k = key;
    *out = (int32_t)(ps->t->keys.n - 1);
    if (slot >= 0) {
        Ref *r = &VEC_AT(ps->t->refs, Ref, slot);
        r->kind = R_KEY;
        r->key = *out;
    }
    return 0;
}

/* a caller value (nc, cc, tt, ct), or a reference to one */
static int parse_val4(P *ps, Edge *e) {
    NEED(ps, 1);
    if ((ps->p[0] & ~FLAG_REF) == T_REF) {
        ps->p++;
        Ref *r = read_ref(ps);
        if (!r || r->kind != R_VAL4) return -1;
        e->nc = r->v_nc;
        e->cc = r->v_cc;
        e->tt = r->v_tt;
        e->ct = r->v_ct;
        return 0;
    }
    long slot;
    if (parse_tuple_head(ps, 4, &slot)) return -1;
    if (parse_int(ps, &e->nc) || parse_int(ps, &e->cc) || parse_time(ps, &e->tt) || parse_time(ps, &e->ct)) return -1;
    if (slot >= 0) {
        Ref *r = &VEC_AT(ps->t->refs, Ref, slot);
        r->kind = R_VAL4;
        r->v_nc = e->nc;
        r->v_cc = e->cc;
        r->v_tt = e->tt;
        r->v_ct = e->ct;
    }
    return 0;
}

static int parse_dict_head(P *ps) {
    NEED(ps, 1);
    int code = *ps->p++;
    if ((code & ~FLAG_REF) != T_DICT) return -1;
    if (code & FLAG_REF) {
        Ref *r = vec_push(&ps->t->refs);
        if (!r) return -1;
        r->kind = R_OTHER;
    }
    return 0;
}

/* the whole file into t->keys / rows / edges */
static int parse_file(P *ps) {
    Interner *t = ps->t;
    if (parse_dict_head(ps)) return -1;
    for (;;) {
        NEED(ps, 1);
        if (ps->p[0] == T_NULL) {
            ps->p++;
            return 0;
        }
        Row row;
        if (parse_key(ps, &row.key)) return -1;
        long slot;
        if (parse_tuple_head(ps, 5, &slot)) return -1;
        if (slot >= 0) VEC_AT(t->refs, Ref, slot).kind = R_OTHER;
        if (parse_int(ps, &row.pc) || parse_int(ps, &row.nc) || parse_time(ps, &row.tt) || parse_time(ps, &row.ct))
            return -1;
        if (parse_dict_head(ps)) return -1;
        row.e0 = t->edges.n;
        for (;;) {
            NEED(ps, 1);
            if (ps->p[0] == T_NULL) {
                ps->p++;
                break;
            }
            Edge e;
            if (parse_key(ps, &e.key) || parse_val4(ps, &e)) return -1;
            Edge *slot_e = vec_push(&t->edges);
            if (!slot_e) return -1;
            *slot_e = e;
        }
        row.ne = t->edges.n - row.e0;
        Row *r = vec_push(&t->rows);
        if (!r) return -1;
        *r = row;
    }
}

/* room for ids < nf in the duplicate stamps (no Python object: called without the GIL); 0, or -1 out of memory */
static int stamp_reserve(Interner *t, size_t nf) {
    if (nf > t->nstamp) {
        size_t cap = t->nstamp ? t->nstamp : 1024;
        while (cap < nf) cap *= 2;
        uint32_t *s = realloc(t->stamp, cap * sizeof(uint32_t));
        if (!s) return -1;
        memset(s + t->nstamp, 0, (cap - t->nstamp) * sizeof(uint32_t));
        t->stamp = s;
        t->nstamp = cap;
    }
    return 0;
}

static uint32_t next_gen(Interner *t) {
    if (++t->gen == 0) {
        memset(t->stamp, 0, t->nstamp * sizeof(uint32_t));
        t->gen = 1;
    }
    return t->gen;
}

static inline int key_is(const Key *k, const char *file, int64_t line, const char *name) {
    size_t fl = strlen(file), nl = strlen(name);
    return k->line == line && k->f.len == fl && k->n.len == nl && memcmp(k->f.p, file, fl) == 0 &&
           memcmp(k->n.p, name, nl) == 0;
}

static inline int starts(const Str *s, const char *prefix) {
    size_t l = strlen(prefix);
    return s->len >= l && memcmp(s->p, prefix, l) == 0;
}

#define FLAG_PROFILE_ROOT 1 /* a ('profile', 0, 'profiler') key: the pure-Python profile module */
#define FLAG_BUILTIN 2      /* a ('~', 0, '<built-in ...'/'<method ...') key: cProfile */
#define FLAG_NEGATIVE 4     /* a negative call count: unknown counts (pyinstrument) */
#define FLAG_PC_GT_NC 8     /* primitive calls > calls: yappi's order */

/* the chunk's columns: what every decoded file appended */
static int push_cols(Interner *t, int32_t slot, const Key *keys, const Row *rows, size_t nr, const Edge *edges,
                     size_t ne) {
    Cols *c = &t->cols;
    if (vec_reserve(&c->s_prof, c->s_prof.n + nr) || vec_reserve(&c->s_id, c->s_id.n + nr) ||
        vec_reserve(&c->s_nc, c->s_nc.n + nr) || vec_reserve(&c->s_pc, c->s_pc.n + nr) ||
        vec_reserve(&c->s_tt, c->s_tt.n + nr) || vec_reserve(&c->s_ct, c->s_ct.n + nr) ||
        vec_reserve(&c->e_prof, c->e_prof.n + ne) || vec_reserve(&c->e_caller, c->e_caller.n + ne) ||
        vec_reserve(&c->e_callee, c->e_callee.n + ne) || vec_reserve(&c->e_nc, c->e_nc.n + ne) ||
        vec_reserve(&c->e_cc, c->e_cc.n + ne) || vec_reserve(&c->e_tt, c->e_tt.n + ne) ||
        vec_reserve(&c->e_ct, c->e_ct.n + ne))
        return -1;
    size_t s0 = c->s_prof.n, e0 = c->e_prof.n;
    for (size_t i = 0; i < nr; i++) {
        const Row *r = &rows[i];
        int32_t id = keys[r->key].id;
        VEC_AT(c->s_prof, int32_t, s0 + i) = slot;
        VEC_AT(c->s_id, int32_t, s0 + i) = id;
        VEC_AT(c->s_nc, int64_t, s0 + i) = r->nc;
        VEC_AT(c->s_pc, int64_t, s0 + i) = r->pc;
        VEC_AT(c->s_tt, double, s0 + i) = r->tt;
        VEC_AT(c->s_ct, double, s0 + i) = r->ct;
        if (r->nc < INT32_MIN || r->nc > INT32_MAX || r->pc < INT32_MIN || r->pc > INT32_MAX) c->wide = 1;
        for (size_t j = r->e0; j < r->e0 + r->ne; j++) {
            const Edge *e = &edges[j];
            size_t k = e0 + j;
            VEC_AT(c->e_prof, int32_t, k) = slot;
            VEC_AT(c->e_caller, int32_t, k) = keys[e->key].id;
            VEC_AT(c->e_callee, int32_t, k) = id;
            VEC_AT(c->e_nc, int64_t, k) = e->nc;
            VEC_AT(c->e_cc, int64_t, k) = e->cc;
            VEC_AT(c->e_tt, double, k) = e->tt;
            VEC_AT(c->e_ct, double, k) = e->ct;
            if (e->nc < INT32_MIN || e->nc > INT32_MAX || e->cc < INT32_MIN || e->cc > INT32_MAX) c->wide = 1;
        }
    }
    c->s_prof.n = c->s_id.n = c->s_nc.n = c->s_pc.n = c->s_tt.n = c->s_ct.n = s0 + nr;
    c->e_prof.n = c->e_caller.n = c->e_callee.n = c->e_nc.n = c->e_cc.n = c->e_tt.n = c->e_ct.n = e0 + ne;
    return 0;
}

/* what add_bytes found in one file */
typedef struct {
    Py_ssize_t nr, ne;
    double total_tt;
    int flags;
} Added;

/* Decodes one file's bytes and appends its rows to the chunk's columns as profile ``slot``.  Called WITHOUT the
 * GIL, and never takes it: a key this chunk has not met gets its id in the C table, and its Python tuple from the
 * next sync() (``*ts``, the caller's saved thread state, is used only to set a MemoryError).  1: decoded (``out``
 * filled); 0: not the shape cProfile writes, nothing changed; -1: a Python error is set (the GIL released). */
static int add_bytes(Interner *t, const unsigned char *p, size_t len, int32_t slot, PyThreadState **ts, Added *out) {
    t->refs.n = t->keys.n = t->rows.n = t->edges.n = 0;
    P ps = {p, p + len, t};
    if (parse_file(&ps) || t->rows.n == 0) return 0;
    size_t nr = t->rows.n, ne = t->edges.n;
    Key *keys = (Key *)t->keys.p;
    Row *rows = (Row *)t->rows.p;
    Edge *edges = (Edge *)t->edges.p;
    int flags = 0;
    int32_t max_id = -1, first_new = t->n_ids;
    /* the file's own keys first, then callers that are not among them (the Python path's order of new ids) */
    for (int pass = 0; pass < 2; pass++) {
        size_t count = pass == 0 ? nr : ne;
        for (size_t i = 0; i < count; i++) {
            Key *k = &keys[pass == 0 ? rows[i].key : edges[i].key];
            if (k->id < 0) {
                size_t j;
                uint64_t h = key_hash(k->f.h, k->line, k->n.h);
                k->id = lookup_key(t, &k->f, k->line, &k->n, h, &j);
                if (k->id < 0) {
                    k->id = new_key(t, &k->f, k->line, &k->n, h, j);
                    if (k->id == -1) goto nomem;
                    if (k->id == -2) goto undo;
                }
            }
            if (k->id > max_id) max_id = k->id;
        }
    }
    for (size_t i = 0; i < nr; i++) {
        const Key *k = &keys[rows[i].key];
        if (key_is(k, "profile", 0, "profiler")) flags |= FLAG_PROFILE_ROOT;
        if (k->line == 0 && k->f.len == 1 && k->f.p[0] == '~' &&
            (starts(&k->n, "<built-in") || starts(&k->n, "<method ")))
            flags |= FLAG_BUILTIN;
    }
    /* a key twice in the file, or a caller twice for one function: marshal.loads would keep one; not ours */
    if (stamp_reserve(t, (size_t)max_id + 1)) goto nomem;
    uint32_t g = next_gen(t);
    for (size_t i = 0; i < nr; i++) {
        int32_t id = keys[rows[i].key].id;
        if (t->stamp[id] == g) goto undo;
        t->stamp[id] = g;
    }
    for (size_t i = 0; i < nr; i++) {
        if (rows[i].ne < 2) continue;
        g = next_gen(t);
        for (size_t j = rows[i].e0; j < rows[i].e0 + rows[i].ne; j++) {
            int32_t id = keys[edges[j].key].id;
            if (t->stamp[id] == g) goto undo;
            t->stamp[id] = g;
        }
    }
    /* pstats.Stats.get_top_level_stats: a plain left-to-right sum (from the first value, as numpy's cumsum) */
    double total_tt = rows[0].tt;
    for (size_t i = 1; i < nr; i++) total_tt += rows[i].tt;
    for (size_t i = 0; i < nr; i++) {
        if (rows[i].nc < 0 || rows[i].pc < 0) flags |= FLAG_NEGATIVE;
        if (rows[i].pc > rows[i].nc) flags |= FLAG_PC_GT_NC;
    }
    if (push_cols(t, slot, keys, rows, nr, edges, ne)) goto nomem;
    out->nr = (Py_ssize_t)nr;
    out->ne = (Py_ssize_t)ne;
    out->total_tt = total_tt;
    out->flags = flags;
    return 1;
undo:
    if (forget_ids(t, first_new)) goto nomem;
    return 0;
nomem:
    forget_ids(t, first_new); /* best effort: the columns were not touched */
    PyEval_RestoreThread(*ts);
    PyErr_NoMemory();
    *ts = PyEval_SaveThread();
    return -1;
}

/* 1 when no thread is inside add()/add_paths() of this interner; 0 with a RuntimeError otherwise */
static int interner_idle(PyObject *self) {
    if (((Interner *)self)->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this interner is in use by another thread (Interner.add)");
        return 0;
    }
    return 1;
}

/* the interner for this thread's add()/add_paths() (checked and marked with the GIL held) */
static int interner_claim(Interner *t) {
    if (!interner_idle((PyObject *)t)) return 0;
    t->busy = 1;
    return 1;
}

static PyObject *added_tuple(const Added *a) {
    return Py_BuildValue("(nndi)", a->nr, a->ne, a->total_tt, a->flags);
}

/* Interner.add(data, slot) -> None | (n_rows, n_edges, total_tt, flags)
 * Decodes one file's bytes and appends its rows to the chunk's columns as profile ``slot``; None (nothing changed)
 * when the bytes are not the shape cProfile writes.  The bytes are walked without the GIL. */
static PyObject *interner_add(PyObject *self, PyObject *args) {
    PyObject *data;
    int slot;
    if (!PyArg_ParseTuple(args, "Oi", &data, &slot)) return NULL;
    Interner *t = (Interner *)self;
    Py_buffer buf;
    if (PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE) < 0) return NULL;
    if (!interner_claim(t)) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    Added a;
    PyThreadState *ts = PyEval_SaveThread();
    int rc = add_bytes(t, (const unsigned char *)buf.buf, (size_t)buf.len, slot, &ts, &a);
    PyEval_RestoreThread(ts);
    t->busy = 0;
    PyBuffer_Release(&buf);
    if (rc < 0) return NULL;
    if (rc == 0) Py_RETURN_NONE;
    return added_tuple(&a);
}

#ifndef _WIN32
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* the whole file into t->file (regular files only); 0, or -1 (Python's own reading reports why) */
static int read_whole(Interner *t, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        /* the stat size, or what was read when the file grew, and room beyond it to see the end */
        size_t size = st.st_size > 0 ? (size_t)st.st_size : 0;
        size_t want = (n > size ? n : size) + 4096;
        if (t->file.cap < want && vec_reserve(&t->file, want)) {
            close(fd);
            return -1;
        }
        ssize_t got = read(fd, (char *)t->file.p + n, t->file.cap - n);
        if (got < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    t->file.n = n;
    return 0;
}

/* Interner.add_paths(paths: tuple of bytes, start, first_slot) -> list of (n_rows, n_edges, total_tt, flags)
 * Reads and decodes paths[start], paths[start + 1], ... (profile slots first_slot, first_slot + 1, ...) without
 * the GIL, as add() each, and stops before the first file it does not take whole: one it cannot read (or whose
 * path holds a NUL byte), one that is gzip-compressed or not the shape cProfile writes, one it runs out of memory
 * on (nothing of it changed).  The Python path takes that file, and words why. */
static PyObject *interner_add_paths(PyObject *self, PyObject *args) {
    PyObject *paths;
    Py_ssize_t start;
    int first_slot;
    if (!PyArg_ParseTuple(args, "O!ni", &PyTuple_Type, &paths, &start, &first_slot)) return NULL;
    Interner *t = (Interner *)self;
    Py_ssize_t n = PyTuple_Size(paths);
    if (n < 0) return NULL;
    if (start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "add_paths: start is not a position in paths");
        return NULL;
    }
    const char **cpaths = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    Added *outs = malloc(sizeof(Added) * (size_t)(n > 0 ? n : 1));
    if (!cpaths || !outs) {
        free(cpaths);
        free(outs);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = start; i < n; i++) {
        PyObject *b = PyTuple_GetItem(paths, i);
        cpaths[i] = b ? PyBytes_AsString(b) : NULL; /* the tuple keeps them alive */
        if (!cpaths[i]) {
            free(cpaths);
            free(outs);
            return NULL;
        }
        if (strlen(cpaths[i]) != (size_t)PyBytes_Size(b)) cpaths[i] = NULL; /* a NUL inside: no file of that name */
    }
    if (!interner_claim(t)) {
        free(cpaths);
        free(outs);
        return NULL;
    }
    Py_ssize_t done = 0;
    int rc = 1;
    PyThreadState *ts = PyEval_SaveThread();
    for (Py_ssize_t i = start; i < n; i++) {
        if (!cpaths[i] || read_whole(t, cpaths[i])) break;
        const unsigned char *d = (const unsigned char *)t->file.p;
        if (t->file.n == 0 || (d[0] != T_DICT && d[0] != (T_DICT | FLAG_REF))) break; /* gzip, or not a dict */
        rc = add_bytes(t, d, t->file.n, first_slot + (int32_t)(i - start), &ts, &outs[done]);
        if (rc <= 0) break;
        done++;
    }
    PyEval_RestoreThread(ts);
    t->busy = 0;
    free(cpaths);
    if (rc < 0 && PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear(); /* out of memory on one file: the files before it are in, the Python path takes that one */
        rc = 0;
    }
    PyObject *list = rc < 0 ? NULL : PyList_New(done);
    for (Py_ssize_t i = 0; list && i < done; i++) {
        PyObject *tup = added_tuple(&outs[i]);
        if (!tup) {
            Py_CLEAR(list);
            break;
        }
        PyList_SetItem(list, i, tup); /* steals */
    }
    free(outs);
    return list;
}
#endif

/* A column handed over to Python without a copy: a read-only buffer that owns its malloc'd memory. */
typedef struct {
    PyObject_HEAD
    void *p;
    Py_ssize_t len;
} Buf;

static PyObject *buf_type; /* set at module init */

static int buf_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    Buf *b = (Buf *)self;
    return PyBuffer_FillInfo(view, self, b->p, b->len, 1, flags);
}

static void buf_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    free(((Buf *)self)->p);
    freefunc f = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    f(self);
    Py_DECREF(tp);
}

static PyType_Slot buf_slots[] = {
    {Py_bf_getbuffer, buf_getbuffer},
    {Py_tp_dealloc, buf_dealloc},
    {Py_tp_doc, "A column of the compiled decoder (read-only buffer)."},
    {0, NULL},
};

static PyType_Spec buf_spec = {
    "celerylab.core._cdecode.Column", sizeof(Buf), 0, Py_TPFLAGS_DEFAULT, buf_slots,
};

/* the vector's memory as a Column (the vector is left empty); counts narrowed to int32 in place unless wide */
static PyObject *hand_over(Vec *v, int narrow) {
    allocfunc alloc = (allocfunc)PyType_GetSlot((PyTypeObject *)buf_type, Py_tp_alloc);
    Buf *b = (Buf *)alloc((PyTypeObject *)buf_type, 0);
    if (!b) return NULL;
    size_t size = v->size;
    if (narrow) {
        int32_t *o = (int32_t *)v->p;
        const int64_t *in = (const int64_t *)v->p;
        for (size_t i = 0; i < v->n; i++) o[i] = (int32_t)in[i]; /* o[i] never overtakes in[i] */
        size = 4;
    }
    b->p = v->p;
    b->len = (Py_ssize_t)(v->n * size);
    v->p = NULL;
    v->n = v->cap = 0;
    return (PyObject *)b;
}

/* Interner.take() -> (columns: tuple of 13 buffers, n_rows, n_edges, wide)
 * The chunk's columns since the last take, handed over without a copy (and emptied here):
 *   stats: profile int32, func_id int32, ncalls, pcalls, tottime f64, cumtime f64
 *   edges: profile int32, caller int32, callee int32, ncalls, pcalls, tottime f64, cumtime f64
 * where the call counts are int32, or int64 when ``wide`` (a count beyond 32 bits). */
static PyObject *interner_take(PyObject *self, PyObject *unused) {
    (void)unused;
    if (!interner_idle(self)) return NULL;
    Cols *c = &((Interner *)self)->cols;
    size_t nr = c->s_prof.n, ne = c->e_prof.n;
    int wide = c->wide;
    Vec *order[] = {&c->s_prof, &c->s_id,     &c->s_nc,     &c->s_pc, &c->s_tt, &c->s_ct, &c->e_prof,
                    &c->e_caller, &c->e_callee, &c->e_nc, &c->e_cc, &c->e_tt, &c->e_ct};
    PyObject *cols = PyTuple_New(13);
    if (!cols) return NULL;
    for (int i = 0; i < 13; i++) {
        Vec *v = order[i];
        int count = v == &c->s_nc || v == &c->s_pc || v == &c->e_nc || v == &c->e_cc;
        PyObject *b = hand_over(v, count && !wide);
        if (!b) {
            Py_DECREF(cols);
            return NULL;
        }
        PyTuple_SetItem(cols, i, b); /* steals */
    }
    c->wide = 0;
    return Py_BuildValue("(Nnni)", cols, (Py_ssize_t)nr, (Py_ssize_t)ne, wide);
}

/* rows waiting in the chunk's columns (not yet taken) */
static PyObject *interner_pending(PyObject *self, PyObject *unused) {
    (void)unused;
    if (!interner_idle(self)) return NULL;
    return PyLong_FromSize_t(((Interner *)self)->cols.s_prof.n);
}

/* ---------------------------------------------------------------- the Interner type */

static PyObject *interner_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *funcs, *index;
    static char *kwlist[] = {"funcs", "index", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO", kwlist, &funcs, &index)) return NULL;
    if (!PyList_Check(funcs) || !PyDict_Check(index)) {
        PyErr_SetString(PyExc_TypeError, "Interner(funcs: list, index: dict)");
        return NULL;
    }
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    Interner *t = (Interner *)alloc(type, 0);
    if (!t) return NULL;
    Py_INCREF(funcs);
    Py_INCREF(index);
    t->funcs = funcs;
    t->index = index;
    t->files = PyDict_New();
    t->memo = calloc(FILE_MEMO, sizeof(FileMemo));
    if (!t->files || !t->memo) {
        Py_DECREF(t);
        return t->files ? PyErr_NoMemory() : NULL;
    }
    t->entries.size = sizeof(Entry);
    t->refs.size = sizeof(Ref);
    t->keys.size = sizeof(Key);
    t->rows.size = sizeof(Row);
    t->edges.size = sizeof(Edge);
    t->file.size = 1;
    Cols *c = &t->cols;
    c->s_prof.size = c->s_id.size = c->e_prof.size = c->e_caller.size = c->e_callee.size = 4;
    c->s_nc.size = c->s_pc.size = c->s_tt.size = c->s_ct.size = 8;
    c->e_nc.size = c->e_cc.size = c->e_tt.size = c->e_ct.size = 8;
    if (table_rebuild(t, 1024)) {
        Py_DECREF(t);
        return PyErr_NoMemory();
    }
    return (PyObject *)t;
}

static void interner_dealloc(PyObject *self) {
    Interner *t = (Interner *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(t->funcs);
    Py_XDECREF(t->index);
    Py_XDECREF(t->files);
    free(t->entries.p);
    free(t->refs.p);
    free(t->keys.p);
    free(t->rows.p);
    free(t->edges.p);
    free(t->slots);
    free(t->arena);
    free(t->stamp);
    free(t->file.p);
    free(t->memo);
    Vec *cols[] = {&t->cols.s_prof, &t->cols.s_id, &t->cols.s_nc, &t->cols.s_pc, &t->cols.s_tt,
                   &t->cols.s_ct, &t->cols.e_prof, &t->cols.e_caller, &t->cols.e_callee, &t->cols.e_nc,
                   &t->cols.e_cc, &t->cols.e_tt, &t->cols.e_ct};
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) free(cols[i]->p);
    freefunc f = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    f(self);
    Py_DECREF(tp);
}

static PyObject *interner_truncate(PyObject *self, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (!interner_idle(self) || truncate_to((Interner *)self, n) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *interner_sync(PyObject *self, PyObject *unused) {
    (void)unused;
    if (!interner_idle(self) || sync_keys((Interner *)self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *interner_register(PyObject *self, PyObject *arg) {
    Py_ssize_t start = PyLong_AsSsize_t(arg);
    if (start == -1 && PyErr_Occurred()) return NULL;
    if (!interner_idle(self) || register_keys((Interner *)self, start) < 0) return NULL;
    Py_RETURN_NONE;
}

/* ``v`` in decimal (as Python's str(int)) at ``out`` (room for 20 characters); the number written */
static size_t put_int(char *out, int64_t v) {
    char tmp[20];
    size_t k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t w = 0;
    if (v < 0) out[w++] = '-';
    while (k) out[w++] = tmp[--k];
    return w;
}

/* whether UTF-8 bytes (as utf8_ok accepts them) hold an encoded surrogate (ED A0..BF xx): text Arrow cannot hold */
static int has_surrogate(const char *p, size_t n) {
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)p[i] == 0xED && (unsigned char)p[i + 1] >= 0xA0) return 1;
    return 0;
}

/* Interner.texts(start, stop) -> (name offsets, names, label offsets, labels, lines, file offsets, files) | None
 * The name, label (classify.label: "file:line(name)", a builtin's name as pstats prints it), line and file of the
 * functions with ids start..stop-1, as Arrow large_string buffers (int64 offsets, UTF-8 bytes) and int64 lines:
 * the ``functions`` frame's columns without a Python string per function.  None when one of those ids has no
 * entry in the C table (a key only the Python path knows) or its text holds a surrogate. */
static PyObject *interner_texts(PyObject *self, PyObject *args) {
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "nn", &start, &stop)) return NULL;
    if (!interner_idle(self)) return NULL;
    Interner *t = (Interner *)self;
    if (start < 0 || stop < start || stop > t->n_ids) {
        PyErr_SetString(PyExc_ValueError, "texts: ids out of range");
        return NULL;
    }
    size_t n = (size_t)(stop - start);
    size_t first = t->entries.n;
    while (first > 0 && VEC_AT(t->entries, Entry, first - 1).id >= start) first--;
    if (t->entries.n - first < n) Py_RETURN_NONE;
    size_t name_bytes = 0, label_bytes = 0, file_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const Entry *e = &VEC_AT(t->entries, Entry, first + i);
        if (e->id != start + (Py_ssize_t)i) Py_RETURN_NONE;
        const char *f = t->arena + e->off;
        if (has_surrogate(f, e->flen) || has_surrogate(f + e->flen, e->nlen)) Py_RETURN_NONE;
        name_bytes += e->nlen;
        file_bytes += e->flen;
        label_bytes += (size_t)e->flen + e->nlen + 24; /* ':' '(' ')' and at most 20 digits with a sign */
    }
    PyObject *noff = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((n + 1) * 8));
    PyObject *names = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)name_bytes);
    PyObject *loff = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((n + 1) * 8));
    PyObject *lines = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * 8));
    PyObject *foff = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((n + 1) * 8));
    PyObject *files = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)file_bytes);
    char *lab = malloc(label_bytes ? label_bytes : 1);
    PyObject *result = NULL;
    if (!noff || !names || !loff || !lines || !foff || !files || !lab) {
        if (!lab) PyErr_NoMemory();
        goto done;
    }
    int64_t *no = (int64_t *)PyBytes_AsString(noff), *lo = (int64_t *)PyBytes_AsString(loff);
    int64_t *li = (int64_t *)PyBytes_AsString(lines);
    char *nb = PyBytes_AsString(names), *fb = PyBytes_AsString(files);
    int64_t *fo = (int64_t *)PyBytes_AsString(foff);
    size_t at_n = 0, at_l = 0, at_f = 0;
    no[0] = lo[0] = fo[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const Entry *e = &VEC_AT(t->entries, Entry, first + i);
        const char *f = t->arena + e->off, *nm = f + e->flen;
        size_t nl = e->nlen;
        memcpy(nb + at_n, nm, nl);
        at_n += nl;
        no[i + 1] = (int64_t)at_n;
        memcpy(fb + at_f, f, e->flen);
        at_f += e->flen;
        fo[i + 1] = (int64_t)at_f;
        li[i] = e->line;
        if (e->flen == 1 && f[0] == '~' && e->line == 0) { /* a builtin: its name, "<...>" as "{...}" */
            if (nl >= 2 && nm[0] == '<' && nm[nl - 1] == '>') {
                lab[at_l++] = '{';
                memcpy(lab + at_l, nm + 1, nl - 2);
                at_l += nl - 2;
                lab[at_l++] = '}';
            } else {
                memcpy(lab + at_l, nm, nl);
                at_l += nl;
            }
        } else {
            memcpy(lab + at_l, f, e->flen);
            at_l += e->flen;
            lab[at_l++] = ':';
            at_l += put_int(lab + at_l, e->line);
            lab[at_l++] = '(';
            memcpy(lab + at_l, nm, nl);
            at_l += nl;
            lab[at_l++] = ')';
        }
        lo[i + 1] = (int64_t)at_l;
    }
    PyObject *labels = PyBytes_FromStringAndSize(lab, (Py_ssize_t)at_l);
    if (!labels) goto done;
    result = Py_BuildValue("(OOONOOO)", noff, names, loff, labels, lines, foff, files);
done:
    free(lab);
    Py_XDECREF(foff);
    Py_XDECREF(files);
    Py_XDECREF(noff);
    Py_XDECREF(names);
    Py_XDECREF(loff);
    Py_XDECREF(lines);
    return result;
}

static PyMethodDef interner_methods[] = {
    {"sync", interner_sync, METH_NOARGS,
     "sync(): append to funcs/index the Python keys of the functions add() met since the last sync (in id order)"},
    {"register", interner_register, METH_O,
     "register(start): the keys the Python path appended to funcs[start:], into the C table (after a sync)"},
    {"add", interner_add, METH_VARARGS,
     "add(data, slot) -> None | (n_rows, n_edges, total_tt, flags): decode one file's bytes into the chunk's "
     "columns as profile ``slot``; None, having changed nothing, when they are not the shape cProfile writes"},
#ifndef _WIN32
    {"add_paths", interner_add_paths, METH_VARARGS,
     "add_paths(paths: tuple of bytes, start, first_slot) -> [(n_rows, n_edges, total_tt, flags), ...]: read and "
     "decode paths[start:] as add() each, without the GIL, up to the first file that the Python path must take"},
#endif
    {"take", interner_take, METH_NOARGS,
     "take() -> (columns: bytes, n_rows, n_edges, wide): the chunk's columns since the last take (see the source)"},
    {"pending", interner_pending, METH_NOARGS, "pending() -> rows added since the last take"},
    {"texts", interner_texts, METH_VARARGS,
     "texts(start, stop) -> (name offsets, names, label offsets, labels, lines, file offsets, files) | None: the "
     "functions with ids start..stop-1 as Arrow large_string buffers and int64 lines (see the source)"},
    {"truncate", interner_truncate, METH_O,
     "truncate(n): forget every function with an id >= n (in funcs, index and the C table)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot interner_slots[] = {
    {Py_tp_new, interner_new},
    {Py_tp_dealloc, interner_dealloc},
    {Py_tp_methods, interner_methods},
    {Py_tp_doc, "Interner(funcs, index): a chunk's function keys, shared with the Python decoder's list and dict."},
    {0, NULL},
};

static PyType_Spec interner_spec = {
    "celerylab.core._cdecode.Interner", sizeof(Interner), 0, Py_TPFLAGS_DEFAULT, interner_slots,
};

/* ---------------------------------------------------------------- what marshal.loads must not be given */

/* CPython's marshal registers a tuple for back-references before it reads the tuple's items (gh-148653; fixed in
 * 3.16 by registering it after them).  Bytes in which such a tuple refers to itself -- one flipped byte in a
 * cProfile dump can make them -- give marshal.loads a tuple with empty slots, and hashing it (as a dict key, a set
 * item) kills the interpreter with SIGSEGV.  And a tuple or list length is allocated before any item is read, so a
 * corrupt length asks for up to 16 GB.  marshal_check walks the bytes exactly as marshal.loads reads them and
 * reports either before marshal.loads is called.  Where marshal.loads itself stops with an error (data cut short,
 * an unknown type code, a bad reference) the walk stops too and reports nothing: marshal words that error.
 * celerylab.core.decode._marshal_walk is the same walk in Python; tests/loader/test_cdecode.py holds them equal. */

enum { MS_DONE = 0, MS_OPEN_TUPLE, MS_RESERVED }; /* the state of a back-reference slot */
enum { K_SEQ, K_DICT, K_CODE, K_SLICE };          /* what an open container still reads */
enum { MC_OK = 0, MC_SELF_REF, MC_TOO_MANY, MC_TOO_DEEP, MC_NOMEM = -1 };
#define MC_DEPTH 2000 /* marshal's own nesting limit (MAX_MARSHAL_STACK_DEPTH) */

typedef struct {
    int kind;
    int64_t left; /* K_SEQ: items still to read; K_CODE/K_SLICE: objects; K_DICT: 0 = a key next, 1 = a value */
    int64_t slot; /* the back-reference slot this container closes when complete, or -1 */
} MFrame;

/* a back-reference slot when the type byte carries FLAG_REF: its index, -1 when none, -2 when out of memory */
static int64_t mc_ref(Vec *refs, int flag, unsigned char state) {
    if (!flag) return -1;
    unsigned char *s = vec_push(refs);
    if (!s) return -2;
    *s = state;
    return (int64_t)refs->n - 1;
}

/* MC_* for data; *at: the offset of the object at fault (or where the walk stopped), *count: MC_TOO_MANY's count */
static int mc_walk(const unsigned char *p0, size_t len, size_t *at, int64_t *count) {
    const unsigned char *p = p0, *e = p0 + len, *obj = p0;
    Vec refs = {NULL, 0, 0, 1}, st = {NULL, 0, 0, sizeof(MFrame)};
    int rc = MC_OK;
    *count = 0;
#define LEFT ((size_t)(e - p))
#define STOP goto done                                   /* marshal.loads raises here: nothing for us to say */
#define FAIL(code) do { rc = (code); goto done; } while (0)
#define REF(state) do { if (mc_ref(&refs, flag, (state)) == -2) FAIL(MC_NOMEM); } while (0)
    for (;;) {
        obj = p;
        if (p >= e) STOP;
        int code = *p++, flag = code & FLAG_REF, type = code & ~FLAG_REF;
        int64_t n = 0, slot = -1;
        int kind = -1; /* a container to open, or -1 when the object is complete once read */
        switch (type) {
        case '0': /* NULL: ends a dict (as its key or its value); anywhere else marshal.loads fails */
            if (!st.n || VEC_AT(st, MFrame, st.n - 1).kind != K_DICT) STOP;
            st.n--;
            break;
        case 'N': case 'S': case '.': case 'F': case 'T': /* singletons: never registered */
            break;
        case 'i': case 'g': case 'y': { /* an int32, a binary float, a binary complex */
            size_t size = type == 'i' ? 4 : type == 'g' ? 8 : 16;
            if (LEFT < size) STOP;
            p += size;
            REF(MS_DONE);
            break;
        }
        case 'l':
            if (LEFT < 4) STOP;
            n = rd_i32(p);
            p += 4;
            if (n == INT32_MIN) STOP;
            if (n < 0) n = -n;
            if ((uint64_t)n * 2 > LEFT) { *count = n; FAIL(MC_TOO_MANY); } /* digits are allocated first */
            p += n * 2;
            REF(MS_DONE);
            break;
        case 'f': case 'z': case 'Z': case 'x': /* one (two for a text complex) texts of a 1-byte length */
            for (int k = type == 'x' ? 2 : 1; k > 0; k--) {
                if (LEFT < 1 || LEFT - 1 < (size_t)p[0]) STOP;
                p += 1 + p[0];
            }
            REF(MS_DONE);
            break;
        case 's': case 't': case 'u': case 'a': case 'A':
            if (LEFT < 4) STOP;
            n = rd_i32(p);
            p += 4;
            if (n < 0 || (size_t)n > LEFT) STOP;
            p += n;
            REF(MS_DONE);
            break;
        case ')': case '(': case '[': case '<': case '>':
            if (type == ')') {
                if (LEFT < 1) STOP;
                n = *p++;
            } else {
                if (LEFT < 4) STOP;
                n = rd_i32(p);
                p += 4;
                if (n < 0) STOP;
            }
            if ((size_t)n > LEFT) { *count = n; FAIL(MC_TOO_MANY); } /* every item takes at least one byte */
            if (type == '(' || type == ')') {
                slot = mc_ref(&refs, flag, n ? MS_OPEN_TUPLE : MS_DONE);
            } else if (type == '>' && n) {
                slot = mc_ref(&refs, flag, MS_RESERVED); /* marshal.loads rejects a reference to it until done */
            } else {
                slot = mc_ref(&refs, flag, MS_DONE);
                if (slot != -2) slot = -1; /* lists, sets and empty frozensets are complete objects to refer to */
            }
            if (slot == -2) FAIL(MC_NOMEM);
            if (n) kind = K_SEQ;
            break;
        case '{':
            REF(MS_DONE);
            kind = K_DICT;
            break;
        case 'c': /* a code object (the profile module keys its root by one): 5 longs, 8 objects, a long, 2 objects */
            slot = mc_ref(&refs, flag, MS_RESERVED);
            if (slot == -2) FAIL(MC_NOMEM);
            if (LEFT < 20) STOP;
            p += 20;
            kind = K_CODE;
            n = 11; /* the long between the 8th and the 9th object counts as one step */
            break;
        case ':': /* a slice (marshal version 5, Python 3.14) */
            slot = mc_ref(&refs, flag, MS_RESERVED);
            if (slot == -2) FAIL(MC_NOMEM);
            kind = K_SLICE;
            n = 3;
            break;
        case 'r':
            if (LEFT < 4) STOP;
            n = rd_i32(p);
            p += 4;
            if (n < 0 || (size_t)n >= refs.n) STOP;
            if (VEC_AT(refs, unsigned char, n) == MS_RESERVED) STOP;
            if (VEC_AT(refs, unsigned char, n) == MS_OPEN_TUPLE) FAIL(MC_SELF_REF);
            break;
        default: /* '?' and codes of other Python versions: marshal.loads raises */
            STOP;
        }
        if (kind >= 0) {
            if (st.n >= MC_DEPTH) FAIL(MC_TOO_DEEP);
            MFrame *f = vec_push(&st);
            if (!f) FAIL(MC_NOMEM);
            f->kind = kind;
            f->left = kind == K_DICT ? 0 : n;
            f->slot = slot;
            continue;
        }
        /* one object complete: advance the containers it completes */
        while (st.n) {
            MFrame *f = &VEC_AT(st, MFrame, st.n - 1);
            if (f->kind == K_DICT) {
                f->left ^= 1;
                break;
            }
            f->left--;
            if (f->kind == K_CODE && f->left == 3) { /* the first line number, read between two objects */
                if (LEFT < 4) STOP;
                p += 4;
                f->left--;
            }
            if (f->left > 0) break;
            if (f->slot >= 0) VEC_AT(refs, unsigned char, f->slot) = MS_DONE;
            st.n--;
        }
        if (!st.n) break; /* the outermost object is complete */
    }
done:
#undef LEFT
#undef STOP
#undef FAIL
#undef REF
    *at = (size_t)(obj - p0);
    if (rc == MC_OK) *at = (size_t)(p - p0);
    free(refs.p);
    free(st.p);
    return rc;
}

static PyObject *marshal_check(PyObject *mod, PyObject *arg) {
    (void)mod;
    char *buf;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(arg, &buf, &len) < 0) return NULL;
    size_t at = 0;
    int64_t count = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mc_walk((const unsigned char *)buf, (size_t)len, &at, &count);
    Py_END_ALLOW_THREADS
    if (rc == MC_NOMEM) return PyErr_NoMemory();
    return Py_BuildValue("(inL)", rc, (Py_ssize_t)at, (long long)count);
}

/* ---------------------------------------------------------------- the cache's per-file signatures */

#ifndef _WIN32
#include <pthread.h>

static void stat_path(const char *path, int64_t *size, int64_t *mtime_ns) {
    struct stat st;
    *size = *mtime_ns = -1;
    if (path && stat(path, &st) == 0) {
        *size = (int64_t)st.st_size;
#if defined(__APPLE__)
        *mtime_ns = (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
#else
        *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
#endif
    }
}

typedef struct {
    const char **paths; /* two a file: the file, its sidecar (NULL: none) */
    int64_t *out;       /* four a file */
    Py_ssize_t lo, hi;
} StatRun;

static void *stat_run(void *arg) {
    StatRun *r = (StatRun *)arg;
    for (Py_ssize_t i = r->lo; i < r->hi; i++) {
        stat_path(r->paths[2 * i], &r->out[4 * i], &r->out[4 * i + 1]);
        stat_path(r->paths[2 * i + 1], &r->out[4 * i + 2], &r->out[4 * i + 3]);
    }
    return NULL;
}

#define STAT_SPLIT 128 /* files from which a second thread stats half of them (a stat: 1-2 us on a VM) */
#define STAT_ASYNC_SPLIT 1024 /* stat calls from which stat_start uses a second thread */
#endif


/* gather_texts(parts) -> (offsets, data)
 * One Arrow large_string column (int64 offsets, UTF-8 bytes) made of the rows ``rows`` of each part, in order:
 * parts is a list of (offsets: bytes of n+1 int64, data: bytes, rows: int64 buffer of row numbers).  The merge's
 * gather of the functions' texts (Interner.texts) of every chunk: one copy, no Arrow take and concatenation. */
static PyObject *gather_texts(PyObject *mod, PyObject *arg) {
    (void)mod;
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "gather_texts: a list of (offsets, data, rows)");
        return NULL;
    }
    Py_ssize_t np_ = PyList_Size(arg);
    Py_buffer *views = calloc((size_t)(3 * np_ + 1), sizeof(Py_buffer));
    if (!views) return PyErr_NoMemory();
    Py_ssize_t got = 0, n_rows = 0, n_bytes = 0;
    PyObject *offsets = NULL, *data = NULL, *result = NULL;
    for (Py_ssize_t k = 0; k < np_; k++) {
        PyObject *part = PyList_GetItem(arg, k);
        if (!PyTuple_Check(part) || PyTuple_Size(part) != 3) {
            PyErr_SetString(PyExc_TypeError, "gather_texts: a list of (offsets, data, rows)");
            goto done;
        }
        for (int j = 0; j < 3; j++) {
            if (PyObject_GetBuffer(PyTuple_GetItem(part, j), &views[3 * k + j], PyBUF_C_CONTIGUOUS) < 0) goto done;
            got++;
        }
        Py_buffer *o = &views[3 * k], *d = &views[3 * k + 1], *r = &views[3 * k + 2];
        if (o->len % 8 || o->len < 8 || r->len % 8) {
            PyErr_SetString(PyExc_ValueError, "gather_texts: offsets and rows are int64");
            goto done;
        }
        const int64_t *off = (const int64_t *)o->buf, *rows = (const int64_t *)r->buf;
        Py_ssize_t n = o->len / 8 - 1;
        if (off[0] != 0 || off[n] != d->len) {
            PyErr_SetString(PyExc_ValueError, "gather_texts: offsets do not span the data");
            goto done;
        }
        for (Py_ssize_t i = 0; i < r->len / 8; i++) {
            if (rows[i] < 0 || rows[i] >= n || off[rows[i]] < 0 || off[rows[i]] > off[rows[i] + 1] ||
                off[rows[i] + 1] > d->len) {
                PyErr_SetString(PyExc_ValueError, "gather_texts: a row out of range");
                goto done;
            }
            n_bytes += off[rows[i] + 1] - off[rows[i]];
        }
        n_rows += r->len / 8;
    }
    offsets = PyBytes_FromStringAndSize(NULL, (n_rows + 1) * 8);
    data = PyBytes_FromStringAndSize(NULL, n_bytes);
    if (!offsets || !data) goto done;
    int64_t *out_off = (int64_t *)PyBytes_AsString(offsets);
    char *out = PyBytes_AsString(data);
    int64_t at = 0;
    Py_ssize_t w = 0;
    out_off[0] = 0;
    for (Py_ssize_t k = 0; k < np_; k++) {
        const int64_t *off = (const int64_t *)views[3 * k].buf, *rows = (const int64_t *)views[3 * k + 2].buf;
        const char *src = (const char *)views[3 * k + 1].buf;
        for (Py_ssize_t i = 0; i < views[3 * k + 2].len / 8; i++) {
            int64_t a = off[rows[i]], b = off[rows[i] + 1];
            memcpy(out + at, src + a, (size_t)(b - a));
            at += b - a;
            out_off[++w] = at;
        }
    }
    result = PyTuple_Pack(2, offsets, data);
done:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    free(views);
    Py_XDECREF(offsets);
    Py_XDECREF(data);
    return result;
}

#ifndef _WIN32
/* stat_start(paths, sidecars) or stat_start(names, n) -> StatJob: stat_sigs in one or two threads of its own,
 * started now; job.wait() -> the same bytes.  The caller goes on with Python (a re-open maps its cache and builds
 * its frames) while the threads make the system calls: they hold no GIL and touch no Python object (the names are
 * encoded here first, or read from the one bytes object the job holds). */
typedef struct {
    PyObject_HEAD
    PyObject *out;      /* bytes, four int64 a file */
    PyObject **enc;     /* the encoded names, alive until the threads are joined */
    PyObject *names;    /* or the one bytes object that holds them (stat_start(names, n)) */
    const char **cp;
    Py_ssize_t n;
    pthread_t threads[2];
    StatRun runs[2];
    int started;        /* threads running, 0 once joined */
} StatJob;

static PyObject *statjob_type; /* set at module init */

static void statjob_join(StatJob *j) {
    for (int k = 0; k < j->started; k++) pthread_join(j->threads[k], NULL);
    j->started = 0;
}

static void statjob_dealloc(PyObject *self) {
    StatJob *j = (StatJob *)self;
    statjob_join(j); /* the threads write into out and read the names: never freed under them */
    if (j->enc)
        for (Py_ssize_t i = 0; i < 2 * j->n; i++) Py_XDECREF(j->enc[i]);
    free(j->enc);
    free(j->cp);
    Py_XDECREF(j->names);
    Py_XDECREF(j->out);
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    tp_free(self);
    Py_DECREF(tp);
}

static PyObject *statjob_wait(PyObject *self, PyObject *unused) {
    (void)unused;
    StatJob *j = (StatJob *)self;
    if (j->started) {
        Py_BEGIN_ALLOW_THREADS
        statjob_join(j);
        Py_END_ALLOW_THREADS
    }
    Py_INCREF(j->out);
    return j->out;
}

static PyMethodDef statjob_methods[] = {
    {"wait", statjob_wait, METH_NOARGS, "wait() -> bytes: the signatures, as stat_sigs gives them"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot statjob_slots[] = {
    {Py_tp_dealloc, statjob_dealloc},
    {Py_tp_methods, statjob_methods},
    {0, NULL},
};

static PyType_Spec statjob_spec = {"celerylab.core._cdecode.StatJob", sizeof(StatJob), 0, Py_TPFLAGS_DEFAULT,
                                   statjob_slots};

/* A job of n files, its output and its table of 2n names allocated (NULL with a Python error). */
static StatJob *statjob_alloc(Py_ssize_t n) {
    allocfunc alloc = (allocfunc)PyType_GetSlot((PyTypeObject *)statjob_type, Py_tp_alloc);
    StatJob *j = (StatJob *)alloc((PyTypeObject *)statjob_type, 0);
    if (!j) return NULL;
    j->n = n;
    j->out = PyBytes_FromStringAndSize(NULL, n * 32);
    j->cp = calloc((size_t)(2 * n + 1), sizeof(char *));
    if (!j->out || !j->cp) {
        if (j->out) PyErr_NoMemory();
        Py_DECREF(j);
        return NULL;
    }
    return j;
}

/* A job for the n files whose names are in ``names`` (bytes): each file's name then its sidecar's, as os.stat
 * encodes them, each ended by a NUL, an empty name for a sidecar known absent (decode.names_blob).  The names are
 * not copied: the job holds the bytes object (immutable) until it is freed.  NULL with a Python error. */
static StatJob *statjob_named(PyObject *names, PyObject *count, const char *what) {
    Py_ssize_t n = PyLong_AsSsize_t(count);
    if (n == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t len = PyBytes_Size(names);
    if (n < 0 || n > len / 2) { /* each of the 2n names ends with a NUL */
        PyErr_Format(PyExc_ValueError, "%s: names of %zd bytes cannot hold %zd files", what, len, n);
        return NULL;
    }
    StatJob *j = statjob_alloc(n);
    if (!j) return NULL;
    Py_INCREF(names);
    j->names = names;
    const char *p = PyBytes_AsString(names), *end = p + len;
    for (Py_ssize_t i = 0; i < 2 * n; i++) {
        const char *z = memchr(p, 0, (size_t)(end - p));
        if (!z) {
            PyErr_Format(PyExc_ValueError, "%s: the names end after %zd of the %zd names of %zd files", what, i,
                         2 * n, n);
            Py_DECREF(j);
            return NULL;
        }
        j->cp[i] = z > p ? p : NULL;
        p = z + 1;
    }
    if (p != end) {
        PyErr_Format(PyExc_ValueError, "%s: more than the %zd names of %zd files", what, 2 * n, n);
        Py_DECREF(j);
        return NULL;
    }
    return j;
}

/* A job for ``paths``/``sidecars`` (lists of str, None for a sidecar known absent), not started: its output
 * allocated and the names encoded as os.stat encodes a str (with the GIL); or for ``names`` (bytes) of ``n``
 * files (statjob_named).  NULL with a Python error. */
static StatJob *statjob_new(PyObject *args, const char *what) {
    PyObject *paths, *sides;
    if (!PyArg_ParseTuple(args, "OO", &paths, &sides)) return NULL;
    if (PyBytes_Check(paths) && PyLong_Check(sides)) return statjob_named(paths, sides, what);
    if (!PyList_Check(paths) || !PyList_Check(sides)) {
        PyErr_Format(PyExc_TypeError, "%s: (paths, sidecars) lists, or (names, n): bytes and an int", what);
        return NULL;
    }
    Py_ssize_t n = PyList_Size(paths);
    if (n != PyList_Size(sides)) {
        PyErr_Format(PyExc_ValueError, "%s: paths and sidecars differ in length", what);
        return NULL;
    }
    StatJob *j = statjob_alloc(n);
    if (!j) return NULL;
    if (!(j->enc = calloc((size_t)(2 * n + 1), sizeof(PyObject *)))) {
        Py_DECREF(j);
        return (StatJob *)PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < 2 * n; i++) {
        PyObject *p = PyList_GetItem(i % 2 ? sides : paths, i / 2);
        if (p == Py_None) continue;
        if (!(j->enc[i] = PyUnicode_EncodeFSDefault(p))) { /* what os.stat does with a str */
            Py_DECREF(j);
            return NULL;
        }
        j->cp[i] = PyBytes_AsString(j->enc[i]);
    }
    return j;
}

/* stat_sigs(paths, sidecars) -> bytes of int64 rows (size, mtime_ns, sidecar size, sidecar mtime_ns), -1 where a
 * file is missing or its sidecar is None; None where this platform has no such stat (the caller uses os.stat).
 * Stat'ed now, without the GIL, half of them in a second thread for long lists. */
static PyObject *stat_sigs(PyObject *mod, PyObject *args) {
    (void)mod;
    StatJob *j = statjob_new(args, "stat_sigs");
    if (!j) return NULL;
    Py_ssize_t n = j->n;
    int64_t *o = (int64_t *)PyBytes_AsString(j->out);
    StatRun first = {j->cp, o, 0, n}, second = {j->cp, o, n / 2, n};
    Py_BEGIN_ALLOW_THREADS
    pthread_t t;
    int helper = n >= STAT_SPLIT && pthread_create(&t, NULL, stat_run, &second) == 0;
    if (helper) first.hi = n / 2;
    stat_run(&first);
    if (helper) pthread_join(t, NULL);
    Py_END_ALLOW_THREADS
    PyObject *out = j->out;
    Py_INCREF(out);
    Py_DECREF(j);
    return out;
}

static PyObject *stat_start(PyObject *mod, PyObject *args) {
    (void)mod;
    StatJob *j = statjob_new(args, "stat_start");
    if (!j) return NULL;
    Py_ssize_t n = j->n;
    int64_t *o = (int64_t *)PyBytes_AsString(j->out);
    /* one thread while its stat calls take about as long as the caller's Python beside them (a re-open's frames:
     * ~1.5 ms, ~1 000 calls); two past that */
    Py_ssize_t calls = 0;
    for (Py_ssize_t i = 0; i < 2 * n; i++) calls += j->cp[i] != NULL;
    int two = calls >= STAT_ASYNC_SPLIT;
    j->runs[0] = (StatRun){j->cp, o, 0, two ? n / 2 : n};
    j->runs[1] = (StatRun){j->cp, o, n / 2, n};
    for (int k = 0; k < 1 + two; k++) {
        if (pthread_create(&j->threads[k], NULL, stat_run, &j->runs[k]) == 0) {
            j->started++;
            continue;
        }
        /* no thread: the rest is stat'ed here, now (the job is then done when wait() is called) */
        for (int r = k; r < 1 + two; r++) stat_run(&j->runs[r]);
        break;
    }
    return (PyObject *)j;
}
#else
static PyObject *stat_sigs(PyObject *mod, PyObject *args) {
    PyObject *paths, *sides;
    (void)mod;
    if (!PyArg_ParseTuple(args, "OO", &paths, &sides)) return NULL;
    Py_RETURN_NONE;
}
#endif

/* merge_rows(dsts, srcs, kinds, maps) -> -1, or the index of a count column whose values do not fit its int32
 * destination (nothing written to it: the caller widens that column and calls again).
 * One parsed chunk's rows into the merged columns, with the GIL released for the whole copy: kinds[j] is 'm' (int32
 * ids mapped through the int32 table maps[j]: profile slots to profile ids, chunk function ids to global ones),
 * 'c' (call counts: int32 or int64 on either side) or 'f' (float64).  Every dsts[j] is a writable C-contiguous
 * buffer of as many items as srcs[j]. */
static PyObject *merge_rows(PyObject *mod, PyObject *args) {
    PyObject *dsts, *srcs, *maps;
    const char *kinds;
    Py_ssize_t nk;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!O!s#O!", &PyTuple_Type, &dsts, &PyTuple_Type, &srcs, &kinds, &nk, &PyTuple_Type,
                          &maps))
        return NULL;
    Py_ssize_t nc = PyTuple_Size(dsts);
    if (nc != PyTuple_Size(srcs) || nc != nk || nc != PyTuple_Size(maps) || nc > 16) {
        PyErr_SetString(PyExc_ValueError, "merge_rows: dsts, srcs, kinds and maps differ in length");
        return NULL;
    }
    Py_buffer d[16], sb[16], mb[16];
    int got_d = 0, got_s = 0, got_m[16] = {0};
    PyObject *result = NULL;
    Py_ssize_t bad = -1, oob = -1;
    for (; got_d < nc; got_d++)
        if (PyObject_GetBuffer(PyTuple_GetItem(dsts, got_d), &d[got_d], PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) <
            0)
            goto done;
    for (; got_s < nc; got_s++)
        if (PyObject_GetBuffer(PyTuple_GetItem(srcs, got_s), &sb[got_s], PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) goto done;
    for (Py_ssize_t j = 0; j < nc; j++) {
        PyObject *m = PyTuple_GetItem(maps, j);
        Py_ssize_t isz = d[j].itemsize, ssz = sb[j].itemsize;
        int ok = d[j].len / (isz ? isz : 1) == sb[j].len / (ssz ? ssz : 1);
        if (kinds[j] == 'm') {
            if (m == Py_None || PyObject_GetBuffer(m, &mb[j], PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "merge_rows: an 'm' column needs a map");
                goto done;
            }
            got_m[j] = 1;
            ok = ok && isz == 4 && ssz == 4 && mb[j].itemsize == 4;
        } else if (kinds[j] == 'c') {
            ok = ok && (isz == 4 || isz == 8) && (ssz == 4 || ssz == 8);
        } else if (kinds[j] == 'f') {
            ok = ok && isz == 8 && ssz == 8;
        } else {
            ok = 0;
        }
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "merge_rows: column %zd: kind %c, item sizes %zd <- %zd, or lengths differ", j,
                         kinds[j], isz, ssz);
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < nc && bad < 0 && oob < 0; j++) {
        Py_ssize_t n = sb[j].len / sb[j].itemsize;
        if (kinds[j] == 'm') {
            const int32_t *src = (const int32_t *)sb[j].buf, *table = (const int32_t *)mb[j].buf;
            int32_t *dst = (int32_t *)d[j].buf;
            uint32_t len = (uint32_t)(mb[j].len / 4);
            for (Py_ssize_t i = 0; i < n; i++) {
                uint32_t v = (uint32_t)src[i];
                if (v >= len) {
                    oob = j;
                    break;
                }
                dst[i] = table[v];
            }
        } else if (d[j].itemsize == sb[j].itemsize) {
            memcpy(d[j].buf, sb[j].buf, (size_t)sb[j].len);
        } else if (d[j].itemsize == 8) { /* int32 counts into an int64 column */
            const int32_t *src = (const int32_t *)sb[j].buf;
            int64_t *dst = (int64_t *)d[j].buf;
            for (Py_ssize_t i = 0; i < n; i++) dst[i] = src[i];
        } else { /* int64 counts into an int32 column: only if every one fits */
            const int64_t *src = (const int64_t *)sb[j].buf;
            int32_t *dst = (int32_t *)d[j].buf;
            Py_ssize_t i = 0;
            for (; i < n; i++)
                if (src[i] < INT32_MIN || src[i] > INT32_MAX) break;
            if (i < n) {
                bad = j;
                break;
            }
            for (i = 0; i < n; i++) dst[i] = (int32_t)src[i];
        }
    }
    Py_END_ALLOW_THREADS
    if (oob >= 0)
        PyErr_Format(PyExc_IndexError, "celerylab: a parsed chunk refers to an id beyond its table (column %zd)", oob);
    else
        result = PyLong_FromSsize_t(bad);
done:
    for (int j = 0; j < got_d; j++) PyBuffer_Release(&d[j]);
    for (int j = 0; j < got_s; j++) PyBuffer_Release(&sb[j]);
    for (int j = 0; j < 16; j++)
        if (got_m[j]) PyBuffer_Release(&mb[j]);
    return result;
}

/* rank_counts(a, b, below, eq, cross): for two matrices of float64 (C-contiguous, k rows of na and nb values, each
 * row sorted ascending with its NaNs last), per row i: below[i] = the pairs a < b; over the values v of b that a
 * holds too, eq[i] = sum of t_a t_b and cross[i] = sum of t_a t_b (t_a + t_b), with t_a, t_b the counts of v in a
 * and in b — as searchsorted counts them: a NaN of b is above every number of a and equals every NaN of a; within b
 * each NaN is a value of its own.  below, eq and cross are int64 buffers of k items.  One merge per row, the GIL
 * released: the Mann-Whitney U of b is below + eq / 2, and the pooled tie term needs cross. */
static PyObject *rank_counts(PyObject *mod, PyObject *args) {
    PyObject *objs[5];
    Py_buffer v[5];
    int got = 0;
    PyObject *result = NULL;
    (void)mod;
    if (!PyArg_ParseTuple(args, "OOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4])) return NULL;
    for (; got < 5; got++) {
        int flags = PyBUF_FORMAT | PyBUF_ND | PyBUF_C_CONTIGUOUS | (got >= 2 ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(objs[got], &v[got], flags) < 0) goto done;
    }
    if (v[0].ndim != 2 || v[1].ndim != 2 || v[0].itemsize != 8 || v[1].itemsize != 8 || !v[0].format ||
        !v[1].format || strcmp(v[0].format, "d") || strcmp(v[1].format, "d") || v[0].shape[0] != v[1].shape[0]) {
        PyErr_SetString(PyExc_ValueError, "rank_counts: a and b must be float64 matrices with as many rows");
        goto done;
    }
    Py_ssize_t k = v[0].shape[0], na = v[0].shape[1], nb = v[1].shape[1];
    for (int j = 2; j < 5; j++)
        if (v[j].itemsize != 8 || v[j].len != k * 8 || !v[j].format || (strcmp(v[j].format, "l") &&
                                                                          strcmp(v[j].format, "q"))) {
            PyErr_SetString(PyExc_ValueError, "rank_counts: below, eq and cross must be int64 vectors of a row each");
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    const double *A = (const double *)v[0].buf, *B = (const double *)v[1].buf;
    int64_t *below = (int64_t *)v[2].buf, *eq = (int64_t *)v[3].buf, *cross = (int64_t *)v[4].buf;
    for (Py_ssize_t r = 0; r < k; r++) {
        const double *a = A + r * na, *b = B + r * nb;
        int64_t lo = 0, pe = 0, cr = 0;
        Py_ssize_t fin = na; /* a's values before its NaNs */
        while (fin > 0 && a[fin - 1] != a[fin - 1]) fin--;
        Py_ssize_t i = 0, j = 0;
        while (j < nb) {
            double x = b[j];
            if (x != x) { /* NaN: b's NaNs are last; each is above every number of a and equals each NaN of a */
                int64_t rest = nb - j, ta = na - fin;
                lo += rest * (int64_t)fin;
                pe += rest * ta;
                cr += rest * ta * (ta + 1);
                break;
            }
            while (i < fin && a[i] < x) i++;
            Py_ssize_t jj = j + 1;
            while (jj < nb && b[jj] == x) jj++;
            Py_ssize_t ii = i;
            while (ii < fin && a[ii] == x) ii++;
            int64_t tb = jj - j, ta = ii - i;
            lo += tb * (int64_t)i;
            pe += ta * tb;
            cr += ta * tb * (ta + tb);
            i = ii;
            j = jj;
        }
        below[r] = lo;
        eq[r] = pe;
        cross[r] = cr;
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    for (int j = 0; j < got; j++) PyBuffer_Release(&v[j]);
    return result;
}

/* sort_rows(mat): every row of a C-contiguous float64 matrix sorted ascending in place, NaNs last (as numpy's
 * sort: the numbers in the same order, NaNs kept bit for bit; -0.0 before 0.0, which numpy may order either way), the
 * GIL released.  An LSD radix sort of order-preserving 64-bit keys, 11 bits a pass, passes where every key has the
 * same digit skipped: rows of thousands of values sort several times faster than by comparisons. */
#define RADIX_BITS 11
#define RADIX_PASSES 6
#define RADIX_SIZE (1 << RADIX_BITS)

static inline uint64_t radix_key(uint64_t u) { return (u >> 63) ? ~u : (u | 0x8000000000000000ULL); }
static inline uint64_t radix_unkey(uint64_t k) { return (k >> 63) ? (k & 0x7FFFFFFFFFFFFFFFULL) : ~k; }

static void radix_row(double *row, Py_ssize_t n, uint64_t *tmp, Py_ssize_t (*count)[RADIX_SIZE]) {
    /* NaNs to the end, in their order (their bits kept); the numbers' keys into row's own memory */
    uint64_t *keys = (uint64_t *)row;
    Py_ssize_t m = 0, nan = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double d = row[i];
        uint64_t u;
        memcpy(&u, &d, 8);
        if (d != d)
            tmp[nan++] = u;
        else
            keys[m++] = radix_key(u);
    }
    memcpy(keys + m, tmp, (size_t)nan * 8); /* raw NaN bits, after the keys: never sorted, never converted */
    memset(count, 0, sizeof(Py_ssize_t) * RADIX_PASSES * RADIX_SIZE);
    for (Py_ssize_t i = 0; i < m; i++) {
        uint64_t k = keys[i];
        for (int p = 0; p < RADIX_PASSES; p++) count[p][(k >> (p * RADIX_BITS)) & (RADIX_SIZE - 1)]++;
    }
    uint64_t *src = keys, *dst = tmp;
    for (int p = 0; p < RADIX_PASSES; p++) {
        Py_ssize_t *c = count[p];
        uint64_t first = (src[0] >> (p * RADIX_BITS)) & (RADIX_SIZE - 1);
        if (m == 0 || c[first] == m) continue; /* one digit for all: this pass moves nothing */
        Py_ssize_t sum = 0;
        for (int b = 0; b < RADIX_SIZE; b++) {
            Py_ssize_t t = c[b];
            c[b] = sum;
            sum += t;
        }
        for (Py_ssize_t i = 0; i < m; i++) {
            uint64_t k = src[i];
            dst[c[(k >> (p * RADIX_BITS)) & (RADIX_SIZE - 1)]++] = k;
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        uint64_t u = radix_unkey(src[i]);
        memcpy(&row[i], &u, 8);
    }
}

static PyObject *sort_rows(PyObject *mod, PyObject *arg) {
    Py_buffer v;
    (void)mod;
    if (PyObject_GetBuffer(arg, &v, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_ND | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (v.ndim != 2 || v.itemsize != 8 || !v.format || strcmp(v.format, "d")) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "sort_rows: a C-contiguous float64 matrix is needed");
        return NULL;
    }
    Py_ssize_t k = v.shape[0], n = v.shape[1];
    uint64_t *tmp = malloc(sizeof(uint64_t) * (size_t)(n > 0 ? n : 1));
    Py_ssize_t(*count)[RADIX_SIZE] = malloc(sizeof(Py_ssize_t) * RADIX_PASSES * RADIX_SIZE);
    if (!tmp || !count) {
        free(tmp);
        free(count);
        PyBuffer_Release(&v);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < k; r++) radix_row((double *)v.buf + r * n, n, tmp, count);
    Py_END_ALLOW_THREADS
    free(tmp);
    free(count);
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"marshal_check", marshal_check, METH_O,
     "marshal_check(data) -> (code, offset, count): 0 when marshal.loads may be given data (it reads it or raises), "
     "1 a tuple that refers to itself before it is complete, 2 a length longer than the bytes that follow, 3 nesting "
     "deeper than marshal allows; offset: where (for 0: where the walk ended); count: code 2's length"},
    {"gather_texts", gather_texts, METH_O,
     "gather_texts(parts) -> (offsets, data): the rows of each (offsets, data, rows) part as one Arrow large_string "
     "column's buffers"},
#ifndef _WIN32
    {"stat_start", stat_start, METH_VARARGS,
     "stat_start(paths, sidecars) or stat_start(names, n) -> StatJob: stat_sigs in threads of its own, started "
     "now; job.wait() -> bytes.  names: bytes of each file's name then its sidecar's, each ended by a NUL (an empty "
     "name: no sidecar)"},
#endif
    {"merge_rows", merge_rows, METH_VARARGS,
     "merge_rows(dsts, srcs, kinds, maps) -> -1 | j: a parsed chunk's rows into the merged columns, ids mapped, "
     "the GIL released (see the source); j: count column j does not fit its int32 destination (nothing written)"},
    {"rank_counts", rank_counts, METH_VARARGS,
     "rank_counts(a, b, below, eq, cross): per row of two row-sorted float64 matrices, the pairs a < b and the "
     "tie sums of the values both hold, into three int64 vectors (see the source); the GIL released"},
    {"sort_rows", sort_rows, METH_O,
     "sort_rows(mat): every row of a C-contiguous float64 matrix sorted in place, NaNs last, the GIL released "
     "(a radix sort; see the source)"},
    {"stat_sigs", stat_sigs, METH_VARARGS,
     "stat_sigs(paths, sidecars) or stat_sigs(names, n) -> bytes | None: (size, mtime_ns, sidecar size, sidecar "
     "mtime_ns) of every file as int64, -1 where missing (a sidecar of None: known absent); None on platforms "
     "without POSIX stat"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_cdecode", NULL, -1, methods, NULL, NULL, NULL, NULL};

/* the type of ``spec``, made and added to the module as ``name``; kept in ``*keep`` (a reference of its own) when
 * the C code needs it; 0, or -1 with a Python error */
static int add_type(PyObject *m, PyType_Spec *spec, const char *name, PyObject **keep) {
    PyObject *tp = PyType_FromSpec(spec);
    if (!tp) return -1;
    if (keep) {
        *keep = tp;
        Py_INCREF(tp);
    }
    if (PyModule_AddObject(m, name, tp) < 0) { /* steals tp only when it succeeds */
        Py_DECREF(tp);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__cdecode(void) {
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    if (add_type(m, &interner_spec, "Interner", NULL) < 0 || add_type(m, &buf_spec, "Column", &buf_type) < 0
#ifndef _WIN32
        || add_type(m, &statjob_spec, "StatJob", &statjob_type) < 0
#endif
    ) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "FLAG_PROFILE_ROOT", FLAG_PROFILE_ROOT) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_BUILTIN", FLAG_BUILTIN) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_NEGATIVE", FLAG_NEGATIVE) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_PC_GT_NC", FLAG_PC_GT_NC) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
