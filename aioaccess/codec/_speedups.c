/*
 * aioaccess.codec._speedups -- Thrift compact protocol for thriftpy2 structs.
 *
 * A CPython extension (plain C, Python headers only) that encodes and decodes
 * thriftpy2 payload objects with the Thrift *compact* protocol, driven by the
 * classes' ``thrift_spec``.  Each class's spec is compiled once into a C-level
 * description (StructDesc) cached in a module-level dict keyed by the class,
 * so per-call work does no spec parsing.
 *
 * Module API (mirrored by the pure-Python aioaccess.codec.compact):
 *
 *   decode(buf, cls, offset=0) -> (obj, end)
 *   encode(obj) -> bytes
 *   skip(buf, offset=0) -> end
 *   validate(buf, cls, offset=0) -> end
 *   read_string_field(buf, field_id, offset=0) -> str | None
 *   to_tjson(buf, cls, offset=0) -> (bytes, end)
 *   gc_track(obj) -> obj, gc_untrack(obj) -> obj (no-ops in the twin)
 *
 * decode() leaves objects that cannot be part of a reference cycle out of the
 * cyclic GC (see gc_hide); gc_hold(comm, objects) and held_count() serve
 * aioaccess.codec.references, whose references do make cycles.
 *
 * and the one parse of a fetch CALL (scan_fetch_call) with the server's fetch fast path over it,
 * whose pure-Python twins are in aioaccess.wire.fetch_call:
 *
 *   usual_fetch_call(data, pos) -> (seqid, ids) | None
 *   fetch_reply_now(data, table, max_reply_size, join_below) -> bytes | None
 *
 * Output of encode() is byte-identical to Apache Thrift's accelerated compact
 * encoder (fields in field-id order, None fields skipped, bools folded into
 * field headers, bool list elements as 1/2, map header omitted types when
 * empty, doubles little-endian).
 *
 * Hostile input: every read is bounds-checked; varints are limited (10 bytes
 * for i64, 5 for i32/sizes, 3 for i16) and range-checked; declared lengths are
 * checked against the remaining input before anything is allocated (every
 * compact value needs at least one byte, doubles eight, map entries two);
 * nesting deeper than MAX_DEPTH raises; invalid UTF-8 raises.  All such errors
 * are aioaccess.codec.errors.CodecError (a ValueError).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#if defined(__GNUC__) || defined(__clang__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define INLINE static inline __attribute__((always_inline))
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#define INLINE static inline
#endif

#if PY_VERSION_HEX >= 0x030D0000
#define LOOKUP_ATTR(o, n, r) PyObject_GetOptionalAttr((o), (n), (r))
#else
#define LOOKUP_ATTR(o, n, r) _PyObject_LookupAttr((o), (n), (r))
#endif

#define MAX_DEPTH 64

/* thriftpy2 TType numbering */
enum {
    T_STOP = 0, T_BOOL = 2, T_BYTE = 3, T_DOUBLE = 4, T_I16 = 6, T_I32 = 8,
    T_I64 = 10, T_STRING = 11, T_STRUCT = 12, T_MAP = 13, T_SET = 14,
    T_LIST = 15, T_BINARY = 18
};

/* compact wire types */
enum {
    CT_STOP = 0, CT_TRUE = 1, CT_FALSE = 2, CT_BYTE = 3, CT_I16 = 4,
    CT_I32 = 5, CT_I64 = 6, CT_DOUBLE = 7, CT_BINARY = 8, CT_LIST = 9,
    CT_SET = 10, CT_MAP = 11, CT_STRUCT = 12
};

static PyObject *CodecError = NULL;      /* aioaccess.codec.errors.CodecError */
static PyObject *g_cache = NULL;         /* {cls: capsule(StructDesc*)} */
static PyObject *g_deepcopy = NULL;      /* copy.deepcopy, imported lazily */
static PyObject *g_empty_tuple = NULL;
static PyObject *g_retained = NULL;      /* sessions that lost a publish race */

/* ------------------------------------------------------------------------ */
/* Compiled descriptions                                                     */
/* ------------------------------------------------------------------------ */

typedef struct StructDesc StructDesc;

typedef struct TypeDesc {
    uint8_t ttype;            /* T_* */
    uint8_t ctype;            /* compact wire type (CT_TRUE for bool) */
    struct TypeDesc *elem;    /* list/set element, map value (owned) */
    struct TypeDesc *key;     /* map key (owned) */
    StructDesc *sd;           /* struct (not owned) */
} TypeDesc;

typedef struct {
    int32_t fid;
    int required;
    PyObject *name;           /* interned str */
    TypeDesc t;
    char jhead[48];           /* TJSON field head: "<fid>":{"<type>": */
    int jhead_len;
} FieldDesc;

/* one attribute that cls() sets, in the order its __init__ sets them */
typedef struct {
    PyObject *name;           /* interned str */
    PyObject *deflt;          /* default value */
    Py_ssize_t field;         /* index into fields, or -1 */
    int is_mutable;           /* deep-copy the default per object */
} SlotDesc;

struct StructDesc {
    PyObject *cls;
    PyTypeObject *tp;
    int fast_new;             /* tp_new is object.__new__: use tp_alloc */
    int attr_mode;            /* instances use a managed dict: set attributes */
    PyObject *defaults;       /* template __dict__ */
    Py_ssize_t nslots;
    SlotDesc *slots;          /* attributes in cls() order */
    Py_ssize_t nextra;
    Py_ssize_t *extra;        /* fields cls() does not set */
    Py_ssize_t nfields;
    FieldDesc *fields;        /* sorted by fid */
    int32_t min_fid, max_fid;
    int16_t *lut;             /* fid - min_fid -> index+1, or NULL */
    Py_ssize_t size_hint;     /* encode buffer hint */
    uint64_t req_mask;        /* validate: bit i set if fields[i] (i < 64) is required */
};

static void
free_typedesc_children(TypeDesc *t)
{
    if (t->elem) {
        free_typedesc_children(t->elem);
        PyMem_Free(t->elem);
        t->elem = NULL;
    }
    if (t->key) {
        free_typedesc_children(t->key);
        PyMem_Free(t->key);
        t->key = NULL;
    }
}

static void
sd_free(StructDesc *sd)
{
    if (sd == NULL)
        return;
    if (sd->fields) {
        for (Py_ssize_t i = 0; i < sd->nfields; i++) {
            Py_XDECREF(sd->fields[i].name);
            free_typedesc_children(&sd->fields[i].t);
        }
        PyMem_Free(sd->fields);
    }
    PyMem_Free(sd->lut);
    if (sd->slots) {
        for (Py_ssize_t i = 0; i < sd->nslots; i++) {
            Py_XDECREF(sd->slots[i].name);
            Py_XDECREF(sd->slots[i].deflt);
        }
        PyMem_Free(sd->slots);
    }
    PyMem_Free(sd->extra);
    Py_XDECREF(sd->defaults);
    Py_XDECREF(sd->cls);
    PyMem_Free(sd);
}

static void
sd_capsule_destructor(PyObject *cap)
{
    sd_free((StructDesc *)PyCapsule_GetPointer(cap, NULL));
}

INLINE const FieldDesc *
sd_lookup(const StructDesc *sd, int32_t fid)
{
    if (LIKELY(sd->lut != NULL)) {
        if (fid < sd->min_fid || fid > sd->max_fid)
            return NULL;
        int16_t ix = sd->lut[fid - sd->min_fid];
        return ix ? &sd->fields[ix - 1] : NULL;
    }
    Py_ssize_t lo = 0, hi = sd->nfields - 1;
    while (lo <= hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        int32_t f = sd->fields[mid].fid;
        if (f == fid)
            return &sd->fields[mid];
        if (f < fid)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static const char *
tjson_name(int ttype)
{
    switch (ttype) {
    case T_BOOL: return "tf";
    case T_BYTE: return "i8";
    case T_I16: return "i16";
    case T_I32: return "i32";
    case T_I64: return "i64";
    case T_DOUBLE: return "dbl";
    case T_STRING: case T_BINARY: return "str";
    case T_STRUCT: return "rec";
    case T_MAP: return "map";
    case T_SET: return "set";
    case T_LIST: return "lst";
    }
    return "?";
}

/* --- compiling thrift_spec -------------------------------------------- */

typedef struct {
    PyObject *session;        /* {cls: capsule} compiled in this session */
} Compiler;

static StructDesc *compile_struct(Compiler *c, PyObject *cls);

static int
parse_type(Compiler *c, TypeDesc *t, PyObject *owner, PyObject *fname,
           long ttype, PyObject *arg);

static int
split_type_arg(PyObject *owner, PyObject *fname, PyObject *spec,
               long *ttype, PyObject **arg)
{
    /* spec is an int ttype, or a tuple (ttype, arg) */
    if (PyLong_Check(spec)) {
        *ttype = PyLong_AsLong(spec);
        *arg = NULL;
        return (*ttype == -1 && PyErr_Occurred()) ? -1 : 0;
    }
    if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) >= 1 &&
        PyTuple_GET_SIZE(spec) <= 2 && PyLong_Check(PyTuple_GET_ITEM(spec, 0))) {
        *ttype = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
        if (*ttype == -1 && PyErr_Occurred())
            return -1;
        *arg = PyTuple_GET_SIZE(spec) == 2 ? PyTuple_GET_ITEM(spec, 1) : NULL;
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "%R.thrift_spec field %R: bad container element spec %R",
                 owner, fname, spec);
    return -1;
}

static int
parse_type(Compiler *c, TypeDesc *t, PyObject *owner, PyObject *fname,
           long ttype, PyObject *arg)
{
    long et, kt;
    PyObject *earg, *karg;
    t->elem = t->key = NULL;
    t->sd = NULL;
    switch (ttype) {
    case T_BOOL: t->ttype = T_BOOL; t->ctype = CT_TRUE; return 0;
    case T_BYTE: t->ttype = T_BYTE; t->ctype = CT_BYTE; return 0;
    case T_I16: t->ttype = T_I16; t->ctype = CT_I16; return 0;
    case T_I32: t->ttype = T_I32; t->ctype = CT_I32; return 0;  /* enums too */
    case T_I64: t->ttype = T_I64; t->ctype = CT_I64; return 0;
    case T_DOUBLE: t->ttype = T_DOUBLE; t->ctype = CT_DOUBLE; return 0;
    case T_STRING: t->ttype = T_STRING; t->ctype = CT_BINARY; return 0;
    case T_BINARY: t->ttype = T_BINARY; t->ctype = CT_BINARY; return 0;
    case T_STRUCT:
        t->ttype = T_STRUCT;
        t->ctype = CT_STRUCT;
        if (arg == NULL || !PyType_Check(arg)) {
            PyErr_Format(PyExc_TypeError,
                         "%R.thrift_spec field %R: struct spec without a class",
                         owner, fname);
            return -1;
        }
        t->sd = compile_struct(c, arg);
        return t->sd ? 0 : -1;
    case T_LIST:
    case T_SET:
        t->ttype = (uint8_t)ttype;
        t->ctype = ttype == T_LIST ? CT_LIST : CT_SET;
        if (arg == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%R.thrift_spec field %R: container without element spec",
                         owner, fname);
            return -1;
        }
        if (split_type_arg(owner, fname, arg, &et, &earg) < 0)
            return -1;
        t->elem = PyMem_Calloc(1, sizeof(TypeDesc));
        if (!t->elem) {
            PyErr_NoMemory();
            return -1;
        }
        return parse_type(c, t->elem, owner, fname, et, earg);
    case T_MAP:
        t->ttype = T_MAP;
        t->ctype = CT_MAP;
        if (arg == NULL || !PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) != 2) {
            PyErr_Format(PyExc_TypeError,
                         "%R.thrift_spec field %R: bad map spec %R",
                         owner, fname, arg ? arg : Py_None);
            return -1;
        }
        if (split_type_arg(owner, fname, PyTuple_GET_ITEM(arg, 0), &kt, &karg) < 0 ||
            split_type_arg(owner, fname, PyTuple_GET_ITEM(arg, 1), &et, &earg) < 0)
            return -1;
        t->key = PyMem_Calloc(1, sizeof(TypeDesc));
        t->elem = PyMem_Calloc(1, sizeof(TypeDesc));
        if (!t->key || !t->elem) {
            PyErr_NoMemory();
            return -1;
        }
        if (parse_type(c, t->key, owner, fname, kt, karg) < 0)
            return -1;
        return parse_type(c, t->elem, owner, fname, et, earg);
    }
    PyErr_Format(PyExc_TypeError,
                 "%R.thrift_spec field %R: unsupported ttype %ld",
                 owner, fname, ttype);
    return -1;
}

static int
cmp_fields(const void *a, const void *b)
{
    int32_t fa = ((const FieldDesc *)a)->fid, fb = ((const FieldDesc *)b)->fid;
    return (fa > fb) - (fa < fb);
}

static int
is_immutable_default(PyObject *v)
{
    return v == Py_None || PyBool_Check(v) || PyLong_CheckExact(v) ||
           PyFloat_CheckExact(v) || PyUnicode_CheckExact(v) ||
           PyBytes_CheckExact(v) || PyLong_Check(v);
}

