/* embedlog._speedups: the per-record hot paths of producing and consuming, in C (optional).
 *
 * Two things are paid once per record when producing: ``Producer.send`` and laying the
 * record into its batch.  In Python they cost ~0.9 us and ~0.5 us a record on a 2-core
 * machine, which caps ``send`` + ``flush`` below a million records a second (issue 2).
 * This module does exactly what the pure-Python code does, no more:
 *
 * - ``SendBase``: a base class of ``embedlog.producer.Producer`` whose ``send`` is the fast
 *   path of ``embedlog.sendpath._PySendBase.send`` (bytes key and value, a key seen
 *   before, no partition or timestamp, headers in the common shape) and which hands every
 *   other record to ``self._send`` unchanged.  Its fields are the Python base's
 *   attributes, under the same names.
 * - ``encode_records``: one batch of record-batch format v1 (``codec/batch.py``) from a
 *   producer's flat record buffer, for records without headers or compression.  The CRC
 *   and the stamped fields are left zero: the caller fills them, as in ``codec.encode``.
 * - ``messages``: a consumer's ``Message`` tuples for a run of a decoded batch's records,
 *   one allocation each (the consumer's ``map``/``zip`` of ``tuple.__new__`` makes three).
 * - ``decode_one``: ``codec.batch.decode`` of a small one-record batch (header, CRC and
 *   record in one call, ~1 us where the Python path takes ~5 us).
 * - ``split_column``: a batch's keys or values cut out by their length column, one bytes
 *   object each (the Python path compiles a struct format per column shape).
 *
 * The pure-Python code stays the reference: tests compare the two (``tests/test_speedups.py``)
 * and ``EMBEDLOG_PURE_PYTHON=1`` makes embedlog ignore this module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* -- SendBase ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *fast;          /* _fast: topic -> _TopicState */
    PyObject *last_headers;  /* _last_headers: the last header tuple send checked */
    PyObject *last_pair;     /* _last_pair: the last single header pair send checked */
    PyObject *last_name;     /* _last_name: its name */
    Py_ssize_t buffer_limit; /* _buffer_limit: buffer entries that trigger a write */
    Py_ssize_t pending;      /* _pending: entries buffered, all partitions, since the last drain */
    Py_ssize_t bytes_limit;  /* _bytes_limit: buffered key and value bytes that trigger a write */
    Py_ssize_t pending_bytes; /* _pending_bytes: key and value bytes buffered since the last drain */
    long long due_ms;        /* _due_ms: wall ms by which the buffered records must be written (NO_DUE: none) */
    long long due_step;      /* _due_step: linger_ms in whole ms; -1: senders never write for linger */
    char extras;             /* _extras: some record carries headers or a callback */
    char idle;               /* _idle: the linger thread is not running */
    long long ts_ms;         /* the millisecond of ts_obj */
    PyObject *ts_obj;        /* the last timestamp send stored (records of one ms share it) */
    PyObject *klen_obj;      /* the last key length send stored, and its value (records of one */
    long long klen_val;      /* size share one int object, as they share the timestamp's) */
    PyObject *vlen_obj;      /* the same for value lengths */
    long long vlen_val;
    PyObject *scratch;       /* a 7-tuple, empty between sends: a record on its way into a buffer */
    PyObject *st_type;       /* the topic-state class whose slot offsets follow (or NULL) */
    Py_ssize_t kacc_off;     /* where its ``kacc`` slot is in an instance (-1: use getattr) */
    Py_ssize_t max_off;      /* where its ``max_bytes`` slot is (-1: use getattr) */
    /* The last topic send found in ``fast``: while ``fast`` is still that dict and the
     * caller passes that very str object again, its state needs no lookup.  Valid because
     * the producer never replaces nor removes a topic's state in its ``_topics`` (and
     * assigns a new dict to ``_fast`` rather than emptying it).  Strong references. */
    PyObject *c_fast, *c_topic, *c_st;
} SendBase;

static PyObject *s_kacc, *s_max_bytes, *s_send, *s_write, *s_start_linger, *s_linger_write;
#define NO_DUE (1LL << 62)  /* sendpath._NO_DUE */
static PyObject *kw_names[7];  /* send's parameter names, interned */

static int
sb_traverse(SendBase *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->fast);
    Py_VISIT(self->last_headers);
    Py_VISIT(self->last_pair);
    Py_VISIT(self->last_name);
    Py_VISIT(self->ts_obj);
    Py_VISIT(self->klen_obj);
    Py_VISIT(self->vlen_obj);
    Py_VISIT(self->scratch);
    Py_VISIT(self->st_type);
    Py_VISIT(self->c_fast);
    Py_VISIT(self->c_topic);
    Py_VISIT(self->c_st);
    return 0;
}

static int
sb_clear(SendBase *self)
{
    Py_CLEAR(self->fast);
    Py_CLEAR(self->last_headers);
    Py_CLEAR(self->last_pair);
    Py_CLEAR(self->last_name);
    Py_CLEAR(self->ts_obj);
    Py_CLEAR(self->klen_obj);
    Py_CLEAR(self->vlen_obj);
    Py_CLEAR(self->scratch);
    Py_CLEAR(self->st_type);
    Py_CLEAR(self->c_fast);
    Py_CLEAR(self->c_topic);
    Py_CLEAR(self->c_st);
    return 0;
}

static void
sb_dealloc(SendBase *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    sb_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
sb_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SendBase *self = (SendBase *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fast = PyDict_New();
    self->last_headers = PyTuple_New(0);
    if (self->fast == NULL || self->last_headers == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->scratch = PyTuple_New(7);
    if (self->scratch == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->last_pair = Py_NewRef(Py_None);
    self->last_name = Py_NewRef(Py_None);
    self->buffer_limit = PY_SSIZE_T_MAX;
    self->bytes_limit = PY_SSIZE_T_MAX;
    self->due_ms = NO_DUE;
    self->due_step = -1;
    self->idle = 1;
    return (PyObject *)self;
}

/* Set *field to a new reference to value. */
static inline void
set_field(PyObject **field, PyObject *value)
{
    PyObject *old = *field;
    *field = Py_NewRef(value);
    Py_XDECREF(old);
}

/* A header name send may keep without the general check: an ASCII str of at most 65535 chars. */
static inline int
plain_name(PyObject *name)
{
    return PyUnicode_CheckExact(name) && PyUnicode_IS_ASCII(name) && PyUnicode_GET_LENGTH(name) <= 0xFFFF;
}

/* Bytes of a checked header set's names and values (sendpath._header_bytes): ``hobj`` is
 * None, one (ascii str, bytes or None) pair, or a tuple of such pairs. */
static Py_ssize_t
header_bytes(PyObject *hobj)
{
    if (hobj == Py_None)
        return 0;
    Py_ssize_t n = PyTuple_GET_SIZE(hobj), total = 0;
    if (n == 2 && PyUnicode_CheckExact(PyTuple_GET_ITEM(hobj, 0))) {
        PyObject *v = PyTuple_GET_ITEM(hobj, 1);
        return PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(hobj, 0)) + (v == Py_None ? 0 : PyBytes_GET_SIZE(v));
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(hobj, i), *v = PyTuple_GET_ITEM(pair, 1);
        total += PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(pair, 0)) + (v == Py_None ? 0 : PyBytes_GET_SIZE(v));
    }
    return total;
}

/* Header pairs in the common shape (sendpath._valid_pairs): 1 yes, 0 no. */
static int
valid_pairs(PyObject *hdrs)
{
    Py_ssize_t n = PyTuple_GET_SIZE(hdrs);
    if (n > 0xFFFF)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(hdrs, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
            return 0;
        PyObject *value = PyTuple_GET_ITEM(item, 1);
        if (!plain_name(PyTuple_GET_ITEM(item, 0)) || (!PyBytes_CheckExact(value) && value != Py_None))
            return 0;
    }
    return 1;
}

/* The offset of the __slots__ member ``name`` of class ``tp`` (an object slot), or -1. */
static Py_ssize_t
slot_offset(PyTypeObject *tp, PyObject *name)
{
    PyObject *d = PyObject_GetAttr((PyObject *)tp, name);  /* the class attribute: a member descriptor */
    Py_ssize_t off = -1;
    if (d == NULL)
        PyErr_Clear();
    else if (Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX)
        off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_XDECREF(d);
    return off;
}

/* ``state_field`` when ``st`` is not of the class whose slot offsets are known, or the
 * slot is unset: learn the class's offsets, then read the slot or getattr. */
static PyObject *
state_field_slow(SendBase *self, PyObject *st, int which)
{
    PyTypeObject *tp = Py_TYPE(st);
    if ((PyObject *)tp != self->st_type) {
        Py_ssize_t kacc_off = slot_offset(tp, s_kacc), max_off = slot_offset(tp, s_max_bytes);
        Py_XSETREF(self->st_type, Py_NewRef((PyObject *)tp));
        self->kacc_off = kacc_off;
        self->max_off = max_off;
    }
    Py_ssize_t off = which ? self->max_off : self->kacc_off;
    PyObject *value = off < 0 ? NULL : *(PyObject **)((char *)st + off);
    if (value == NULL)  /* no such slot, or unset: getattr says what is wrong */
        return PyObject_GetAttr(st, which ? s_max_bytes : s_kacc);
    return Py_NewRef(value);
}

/* ``st.kacc`` (which=0) or ``st.max_bytes`` (1), a new reference: the slot read directly,
 * as getattr would read it, without looking the name up in the class for every record
 * (inline: this is paid twice a record). */
static inline PyObject *
state_field(SendBase *self, PyObject *st, int which)
{
    if ((PyObject *)Py_TYPE(st) == self->st_type) {
        Py_ssize_t off = which ? self->max_off : self->kacc_off;
        if (off >= 0) {
            PyObject *value = *(PyObject **)((char *)st + off);
            if (value != NULL)
                return Py_NewRef(value);
        }
    }
    return state_field_slow(self, st, which);
}

/* self._send(topic, value, key, headers, partition, timestamp_ms, on_delivery) */
static PyObject *
slow(SendBase *self, PyObject *const *a, PyObject *headers)
{
    PyObject *args[8] = {(PyObject *)self, a[0], a[1], a[2], headers, a[4], a[5], a[6]};
    PyObject *r = PyObject_VectorcallMethod(s_send, args, 8, NULL);
    return r;
}

static PyObject *
call_method(SendBase *self, PyObject *name)
{
    PyObject *args[1] = {(PyObject *)self};
    return PyObject_VectorcallMethod(name, args, 1, NULL);
}

/* Parse send's arguments into a[0..6]; borrowed references. -1 with TypeError if bad.
 * (Inline, positional arguments copied in one pass and keywords matched by identity
 * first: the usual ``send(topic, value, key=key)`` pays a few dozen instructions.) */
static inline int
parse_send_args(PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames, PyObject **a)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs > 7) {
        PyErr_Format(PyExc_TypeError, "send() takes at most 7 arguments (%zd given)", nargs);
        return -1;
    }
    /* positional arguments, then None for the rest (keywords replace them below) */
    a[0] = nargs > 0 ? args[0] : NULL;
    a[1] = nargs > 1 ? args[1] : Py_None;
    a[2] = nargs > 2 ? args[2] : Py_None;
    a[3] = nargs > 3 ? args[3] : Py_None;
    a[4] = nargs > 4 ? args[4] : Py_None;
    a[5] = nargs > 5 ? args[5] : Py_None;
    a[6] = nargs > 6 ? args[6] : Py_None;
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t j = 0; j < nkw; j++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, j);
            int slot = -1;
            for (int k = 1; k < 7; k++) {  /* (topic is hardly ever passed by keyword: last) */
                if (name == kw_names[k]) {
                    slot = k;
                    break;
                }
            }
            if (slot < 0 && name == kw_names[0])
                slot = 0;
            if (slot < 0) {
                for (int k = 0; k < 7; k++) {
                    int eq = PyUnicode_Compare(name, kw_names[k]);
                    if (eq == -1 && PyErr_Occurred())
                        return -1;
                    if (eq == 0) {
                        slot = k;
                        break;
                    }
                }
            }
            if (slot < 0) {
                PyErr_Format(PyExc_TypeError, "send() got an unexpected keyword argument '%S'", name);
                return -1;
            }
            if (slot < nargs) {  /* (Python itself refuses a keyword given twice) */
                PyErr_Format(PyExc_TypeError, "send() got multiple values for argument '%S'", name);
                return -1;
            }
            a[slot] = args[nargs + j];
        }
    }
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "send() missing 1 required positional argument: 'topic'");
        return -1;
    }
    return 0;
}

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);  /* what time.time_ns() reads */
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ``*obj`` made the int ``value`` unless it is already (the last timestamp, key length
 * or value length a send stored: records in a row mostly share them); -1 if out of memory. */