static int
build_defaults(StructDesc *sd, PyObject *spec_items)
{
    PyObject *cls = sd->cls;
    PyObject *proto = PyObject_CallNoArgs(cls);
    PyObject *tmpl = NULL;
    if (proto != NULL) {
        PyObject *d = PyObject_GetAttrString(proto, "__dict__");
        Py_DECREF(proto);
        if (d == NULL)
            return -1;
        if (!PyDict_Check(d)) {
            Py_DECREF(d);
            PyErr_Format(PyExc_TypeError, "%R instances have no __dict__", cls);
            return -1;
        }
        tmpl = PyDict_Copy(d);
        Py_DECREF(d);
        if (tmpl == NULL)
            return -1;
    }
    else {
        /* __init__ needs arguments: fall back to default_spec / None */
        PyErr_Clear();
        tmpl = PyDict_New();
        if (tmpl == NULL)
            return -1;
        PyObject *ds = PyObject_GetAttrString(cls, "default_spec");
        if (ds != NULL && PyList_Check(ds)) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ds); i++) {
                PyObject *pair = PyList_GET_ITEM(ds, i);
                if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
                    if (PyDict_SetItem(tmpl, PyTuple_GET_ITEM(pair, 0),
                                       PyTuple_GET_ITEM(pair, 1)) < 0) {
                        Py_DECREF(ds);
                        Py_DECREF(tmpl);
                        return -1;
                    }
                }
            }
        }
        else {
            PyErr_Clear();
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(spec_items); i++) {
                PyObject *fs = PyTuple_GET_ITEM(PyList_GET_ITEM(spec_items, i), 1);
                if (PyDict_SetItem(tmpl, PyTuple_GET_ITEM(fs, 1), Py_None) < 0) {
                    Py_XDECREF(ds);
                    Py_DECREF(tmpl);
                    return -1;
                }
            }
        }
        Py_XDECREF(ds);
    }
    /* mutable defaults (list/dict/struct constants) are deep-copied per
       decoded object instead of being shared like thriftpy2's __init__ does */
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    sd->defaults = tmpl;

    /* slots: the template's attributes in order, linked to their fields */
    Py_ssize_t ns = PyDict_GET_SIZE(tmpl);
    sd->slots = PyMem_Calloc(ns ? ns : 1, sizeof(SlotDesc));
    sd->extra = PyMem_Calloc(sd->nfields ? sd->nfields : 1, sizeof(Py_ssize_t));
    if (sd->slots == NULL || sd->extra == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    pos = 0;
    while (PyDict_Next(tmpl, &pos, &key, &value)) {
        SlotDesc *sl = &sd->slots[sd->nslots++];
        Py_INCREF(key);
        if (PyUnicode_CheckExact(key))
            PyUnicode_InternInPlace(&key);
        sl->name = key;
        Py_INCREF(value);
        sl->deflt = value;
        sl->is_mutable = !is_immutable_default(value);
        sl->field = -1;
        for (Py_ssize_t i = 0; i < sd->nfields; i++) {
            int eq = PyObject_RichCompareBool(sd->fields[i].name, key, Py_EQ);
            if (eq < 0)
                return -1;
            if (eq) {
                sl->field = i;
                break;
            }
        }
    }
    for (Py_ssize_t i = 0; i < sd->nfields; i++) {
        int found = 0;
        for (Py_ssize_t j = 0; j < sd->nslots; j++) {
            if (sd->slots[j].field == i) {
                found = 1;
                break;
            }
        }
        if (!found)
            sd->extra[sd->nextra++] = i;
    }
    return 0;
}

static StructDesc *
compile_struct(Compiler *c, PyObject *cls)
{
    PyObject *cap = PyDict_GetItemWithError(g_cache, cls);
    if (cap != NULL)
        return (StructDesc *)PyCapsule_GetPointer(cap, NULL);
    if (PyErr_Occurred())
        return NULL;
    cap = PyDict_GetItemWithError(c->session, cls);
    if (cap != NULL)
        return (StructDesc *)PyCapsule_GetPointer(cap, NULL);
    if (PyErr_Occurred())
        return NULL;

    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "expected a thriftpy2 struct class, got %R", cls);
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    PyObject *spec = PyObject_GetAttrString(cls, "thrift_spec");
    if (spec == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%R is not a thriftpy2 struct (no thrift_spec)", cls);
        }
        return NULL;
    }
    if (!PyDict_Check(spec)) {
        PyErr_Format(PyExc_TypeError,
                     "%R.thrift_spec is not a dict (not a thriftpy2 struct?)", cls);
        Py_DECREF(spec);
        return NULL;
    }
    PyObject *items = PyDict_Items(spec);
    Py_DECREF(spec);
    if (items == NULL)
        return NULL;

    StructDesc *sd = PyMem_Calloc(1, sizeof(StructDesc));
    if (sd == NULL) {
        Py_DECREF(items);
        PyErr_NoMemory();
        return NULL;
    }
    Py_INCREF(cls);
    sd->cls = cls;
    sd->tp = tp;
    sd->size_hint = 256;
    cap = PyCapsule_New(sd, NULL, sd_capsule_destructor);
    if (cap == NULL) {
        sd_free(sd);
        Py_DECREF(items);
        return NULL;
    }
    /* register before compiling fields so recursive types resolve */
    if (PyDict_SetItem(c->session, cls, cap) < 0) {
        Py_DECREF(cap);
        Py_DECREF(items);
        return NULL;
    }
    Py_DECREF(cap);   /* session owns it; sd lives as long as the session */

    Py_ssize_t n = PyList_GET_SIZE(items);
    sd->fields = PyMem_Calloc(n ? n : 1, sizeof(FieldDesc));
    if (sd->fields == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kv = PyList_GET_ITEM(items, i);
        PyObject *k = PyTuple_GET_ITEM(kv, 0), *fs = PyTuple_GET_ITEM(kv, 1);
        FieldDesc *fd = &sd->fields[sd->nfields];
        if (!PyLong_Check(k)) {
            PyErr_Format(PyExc_TypeError, "%R.thrift_spec key %R is not an int", cls, k);
            goto fail;
        }
        long fid = PyLong_AsLong(k);
        if (fid == -1 && PyErr_Occurred())
            goto fail;
        if (fid < -32768 || fid > 32767) {
            PyErr_Format(PyExc_TypeError, "%R.thrift_spec field id %ld out of i16 range",
                         cls, fid);
            goto fail;
        }
        if (!PyTuple_Check(fs) || (PyTuple_GET_SIZE(fs) != 3 && PyTuple_GET_SIZE(fs) != 4) ||
            !PyLong_Check(PyTuple_GET_ITEM(fs, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(fs, 1))) {
            PyErr_Format(PyExc_TypeError, "%R.thrift_spec[%ld] has unexpected shape %R",
                         cls, fid, fs);
            goto fail;
        }
        long ttype = PyLong_AsLong(PyTuple_GET_ITEM(fs, 0));
        PyObject *fname = PyTuple_GET_ITEM(fs, 1);
        PyObject *arg = PyTuple_GET_SIZE(fs) == 4 ? PyTuple_GET_ITEM(fs, 2) : NULL;
        PyObject *req = PyTuple_GET_ITEM(fs, PyTuple_GET_SIZE(fs) - 1);
        int r = PyObject_IsTrue(req);
        if (r < 0)
            goto fail;
        fd->fid = (int32_t)fid;
        fd->required = r;
        Py_INCREF(fname);
        PyUnicode_InternInPlace(&fname);
        fd->name = fname;
        sd->nfields++;
        if (parse_type(c, &fd->t, cls, fname, ttype, arg) < 0)
            goto fail;
        int jl = snprintf(fd->jhead, sizeof(fd->jhead), "\"%ld\":{\"%s\":", fid,
                          tjson_name(fd->t.ttype));
        fd->jhead_len = jl;
    }
    qsort(sd->fields, sd->nfields, sizeof(FieldDesc), cmp_fields);
    for (Py_ssize_t i = 1; i < sd->nfields; i++) {
        if (sd->fields[i].fid == sd->fields[i - 1].fid) {
            PyErr_Format(PyExc_TypeError, "%R.thrift_spec: duplicate field id %d",
                         cls, (int)sd->fields[i].fid);
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < sd->nfields && i < 64; i++) {
        if (sd->fields[i].required)
            sd->req_mask |= (uint64_t)1 << i;
    }
    if (sd->nfields) {
        sd->min_fid = sd->fields[0].fid;
        sd->max_fid = sd->fields[sd->nfields - 1].fid;
        if ((int64_t)sd->max_fid - sd->min_fid < 4096) {
            sd->lut = PyMem_Calloc((size_t)(sd->max_fid - sd->min_fid + 1), sizeof(int16_t));
            if (sd->lut == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            for (Py_ssize_t i = 0; i < sd->nfields; i++)
                sd->lut[sd->fields[i].fid - sd->min_fid] = (int16_t)(i + 1);
        }
    }
    else {
        sd->min_fid = 1;
        sd->max_fid = 0;
        sd->lut = PyMem_Calloc(1, sizeof(int16_t));
        if (sd->lut == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    if (tp->tp_dictoffset == 0) {
        PyErr_Format(PyExc_TypeError, "%R instances have no __dict__", cls);
        goto fail;
    }
    sd->fast_new = tp->tp_new == PyBaseObject_Type.tp_new &&
                   tp->tp_alloc == PyType_GenericAlloc;
#if defined(Py_TPFLAGS_MANAGED_DICT) && !defined(AIOACCESS_DICT_MODE)
    /* like __init__: attributes go to the instance's inline values, so no
       separate dict object is created (half the GC-tracked objects) */
    sd->attr_mode = (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) != 0;
#endif
    if (build_defaults(sd, items) < 0)
        goto fail;
    Py_DECREF(items);
    return sd;

fail:
    /* the whole session is discarded by the caller */
    Py_DECREF(items);
    return NULL;
}

static StructDesc *g_last_sd = NULL;
static PyObject *g_last_cls = NULL;   /* borrowed; kept alive by g_cache */

static StructDesc *
get_desc(PyObject *cls)
{
    if (LIKELY(cls == g_last_cls))
        return g_last_sd;
    PyObject *cap = PyDict_GetItemWithError(g_cache, cls);
    if (cap != NULL) {
        g_last_cls = cls;
        g_last_sd = (StructDesc *)PyCapsule_GetPointer(cap, NULL);
        return g_last_sd;
    }
    if (PyErr_Occurred())
        return NULL;
    Compiler c;
    c.session = PyDict_New();
    if (c.session == NULL)
        return NULL;
    StructDesc *sd = compile_struct(&c, cls);
    if (sd == NULL) {
        Py_DECREF(c.session);   /* frees every description of this session */
        return NULL;
    }
    /* publish atomically (no Python code runs below) */
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    int conflict = 0;
    while (PyDict_Next(c.session, &pos, &k, &v)) {
        if (PyDict_Contains(g_cache, k) == 1)
            conflict = 1;
    }
    if (!conflict) {
        if (PyDict_Update(g_cache, c.session) < 0) {
            Py_DECREF(c.session);
            return NULL;
        }
    }
    else {
        /* another thread compiled some of these meanwhile: keep our session
           alive (its descriptions reference each other) and use it */
        if (PyList_Append(g_retained, c.session) < 0) {
            Py_DECREF(c.session);
            return NULL;
        }
        pos = 0;
        while (PyDict_Next(c.session, &pos, &k, &v)) {
            if (PyDict_Contains(g_cache, k) == 0 && PyDict_SetItem(g_cache, k, v) < 0)
                PyErr_Clear();
        }
    }
    Py_DECREF(c.session);
    return sd;
}

/* ------------------------------------------------------------------------ */
/* Input buffers and reader                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    Py_buffer view;
    int has_view;
    const uint8_t *data;
    Py_ssize_t len;
} InBuf;

static int
inbuf_get(PyObject *o, InBuf *b)
{
    if (PyBytes_CheckExact(o)) {
        b->has_view = 0;
        b->data = (const uint8_t *)PyBytes_AS_STRING(o);
        b->len = PyBytes_GET_SIZE(o);
        return 0;
    }
    if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) < 0)
        return -1;
    b->has_view = 1;
    b->data = (const uint8_t *)b->view.buf;
    b->len = b->view.len;
    return 0;
}

static void
inbuf_release(InBuf *b)
{
    if (b->has_view) {
        PyBuffer_Release(&b->view);
        b->has_view = 0;
    }
}

static int
parse_offset(PyObject *o, Py_ssize_t len, Py_ssize_t *out)
{
    if (o == NULL) {
        *out = 0;
        return 0;
    }
    Py_ssize_t off = PyNumber_AsSsize_t(o, PyExc_OverflowError);
    if (off == -1 && PyErr_Occurred())
        return -1;
    if (off < 0 || off > len) {
        PyErr_Format(CodecError, "offset %zd out of range for a buffer of %zd bytes",
                     off, len);
        return -1;
    }
    *out = off;
    return 0;
}

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    const uint8_t *base;
} Reader;

#define READER(start, stop, origin) {(start), (stop), (origin)}

/* Decoded objects stay out of the cyclic GC when they cannot be part of a
   reference cycle: a list, dict or struct whose values are all atoms or
   untracked decoded objects, and that is not an exception (a traceback can
   lead back to it).  Collections then never traverse a decoded tree, so a
   decode costs the same however many decoded objects the process keeps.
   Each container is untracked as soon as it exists (no collection during the
   decode scans the half-built tree) and gc_settle tracks it again when one of
   its values is tracked.  The caveat (a cycle a user builds through such
   objects later is not collected; gc_track() undoes it) is in gc_track_doc. */
INLINE void
gc_hide(PyObject *o)
{
    if (PyObject_GC_IsTracked(o))
        PyObject_GC_UnTrack(o);
}

INLINE void
gc_settle(PyObject *o, int keep)
{
    if (keep) {
        if (!PyObject_GC_IsTracked(o))
            PyObject_GC_Track(o);
    }
    else if (PyObject_GC_IsTracked(o))
        PyObject_GC_UnTrack(o);
}

/* whether v is a tracked GC object (the type flag first: atoms cost no call) */
INLINE int
tracked(PyObject *v)
{
    return PyType_HasFeature(Py_TYPE(v), Py_TPFLAGS_HAVE_GC) && PyObject_GC_IsTracked(v);
}

/* whether values of this type may be (tracked) GC objects */
INLINE int
may_hold_gc(const TypeDesc *t)
{
    return t->ttype == T_STRUCT || t->ttype == T_LIST || t->ttype == T_SET || t->ttype == T_MAP;
}

static void
r_error(Reader *r, const char *msg)
{
    PyErr_Format(CodecError, "%s at offset %zd", msg, (Py_ssize_t)(r->p - r->base));
}

#define R_NEED(r, n)                                                        \
    do {                                                                    \
        if (UNLIKELY((Py_ssize_t)((r)->end - (r)->p) < (Py_ssize_t)(n))) {  \
            r_error((r), "truncated input");                                \
            return -1;                                                      \
        }                                                                   \
    } while (0)

#define R_NEED_NULL(r, n)                                                   \
    do {                                                                    \
        if (UNLIKELY((Py_ssize_t)((r)->end - (r)->p) < (Py_ssize_t)(n))) {  \
            r_error((r), "truncated input");                                \
            return NULL;                                                    \
        }                                                                   \
    } while (0)

/* unsigned varint of at most `maxbytes` bytes whose value fits in `maxval` */
static int
read_varint_slow(Reader *r, int maxbytes, uint64_t maxval, uint64_t *out)
{
    const uint8_t *p = r->p;
    uint64_t result = 0;
    int shift = 0;
    for (int i = 0; i < maxbytes; i++) {
        if (UNLIKELY(p >= r->end)) {
            r->p = p;
            r_error(r, "truncated input");
            return -1;
        }
        uint8_t b = *p++;
        if (i == 9 && b > 1) {
            r_error(r, (b & 0x80) ? "varint longer than 10 bytes" : "varint overflows 64 bits");
            return -1;
        }
        result |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (UNLIKELY(result > maxval)) {
                r_error(r, "varint out of range");
                return -1;
            }
            r->p = p;
            *out = result;
            return 0;
        }
        shift += 7;
    }
    r_error(r, maxbytes == 10 ? "varint longer than 10 bytes" : "varint too long");
    return -1;
}

INLINE int
read_varint(Reader *r, int maxbytes, uint64_t maxval, uint64_t *out)
{
    if (LIKELY(r->p < r->end && !(*r->p & 0x80))) {
        *out = *r->p++;     /* <= 127 fits every maxval we use */
        return 0;
    }
    return read_varint_slow(r, maxbytes, maxval, out);
}

INLINE int
read_size(Reader *r, Py_ssize_t *out)
{
    uint64_t v;
    if (read_varint(r, 5, 0x7fffffffULL, &v) < 0)
        return -1;
    *out = (Py_ssize_t)v;
    return 0;
}

INLINE int32_t
unzigzag32(uint32_t v)
{
    return (int32_t)((v >> 1) ^ (~(v & 1) + 1));
}

INLINE int64_t
unzigzag64(uint64_t v)
{
    return (int64_t)((v >> 1) ^ (~(v & 1) + 1));
}

INLINE int
read_i16(Reader *r, int32_t *out)
{
    uint64_t v;
    if (read_varint(r, 3, 0xffffULL, &v) < 0)
        return -1;
    *out = unzigzag32((uint32_t)v);
    return 0;
}

INLINE int
read_i32(Reader *r, int32_t *out)
{
    uint64_t v;
    if (read_varint(r, 5, 0xffffffffULL, &v) < 0)
        return -1;
    *out = unzigzag32((uint32_t)v);
    return 0;
}

INLINE int
read_i64(Reader *r, int64_t *out)
{
    uint64_t v;
    if (read_varint(r, 10, UINT64_MAX, &v) < 0)
        return -1;
    *out = unzigzag64(v);
    return 0;
}

INLINE double
load_double_le(const uint8_t *p)
{
    uint64_t u;
    memcpy(&u, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    u = __builtin_bswap64(u);
#endif
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Field header: returns 0 ok (ct == CT_STOP at end), -1 error */
INLINE int
read_field_header(Reader *r, int32_t *last_fid, int *ct, int32_t *fid)
{
    R_NEED(r, 1);
    uint8_t b = *r->p++;
    int t = b & 0x0f;
    if (t == CT_STOP) {
        *ct = CT_STOP;
        return 0;
    }
    if (UNLIKELY(t > CT_STRUCT)) {
        r->p--;
        r_error(r, "invalid field type");
        return -1;
    }
    int delta = b >> 4;
    if (delta) {
        *fid = *last_fid + delta;
    }
    else {
        int32_t v;
        if (read_i16(r, &v) < 0)
            return -1;
        *fid = v;
    }
    *last_fid = *fid;
    *ct = t;
    return 0;
}

/* list/set header: size and element ctype (validated) */
INLINE int
read_list_header(Reader *r, Py_ssize_t *size, int *et)
{
    R_NEED(r, 1);
    uint8_t b = *r->p++;
    Py_ssize_t n = b >> 4;
    int t = b & 0x0f;
    if (n == 15) {
        if (read_size(r, &n) < 0)
            return -1;
    }
    if (UNLIKELY(t > CT_STRUCT || (t == CT_STOP && n != 0))) {
        r_error(r, "invalid list element type");
        return -1;
    }
    if (UNLIKELY(n > r->end - r->p)) {
        r_error(r, "list length exceeds the remaining input");
        return -1;
    }
    *size = n;
    *et = t;
    return 0;
}

INLINE int
read_map_header(Reader *r, Py_ssize_t *size, int *kt, int *vt)
{
    Py_ssize_t n;
    if (read_size(r, &n) < 0)
        return -1;
    if (n == 0) {
        *size = 0;
        *kt = *vt = CT_STOP;
        return 0;
    }
    R_NEED(r, 1);
    uint8_t b = *r->p++;
    int k = b >> 4, v = b & 0x0f;
    if (UNLIKELY(k == CT_STOP || k > CT_STRUCT || v == CT_STOP || v > CT_STRUCT)) {
        r->p--;
        r_error(r, "invalid map key/value type");
        return -1;
    }
    if (UNLIKELY(n > (r->end - r->p) / 2)) {
        r_error(r, "map length exceeds the remaining input");
        return -1;
    }
    *size = n;
    *kt = k;
    *vt = v;
    return 0;
}

/* -1 (CodecError set) when a container or struct at `depth` nests too deep */
INLINE int
r_nest(Reader *r, int depth)
{
    if (UNLIKELY(depth > MAX_DEPTH)) {
        r_error(r, "nesting too deep");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* skip: structural validation                                               */
/* ------------------------------------------------------------------------ */

static int skip_struct(Reader *r, int depth);

/* skip one scalar of compact type ct (not a container); inlined in loops */
INLINE int
skip_scalar(Reader *r, int ct)
{
    uint64_t v;
    Py_ssize_t n;
    switch (ct) {
    case CT_TRUE:
    case CT_FALSE:
    case CT_BYTE:
        R_NEED(r, 1);
        r->p++;
        return 0;
    case CT_I16:
        if (LIKELY(r->end - r->p >= 2 && !(r->p[0] & r->p[1] & 0x80))) {
            r->p += (r->p[0] & 0x80) ? 2 : 1;   /* <= 14 bits: always in range */
            return 0;
        }
        return read_varint(r, 3, 0xffffULL, &v);
    case CT_I32:
        if (LIKELY(r->end - r->p >= 2 && !(r->p[0] & r->p[1] & 0x80))) {
            r->p += (r->p[0] & 0x80) ? 2 : 1;
            return 0;
        }
        return read_varint(r, 5, 0xffffffffULL, &v);
    case CT_I64:
        if (LIKELY(r->end - r->p >= 2 && !(r->p[0] & r->p[1] & 0x80))) {
            r->p += (r->p[0] & 0x80) ? 2 : 1;
            return 0;
        }
        return read_varint(r, 10, UINT64_MAX, &v);
    case CT_DOUBLE:
        R_NEED(r, 8);
        r->p += 8;
        return 0;
    case CT_BINARY:
        if (LIKELY(r->p < r->end && !(*r->p & 0x80))) {
            n = *r->p++;
        }
        else if (read_size(r, &n) < 0) {
            return -1;
        }
        R_NEED(r, n);
        r->p += n;
        return 0;
    }
    r_error(r, "invalid type");
    return -1;
}

static int
skip_value(Reader *r, int ct, int depth)
{
    Py_ssize_t n;
    switch (ct) {
    case CT_STRUCT:
        return skip_struct(r, depth + 1);
    case CT_LIST:
    case CT_SET: {
        int et;
        if (r_nest(r, depth + 1) < 0)
            return -1;
        if (read_list_header(r, &n, &et) < 0)
            return -1;
        switch (et) {
        case CT_TRUE: case CT_FALSE: case CT_BYTE:
            R_NEED(r, n);
            r->p += n;
            return 0;
        case CT_DOUBLE:
            if (UNLIKELY(n > (r->end - r->p) / 8)) {
                r_error(r, "truncated input");
                return -1;
            }
            r->p += n * 8;
            return 0;
        case CT_I16: case CT_I32: case CT_I64: case CT_BINARY:
            for (Py_ssize_t i = 0; i < n; i++) {
                if (skip_scalar(r, et) < 0)
                    return -1;
            }
            return 0;
        case CT_STRUCT:
            for (Py_ssize_t i = 0; i < n; i++) {
                if (skip_struct(r, depth + 2) < 0)
                    return -1;
            }
            return 0;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (skip_value(r, et, depth + 1) < 0)
                return -1;
        }
        return 0;
    }
    case CT_MAP: {
        int kt, vt;
        if (r_nest(r, depth + 1) < 0)
            return -1;
        if (read_map_header(r, &n, &kt, &vt) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (skip_value(r, kt, depth + 1) < 0 || skip_value(r, vt, depth + 1) < 0)
                return -1;
        }
        return 0;
    }
    }
    return skip_scalar(r, ct);
}

static int
skip_struct(Reader *r, int depth)
{
    if (r_nest(r, depth) < 0)
        return -1;
    for (;;) {
        if (UNLIKELY(r->p >= r->end)) {
            r_error(r, "truncated input");
            return -1;
        }
        uint8_t b = *r->p++;
        int ct = b & 0x0f;
        if (ct == CT_STOP)
            return 0;
        if (UNLIKELY(ct > CT_STRUCT)) {
            r->p--;
            r_error(r, "invalid field type");
            return -1;
        }
        if (UNLIKELY(!(b >> 4))) {
            int32_t fid;
            if (read_i16(r, &fid) < 0)
                return -1;
        }
        if (ct <= CT_BINARY) {
            if (ct == CT_TRUE || ct == CT_FALSE)
                continue;
            if (skip_scalar(r, ct) < 0)
                return -1;
        }
        else if (skip_value(r, ct, depth) < 0) {
            return -1;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

/* length of the valid UTF-8 sequence starting at s (first byte >= 0x80),
   or 0 if invalid (same rules as Python's strict decoder) */
INLINE int
utf8_seq_len(const uint8_t *s, const uint8_t *e)
{
    uint8_t c = s[0];
    Py_ssize_t avail = e - s;
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80)
            return 0;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3)
            return 0;
        uint8_t c1 = s[1];
        if (c == 0xE0 && c1 < 0xA0)
            return 0;
        if (c == 0xED && c1 > 0x9F)
            return 0;
        if ((c1 & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4)
            return 0;
        uint8_t c1 = s[1];
        if (c == 0xF0 && c1 < 0x90)
            return 0;
        if (c == 0xF4 && c1 > 0x8F)
            return 0;
        if ((c1 & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

INLINE int
all_ascii(const uint8_t *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= s[i];
    return (acc & 0x8080808080808080ULL) == 0;
}

static void
raise_from(PyObject *exc_type, const char *msg, Py_ssize_t offset)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyErr_NormalizeException(&et, &ev, &tb);
    if (tb && ev)
        PyException_SetTraceback(ev, tb);
    PyErr_Format(exc_type, "%s at offset %zd", msg, offset);
    if (ev) {
        PyObject *nt, *nv, *ntb;
        PyErr_Fetch(&nt, &nv, &ntb);
        PyErr_NormalizeException(&nt, &nv, &ntb);
        if (nv) {
            PyException_SetCause(nv, ev);      /* steals ev */
            Py_INCREF(ev);
            PyException_SetContext(nv, ev);    /* steals ev */
            ev = NULL;
        }
        PyErr_Restore(nt, nv, ntb);
    }
    Py_XDECREF(et);
    Py_XDECREF(ev);
    Py_XDECREF(tb);
}

INLINE PyObject *
make_str(Reader *r, const uint8_t *s, Py_ssize_t n)
{
    if (LIKELY(all_ascii(s, n))) {
        PyObject *u = PyUnicode_New(n, 127);
        if (u == NULL)
            return NULL;
        memcpy(PyUnicode_DATA(u), s, n);
        return u;
    }
    PyObject *u = PyUnicode_DecodeUTF8((const char *)s, n, "strict");
    if (u == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        raise_from(CodecError, "invalid UTF-8 in string", (Py_ssize_t)(s - r->base));
    return u;
}

/* ------------------------------------------------------------------------ */
/* decode                                                                    */
/* ------------------------------------------------------------------------ */

static PyObject *decode_struct(Reader *r, const StructDesc *sd, int depth);
static PyObject *decode_value(Reader *r, const TypeDesc *t, int depth);

INLINE int
ctype_matches(const TypeDesc *t, int ct)
{
    return ct == t->ctype || (t->ttype == T_BOOL && ct == CT_FALSE);
}

static PyObject *
decode_list(Reader *r, const TypeDesc *t, int depth)
{
    Py_ssize_t n;
    int et;
    if (UNLIKELY(depth > MAX_DEPTH)) {
        r_error(r, "nesting too deep");
        return NULL;
    }
    if (read_list_header(r, &n, &et) < 0)
        return NULL;
    const TypeDesc *e = t->elem;
    if (n == 0) {
        PyObject *empty = PyList_New(0);
        if (empty != NULL)
            gc_hide(empty);
        return empty;
    }
    if (UNLIKELY(!ctype_matches(e, et))) {
        r_error(r, "list element type does not match the schema");
        return NULL;
    }
    if (e->ttype == T_DOUBLE && UNLIKELY(n > (r->end - r->p) / 8)) {
        r_error(r, "truncated input");
        return NULL;
    }
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    gc_hide(list);
    PyObject *item;
    switch (e->ttype) {
    case T_STRUCT:
        for (Py_ssize_t i = 0; i < n; i++) {
            item = decode_struct(r, e->sd, depth + 1);
            if (item == NULL)
                goto fail;
            PyList_SET_ITEM(list, i, item);
        }
        break;
    case T_I32:
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t v;
            if (read_i32(r, &v) < 0)
                goto fail;
            item = PyLong_FromLong(v);
            if (item == NULL)
                goto fail;
            PyList_SET_ITEM(list, i, item);
        }
        break;
    case T_STRING:
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t len;
            if (read_size(r, &len) < 0)
                goto fail;
            if (UNLIKELY(len > r->end - r->p)) {
                r_error(r, "truncated input");
                goto fail;
            }
            item = make_str(r, r->p, len);
            if (item == NULL)
                goto fail;
            r->p += len;
            PyList_SET_ITEM(list, i, item);
        }
        break;
    default:
        for (Py_ssize_t i = 0; i < n; i++) {
            item = decode_value(r, e, depth);
            if (item == NULL)
                goto fail;
            PyList_SET_ITEM(list, i, item);
        }
    }
    if (may_hold_gc(e)) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (tracked(PyList_GET_ITEM(list, i))) {
                PyObject_GC_Track(list);
                break;
            }
        }
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *
decode_map(Reader *r, const TypeDesc *t, int depth)
{
    Py_ssize_t n;
    int kt, vt;
    if (UNLIKELY(depth > MAX_DEPTH)) {
        r_error(r, "nesting too deep");
        return NULL;
    }
    if (read_map_header(r, &n, &kt, &vt) < 0)
        return NULL;
    if (n && UNLIKELY(!ctype_matches(t->key, kt) || !ctype_matches(t->elem, vt))) {
        r->p--;
        r_error(r, "map key/value types do not match the schema");
        return NULL;
    }
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    int keep = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = decode_value(r, t->key, depth);
        if (k == NULL)
            goto fail;
        PyObject *v = decode_value(r, t->elem, depth);
        if (v == NULL) {
            Py_DECREF(k);
            goto fail;
        }
        keep |= tracked(k) | tracked(v);
        int rc = PyDict_SetItem(d, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError))
                raise_from(CodecError, "unhashable map key", (Py_ssize_t)(r->p - r->base));
            goto fail;
        }
    }
    gc_settle(d, keep);
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *
decode_value(Reader *r, const TypeDesc *t, int depth)
{
    switch (t->ttype) {
    case T_BOOL: {
        R_NEED_NULL(r, 1);
        uint8_t b = *r->p++;
        return PyBool_FromLong(b == CT_TRUE);
    }
    case T_BYTE:
        R_NEED_NULL(r, 1);
        return PyLong_FromLong((int8_t)*r->p++);
    case T_I16: {
        int32_t v;
        if (read_i16(r, &v) < 0)
            return NULL;
        return PyLong_FromLong(v);
    }
    case T_I32: {
        int32_t v;
        if (read_i32(r, &v) < 0)
            return NULL;
        return PyLong_FromLong(v);
    }
    case T_I64: {
        int64_t v;
        if (read_i64(r, &v) < 0)
            return NULL;
        return PyLong_FromLongLong(v);
    }
    case T_DOUBLE: {
        R_NEED_NULL(r, 8);
        double d = load_double_le(r->p);
        r->p += 8;
        return PyFloat_FromDouble(d);
    }
    case T_STRING:
    case T_BINARY: {
        Py_ssize_t len;
        if (read_size(r, &len) < 0)
            return NULL;
        R_NEED_NULL(r, len);
        const uint8_t *s = r->p;
        r->p += len;
        if (t->ttype == T_BINARY)
            return PyBytes_FromStringAndSize((const char *)s, len);
        return make_str(r, s, len);
    }
    case T_STRUCT:
        return decode_struct(r, t->sd, depth + 1);
    case T_LIST:
    case T_SET:
        return decode_list(r, t, depth + 1);
    case T_MAP:
        return decode_map(r, t, depth + 1);
    }
    PyErr_SetString(PyExc_SystemError, "bad compiled type");
    return NULL;
}

static PyObject *
make_instance(const StructDesc *sd, PyObject *dict)
{
    PyObject *obj;
    if (LIKELY(sd->fast_new))
        obj = sd->tp->tp_alloc(sd->tp, 0);
    else
        obj = sd->tp->tp_new(sd->tp, g_empty_tuple, NULL);
    if (obj == NULL)
        return NULL;
    if (PyObject_GenericSetDict(obj, dict, NULL) < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

static PyObject *
deepcopy_default(PyObject *v)
{
    if (g_deepcopy == NULL) {
        PyObject *copy = PyImport_ImportModule("copy");
        if (copy == NULL)
            return NULL;
        g_deepcopy = PyObject_GetAttrString(copy, "deepcopy");
        Py_DECREF(copy);
        if (g_deepcopy == NULL)
            return NULL;
    }
    return PyObject_CallOneArg(g_deepcopy, v);
}

/* value for slot i: decoded, else (a copy of) the default; new reference */
INLINE PyObject *
slot_value(const StructDesc *sd, Py_ssize_t i, PyObject **vals)
{
    const SlotDesc *sl = &sd->slots[i];
    PyObject *v = sl->field >= 0 ? vals[sl->field] : NULL;
    if (v != NULL) {
        Py_INCREF(v);
        return v;
    }
    if (UNLIKELY(sl->is_mutable))
        return deepcopy_default(sl->deflt);
    Py_INCREF(sl->deflt);
    return sl->deflt;
}

static int
hide_dict(PyObject *o, void *unused)
{
    if (o != NULL && PyDict_CheckExact(o))
        gc_hide(o);
    return 0;
}

static PyObject *
build_instance(const StructDesc *sd, PyObject **vals)
{
    PyObject *obj;
    int keep = 0;
    if (LIKELY(sd->attr_mode)) {
        obj = sd->tp->tp_new(sd->tp, g_empty_tuple, NULL);
        if (obj == NULL)
            return NULL;
        gc_hide(obj);
        setattrofunc setattro = sd->tp->tp_setattro;
        for (Py_ssize_t i = 0; i < sd->nslots; i++) {
            PyObject *v = slot_value(sd, i, vals);
            if (v == NULL)
                goto fail;
            keep |= tracked(v);
            int rc = setattro(obj, sd->slots[i].name, v);
            Py_DECREF(v);
            if (rc < 0)
                goto fail;
        }
        for (Py_ssize_t i = 0; i < sd->nextra; i++) {
            Py_ssize_t f = sd->extra[i];
            if (vals[f] == NULL)
                continue;
            keep |= tracked(vals[f]);
            if (setattro(obj, sd->fields[f].name, vals[f]) < 0)
                goto fail;
        }
        keep = keep || PyExceptionInstance_Check(obj);
        gc_settle(obj, keep);
        /* past ~30 attributes Python keeps them in a dict of their own (tracked, as it
           holds GC objects): out of the collector too, when obj is */
        if (!keep && sd->nslots + sd->nextra > 24 && sd->tp->tp_traverse != NULL)
            sd->tp->tp_traverse(obj, hide_dict, NULL);
        return obj;
    fail:
        Py_DECREF(obj);
        return NULL;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < sd->nslots; i++) {
        PyObject *v = slot_value(sd, i, vals);
        if (v == NULL)
            goto dfail;
        keep |= tracked(v);
        int rc = PyDict_SetItem(dict, sd->slots[i].name, v);
        Py_DECREF(v);
        if (rc < 0)
            goto dfail;
    }
    for (Py_ssize_t i = 0; i < sd->nextra; i++) {
        Py_ssize_t f = sd->extra[i];
        if (vals[f] == NULL)
            continue;
        keep |= tracked(vals[f]);
        if (PyDict_SetItem(dict, sd->fields[f].name, vals[f]) < 0)
            goto dfail;
    }
    obj = make_instance(sd, dict);
    if (obj != NULL) {
        keep = keep || PyExceptionInstance_Check(obj);
        gc_settle(dict, keep);
        gc_settle(obj, keep);
    }
    Py_DECREF(dict);
    return obj;
dfail:
    Py_DECREF(dict);
    return NULL;
}

#define STACK_VALS 48

static PyObject *
decode_struct(Reader *r, const StructDesc *sd, int depth)
{
    if (UNLIKELY(depth > MAX_DEPTH)) {
        r_error(r, "nesting too deep");
        return NULL;
    }
    PyObject *stackvals[STACK_VALS];
    PyObject **vals = stackvals;
    Py_ssize_t nf = sd->nfields;
    if (UNLIKELY(nf > STACK_VALS)) {
        vals = PyMem_Calloc(nf, sizeof(PyObject *));
        if (vals == NULL)
            return PyErr_NoMemory();
    }
    else {
        memset(vals, 0, nf * sizeof(PyObject *));
    }
    PyObject *obj = NULL;
    int32_t last = 0, fid;
    int ct;
    for (;;) {
        if (read_field_header(r, &last, &ct, &fid) < 0)
            goto done;
        if (ct == CT_STOP)
            break;
        const FieldDesc *fd = sd_lookup(sd, fid);
        if (fd == NULL || !ctype_matches(&fd->t, ct)) {
            if (ct != CT_TRUE && ct != CT_FALSE && skip_value(r, ct, depth) < 0)
                goto done;
            continue;
        }
        PyObject *v;
        if (fd->t.ttype == T_BOOL) {
            v = ct == CT_TRUE ? Py_True : Py_False;
            Py_INCREF(v);
        }
        else {
            v = decode_value(r, &fd->t, depth);
            if (v == NULL)
                goto done;
        }
        Py_XSETREF(vals[fd - sd->fields], v);
    }
    obj = build_instance(sd, vals);
done:
    for (Py_ssize_t i = 0; i < nf; i++)
        Py_XDECREF(vals[i]);
    if (vals != stackvals)
        PyMem_Free(vals);
    return obj;
}

/* ------------------------------------------------------------------------ */
/* validate: skip with a schema (what decode accepts + required fields)      */
/* ------------------------------------------------------------------------ */

/* One pass over the bytes, no objects: accepts exactly what decode(buf, cls)
   accepts (same type, length, range, nesting and UTF-8 rules, same fields
   skipped) and, in addition, every struct at every depth must hold each of its
   required fields with the schema's type (a field of another type is skipped
   by decode, so it counts as missing). */

static int validate_struct(Reader *r, const StructDesc *sd, int depth);

static int
v_utf8(Reader *r, const uint8_t *s, Py_ssize_t n)
{
    if (LIKELY(all_ascii(s, n)))
        return 0;
    const uint8_t *e = s + n;
    while (s < e) {
        if (*s < 0x80) {
            s++;
            continue;
        }
        int k = utf8_seq_len(s, e);
        if (!k) {
            PyErr_Format(CodecError, "invalid UTF-8 in string at offset %zd",
                         (Py_ssize_t)(s - r->base));
            return -1;
        }
        s += k;
    }
    return 0;
}

INLINE int
v_string(Reader *r)
{
    Py_ssize_t n;
    if (LIKELY(r->p < r->end && !(*r->p & 0x80)))
        n = *r->p++;
    else if (read_size(r, &n) < 0)
        return -1;
    R_NEED(r, n);
    const uint8_t *s = r->p;
    r->p += n;
    return v_utf8(r, s, n);
}

/* a value of schema type t (its wire type already checked); depth as in decode_value */
static int
validate_value(Reader *r, const TypeDesc *t, int depth)
{
    Py_ssize_t n;
    switch (t->ttype) {
    case T_STRUCT:
        return validate_struct(r, t->sd, depth + 1);
    case T_STRING:
        return v_string(r);
    case T_LIST:
    case T_SET: {
        int et;
        if (r_nest(r, depth + 1) < 0)
            return -1;
        if (read_list_header(r, &n, &et) < 0)
            return -1;
        if (n == 0)
            return 0;
        const TypeDesc *e = t->elem;
        if (UNLIKELY(!ctype_matches(e, et))) {
            r_error(r, "list element type does not match the schema");
            return -1;
        }
        if (e->ttype == T_STRUCT) {
            for (Py_ssize_t i = 0; i < n; i++) {
                if (validate_struct(r, e->sd, depth + 2) < 0)
                    return -1;
            }
            return 0;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (validate_value(r, e, depth + 1) < 0)
                return -1;
        }
        return 0;
    }
    case T_MAP: {
        int kt, vt;
        if (r_nest(r, depth + 1) < 0)
            return -1;
        if (read_map_header(r, &n, &kt, &vt) < 0)
            return -1;
        if (n && UNLIKELY(!ctype_matches(t->key, kt) || !ctype_matches(t->elem, vt))) {
            r->p--;
            r_error(r, "map key/value types do not match the schema");
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (validate_value(r, t->key, depth + 1) < 0 || validate_value(r, t->elem, depth + 1) < 0)
                return -1;
        }
        return 0;
    }
    case T_BOOL:
        R_NEED(r, 1);   /* inside a container: one byte */
        r->p++;
        return 0;
    }
    return skip_scalar(r, t->ctype);
}

static int
validate_struct(Reader *r, const StructDesc *sd, int depth)
{
    if (r_nest(r, depth) < 0)
        return -1;
    uint64_t seen = 0, *more = NULL;   /* bit i: fields[i] present with its type */
    if (UNLIKELY(sd->nfields > 64)) {
        more = PyMem_Calloc((size_t)(sd->nfields + 63) / 64, sizeof(uint64_t));
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    int rc = -1;
    int32_t last = 0, fid;
    int ct;
    for (;;) {
        if (read_field_header(r, &last, &ct, &fid) < 0)
            goto done;
        if (ct == CT_STOP)
            break;
        const FieldDesc *fd = sd_lookup(sd, fid);
        if (fd == NULL || !ctype_matches(&fd->t, ct)) {   /* decode skips it */
            if (ct != CT_TRUE && ct != CT_FALSE && skip_value(r, ct, depth) < 0)
                goto done;
            continue;
        }
        Py_ssize_t i = fd - sd->fields;
        if (LIKELY(i < 64))
            seen |= (uint64_t)1 << i;
        else
            more[i >> 6] |= (uint64_t)1 << (i & 63);
        switch (fd->t.ttype) {
        case T_BOOL:
            continue;
        case T_STRUCT:
            if (validate_struct(r, fd->t.sd, depth + 1) < 0)
                goto done;
            continue;
        case T_STRING:
            if (v_string(r) < 0)
                goto done;
            continue;
        case T_LIST: case T_SET: case T_MAP:
            if (validate_value(r, &fd->t, depth) < 0)
                goto done;
            continue;
        }
        if (skip_scalar(r, ct) < 0)
            goto done;
    }
    rc = 0;
    if (LIKELY((seen & sd->req_mask) == sd->req_mask && more == NULL))
        goto done;
    if (more != NULL)
        more[0] = seen;
    for (Py_ssize_t i = 0; i < sd->nfields; i++) {
        const FieldDesc *fd = &sd->fields[i];
        if (fd->required && !((more ? more[i >> 6] : seen) & ((uint64_t)1 << (i & 63)))) {
            PyErr_Format(CodecError, "%s.%U (field %d) is required but missing, at offset %zd",
                         sd->tp->tp_name, fd->name, (int)fd->fid, (Py_ssize_t)(r->p - r->base));
            rc = -1;
            break;
        }
    }
done:
    PyMem_Free(more);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Output buffer                                                             */
/* ------------------------------------------------------------------------ */

enum { PE_FIELD, PE_INDEX, PE_KEY, PE_MAPKEY };

typedef struct {
    int kind;
    PyObject *obj;            /* field name / map key (borrowed) */
    Py_ssize_t index;
} PathEnt;

typedef struct {
    PyObject *bytes;          /* storage */
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    const StructDesc *root;
    int plen;
    PathEnt path[MAX_DEPTH + 8];
} Writer;

static int
w_init(Writer *w, Py_ssize_t cap)
{
    if (cap < 64)
        cap = 64;
    w->bytes = PyBytes_FromStringAndSize(NULL, cap);
    if (w->bytes == NULL)
        return -1;
    w->buf = PyBytes_AS_STRING(w->bytes);
    w->len = 0;
    w->cap = cap;
    w->plen = 0;
    w->root = NULL;
    return 0;
}

static int
w_grow(Writer *w, Py_ssize_t need)
{
    Py_ssize_t newcap = w->cap * 2;
    if (newcap < w->len + need)
        newcap = w->len + need + 64;
    if (_PyBytes_Resize(&w->bytes, newcap) < 0) {
        w->bytes = NULL;
        return -1;
    }
    w->buf = PyBytes_AS_STRING(w->bytes);
    w->cap = newcap;
    return 0;
}

#define W_ENSURE(w, n)                                                      \
    do {                                                                    \
        if (UNLIKELY((w)->len + (Py_ssize_t)(n) > (w)->cap) &&              \
            w_grow((w), (Py_ssize_t)(n)) < 0)                               \
            return -1;                                                      \
    } while (0)

static PyObject *
w_finish(Writer *w)
{
    if (_PyBytes_Resize(&w->bytes, w->len) < 0) {
        w->bytes = NULL;
        return NULL;
    }
    PyObject *b = w->bytes;
    w->bytes = NULL;
    return b;
}

static void
w_discard(Writer *w)
{
    Py_CLEAR(w->bytes);
}

INLINE void
w_byte_unchecked(Writer *w, uint8_t b)
{
    w->buf[w->len++] = (char)b;
}

INLINE int
w_byte(Writer *w, uint8_t b)
{
    W_ENSURE(w, 1);
    w->buf[w->len++] = (char)b;
    return 0;
}

INLINE int
w_raw(Writer *w, const void *p, Py_ssize_t n)
{
    W_ENSURE(w, n);
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

INLINE int
w_varint(Writer *w, uint64_t v)
{
    W_ENSURE(w, 10);
    char *p = w->buf + w->len;
    while (v >= 0x80) {
        *p++ = (char)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    w->len = p - w->buf;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* encode                                                                    */
/* ------------------------------------------------------------------------ */

static PyObject *
format_path(Writer *w)
{
    PyObject *s = PyUnicode_FromString(w->root ? w->root->tp->tp_name : "?");
    for (int i = 0; s != NULL && i < w->plen; i++) {
        PathEnt *pe = &w->path[i];
        PyObject *part = NULL;
        switch (pe->kind) {
        case PE_FIELD:
            part = PyUnicode_FromFormat(".%U", pe->obj);
            break;
        case PE_INDEX:
            part = PyUnicode_FromFormat("[%zd]", pe->index);
            break;
        case PE_KEY:
            part = PyUnicode_FromFormat("[%R]", pe->obj);
            break;
        case PE_MAPKEY:
            part = PyUnicode_FromFormat("<key %R>", pe->obj);
            break;
        }
        if (part == NULL) {
            PyErr_Clear();
            part = PyUnicode_FromString("[?]");
            if (part == NULL) {
                Py_DECREF(s);
                return NULL;
            }
        }
        PyObject *ns = PyUnicode_Concat(s, part);
        Py_DECREF(s);
        Py_DECREF(part);
        s = ns;
    }
    return s;
}

static int
enc_error(Writer *w, PyObject *exc_type, const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    if (msg == NULL)
        return -1;
    PyObject *path = format_path(w);
    if (path == NULL) {
        Py_DECREF(msg);
        return -1;
    }
    PyErr_Format(exc_type, "%U: %U", path, msg);
    Py_DECREF(path);
    Py_DECREF(msg);
    return -1;
}

static int
enc_wrap_error(Writer *w, const char *what)
{
    /* re-raise the current TypeError/ValueError/OverflowError with the path */
    if (PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_ValueError) ||
        PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyErr_NormalizeException(&et, &ev, &tb);
        PyObject *exc_type = PyErr_GivenExceptionMatches(et, PyExc_TypeError)
                                 ? PyExc_TypeError : CodecError;
        enc_error(w, exc_type, "%s (%S)", what, ev ? ev : Py_None);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
    }
    return -1;
}

static int enc_struct(Writer *w, const StructDesc *sd, PyObject *obj, int depth);
static int enc_value(Writer *w, const TypeDesc *t, PyObject *v, int depth);

static int
enc_get_int(Writer *w, PyObject *v, long long lo, long long hi, const char *tname,
            long long *out)
{
    long long x;
    int overflow = 0;
    if (LIKELY(PyLong_Check(v))) {
        x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            return -1;
    }
    else if (!PyFloat_Check(v) && PyIndex_Check(v)) {
        PyObject *i = PyNumber_Index(v);
        if (i == NULL)
            return enc_wrap_error(w, "cannot convert to int");
        x = PyLong_AsLongLongAndOverflow(i, &overflow);
        Py_DECREF(i);
        if (x == -1 && PyErr_Occurred())
            return -1;
    }
    else {
        return enc_error(w, PyExc_TypeError, "expected int for %s, got %.200s",
                         tname, Py_TYPE(v)->tp_name);
    }
    if (overflow || x < lo || x > hi)
        return enc_error(w, CodecError, "%R out of range for %s", v, tname);
    *out = x;
    return 0;
}

/* UTF-8 encode a str without creating a temporary bytes object */
static int
enc_unicode(Writer *w, PyObject *v)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(v) < 0)
        return -1;
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (PyUnicode_IS_ASCII(v)) {
        if (w_varint(w, (uint64_t)n) < 0)
            return -1;
        return w_raw(w, PyUnicode_DATA(v), n);
    }
    int kind = PyUnicode_KIND(v);
    const void *data = PyUnicode_DATA(v);
    Py_ssize_t blen = 0;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *s = data;
        for (Py_ssize_t i = 0; i < n; i++)
            blen += 1 + (s[i] >= 0x80);
    }
    else if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *s = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS2 c = s[i];
            if (c < 0x80)
                blen += 1;
            else if (c < 0x800)
                blen += 2;
            else if (c >= 0xD800 && c <= 0xDFFF)
                return enc_error(w, CodecError,
                                 "string contains a lone surrogate (not valid UTF-8)");
            else
                blen += 3;
        }
    }
    else {
        const Py_UCS4 *s = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = s[i];
            if (c < 0x80)
                blen += 1;
            else if (c < 0x800)
                blen += 2;
            else if (c < 0x10000) {
                if (c >= 0xD800 && c <= 0xDFFF)
                    return enc_error(w, CodecError,
                                     "string contains a lone surrogate (not valid UTF-8)");
                blen += 3;
            }
            else
                blen += 4;
        }
    }
    if (blen > 0x7fffffff)
        return enc_error(w, CodecError, "string too long");
    if (w_varint(w, (uint64_t)blen) < 0)
        return -1;
    W_ENSURE(w, blen);
    uint8_t *o = (uint8_t *)w->buf + w->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80) {
            *o++ = (uint8_t)c;
        }
        else if (c < 0x800) {
            *o++ = (uint8_t)(0xC0 | (c >> 6));
            *o++ = (uint8_t)(0x80 | (c & 0x3F));
        }
        else if (c < 0x10000) {
            *o++ = (uint8_t)(0xE0 | (c >> 12));
            *o++ = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (uint8_t)(0x80 | (c & 0x3F));
        }
        else {
            *o++ = (uint8_t)(0xF0 | (c >> 18));
            *o++ = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            *o++ = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (uint8_t)(0x80 | (c & 0x3F));
        }
    }
    w->len += blen;
    return 0;
}

static int
enc_binary_like(Writer *w, PyObject *v, int is_string)
{
    if (PyUnicode_Check(v))
        return enc_unicode(w, v);
    if (PyBytes_Check(v)) {
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        if (n > 0x7fffffff)
            return enc_error(w, CodecError, "value too long");
        if (w_varint(w, (uint64_t)n) < 0)
            return -1;
        return w_raw(w, PyBytes_AS_STRING(v), n);
    }
    if (PyObject_CheckBuffer(v) && !PyUnicode_Check(v)) {
        Py_buffer view;
        if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0)
            return enc_wrap_error(w, "unusable buffer");
        int rc = 0;
        if (view.len > 0x7fffffff)
            rc = enc_error(w, CodecError, "value too long");
        else if (w_varint(w, (uint64_t)view.len) < 0 || w_raw(w, view.buf, view.len) < 0)
            rc = -1;
        PyBuffer_Release(&view);
        return rc;
    }
    return enc_error(w, PyExc_TypeError, "expected %s, got %.200s",
                     is_string ? "str" : "bytes", Py_TYPE(v)->tp_name);
}

INLINE int
w_list_header(Writer *w, Py_ssize_t n, int ct)
{
    if (n <= 14)
        return w_byte(w, (uint8_t)((n << 4) | ct));
    if (w_byte(w, (uint8_t)(0xf0 | ct)) < 0)
        return -1;
    return w_varint(w, (uint64_t)n);
}

static int
enc_list(Writer *w, const TypeDesc *t, PyObject *v, int depth)
{
    const TypeDesc *e = t->elem;
    if (UNLIKELY(depth > MAX_DEPTH))
        return enc_error(w, CodecError, "nesting too deep (a reference cycle?)");
    int pi = w->plen++;
    w->path[pi].kind = PE_INDEX;
    w->path[pi].index = 0;
    if (PyList_Check(v) || PyTuple_Check(v)) {
        int is_list = PyList_Check(v);
        Py_ssize_t n = is_list ? PyList_GET_SIZE(v) : PyTuple_GET_SIZE(v);
        if (n > 0x7fffffff) {
            w->plen--;
            return enc_error(w, CodecError, "container too long");
        }
        if (w_list_header(w, n, e->ctype) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (is_list && UNLIKELY(i >= PyList_GET_SIZE(v))) {
                w->plen--;
                return enc_error(w, CodecError, "list changed size during encoding");
            }
            PyObject *item = is_list ? PyList_GET_ITEM(v, i) : PyTuple_GET_ITEM(v, i);
            w->path[pi].index = i;
            Py_INCREF(item);
            int rc = enc_value(w, e, item, depth);
            Py_DECREF(item);
            if (rc < 0)
                return -1;
        }
        if (is_list && PyList_GET_SIZE(v) != n) {
            w->plen--;
            return enc_error(w, CodecError, "list changed size during encoding");
        }
        w->plen--;
        return 0;
    }
    w->plen--;
    if (PyUnicode_Check(v) || PyBytes_Check(v) || PyByteArray_Check(v) || PyDict_Check(v))
        return enc_error(w, PyExc_TypeError, "expected a list, got %.200s",
                         Py_TYPE(v)->tp_name);
    Py_ssize_t n = PyObject_Size(v);
    if (n < 0) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            return enc_error(w, PyExc_TypeError, "expected a list, got %.200s",
                             Py_TYPE(v)->tp_name);
        }
        return -1;
    }
    if (n > 0x7fffffff)
        return enc_error(w, CodecError, "container too long");
    PyObject *it = PyObject_GetIter(v);
    if (it == NULL)
        return enc_wrap_error(w, "not iterable");
    if (w_list_header(w, n, e->ctype) < 0) {
        Py_DECREF(it);
        return -1;
    }
    pi = w->plen++;
    w->path[pi].kind = PE_INDEX;
    Py_ssize_t count = 0;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        w->path[pi].index = count;
        if (count >= n) {
            Py_DECREF(item);
            Py_DECREF(it);
            w->plen--;
            return enc_error(w, CodecError, "container yielded more items than its len()");
        }
        int rc = enc_value(w, e, item, depth);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(it);
            return -1;
        }
        count++;
    }
    Py_DECREF(it);
    w->plen--;
    if (PyErr_Occurred())
        return -1;
    if (count != n)
        return enc_error(w, CodecError, "container yielded fewer items than its len()");
    return 0;
}

static int
enc_map(Writer *w, const TypeDesc *t, PyObject *v, int depth)
{
    if (UNLIKELY(depth > MAX_DEPTH))
        return enc_error(w, CodecError, "nesting too deep (a reference cycle?)");
    PyObject *items = NULL;
    Py_ssize_t n;
    if (PyDict_Check(v)) {
        n = PyDict_GET_SIZE(v);
    }
    else if (PyMapping_Check(v) && !PyList_Check(v) && !PyTuple_Check(v) &&
             !PyUnicode_Check(v) && !PyBytes_Check(v) && PyObject_HasAttrString(v, "items")) {
        items = PyMapping_Items(v);
        if (items == NULL)
            return enc_wrap_error(w, "cannot get mapping items");
        n = PyList_GET_SIZE(items);
    }
    else {
        return enc_error(w, PyExc_TypeError, "expected a dict, got %.200s",
                         Py_TYPE(v)->tp_name);
    }
    if (n > 0x7fffffff) {
        Py_XDECREF(items);
        return enc_error(w, CodecError, "container too long");
    }
    if (n == 0) {
        Py_XDECREF(items);
        return w_byte(w, 0);
    }
    if (w_varint(w, (uint64_t)n) < 0 ||
        w_byte(w, (uint8_t)((t->key->ctype << 4) | t->elem->ctype)) < 0) {
        Py_XDECREF(items);
        return -1;
    }
    int pi = w->plen++;
    Py_ssize_t count = 0;
    int rc = 0;
    if (items == NULL) {
        Py_ssize_t pos = 0;
        PyObject *k, *val;
        while (PyDict_Next(v, &pos, &k, &val)) {
            Py_INCREF(k);
            Py_INCREF(val);
            w->path[pi].kind = PE_MAPKEY;
            w->path[pi].obj = k;
            rc = enc_value(w, t->key, k, depth);
            if (rc == 0) {
                w->path[pi].kind = PE_KEY;
                rc = enc_value(w, t->elem, val, depth);
            }
            Py_DECREF(k);
            Py_DECREF(val);
            if (rc < 0)
                return -1;
            count++;
        }
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *pair = PyList_GET_ITEM(items, i);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                Py_DECREF(items);
                w->plen--;
                return enc_error(w, PyExc_TypeError, "mapping items() must yield pairs");
            }
            PyObject *k = PyTuple_GET_ITEM(pair, 0), *val = PyTuple_GET_ITEM(pair, 1);
            w->path[pi].kind = PE_MAPKEY;
            w->path[pi].obj = k;
            rc = enc_value(w, t->key, k, depth);
            if (rc == 0) {
                w->path[pi].kind = PE_KEY;
                rc = enc_value(w, t->elem, val, depth);
            }
            if (rc < 0) {
                Py_DECREF(items);
                return -1;
            }
            count++;
        }
        Py_DECREF(items);
    }
    w->plen--;
    if (count != n)
        return enc_error(w, CodecError, "dict changed size during encoding");
    return 0;
}