static inline int
cached_int(PyObject **obj, long long *last, long long value)
{
    if (*obj == NULL || value != *last) {
        PyObject *made = PyLong_FromLongLong(value);
        if (made == NULL)
            return -1;
        Py_XSETREF(*obj, made);
        *last = value;
    }
    return 0;
}

/* The fast path of _PySendBase.send (sendpath.py): the same checks in the same order. */
static PyObject *
sb_send(SendBase *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    PyObject *a[7];
    if (parse_send_args(args, nargsf, kwnames, a) < 0)
        return NULL;
    PyObject *topic = a[0], *value = a[1], *key = a[2], *headers = a[3];
    PyObject *st;
    if (topic == self->c_topic && self->fast == self->c_fast) {
        st = Py_NewRef(self->c_st);
    }
    else {
        st = PyDict_GetItemWithError(self->fast, topic);  /* borrowed */
        if (st == NULL) {
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_TypeError))
                    return NULL;
                PyErr_Clear();  /* an unhashable topic: the general path says what is wrong */
            }
            return slow(self, a, headers);
        }
        Py_INCREF(st);
        set_field(&self->c_fast, self->fast);
        set_field(&self->c_topic, topic);
        set_field(&self->c_st, st);
    }
    PyObject *kacc = state_field(self, st, 0);
    if (kacc == NULL) {
        Py_DECREF(st);
        return NULL;
    }
    PyObject *acc = PyDict_GetItemWithError(kacc, key);  /* borrowed from kacc */
    Py_XINCREF(acc);
    Py_DECREF(kacc);
    /* Strong references throughout: an allocation below may run a collection, and a
     * finalizer may run Python code that changes the caller's list or this object's fields. */
    PyObject *hobj = Py_NewRef(Py_None), *result = NULL;
    PyObject *hcopy = NULL;  /* a tuple copy of a list of headers */
    if (acc == NULL) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError))
                goto done;
            PyErr_Clear();
        }
        goto general;
    }
    if (!PyBytes_CheckExact(value) || !PyBytes_CheckExact(key) || a[4] != Py_None || a[5] != Py_None)
        goto general;
    if (headers != Py_None) {
        if (!PyList_CheckExact(headers))
            goto general;
        if (PyList_GET_SIZE(headers) == 1) {  /* one header: kept as the pair itself */
            PyObject *pair = PyList_GET_ITEM(headers, 0);
            if (pair != self->last_pair) {
                if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
                    goto general;
                PyObject *name = PyTuple_GET_ITEM(pair, 0), *hv = PyTuple_GET_ITEM(pair, 1);
                if ((!PyBytes_CheckExact(hv) && hv != Py_None) || (name != self->last_name && !plain_name(name)))
                    goto general;
                self->extras = 1;
                set_field(&self->last_name, name);
                set_field(&self->last_pair, pair);
            }
            set_field(&hobj, pair);
        }
        else {
            hcopy = PyList_AsTuple(headers);  /* a copy: the caller may reuse its list */
            if (hcopy == NULL)
                goto done;
            PyObject *last = Py_NewRef(self->last_headers);
            int same = PyObject_RichCompareBool(hcopy, last, Py_EQ);
            if (same < 0) {  /* an odd value's __eq__: the general path says what is wrong */
                PyErr_Clear();
                same = 0;
            }
            if (same) {
                if (PyTuple_GET_SIZE(last))
                    set_field(&hobj, last);
                Py_DECREF(last);
            }
            else {
                Py_DECREF(last);
                if (!valid_pairs(hcopy)) {
                    result = slow(self, a, hcopy);
                    goto done;
                }
                if (PyTuple_GET_SIZE(hcopy)) {
                    self->extras = 1;
                    set_field(&hobj, hcopy);
                }
                set_field(&self->last_headers, hcopy);
            }
        }
    }
    {
        Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen = PyBytes_GET_SIZE(value);
        PyObject *max_obj = state_field(self, st, 1);
        if (max_obj == NULL)
            goto done;
        Py_ssize_t max_bytes = PyLong_AsSsize_t(max_obj);
        Py_DECREF(max_obj);
        if (max_bytes == -1 && PyErr_Occurred())
            goto done;
        if (klen + vlen + header_bytes(hobj) > max_bytes)
            goto general;  /* the general path raises RecordTooLargeError */
        PyObject *cb = a[6];
        if (cb != Py_None) {
            if (!PyCallable_Check(cb))
                goto general;  /* the general path raises ConfigError */
            self->extras = 1;
        }
        long long ms = now_ms();
        if (cached_int(&self->ts_obj, &self->ts_ms, ms) < 0 || cached_int(&self->klen_obj, &self->klen_val, klen) < 0
                || cached_int(&self->vlen_obj, &self->vlen_val, vlen) < 0)
            goto done;
        PyObject *kl = Py_NewRef(self->klen_obj), *vl = Py_NewRef(self->vlen_obj);
        /* The record goes into the buffer list in one step, atomic under the GIL (no
         * Python code runs while it is laid in), so a concurrent drain never splits a
         * record: written straight into the list's spare room when it has room for the
         * 7 fields (the common case: no tuple, no second reference to drop), else through
         * this object's scratch 7-tuple by one slice assignment, like Python's
         * ``acc += (...)``, which grows the list. */
        PyListObject *lst = (PyListObject *)acc;
        Py_ssize_t n = Py_SIZE(lst);
        if (PyList_CheckExact(acc) && lst->allocated - n >= 7) {
            PyObject **dst = lst->ob_item + n;
            dst[0] = Py_NewRef(key);
            dst[1] = Py_NewRef(value);
            dst[2] = Py_NewRef(self->ts_obj);
            dst[3] = kl;
            dst[4] = vl;
            dst[5] = Py_NewRef(hobj);
            dst[6] = Py_NewRef(cb);
            Py_SET_SIZE(lst, n + 7);
        }
        else {
            PyObject *rec = self->scratch;
            PyTuple_SET_ITEM(rec, 0, Py_NewRef(key));
            PyTuple_SET_ITEM(rec, 1, Py_NewRef(value));
            PyTuple_SET_ITEM(rec, 2, Py_NewRef(self->ts_obj));
            PyTuple_SET_ITEM(rec, 3, kl);
            PyTuple_SET_ITEM(rec, 4, vl);
            PyTuple_SET_ITEM(rec, 5, Py_NewRef(hobj));
            PyTuple_SET_ITEM(rec, 6, Py_NewRef(cb));
            int rc = PyList_SetSlice(acc, n, n, rec);
            for (int i = 0; i < 7; i++) {
                PyObject *item = PyTuple_GET_ITEM(rec, i);
                PyTuple_SET_ITEM(rec, i, NULL);
                Py_DECREF(item);
            }
            if (rc < 0)
                goto done;
        }
        self->pending += 7;
        self->pending_bytes += klen + vlen;
        if (self->pending >= self->buffer_limit || self->pending_bytes >= self->bytes_limit) {
            PyObject *r = call_method(self, s_write);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
        if (self->due_step >= 0) {  /* linger: records buffered linger_ms ago are written by this sender */
            if (self->due_ms == NO_DUE)
                self->due_ms = ms + self->due_step;
            else if (ms >= self->due_ms) {
                PyObject *r = call_method(self, s_linger_write);
                if (r == NULL)
                    goto done;
                Py_DECREF(r);
            }
        }
        if (self->idle) {
            self->idle = 0;
            PyObject *r = call_method(self, s_start_linger);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
        result = Py_NewRef(Py_None);
        goto done;
    }
general:
    result = slow(self, a, headers);
done:
    Py_DECREF(hobj);
    Py_XDECREF(hcopy);
    Py_XDECREF(acc);
    Py_DECREF(st);
    return result;
}

static PyMethodDef sb_methods[] = {
    {"send", (PyCFunction)(void (*)(void))sb_send, METH_FASTCALL | METH_KEYWORDS,
     "send($self, /, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None, "
     "on_delivery=None)\n--\n\n"
     "Buffer one record for ``topic``.\n\n"
     "``value=None`` is a tombstone.  The record goes to ``partition`` if given, else\n"
     "to the partitioner's choice for ``key`` (Kafka's murmur2 by default), else to the\n"
     "topic's sticky partition.  ``on_delivery(error, metadata)`` is called once the\n"
     "record is written (or failed).  Raises a typed error for a closed producer, an\n"
     "unknown topic or partition, non-bytes data, or a record over\n"
     "``max.message.bytes``; nothing is buffered then."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef sb_members[] = {
    {"_fast", T_OBJECT_EX, offsetof(SendBase, fast), 0, NULL},
    {"_last_headers", T_OBJECT_EX, offsetof(SendBase, last_headers), 0, NULL},
    {"_last_pair", T_OBJECT_EX, offsetof(SendBase, last_pair), 0, NULL},
    {"_last_name", T_OBJECT_EX, offsetof(SendBase, last_name), 0, NULL},
    {"_buffer_limit", T_PYSSIZET, offsetof(SendBase, buffer_limit), 0, NULL},
    {"_pending", T_PYSSIZET, offsetof(SendBase, pending), 0, NULL},
    {"_bytes_limit", T_PYSSIZET, offsetof(SendBase, bytes_limit), 0, NULL},
    {"_pending_bytes", T_PYSSIZET, offsetof(SendBase, pending_bytes), 0, NULL},
    {"_due_ms", T_LONGLONG, offsetof(SendBase, due_ms), 0, NULL},
    {"_due_step", T_LONGLONG, offsetof(SendBase, due_step), 0, NULL},
    {"_extras", T_BOOL, offsetof(SendBase, extras), 0, NULL},
    {"_idle", T_BOOL, offsetof(SendBase, idle), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot sb_slots[] = {
    {Py_tp_doc, "The producer's send fast path in C (a base of embedlog.producer.Producer)."},
    {Py_tp_new, sb_new},
    {Py_tp_dealloc, sb_dealloc},
    {Py_tp_traverse, sb_traverse},
    {Py_tp_clear, sb_clear},
    {Py_tp_methods, sb_methods},
    {Py_tp_members, sb_members},
    {0, NULL},
};

static PyType_Spec sb_spec = {
    "embedlog._speedups.SendBase",
    sizeof(SendBase),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    sb_slots,
};

/* -- encode_records ------------------------------------------------------------------- */

#define HEADER_SIZE 56

static inline void
put_u32(unsigned char *p, uint32_t v)
{
#if PY_LITTLE_ENDIAN
    memcpy(p, &v, 4);  /* (one store) */
#else
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
#endif
}

static inline void
put_u64(unsigned char *p, uint64_t v)
{
#if PY_LITTLE_ENDIAN
    memcpy(p, &v, 8);
#else
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
#endif
}

/* The length of a key or value of the buffer: -1 for None; -2 (TypeError set) otherwise. */
static inline Py_ssize_t
item_len(PyObject *item, const char *what)
{
    if (PyBytes_CheckExact(item))
        return PyBytes_GET_SIZE(item);
    if (item == Py_None)
        return -1;
    PyErr_Format(PyExc_TypeError, "record %s must be bytes or None, got %.100s", what, Py_TYPE(item)->tp_name);
    return -2;
}

/* A record's timestamp: an exact int (no __index__: no Python code may run while the
 * buffer's items are in use).  Records sent within one millisecond share one int object
 * (SendBase keeps the last), so the last object's value is remembered. */
static inline long long
timestamp_of(PyObject *obj, PyObject **last_obj, long long *last_val)
{
    if (obj == *last_obj)
        return *last_val;
    if (!PyLong_CheckExact(obj)) {
        PyErr_SetString(PyExc_TypeError, "record timestamps must be int");
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "a record timestamp does not fit 64 bits");
        return -1;
    }
    if (v == -1 && PyErr_Occurred())
        return -1;
    *last_obj = obj;
    *last_val = v;
    return v;
}

static PyObject *
encode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 && nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "encode_records(flat, stride, start, stop, attributes, limit[, out])");
        return NULL;
    }
    PyObject *reuse = nargs == 7 && args[6] != Py_None ? args[6] : NULL;
    if (reuse != NULL && !PyByteArray_CheckExact(reuse)) {
        PyErr_SetString(PyExc_TypeError, "encode_records: out must be a bytearray");
        return NULL;
    }
    PyObject *flat = args[0];
    if (!PyList_CheckExact(flat)) {
        PyErr_SetString(PyExc_TypeError, "encode_records: flat must be a list");
        return NULL;
    }
    Py_ssize_t stride = PyLong_AsSsize_t(args[1]);
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    Py_ssize_t stop = PyLong_AsSsize_t(args[3]);
    long attributes = PyLong_AsLong(args[4]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t count = stop - start;
    if (stride < 3 || start < 0 || count < 1 || count > 0xFFFFFFFFL || stop > PyList_GET_SIZE(flat) / stride
            || attributes < 0 || attributes > 255) {
        PyErr_SetString(PyExc_ValueError, "encode_records: bad stride, range or attributes");
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(flat);
    /* pass 1: the records that fit ``limit`` bytes of keys and values (at least one),
     * their sizes and the timestamps' range */
    Py_ssize_t data = 0;
    long long first_ts = 0, max_ts = 0;
    PyObject *ts_obj = NULL;  /* the last timestamp object converted, and its value */
    long long ts_val = 0;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject **rec = items + i * stride;
        Py_ssize_t kl = item_len(rec[0], "key"), vl = item_len(rec[1], "value");
        if (kl == -2 || vl == -2)
            return NULL;
        Py_ssize_t size = (kl > 0 ? kl : 0) + (vl > 0 ? vl : 0);
        if (i > start && data + size > limit) {
            stop = i;
            break;
        }
        long long ts = timestamp_of(rec[2], &ts_obj, &ts_val);
        if (ts == -1 && PyErr_Occurred())
            return NULL;
        if (i == start)
            first_ts = max_ts = ts;
        else if (ts > max_ts)
            max_ts = ts;
        data += size;
    }
    count = stop - start;
    Py_ssize_t body = count * 16 + data;
    if (body > 0xFFFFFFFFL) {
        PyErr_SetString(PyExc_ValueError, "encode_records: a batch body must stay under 4 GiB");
        return NULL;
    }
    PyObject *out;
    /* (resizing a bytearray runs no Python code: items stays valid; one still exported
     * through a memoryview cannot be resized: a new one then) */
    if (reuse != NULL && PyByteArray_Resize(reuse, HEADER_SIZE + body) == 0)
        out = Py_NewRef(reuse);
    else {
        PyErr_Clear();
        if ((out = PyByteArray_FromStringAndSize(NULL, HEADER_SIZE + body)) == NULL)
            return NULL;
    }
    unsigned char *buf = (unsigned char *)PyByteArray_AS_STRING(out);
    memset(buf, 0, HEADER_SIZE);
    buf[24] = 1;  /* magic */
    buf[25] = (unsigned char)attributes;
    put_u32(buf + 28, (uint32_t)count);
    put_u32(buf + 32, (uint32_t)(count - 1));  /* last_offset_delta: dense */
    put_u64(buf + 36, (uint64_t)first_ts);
    put_u64(buf + 44, (uint64_t)max_ts);
    put_u32(buf + 52, (uint32_t)body);
    /* pass 2: the columns, then keys, then values (the layout of codec/batch.py) */
    unsigned char *klens = buf + HEADER_SIZE, *vlens = klens + 4 * count, *stamps = vlens + 4 * count;
    unsigned char *kp = stamps + 8 * count;
    Py_ssize_t ksum = 0;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject **rec = items + i * stride;
        Py_ssize_t j = i - start;
        Py_ssize_t kl = rec[0] == Py_None ? -1 : PyBytes_GET_SIZE(rec[0]);
        Py_ssize_t vl = rec[1] == Py_None ? -1 : PyBytes_GET_SIZE(rec[1]);
        put_u32(klens + 4 * j, (uint32_t)(int32_t)kl);
        put_u32(vlens + 4 * j, (uint32_t)(int32_t)vl);
        put_u64(stamps + 8 * j, (uint64_t)timestamp_of(rec[2], &ts_obj, &ts_val));  /* (checked in pass 1) */
        if (kl > 0) {
            memcpy(kp + ksum, PyBytes_AS_STRING(rec[0]), (size_t)kl);
            ksum += kl;
        }
    }
    unsigned char *vp = kp + ksum;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject *v = items[i * stride + 1];
        if (v != Py_None) {
            Py_ssize_t vl = PyBytes_GET_SIZE(v);
            memcpy(vp, PyBytes_AS_STRING(v), (size_t)vl);
            vp += vl;
        }
    }
    PyObject *result = Py_BuildValue("(Nn)", out, stop);
    return result;
}