static int
enc_value(Writer *w, const TypeDesc *t, PyObject *v, int depth)
{
    long long x;
    switch (t->ttype) {
    case T_BOOL:
        if (v == Py_True)
            return w_byte(w, CT_TRUE);
        if (v == Py_False)
            return w_byte(w, CT_FALSE);
        if (PyLong_Check(v))
            return w_byte(w, PyObject_IsTrue(v) ? CT_TRUE : CT_FALSE);
        return enc_error(w, PyExc_TypeError, "expected bool, got %.200s",
                         Py_TYPE(v)->tp_name);
    case T_BYTE:
        if (enc_get_int(w, v, -128, 127, "i8", &x) < 0)
            return -1;
        return w_byte(w, (uint8_t)(int8_t)x);
    case T_I16:
        if (enc_get_int(w, v, -32768, 32767, "i16", &x) < 0)
            return -1;
        return w_varint(w, (uint32_t)(((uint32_t)x << 1) ^ (uint32_t)((int32_t)x >> 31)));
    case T_I32:
        if (enc_get_int(w, v, INT32_MIN, INT32_MAX, "i32", &x) < 0)
            return -1;
        return w_varint(w, (uint32_t)(((uint32_t)x << 1) ^ (uint32_t)((int32_t)x >> 31)));
    case T_I64:
        if (enc_get_int(w, v, INT64_MIN, INT64_MAX, "i64", &x) < 0)
            return -1;
        return w_varint(w, ((uint64_t)x << 1) ^ (uint64_t)(x >> 63));
    case T_DOUBLE: {
        double d;
        if (PyFloat_CheckExact(v))
            d = PyFloat_AS_DOUBLE(v);
        else if (PyFloat_Check(v) || PyLong_Check(v) || PyIndex_Check(v) ||
                 (Py_TYPE(v)->tp_as_number && Py_TYPE(v)->tp_as_number->nb_float)) {
            if (PyUnicode_Check(v) || PyBytes_Check(v))
                return enc_error(w, PyExc_TypeError, "expected float, got %.200s",
                                 Py_TYPE(v)->tp_name);
            d = PyFloat_AsDouble(v);
            if (d == -1.0 && PyErr_Occurred())
                return enc_wrap_error(w, "cannot convert to float");
        }
        else
            return enc_error(w, PyExc_TypeError, "expected float, got %.200s",
                             Py_TYPE(v)->tp_name);
        uint64_t u;
        memcpy(&u, &d, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        u = __builtin_bswap64(u);
#endif
        return w_raw(w, &u, 8);
    }
    case T_STRING:
        return enc_binary_like(w, v, 1);
    case T_BINARY:
        return enc_binary_like(w, v, 0);
    case T_STRUCT:
        if (UNLIKELY(Py_TYPE(v) != t->sd->tp && !PyObject_TypeCheck(v, t->sd->tp)))
            return enc_error(w, PyExc_TypeError, "expected %.200s, got %.200s",
                             t->sd->tp->tp_name, Py_TYPE(v)->tp_name);
        return enc_struct(w, t->sd, v, depth + 1);
    case T_LIST:
    case T_SET:
        return enc_list(w, t, v, depth + 1);
    case T_MAP:
        return enc_map(w, t, v, depth + 1);
    }
    PyErr_SetString(PyExc_SystemError, "bad compiled type");
    return -1;
}

static int
enc_struct(Writer *w, const StructDesc *sd, PyObject *obj, int depth)
{
    if (UNLIKELY(depth > MAX_DEPTH))
        return enc_error(w, CodecError, "nesting too deep (a reference cycle?)");
    int32_t last = 0;
    int pi = w->plen++;
    w->path[pi].kind = PE_FIELD;
    for (Py_ssize_t i = 0; i < sd->nfields; i++) {
        const FieldDesc *fd = &sd->fields[i];
        PyObject *v;
        W_ENSURE(w, 4);   /* field header byte(s) below */
        w->path[pi].obj = fd->name;
        if (LOOKUP_ATTR(obj, fd->name, &v) < 0)
            return -1;
        if (v == NULL || v == Py_None) {
            Py_XDECREF(v);
            if (fd->required)
                return enc_error(w, CodecError, "required field is None");
            continue;
        }
        int ct = fd->t.ctype;
        if (fd->t.ttype == T_BOOL) {
            if (v == Py_True)
                ct = CT_TRUE;
            else if (v == Py_False)
                ct = CT_FALSE;
            else if (PyLong_Check(v))
                ct = PyObject_IsTrue(v) ? CT_TRUE : CT_FALSE;
            else {
                enc_error(w, PyExc_TypeError, "expected bool, got %.200s",
                          Py_TYPE(v)->tp_name);
                Py_DECREF(v);
                return -1;
            }
        }
        int32_t delta = fd->fid - last;
        if (delta > 0 && delta <= 15) {
            w_byte_unchecked(w, (uint8_t)((delta << 4) | ct));
        }
        else {
            w_byte_unchecked(w, (uint8_t)ct);
            int32_t f = fd->fid;
            if (w_varint(w, (uint32_t)(((uint32_t)f << 1) ^ (uint32_t)(f >> 31))) < 0) {
                Py_DECREF(v);
                return -1;
            }
        }
        last = fd->fid;
        if (fd->t.ttype != T_BOOL) {
            int rc = enc_value(w, &fd->t, v, depth);
            if (rc < 0) {
                Py_DECREF(v);
                return -1;
            }
        }
        Py_DECREF(v);
    }
    w->plen--;
    return w_byte(w, CT_STOP);
}

/* ------------------------------------------------------------------------ */
/* TJSON transcoding                                                         */
/* ------------------------------------------------------------------------ */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
tj_base64(Writer *w, const uint8_t *s, Py_ssize_t n)
{
    Py_ssize_t outlen = ((n + 2) / 3) * 4;
    W_ENSURE(w, outlen + 2);
    char *o = w->buf + w->len;
    *o++ = '"';
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        *o++ = B64[(v >> 18) & 63];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = B64[(v >> 18) & 63];
        *o++ = B64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    }
    else if (n - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        *o++ = B64[(v >> 18) & 63];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = '=';
    }
    *o++ = '"';
    w->len = o - w->buf;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* JSON string from UTF-8 input (validated) */
static int
tj_string(Reader *r, Writer *w, const uint8_t *s, Py_ssize_t n)
{
    const uint8_t *e = s + n;
    W_ENSURE(w, n + 2);
    w->buf[w->len++] = '"';
    while (s < e) {
        const uint8_t *run = s;
        while (s < e && *s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\')
            s++;
        if (s > run) {
            if (w_raw(w, run, s - run) < 0)
                return -1;
        }
        if (s >= e)
            break;
        uint8_t c = *s;
        if (c < 0x80) {
            W_ENSURE(w, 6);
            char *o = w->buf + w->len;
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = HEX[c >> 4];
                *o++ = HEX[c & 15];
            }
            w->len = o - w->buf;
            s++;
        }
        else {
            int l = utf8_seq_len(s, e);
            if (l == 0) {
                PyErr_Format(CodecError, "invalid UTF-8 in string at offset %zd",
                             (Py_ssize_t)(s - r->base));
                return -1;
            }
            if (w_raw(w, s, l) < 0)
                return -1;
            s += l;
        }
    }
    return w_byte(w, '"');
}

static int
tj_int(Writer *w, long long v, int quote)
{
    char tmp[24];
    int i = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[i++] = (char)('0' + (u % 10));
        u /= 10;
    } while (u);
    W_ENSURE(w, i + 3);
    char *o = w->buf + w->len;
    if (quote)
        *o++ = '"';
    if (v < 0)
        *o++ = '-';
    while (i)
        *o++ = tmp[--i];
    if (quote)
        *o++ = '"';
    w->len = o - w->buf;
    return 0;
}

static int
tj_double(Writer *w, double d, int quote)
{
    if (Py_IS_NAN(d))
        return w_raw(w, "\"NaN\"", 5);
    if (Py_IS_INFINITY(d) && d > 0)
        return w_raw(w, "\"Infinity\"", 10);
    if (Py_IS_INFINITY(d))
        return w_raw(w, "\"-Infinity\"", 11);
    char *s = PyOS_double_to_string(d, 'g', 17, 0, NULL);
    if (s == NULL)
        return -1;
    size_t l = strlen(s);
    int rc = 0;
    if (quote)
        rc = w_byte(w, '"');
    if (rc == 0)
        rc = w_raw(w, s, (Py_ssize_t)l);
    if (rc == 0 && quote)
        rc = w_byte(w, '"');
    PyMem_Free(s);
    return rc;
}

static int tj_struct(Reader *r, Writer *w, const StructDesc *sd, int depth);

static int
tj_value(Reader *r, Writer *w, const TypeDesc *t, int depth, int quote)
{
    switch (t->ttype) {
    case T_BOOL: {
        R_NEED(r, 1);
        uint8_t b = *r->p++;
        return tj_int(w, b == CT_TRUE, quote);
    }
    case T_BYTE:
        R_NEED(r, 1);
        return tj_int(w, (int8_t)*r->p++, quote);
    case T_I16: {
        int32_t v;
        if (read_i16(r, &v) < 0)
            return -1;
        return tj_int(w, v, quote);
    }
    case T_I32: {
        int32_t v;
        if (read_i32(r, &v) < 0)
            return -1;
        return tj_int(w, v, quote);
    }
    case T_I64: {
        int64_t v;
        if (read_i64(r, &v) < 0)
            return -1;
        return tj_int(w, v, quote);
    }
    case T_DOUBLE: {
        R_NEED(r, 8);
        double d = load_double_le(r->p);
        r->p += 8;
        return tj_double(w, d, quote);
    }
    case T_STRING:
    case T_BINARY: {
        Py_ssize_t len;
        if (read_size(r, &len) < 0)
            return -1;
        R_NEED(r, len);
        const uint8_t *s = r->p;
        r->p += len;
        if (t->ttype == T_BINARY)
            return tj_base64(w, s, len);
        return tj_string(r, w, s, len);
    }
    case T_STRUCT:
        return tj_struct(r, w, t->sd, depth + 1);
    case T_LIST:
    case T_SET: {
        Py_ssize_t n;
        int et;
        if (UNLIKELY(depth + 1 > MAX_DEPTH)) {
            r_error(r, "nesting too deep");
            return -1;
        }
        if (read_list_header(r, &n, &et) < 0)
            return -1;
        if (n && UNLIKELY(!ctype_matches(t->elem, et))) {
            r_error(r, "list element type does not match the schema");
            return -1;
        }
        W_ENSURE(w, 8);
        w->buf[w->len++] = '[';
        w->buf[w->len++] = '"';
        const char *nm = tjson_name(t->elem->ttype);
        if (w_raw(w, nm, strlen(nm)) < 0 || w_raw(w, "\",", 2) < 0 || tj_int(w, n, 0) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (w_byte(w, ',') < 0 || tj_value(r, w, t->elem, depth + 1, 0) < 0)
                return -1;
        }
        return w_byte(w, ']');
    }
    case T_MAP: {
        Py_ssize_t n;
        int kt, vt;
        if (UNLIKELY(depth + 1 > MAX_DEPTH)) {
            r_error(r, "nesting too deep");
            return -1;
        }
        if (read_map_header(r, &n, &kt, &vt) < 0)
            return -1;
        if (n && UNLIKELY(!ctype_matches(t->key, kt) || !ctype_matches(t->elem, vt))) {
            r->p--;
            r_error(r, "map key/value types do not match the schema");
            return -1;
        }
        const char *kn = tjson_name(t->key->ttype), *vn = tjson_name(t->elem->ttype);
        if (w_raw(w, "[\"", 2) < 0 || w_raw(w, kn, strlen(kn)) < 0 ||
            w_raw(w, "\",\"", 3) < 0 || w_raw(w, vn, strlen(vn)) < 0 ||
            w_raw(w, "\",", 2) < 0 || tj_int(w, n, 0) < 0 || w_raw(w, ",{", 2) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i && w_byte(w, ',') < 0)
                return -1;
            if (tj_value(r, w, t->key, depth + 1, 1) < 0 || w_byte(w, ':') < 0 ||
                tj_value(r, w, t->elem, depth + 1, 0) < 0)
                return -1;
        }
        return w_raw(w, "}]", 2);
    }
    }
    PyErr_SetString(PyExc_SystemError, "bad compiled type");
    return -1;
}