/* Move src's items to the empty list dst, leaving src empty (no copy, no reference counts). */
static void
move_items(PyListObject *dst, PyListObject *src)
{
    dst->ob_item = src->ob_item;
    Py_SET_SIZE(dst, Py_SIZE(src));
    dst->allocated = src->allocated;
    src->ob_item = NULL;
    Py_SET_SIZE(src, 0);
    src->allocated = 0;
}

/* take_all(lst): a new list holding lst's items, lst left empty, in O(1) and atomically
 * under the GIL (what ``out = lst[:n]; del lst[:n]`` does, without copying or touching the
 * items' reference counts). */
static PyObject *
take_all(PyObject *module, PyObject *lst)
{
    if (!PyList_CheckExact(lst)) {
        PyErr_SetString(PyExc_TypeError, "take_all takes a list");
        return NULL;
    }
    PyObject *dst = PyList_New(0);
    if (dst == NULL)
        return NULL;
    move_items((PyListObject *)dst, (PyListObject *)lst);
    return dst;
}

/* Room the emptied list keeps for its next items: as many as it held, up to this many.
 * A producer's partition buffer is drained at every flush and filled again by the next
 * sends; grown from nothing each time, it was reallocated ~60 times a 10,000-record flush
 * (every growth copying what the list held so far), which cost ~8% of ``send``. */
#define KEEP_ROOM_MAX ((Py_ssize_t)1 << 17)

static void
keep_room(PyListObject *lst, Py_ssize_t n)
{
    if (n > KEEP_ROOM_MAX)
        n = KEEP_ROOM_MAX;
    if (n < 8 || lst->ob_item != NULL)
        return;
    PyObject **room = PyMem_New(PyObject *, (size_t)n);
    if (room == NULL)
        return;  /* (no room kept: the list grows as it would have) */
    lst->ob_item = room;
    lst->allocated = n;
}

/* take_into(out, st, p, lst): append (st, p, take_all(lst)) to the list ``out`` in one
 * step: no Python code (so no signal handler, no interrupt) runs between taking lst's items
 * and their landing in ``out``.  ``lst`` is left empty with room for as many items as it
 * held (``keep_room``). */
static PyObject *
take_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "take_into takes (out: list, st, p, lst: list)");
        return NULL;
    }
    PyObject *taken = take_all(module, args[3]);
    if (taken == NULL)
        return NULL;
    PyObject *entry = PyTuple_Pack(3, args[1], args[2], taken);
    if (entry == NULL || PyList_Append(args[0], entry) < 0) {
        /* (out of memory: give the items back rather than lose them) */
        PyListObject *src = (PyListObject *)args[3];
        if (Py_SIZE(src) == 0 && src->ob_item == NULL)
            move_items(src, (PyListObject *)taken);
        Py_XDECREF(entry);
        Py_DECREF(taken);
        return NULL;
    }
    keep_room((PyListObject *)args[3], Py_SIZE(taken));
    Py_DECREF(entry);
    Py_DECREF(taken);
    Py_RETURN_NONE;
}