static int
tj_struct(Reader *r, Writer *w, const StructDesc *sd, int depth)
{
    if (UNLIKELY(depth > MAX_DEPTH)) {
        r_error(r, "nesting too deep");
        return -1;
    }
    if (w_byte(w, '{') < 0)
        return -1;
    int first = 1;
    int32_t last = 0, fid;
    int ct;
    for (;;) {
        if (read_field_header(r, &last, &ct, &fid) < 0)
            return -1;
        if (ct == CT_STOP)
            break;
        const FieldDesc *fd = sd_lookup(sd, fid);
        if (fd == NULL || !ctype_matches(&fd->t, ct)) {
            if (ct != CT_TRUE && ct != CT_FALSE && skip_value(r, ct, depth) < 0)
                return -1;
            continue;
        }
        W_ENSURE(w, fd->jhead_len + 4);
        if (!first)
            w->buf[w->len++] = ',';
        first = 0;
        memcpy(w->buf + w->len, fd->jhead, fd->jhead_len);
        w->len += fd->jhead_len;
        if (fd->t.ttype == T_BOOL) {
            w->buf[w->len++] = ct == CT_TRUE ? '1' : '0';
        }
        else if (tj_value(r, w, &fd->t, depth, 0) < 0) {
            return -1;
        }
        if (w_byte(w, '}') < 0)
            return -1;
    }
    return w_byte(w, '}');
}

/* ------------------------------------------------------------------------ */
/* Argument parsing                                                          */
/* ------------------------------------------------------------------------ */