/* messages(out, cls, topic, partition, offsets, keys, values, headers, no_headers, timestamps,
 *          timestamp_type, leader_epoch, start, stop)
 * Append to the list ``out`` one ``cls`` (a tuple subclass of 9 fields: consumer.Message) per
 * record ``start..stop-1`` of a decoded batch: what the consumer's
 * ``map(partial(tuple.__new__, Message), zip(...))`` makes, one allocation a record instead of
 * three.  ``offsets``: the dense base offset (an int) or a list; ``headers``: a list, or None
 * for ``no_headers`` in every record; ``keys``, ``values``, ``timestamps``: lists. */
static PyObject *
messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "messages takes 14 arguments");
        return NULL;
    }
    PyObject *out = args[0], *cls = args[1], *topic = args[2], *part = args[3], *offsets = args[4];
    PyObject *keys = args[5], *values = args[6], *headers = args[7], *no_headers = args[8];
    PyObject *timestamps = args[9], *ts_type = args[10], *epoch = args[11];
    if (!PyList_CheckExact(out) || !PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)
            || !PyList_CheckExact(keys) || !PyList_CheckExact(values) || !PyList_CheckExact(timestamps)
            || (headers != Py_None && !PyList_CheckExact(headers))
            || (!PyLong_CheckExact(offsets) && !PyList_CheckExact(offsets))) {
        PyErr_SetString(PyExc_TypeError, "messages: bad argument types");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[12]), stop = PyLong_AsSsize_t(args[13]);
    if ((start == -1 || stop == -1) && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    if (start < 0 || stop > n || start > stop || PyList_GET_SIZE(values) != n || PyList_GET_SIZE(timestamps) != n
            || (headers != Py_None && PyList_GET_SIZE(headers) != n)
            || (PyList_CheckExact(offsets) && PyList_GET_SIZE(offsets) != n)) {
        PyErr_SetString(PyExc_ValueError, "messages: columns of unequal length or a bad range");
        return NULL;
    }
    long long base = 0;
    if (PyLong_CheckExact(offsets)) {
        base = PyLong_AsLongLong(offsets);
        if (base == -1 && PyErr_Occurred())
            return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    for (Py_ssize_t k = start; k < stop; k++) {
        PyObject *offset = PyList_CheckExact(offsets) ? Py_NewRef(PyList_GET_ITEM(offsets, k))
                                                      : PyLong_FromLongLong(base + k);
        if (offset == NULL)
            return NULL;
        PyObject *msg = tp->tp_alloc(tp, 9);
        if (msg == NULL) {
            Py_DECREF(offset);
            return NULL;
        }
        if (PyList_GET_SIZE(keys) != n || PyList_GET_SIZE(values) != n || PyList_GET_SIZE(timestamps) != n
                || (headers != Py_None && PyList_GET_SIZE(headers) != n)
                || (PyList_CheckExact(offsets) && PyList_GET_SIZE(offsets) != n)) {
            /* (the allocation may run a collection, and a finalizer Python code that changed them) */
            Py_DECREF(offset);
            Py_DECREF(msg);
            PyErr_SetString(PyExc_RuntimeError, "messages: a column changed while messages were made");
            return NULL;
        }
        PyTuple_SET_ITEM(msg, 0, Py_NewRef(topic));
        PyTuple_SET_ITEM(msg, 1, Py_NewRef(part));
        PyTuple_SET_ITEM(msg, 2, offset);
        PyTuple_SET_ITEM(msg, 3, Py_NewRef(PyList_GET_ITEM(keys, k)));
        PyTuple_SET_ITEM(msg, 4, Py_NewRef(PyList_GET_ITEM(values, k)));
        PyTuple_SET_ITEM(msg, 5, Py_NewRef(headers == Py_None ? no_headers : PyList_GET_ITEM(headers, k)));
        PyTuple_SET_ITEM(msg, 6, Py_NewRef(PyList_GET_ITEM(timestamps, k)));
        PyTuple_SET_ITEM(msg, 7, Py_NewRef(ts_type));
        PyTuple_SET_ITEM(msg, 8, Py_NewRef(epoch));
        int rc = PyList_Append(out, msg);
        Py_DECREF(msg);
        if (rc < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}


/* -- decode_one ------------------------------------------------------------------------ */

/* CRC-32 (zlib's polynomial, reflected), a byte at a time: only for the small batches
 * decode_one takes (larger ones go to the Python path and its ISA-L/zlib CRC). */
static uint32_t crc_table[256];

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t
crc32_small(const unsigned char *p, Py_ssize_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n-- > 0)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint64_t rd_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }  /* little-endian hosts */
static uint32_t rd_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static int64_t rd_i64(const unsigned char *p) { int64_t v; memcpy(&v, p, 8); return v; }
static int32_t rd_i32(const unsigned char *p) { int32_t v; memcpy(&v, p, 4); return v; }

#define B_HEADER 56            /* codec.batch.HEADER_SIZE */
#define B_ONE 16               /* codec.batch._ONE_RECORD.size: key length, value length, timestamp */
#define B_SMALL 4096           /* larger batches: the Python path (its CRC is the fast one) */
#define B_PLAIN_MASK 0x37      /* compression | sparse | headers */
#define B_LOG_APPEND_TIME 0x08

static PyObject *
new_tuple_of(PyObject *cls, Py_ssize_t n)
{
    PyTypeObject *tp = (PyTypeObject *)cls;
    return tp->tp_alloc(tp, n);  /* a tuple subclass (a NamedTuple): as tuple.__new__(cls, ...) */
}

static PyObject *
decode_one(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode_one(buf, info_cls, decoded_cls) takes 3 arguments");
        return NULL;
    }
    PyObject *info_cls = args[1], *decoded_cls = args[2];
    if (!PyType_Check(info_cls) || !PyType_IsSubtype((PyTypeObject *)info_cls, &PyTuple_Type)
            || !PyType_Check(decoded_cls) || !PyType_IsSubtype((PyTypeObject *)decoded_cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "decode_one: info_cls and decoded_cls must be tuple subclasses");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *b = view.buf;
    Py_ssize_t size = view.len;
    PyObject *result = Py_None;  /* anything that does not add up: None, and decode says what */
    if (size < B_HEADER + B_ONE || size > B_SMALL || b[24] != 1 /* magic */ || rd_u32(b + 28) != 1 /* count */
            || (b[25] & B_PLAIN_MASK) || rd_u32(b + 52) != (uint64_t)(size - B_HEADER)
            || crc32_small(b + 24, size - 24) != rd_u32(b + 20))
        goto done;
    int32_t klen = rd_i32(b + B_HEADER), vlen = rd_i32(b + B_HEADER + 4);
    int64_t ts = rd_i64(b + B_HEADER + 8);
    Py_ssize_t pos = B_HEADER + B_ONE;
    Py_ssize_t kend = klen > 0 ? pos + klen : pos;
    Py_ssize_t vend = vlen > 0 ? kend + vlen : kend;
    if (klen < -1 || vlen < -1 || vend != size)
        goto done;
    uint64_t base = rd_u64(b);
    int64_t max_ts = rd_i64(b + 44);
    if (b[25] & B_LOG_APPEND_TIME)
        ts = max_ts;
    PyObject *info = new_tuple_of(info_cls, 9);
    PyObject *decoded = new_tuple_of(decoded_cls, 6);
    PyObject *keys = PyList_New(1), *values = PyList_New(1), *stamps = PyList_New(1);
    PyObject *key = klen < 0 ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize((const char *)b + pos, kend - pos);
    PyObject *value = vlen < 0 ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize((const char *)b + kend, vend - kend);
    PyObject *stamp = PyLong_FromLongLong(ts);
    PyObject *offsets = NULL;
    PyObject *fields[9] = {
        PyLong_FromUnsignedLongLong(base), PyLong_FromLong(rd_i32(b + 8)), PyLong_FromUnsignedLongLong(rd_u64(b + 12)),
        PyLong_FromLong(b[25]), PyLong_FromLong(1), PyLong_FromUnsignedLong(rd_u32(b + 32)),
        PyLong_FromLongLong(rd_i64(b + 36)), PyLong_FromLongLong(max_ts), PyLong_FromSsize_t(size),
    };
    int ok = info && decoded && keys && values && stamps && key && value && stamp;
    for (int i = 0; i < 9; i++)
        ok = ok && fields[i] != NULL;
    if (ok) {
        PyObject *next = PyLong_FromUnsignedLongLong(base + 1);
        offsets = next == NULL ? NULL : PyObject_CallFunctionObjArgs((PyObject *)&PyRange_Type, fields[0], next, NULL);
        Py_XDECREF(next);
        ok = offsets != NULL;
    }
    if (!ok) {
        for (int i = 0; i < 9; i++)
            Py_XDECREF(fields[i]);
        Py_XDECREF(info); Py_XDECREF(decoded); Py_XDECREF(keys); Py_XDECREF(values); Py_XDECREF(stamps);
        Py_XDECREF(key); Py_XDECREF(value); Py_XDECREF(stamp); Py_XDECREF(offsets);
        result = NULL;
        goto done;
    }
    for (int i = 0; i < 9; i++)
        PyTuple_SET_ITEM(info, i, fields[i]);
    PyList_SET_ITEM(keys, 0, key);
    PyList_SET_ITEM(values, 0, value);
    PyList_SET_ITEM(stamps, 0, stamp);
    PyTuple_SET_ITEM(decoded, 0, info);
    PyTuple_SET_ITEM(decoded, 1, offsets);
    PyTuple_SET_ITEM(decoded, 2, keys);
    PyTuple_SET_ITEM(decoded, 3, values);
    PyTuple_SET_ITEM(decoded, 4, stamps);
    PyTuple_SET_ITEM(decoded, 5, Py_NewRef(Py_None));
    result = decoded;
done:
    PyBuffer_Release(&view);
    if (result == Py_None)
        Py_RETURN_NONE;
    return result;
}


/* -- encode_one ------------------------------------------------------------------------- */

static void wr_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }  /* little-endian hosts */
static void wr_i32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); }
static void wr_i64(unsigned char *p, int64_t v) { memcpy(p, &v, 8); }