static int
parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           const char *const *names, int nreq, int nmax, PyObject **out)
{
    for (int i = 0; i < nmax; i++)
        out[i] = NULL;
    if (nargs > nmax) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)",
                     fname, nmax, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        out[i] = args[i];
    if (kwnames) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t j = 0; j < nk; j++) {
            PyObject *kw = PyTuple_GET_ITEM(kwnames, j);
            int found = -1;
            for (int i = 0; i < nmax; i++) {
                if (PyUnicode_CompareWithASCIIString(kw, names[i]) == 0) {
                    found = i;
                    break;
                }
            }
            if (found < 0) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R",
                             fname, kw);
                return -1;
            }
            if (out[found] != NULL) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                             fname, names[found]);
                return -1;
            }
            out[found] = args[nargs + j];
        }
    }
    for (int i = 0; i < nreq; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'",
                         fname, names[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *
pair(PyObject *a, Py_ssize_t end)
{
    if (a == NULL)
        return NULL;
    PyObject *e = PyLong_FromSsize_t(end);
    if (e == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
        Py_DECREF(a);
        Py_DECREF(e);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, e);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Module functions                                                          */
/* ------------------------------------------------------------------------ */

/* The (buf, cls, offset=0) arguments of decode and to_tjson: the class's description, the
   buffer (release it with inbuf_release) and the checked offset.  -1 with an exception set. */
static int
struct_args(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
            StructDesc **sd, InBuf *b, Py_ssize_t *off)
{
    static const char *const names[] = {"buf", "cls", "offset"};
    PyObject *a[3];
    if (parse_args(fn, args, nargs, kwnames, names, 2, 3, a) < 0)
        return -1;
    if ((*sd = get_desc(a[1])) == NULL)
        return -1;
    if (inbuf_get(a[0], b) < 0)
        return -1;
    if (parse_offset(a[2], b->len, off) < 0) {
        inbuf_release(b);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(decode_doc,
"decode(buf, cls, offset=0) -> (obj, end)\n\n"
"Decode one compact-protocol struct of thriftpy2 class *cls* from the\n"
"bytes-like *buf* starting at *offset*; return the object and the offset\n"
"just past it.  Unknown fields and fields of unexpected wire type are\n"
"skipped; absent fields keep the defaults cls() would give them.\n"
"Malformed input raises CodecError.");

static PyObject *
py_decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    StructDesc *sd;
    InBuf b;
    Py_ssize_t off;
    if (struct_args("decode", args, nargs, kwnames, &sd, &b, &off) < 0)
        return NULL;
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        inbuf_release(&b);
        return NULL;
    }
    Reader r = READER(b.data + off, b.data + b.len, b.data);
    PyObject *obj = decode_struct(&r, sd, 1);
    PyObject *end = obj ? PyLong_FromSsize_t(r.p - r.base) : NULL;
    inbuf_release(&b);
    if (end == NULL) {
        Py_XDECREF(obj);
        Py_DECREF(result);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, obj);
    PyTuple_SET_ITEM(result, 1, end);
    return result;
}

PyDoc_STRVAR(encode_doc,
"encode(obj) -> bytes\n\n"
"Encode the thriftpy2 struct *obj* with the compact protocol, byte-identical\n"
"to Apache Thrift's accelerated compact encoder.  A required field that is\n"
"None raises CodecError; a value of the wrong Python type raises TypeError\n"
"naming the field; out-of-range integers raise CodecError.");

static PyObject *
py_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"obj"};
    PyObject *a[1];
    if (parse_args("encode", args, nargs, kwnames, names, 1, 1, a) < 0)
        return NULL;
    StructDesc *sd = get_desc((PyObject *)Py_TYPE(a[0]));
    if (sd == NULL)
        return NULL;
    Writer w;
    if (w_init(&w, sd->size_hint) < 0)
        return NULL;
    w.root = sd;
    if (enc_struct(&w, sd, a[0], 1) < 0) {
        w_discard(&w);
        return NULL;
    }
    Py_ssize_t hint = w.len + w.len / 8 + 16;
    sd->size_hint = hint > (1 << 24) ? (1 << 24) : hint;
    return w_finish(&w);
}

PyDoc_STRVAR(skip_doc,
"skip(buf, offset=0) -> end\n\n"
"Validate one well-formed compact struct starting at *offset* without\n"
"building objects (structure only: types, lengths, varints, nesting) and\n"
"return the offset just past it.  Malformed input raises CodecError.");

static PyObject *
py_skip(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"buf", "offset"};
    PyObject *a[2];
    if (parse_args("skip", args, nargs, kwnames, names, 1, 2, a) < 0)
        return NULL;
    InBuf b;
    if (inbuf_get(a[0], &b) < 0)
        return NULL;
    Py_ssize_t off;
    if (parse_offset(a[1], b.len, &off) < 0) {
        inbuf_release(&b);
        return NULL;
    }
    Reader r = READER(b.data + off, b.data + b.len, b.data);
    int rc = skip_struct(&r, 1);
    Py_ssize_t end = r.p - r.base;
    inbuf_release(&b);
    if (rc < 0)
        return NULL;
    return PyLong_FromSsize_t(end);
}

PyDoc_STRVAR(validate_doc,
"validate(buf, cls, offset=0) -> end\n\n"
"Check, in one pass and without building objects, that the compact struct at\n"
"*offset* is what decode(buf, cls, offset) accepts and that every struct in it,\n"
"at any depth, holds its required fields; return the offset just past it.\n"
"Otherwise raise CodecError (a missing field is named as Struct.field).");

static PyObject *
py_validate(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    StructDesc *sd;
    InBuf b;
    Py_ssize_t off;
    if (struct_args("validate", args, nargs, kwnames, &sd, &b, &off) < 0)
        return NULL;
    Reader r = READER(b.data + off, b.data + b.len, b.data);
    int rc = validate_struct(&r, sd, 1);
    Py_ssize_t end = r.p - r.base;
    inbuf_release(&b);
    if (rc < 0)
        return NULL;
    return PyLong_FromSsize_t(end);
}

PyDoc_STRVAR(read_string_field_doc,
"read_string_field(buf, field_id, offset=0) -> str | None\n\n"
"Return the value of the top-level string field *field_id* of the compact\n"
"struct at *offset* (e.g. Communication.id is field 1), skipping other\n"
"fields; None if the struct ends without it.  Stops at the first\n"
"occurrence and does not validate the rest of the struct (use skip()).");

static PyObject *
py_read_string_field(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    static const char *const names[] = {"buf", "field_id", "offset"};
    PyObject *a[3];
    if (parse_args("read_string_field", args, nargs, kwnames, names, 2, 3, a) < 0)
        return NULL;
    long want = PyLong_AsLong(a[1]);
    if (want == -1 && PyErr_Occurred())
        return NULL;
    InBuf b;
    if (inbuf_get(a[0], &b) < 0)
        return NULL;
    Py_ssize_t off;
    if (parse_offset(a[2], b.len, &off) < 0) {
        inbuf_release(&b);
        return NULL;
    }
    Reader r = READER(b.data + off, b.data + b.len, b.data);
    PyObject *result = NULL;
    int32_t last = 0, fid;
    int ct;
    for (;;) {
        if (read_field_header(&r, &last, &ct, &fid) < 0)
            goto done;
        if (ct == CT_STOP) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        if (fid == want && ct == CT_BINARY) {
            Py_ssize_t len;
            if (read_size(&r, &len) < 0)
                goto done;
            if (len > r.end - r.p) {
                r_error(&r, "truncated input");
                goto done;
            }
            result = make_str(&r, r.p, len);
            goto done;
        }
        if (ct != CT_TRUE && ct != CT_FALSE && skip_value(&r, ct, 1) < 0)
            goto done;
    }
done:
    inbuf_release(&b);
    return result;
}

PyDoc_STRVAR(to_tjson_doc,
"to_tjson(buf, cls, offset=0) -> (bytes, end)\n\n"
"Transcode one compact struct of thriftpy2 class *cls* into Apache Thrift\n"
"TJSONProtocol struct text: what TJSONProtocol's writer produces for the\n"
"object that was encoded (fields absent on the wire stay absent), except\n"
"that non-finite doubles are written \"NaN\"/\"Infinity\"/\"-Infinity\" and\n"
"other control characters as \\u00XX, which TJSONProtocol's reader accepts.\n"
"Fields unknown to *cls* or of another wire type are dropped.\n"
"Returns the JSON bytes and the end offset of the compact struct.");

static PyObject *
py_to_tjson(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    StructDesc *sd;
    InBuf b;
    Py_ssize_t off;
    if (struct_args("to_tjson", args, nargs, kwnames, &sd, &b, &off) < 0)
        return NULL;
    Reader r = READER(b.data + off, b.data + b.len, b.data);
    Writer w;
    Py_ssize_t cap = (b.len - off) * 2 + 64;
    if (cap > (1 << 20))
        cap = 1 << 20;
    if (w_init(&w, cap) < 0) {
        inbuf_release(&b);
        return NULL;
    }
    int rc = tj_struct(&r, &w, sd, 1);
    Py_ssize_t end = r.p - r.base;
    inbuf_release(&b);
    if (rc < 0) {
        w_discard(&w);
        return NULL;
    }
    return pair(w_finish(&w), end);
}

/* ------------------------------------------------------------------------ */
/* The server's fetch fast path                                              */
/* ------------------------------------------------------------------------ */

/* The one parse of a fetch CALL in the usual layout: 0x82 0x21, varint seqid (at most 5 bytes,
 * < 2**32), "fetch", fetch_args field 1 (struct), FetchRequest field 1 (list<string>, fewer than 15
 * ids, each under 128 bytes), then the two STOPs, which end the message exactly.  Returns the number
 * of ids (their spans in at[] and len[]) and the seqid, or -1 for anything else. */
#define USUAL_MAX_IDS 14
static int
scan_fetch_call(const unsigned char *q, const unsigned char *end, uint32_t *seqid_out,
                const unsigned char **at, Py_ssize_t *len)
{
    if (end - q < 2 || q[0] != 0x82 || q[1] != 0x21)
        return -1;
    q += 2;
    uint64_t seqid = 0;
    int shift = 0;
    for (;;) {
        if (q >= end || shift > 28)
            return -1;
        unsigned char c = *q++;
        seqid |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80))
            break;
        shift += 7;
    }
    if (seqid > 0xFFFFFFFFu)
        return -1;
    if (end - q < 9 || memcmp(q, "\x05" "fetch" "\x1c\x19", 8) != 0)
        return -1;
    q += 8;
    unsigned char head = *q++;
    if ((head & 0x0F) != 8 || head >= 0xF0)
        return -1;
    int n = head >> 4;
    for (int i = 0; i < n; i++) {
        if (q >= end || *q >= 0x80 || end - q - 1 < *q)
            return -1;
        len[i] = *q++;
        at[i] = q;
        q += len[i];
    }
    if (end - q != 2 || q[0] != 0 || q[1] != 0)
        return -1;
    *seqid_out = (uint32_t)seqid;
    return n;
}

PyDoc_STRVAR(usual_fetch_call_doc,
"usual_fetch_call(data, pos) -> (seqid, ids) | None\n\n"
"The seqid (signed) and ids of the fetch CALL that fills the bytes *data*\n"
"from *pos* on, in the usual layout (fewer than 15 ids, each under 128 bytes,\n"
"no other FetchRequest field); None for anything else, ids that are not\n"
"UTF-8 included.  Twin: aioaccess.wire.fetch_call._usual_fetch_call.");

static PyObject *
py_usual_fetch_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "usual_fetch_call() takes 2 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    if (!PyBytes_CheckExact(data) || pos < 0 || pos > PyBytes_GET_SIZE(data))
        Py_RETURN_NONE;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    const unsigned char *at[USUAL_MAX_IDS];
    Py_ssize_t len[USUAL_MAX_IDS];
    uint32_t seqid;
    int n = scan_fetch_call(p + pos, p + PyBytes_GET_SIZE(data), &seqid, at, len);
    if (n < 0)
        Py_RETURN_NONE;
    PyObject *ids = PyList_New(n);
    if (ids == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *key = PyUnicode_DecodeUTF8((const char *)at[i], len[i], NULL);
        if (key == NULL) {
            Py_DECREF(ids);
            PyErr_Clear(); /* not UTF-8: the general parser reports it */
            Py_RETURN_NONE;
        }
        PyList_SET_ITEM(ids, i, key);
    }
    PyObject *result = Py_BuildValue("(lN)", (long)(int32_t)seqid, ids);
    return result;
}

PyDoc_STRVAR(fetch_reply_now_doc,
"fetch_reply_now(data, table, max_reply_size, join_below) -> bytes | None\n\n"
"The framed reply to *data* when *data* is exactly one framed compact\n"
"``fetch`` CALL in the usual layout (see usual_fetch_call) and every id is\n"
"a key of the dict *table* (id -> compact bytes).  None for anything else,\n"
"so the caller answers it the general way: a missing id, a reply of several\n"
"Communications over *max_reply_size* bytes, one of *join_below* bytes or\n"
"more (better written without joining), or any other message.  The reply\n"
"is byte-identical to aioaccess.wire.fetch_reply.build_fetch_reply's.");