static PyObject *
encode_one(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "encode_one(key, value, timestamp, attributes) takes 4 arguments");
        return NULL;
    }
    PyObject *key = args[0], *value = args[1];
    if ((key != Py_None && !PyBytes_CheckExact(key)) || (value != Py_None && !PyBytes_CheckExact(value)))
        Py_RETURN_NONE;  /* (the Python encoder takes any bytes-like object) */
    long long ts = PyLong_AsLongLong(args[2]);
    if (ts == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;  /* (the Python encoder says what is wrong) */
    }
    long attributes = PyLong_AsLong(args[3]);
    if (attributes == -1 && PyErr_Occurred())
        return NULL;
    if (attributes < 0 || attributes > 255) {
        PyErr_SetString(PyExc_ValueError, "encode_one: attributes out of range");
        return NULL;
    }
    Py_ssize_t klen = key == Py_None ? -1 : PyBytes_GET_SIZE(key);
    Py_ssize_t vlen = value == Py_None ? -1 : PyBytes_GET_SIZE(value);
    Py_ssize_t body = B_ONE + (klen > 0 ? klen : 0) + (vlen > 0 ? vlen : 0);
    if (B_HEADER + body > B_SMALL)
        Py_RETURN_NONE;  /* (larger: the Python encoder, whose CRC is the fast one) */
    PyObject *out = PyByteArray_FromStringAndSize(NULL, B_HEADER + body);
    if (out == NULL)
        return NULL;
    unsigned char *b = (unsigned char *)PyByteArray_AS_STRING(out);
    memset(b, 0, B_HEADER);
    b[24] = 1;                        /* magic */
    b[25] = (unsigned char)attributes;
    wr_u32(b + 28, 1);                /* record count */
    wr_u32(b + 32, 0);                /* last offset delta */
    wr_i64(b + 36, (int64_t)ts);      /* first timestamp */
    wr_i64(b + 44, (int64_t)ts);      /* max timestamp */
    wr_u32(b + 52, (uint32_t)body);
    unsigned char *p = b + B_HEADER;
    wr_i32(p, (int32_t)klen);
    wr_i32(p + 4, (int32_t)vlen);
    wr_i64(p + 8, (int64_t)ts);
    p += B_ONE;
    if (klen > 0) {
        memcpy(p, PyBytes_AS_STRING(key), (size_t)klen);
        p += klen;
    }
    if (vlen > 0)
        memcpy(p, PyBytes_AS_STRING(value), (size_t)vlen);
    wr_u32(b + 20, crc32_small(b + 24, B_HEADER + body - 24));
    return out;
}


/* -- split_column ------------------------------------------------------------------------ */

static PyObject *
split_column(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "split_column(body, pos, col) takes 3 arguments");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer body, col;
    if (PyObject_GetBuffer(args[0], &body, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &col, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&body);
        return NULL;
    }
    PyObject *out = NULL, *result = NULL;
    Py_ssize_t count = col.len / 4;
    if (col.len % 4 != 0 || pos < 0 || pos > body.len) {
        PyErr_SetString(PyExc_ValueError, "record lengths run past the end of the batch");
        goto done;
    }
    out = PyList_New(count);
    if (out == NULL)
        goto done;
    const unsigned char *lens = col.buf;
    const char *base = body.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        int32_t n = rd_i32(lens + 4 * i);
        PyObject *item;
        if (n < 0) {
            if (n < -1) {
                PyErr_SetString(PyExc_ValueError, "record lengths run past the end of the batch");
                goto fail;
            }
            item = Py_NewRef(Py_None);
        } else {
            if ((Py_ssize_t)n > body.len - pos) {
                PyErr_SetString(PyExc_ValueError, "record lengths run past the end of the batch");
                goto fail;
            }
            item = PyBytes_FromStringAndSize(base + pos, n);
            if (item == NULL)
                goto fail;
            pos += n;
        }
        PyList_SET_ITEM(out, i, item);
    }
    {
        PyObject *end = PyLong_FromSsize_t(pos);
        if (end == NULL)
            goto fail;
        result = PyTuple_Pack(2, out, end);
        Py_DECREF(end);
    }
fail:
    Py_DECREF(out);  /* (the tuple holds its own reference; on failure the unset items are NULL: safe) */
done:
    PyBuffer_Release(&col);
    PyBuffer_Release(&body);
    return result;
}

static PyMethodDef module_methods[] = {
    {"messages", (PyCFunction)(void (*)(void))messages, METH_FASTCALL,
     "messages(out, cls, topic, partition, offsets, keys, values, headers, no_headers, timestamps, "
     "timestamp_type, leader_epoch, start, stop)\n--\n\n"
     "Append one ``cls`` (a 9-field tuple subclass: a consumed Message) per record ``start..stop-1`` of a\n"
     "decoded batch to ``out``.  ``offsets``: the dense base offset or a list; ``headers``: a list, or\n"
     "None for ``no_headers`` in every record."},
    {"take_into", (PyCFunction)(void (*)(void))take_into, METH_FASTCALL,
     "take_into(out, st, p, lst)\n--\n\nAppend ``(st, p, take_all(lst))`` to ``out`` in one step."},
    {"take_all", (PyCFunction)take_all, METH_O,
     "take_all(lst)\n--\n\nA new list of ``lst``'s items, ``lst`` left empty (atomic, O(1))."},
    {"encode_records", (PyCFunction)(void (*)(void))encode_records, METH_FASTCALL,
     "encode_records(flat, stride, start, stop, attributes, limit)\n--\n\n"
     "One uncompressed batch without headers of the records from ``start`` of ``flat`` (``stride``\n"
     "entries a record: key, value, timestamp, ...) up to ``stop`` or as many as fit ``limit`` bytes of\n"
     "keys and values (at least one); CRC and stamped fields left zero.  Returns (batch, end)."},
    {"decode_one", (PyCFunction)(void (*)(void))decode_one, METH_FASTCALL,
     "decode_one(buf, info_cls, decoded_cls)\n--\n\n"
     "``codec.batch.decode`` of a batch of one uncompressed record without headers of at most 4 KiB\n"
     "(the latency path's batch, and a log written a flush a record), as ``decoded_cls(info_cls(...),\n"
     "range, [key], [value], [timestamp], None)``; None for any other batch or for any check that\n"
     "fails (magic, count, lengths, CRC): ``decode`` then takes it and says what is wrong."},
    {"encode_one", (PyCFunction)(void (*)(void))encode_one, METH_FASTCALL,
     "encode_one(key, value, timestamp, attributes)\n--\n\n"
     "``codec.batch.encode_one``'s batch (CRC included) of one record whose key and value are bytes or\n"
     "None and whose batch is at most 4 KiB; None for any other (the Python encoder takes it)."},
    {"split_column", (PyCFunction)(void (*)(void))split_column, METH_FASTCALL,
     "split_column(body, pos, col)\n--\n\n"
     "Cut the items whose little-endian i32 lengths are ``col`` off ``body`` from ``pos``: (a list of\n"
     "bytes, None for a length of -1; the end position).  ValueError if a length is below -1 or the\n"
     "items run past the end of ``body`` (``codec.batch`` raises CorruptBatchError for it)."},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *m)
{
    static const char *names[7] = {"topic", "value", "key", "headers", "partition", "timestamp_ms", "on_delivery"};
    crc_init();
    for (int i = 0; i < 7; i++) {
        if (kw_names[i] == NULL && (kw_names[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return -1;
    }
    if ((s_kacc == NULL && (s_kacc = PyUnicode_InternFromString("kacc")) == NULL)
            || (s_max_bytes == NULL && (s_max_bytes = PyUnicode_InternFromString("max_bytes")) == NULL)
            || (s_send == NULL && (s_send = PyUnicode_InternFromString("_send")) == NULL)
            || (s_write == NULL && (s_write = PyUnicode_InternFromString("_full_write")) == NULL)
            || (s_start_linger == NULL && (s_start_linger = PyUnicode_InternFromString("_start_linger")) == NULL)
            || (s_linger_write == NULL && (s_linger_write = PyUnicode_InternFromString("_linger_write")) == NULL))
        return -1;
    PyObject *type = PyType_FromModuleAndSpec(m, &sb_spec, NULL);
    if (type == NULL)
        return -1;
    if (PyModule_AddObject(m, "SendBase", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* (the interned names are process-wide statics) */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "embedlog._speedups",
    "The producer's per-record hot path in C; see embedlog/_speedups.c.",
    0,
    module_methods,
    module_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