static PyObject *
py_fetch_reply_now(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fetch_reply_now() takes 4 arguments");
        return NULL;
    }
    PyObject *data = args[0], *table = args[1];
    Py_ssize_t max_size = PyLong_AsSsize_t(args[2]);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t join_below = PyLong_AsSsize_t(args[3]);
    if (join_below == -1 && PyErr_Occurred())
        return NULL;
    if (!PyBytes_CheckExact(data) || !PyDict_CheckExact(table))
        Py_RETURN_NONE;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    /* one whole frame: 4-byte big-endian length, then exactly that many bytes */
    if (len < 4 + 12)
        Py_RETURN_NONE;
    uint32_t flen = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    if ((Py_ssize_t)flen != len - 4)
        Py_RETURN_NONE;
    const unsigned char *at[USUAL_MAX_IDS];
    Py_ssize_t idlen[USUAL_MAX_IDS];
    uint32_t seqid;
    int n = scan_fetch_call(p + 4, p + len, &seqid, at, idlen);
    if (n < 0)
        Py_RETURN_NONE;
    PyObject *comms[USUAL_MAX_IDS]; /* strong references: the dict may change while later ids are looked up */
    int held = 0;
    PyObject *out = NULL;
    Py_ssize_t total = 0;
    for (int i = 0; i < n; i++) {
        PyObject *key = PyUnicode_DecodeUTF8((const char *)at[i], idlen[i], NULL);
        if (key == NULL) {
            PyErr_Clear(); /* not UTF-8: the general path reports it */
            goto decline;
        }
        PyObject *value = PyDict_GetItemWithError(table, key); /* borrowed */
        Py_DECREF(key);
        if (value == NULL) {
            if (PyErr_Occurred())
                goto done;
            goto decline;
        }
        if (!PyBytes_CheckExact(value))
            goto decline;
        Py_INCREF(value);
        comms[held++] = value;
        total += PyBytes_GET_SIZE(value);
    }
    if (total >= join_below)
        goto decline;
    unsigned char rhead[32];
    Py_ssize_t h = 0;
    rhead[h++] = 0x82;
    rhead[h++] = 0x41; /* REPLY */
    uint64_t v = seqid;
    while (v >= 0x80) {
        rhead[h++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    rhead[h++] = (unsigned char)v;
    /* name; success: field 0 (long form: 0x0c, zigzag 0), a struct; FetchResult field 1, a list */
    memcpy(rhead + h, "\x05" "fetch" "\x0c\x00\x19", 9);
    h += 9;
    rhead[h++] = (unsigned char)((n << 4) | 12);
    Py_ssize_t size = h + total + 2;
    if (n > 1 && size > max_size)
        goto decline;
    out = PyBytes_FromStringAndSize(NULL, 4 + size);
    if (out == NULL)
        goto done;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    o[0] = (unsigned char)(size >> 24);
    o[1] = (unsigned char)(size >> 16);
    o[2] = (unsigned char)(size >> 8);
    o[3] = (unsigned char)size;
    o += 4;
    memcpy(o, rhead, h);
    o += h;
    for (int i = 0; i < n; i++) {
        Py_ssize_t k = PyBytes_GET_SIZE(comms[i]);
        memcpy(o, PyBytes_AS_STRING(comms[i]), k);
        o += k;
    }
    o[0] = 0;
    o[1] = 0;
    goto done;
decline:
    out = Py_NewRef(Py_None);
done:
    while (held > 0)
        Py_DECREF(comms[--held]);
    return out;
}

/* ------------------------------------------------------------------------ */
/* GC tracking of decoded trees: gc_track, gc_untrack                        */
/* ------------------------------------------------------------------------ */

static PyObject *g_thrift_spec = NULL;   /* interned "thrift_spec" */

/* lists, dicts, tuples, sets and thriftpy2 struct instances: what the walks enter */
static int
walkable(PyObject *o)
{
    if (PyList_CheckExact(o) || PyDict_CheckExact(o) || PyTuple_CheckExact(o) ||
        PyAnySet_CheckExact(o))
        return 1;
    if (PyType_Check(o) || !PyObject_IS_GC(o))
        return 0;
    return _PyType_Lookup(Py_TYPE(o), g_thrift_spec) != NULL;
}

static int
collect_child(PyObject *o, void *arg)
{
    if (o == NULL || !PyObject_IS_GC(o) || PyType_Check(o))
        return 0;
    return PyList_Append((PyObject *)arg, o);
}

/* the GC objects o refers to (its type left out), as a new list */
static PyObject *
children(PyObject *o)
{
    PyObject *kids = PyList_New(0);
    if (kids == NULL)
        return NULL;
    traverseproc trav = Py_TYPE(o)->tp_traverse;
    if (trav != NULL && trav(o, collect_child, kids) < 0) {
        Py_DECREF(kids);
        return NULL;
    }
    return kids;
}

#define WALK_DEPTH 1000

/* Untrack o and what it holds, bottom up, where nothing tracked stays below.
   Returns 1 when o stays tracked, 0 when it is untracked (or no GC object),
   -1 on error.  seen: {id: None while being walked, then whether it stays tracked}. */
static int
untrack_rec(PyObject *o, PyObject *seen, int depth)
{
    if (!PyObject_IS_GC(o))
        return 0;
    if (!walkable(o))
        return PyObject_GC_IsTracked(o);
    PyObject *key = PyLong_FromVoidPtr(o);
    if (key == NULL)
        return -1;
    PyObject *state = PyDict_GetItemWithError(seen, key);
    if (state != NULL) {
        Py_DECREF(key);
        return state != Py_False;  /* None: being walked, so in a cycle: keep it */
    }
    if (PyErr_Occurred() || PyDict_SetItem(seen, key, Py_None) < 0) {
        Py_DECREF(key);
        return -1;
    }
    int keep = depth > WALK_DEPTH || PyExceptionInstance_Check(o);
    PyObject *kids = children(o);
    if (kids == NULL) {
        Py_DECREF(key);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(kids); i++) {
        int k = depth > WALK_DEPTH ? PyObject_GC_IsTracked(PyList_GET_ITEM(kids, i))
                                   : untrack_rec(PyList_GET_ITEM(kids, i), seen, depth + 1);
        if (k < 0) {
            Py_DECREF(kids);
            Py_DECREF(key);
            return -1;
        }
        keep |= k;
    }
    Py_DECREF(kids);
    gc_settle(o, keep);
    int rc = PyDict_SetItem(seen, key, keep ? Py_True : Py_False);
    Py_DECREF(key);
    return rc < 0 ? -1 : keep;
}

PyDoc_STRVAR(gc_untrack_doc,
"gc_untrack(obj) -> obj\n\n"
"Take *obj* and the lists, dicts and thriftpy2 structs inside it out of\n"
"Python's cyclic garbage collector wherever that is safe: bottom up, an\n"
"object whose values are all atoms or untracked objects (and that is not\n"
"an exception).  decode() leaves its results so; this does the same for\n"
"objects built otherwise.  Returns *obj*.");

static PyObject *
py_gc_untrack(PyObject *self, PyObject *obj)
{
    PyObject *seen = PyDict_New();
    if (seen == NULL)
        return NULL;
    int rc = untrack_rec(obj, seen, 0);
    Py_DECREF(seen);
    if (rc < 0)
        return NULL;
    Py_INCREF(obj);
    return obj;
}

PyDoc_STRVAR(gc_track_doc,
"gc_track(obj) -> obj\n\n"
"Put *obj* and every list, dict, tuple, set and thriftpy2 struct reachable\n"
"from it back under Python's cyclic garbage collector.\n\n"
"decode() leaves objects that cannot be part of a reference cycle untracked,\n"
"so collections never traverse them.  Python does not track them again when\n"
"you later store an object in them: if you link decoded objects into a\n"
"reference cycle yourself (say token.sentence = sentence), call gc_track()\n"
"on the tree first, or the cycle is never reclaimed once dropped.\n"
"add_references_to_communication() tracks the objects its references\n"
"link into cycles itself.");

static PyObject *
py_gc_track(PyObject *self, PyObject *obj)
{
    PyObject *seen = PySet_New(NULL);
    PyObject *stack = PyList_New(0);
    if (seen == NULL || stack == NULL || PyList_Append(stack, obj) < 0)
        goto fail;
    while (PyList_GET_SIZE(stack)) {
        Py_ssize_t n = PyList_GET_SIZE(stack);
        PyObject *o = PyList_GET_ITEM(stack, n - 1);
        Py_INCREF(o);
        if (PyList_SetSlice(stack, n - 1, n, NULL) < 0) {
            Py_DECREF(o);
            goto fail;
        }
        PyObject *key = walkable(o) ? PyLong_FromVoidPtr(o) : NULL;
        int fresh = key ? PySet_Contains(seen, key) == 0 && PySet_Add(seen, key) == 0 : 0;
        Py_XDECREF(key);
        if (fresh) {
            if (!PyObject_GC_IsTracked(o))
                PyObject_GC_Track(o);
            PyObject *kids = children(o);
            if (kids == NULL || PyList_SetSlice(stack, n - 1, n - 1, kids) < 0) {
                Py_XDECREF(kids);
                Py_DECREF(o);
                goto fail;
            }
            Py_DECREF(kids);
        }
        Py_DECREF(o);
        if (PyErr_Occurred())
            goto fail;
    }
    Py_DECREF(seen);
    Py_DECREF(stack);
    Py_INCREF(obj);
    return obj;
fail:
    Py_XDECREF(seen);
    Py_XDECREF(stack);
    return NULL;
}

/* gc_hold: objects that references link into cycles, kept out of the GC for as long as
   their Communication lives.  g_held maps a weak reference to each such Communication to the
   list of its held objects (strong references, untracked; keyed by the weak reference's
   address, as hashing it would hash the Communication); when the Communication dies,
   release_held tracks them all again and drops the list, and the collector takes over. */
static PyObject *g_held = NULL;          /* {id(weakref(comm)): (weakref, [objects])} */
static PyObject *g_release = NULL;       /* the weakref callback */

static void
track_all(PyObject *list)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *o = PyList_GET_ITEM(list, i);
        if (PyObject_IS_GC(o) && !PyObject_GC_IsTracked(o))
            PyObject_GC_Track(o);
    }
}

static PyObject *
release_held(PyObject *self, PyObject *wr)
{
    PyObject *key = PyLong_FromVoidPtr(wr);
    if (key == NULL)
        return NULL;
    PyObject *entry = PyDict_GetItemWithError(g_held, key);
    if (entry == NULL) {
        Py_DECREF(key);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(entry);
    track_all(PyTuple_GET_ITEM(entry, 1));
    int rc = PyDict_DelItem(g_held, key);
    Py_DECREF(key);
    Py_DECREF(entry);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
collect_dict(PyObject *o, void *arg)
{
    if (o != NULL && PyDict_CheckExact(o))
        return PyList_Append((PyObject *)arg, o);
    return 0;
}

PyDoc_STRVAR(gc_hold_doc,
"gc_hold(comm, objects) -> None\n\n"
"*objects* (a list) are objects new references link into cycles inside\n"
"*comm*.  While the untracked *comm* lives they are held (so never garbage)\n"
"and kept out of the cyclic GC, with their instance dicts; when *comm* dies\n"
"they are tracked again, and the collector reclaims the cycles.  A tracked\n"
"*comm*, or one without weak references: the objects are simply tracked.");

static PyObject *
py_gc_hold(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "gc_hold(comm, objects: list)");
        return NULL;
    }
    PyObject *comm = args[0], *objects = args[1];
    if (PyObject_GC_IsTracked(comm) || !PyType_SUPPORTS_WEAKREFS(Py_TYPE(comm))) {
        track_all(objects);
        Py_RETURN_NONE;
    }
    PyObject *held = PyList_New(0);
    if (held == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objects); i++) {
        PyObject *o = PyList_GET_ITEM(objects, i);
        if (!PyObject_IS_GC(o))
            continue;
        if (PyList_Append(held, o) < 0)
            goto fail;
        /* instance dicts (and dict values) of o: tracked again when a reference is stored */
        if (!PyList_CheckExact(o) && !PyDict_CheckExact(o) && Py_TYPE(o)->tp_traverse != NULL &&
            Py_TYPE(o)->tp_traverse(o, collect_dict, held) < 0)
            goto fail;
    }
    PyObject *wr = PyWeakref_NewRef(comm, g_release);
    if (wr == NULL)
        goto fail;
    PyObject *key = PyLong_FromVoidPtr(wr);
    PyObject *entry = key ? PyTuple_Pack(2, wr, held) : NULL;
    int rc = entry ? PyDict_SetItem(g_held, key, entry) : -1;
    Py_XDECREF(key);
    if (rc < 0) {
        Py_XDECREF(entry);
        Py_DECREF(wr);
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(held); i++)
        gc_hide(PyList_GET_ITEM(held, i));
    gc_hide(held);
    gc_hide(wr);
    gc_hide(entry);
    Py_DECREF(entry);
    Py_DECREF(wr);
    Py_DECREF(held);
    /* comm's own attribute dict, when Python made one for the new attributes: untracked
       again if it now holds only untracked objects (a dict re-tracks itself on insert) */
    PyObject *dicts = PyList_New(0);
    if (dicts == NULL || (Py_TYPE(comm)->tp_traverse != NULL &&
                          Py_TYPE(comm)->tp_traverse(comm, collect_dict, dicts) < 0)) {
        Py_XDECREF(dicts);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(dicts); i++) {
        PyObject *d = PyList_GET_ITEM(dicts, i), *k, *v;
        Py_ssize_t pos = 0;
        int keep = 0;
        while (!keep && PyDict_Next(d, &pos, &k, &v))
            keep = PyObject_GC_IsTracked(k) || PyObject_GC_IsTracked(v);
        gc_settle(d, keep);
    }
    Py_DECREF(dicts);
    Py_RETURN_NONE;
fail:
    track_all(held);
    Py_DECREF(held);
    return NULL;
}

static PyMethodDef release_def = {"_release_held", release_held, METH_O, NULL};

PyDoc_STRVAR(held_count_doc, "held_count() -> int: Communications whose reference cycles gc_hold holds.");

static PyObject *
py_held_count(PyObject *self, PyObject *unused)
{
    return PyLong_FromSsize_t(PyDict_GET_SIZE(g_held));
}

static PyMethodDef methods[] = {
    {"decode", (PyCFunction)(void (*)(void))py_decode, METH_FASTCALL | METH_KEYWORDS,
     decode_doc},
    {"encode", (PyCFunction)(void (*)(void))py_encode, METH_FASTCALL | METH_KEYWORDS,
     encode_doc},
    {"skip", (PyCFunction)(void (*)(void))py_skip, METH_FASTCALL | METH_KEYWORDS, skip_doc},
    {"validate", (PyCFunction)(void (*)(void))py_validate, METH_FASTCALL | METH_KEYWORDS,
     validate_doc},
    {"read_string_field", (PyCFunction)(void (*)(void))py_read_string_field,
     METH_FASTCALL | METH_KEYWORDS, read_string_field_doc},
    {"to_tjson", (PyCFunction)(void (*)(void))py_to_tjson, METH_FASTCALL | METH_KEYWORDS,
     to_tjson_doc},
    {"fetch_reply_now", (PyCFunction)(void (*)(void))py_fetch_reply_now, METH_FASTCALL,
     fetch_reply_now_doc},
    {"usual_fetch_call", (PyCFunction)(void (*)(void))py_usual_fetch_call, METH_FASTCALL,
     usual_fetch_call_doc},
    {"gc_track", py_gc_track, METH_O, gc_track_doc},
    {"gc_untrack", py_gc_untrack, METH_O, gc_untrack_doc},
    {"gc_hold", (PyCFunction)(void (*)(void))py_gc_hold, METH_FASTCALL, gc_hold_doc},
    {"held_count", py_held_count, METH_NOARGS, held_count_doc},
    {NULL, NULL, 0, NULL}
};

PyDoc_STRVAR(module_doc,
"Compiled Thrift compact-protocol codec for thriftpy2 structs.\n\n"
"Same codec API as aioaccess.codec.compact (the pure-Python twin), plus\n"
"fetch_reply_now and usual_fetch_call (twins in aioaccess.wire.fetch_call).");

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_speedups", module_doc, -1, methods,
    NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *errmod = PyImport_ImportModule("aioaccess.codec.errors");
    if (errmod == NULL)
        return NULL;
    CodecError = PyObject_GetAttrString(errmod, "CodecError");
    Py_DECREF(errmod);
    if (CodecError == NULL)
        return NULL;
    g_cache = PyDict_New();
    g_retained = PyList_New(0);
    g_empty_tuple = PyTuple_New(0);
    g_thrift_spec = PyUnicode_InternFromString("thrift_spec");
    g_held = PyDict_New();
    g_release = PyCFunction_New(&release_def, NULL);
    if (!g_cache || !g_retained || !g_empty_tuple || !g_thrift_spec || !g_held || !g_release)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    Py_INCREF(CodecError);
    if (PyModule_AddObject(m, "CodecError", CodecError) < 0 ||
        PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
