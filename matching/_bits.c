/* A bit set addressed by the top bits of 64-bit keys: the customer filter's two loops.
 *
 * matching/customer_filter.py owns the semantics (which key, how many bits) and has a numpy
 * path giving the same bits; this file only makes the two loops cheap.  The set is an array
 * of native uint64 words: bit i is bit (i & 63) of word i >> 6, whatever the byte order, and
 * a key k addresses bit k >> (64 - log2_bits).  The set's length is checked against
 * log2_bits, so no key can address a word outside it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Keys looked ahead of the one probed: a probe is one cache miss in a set of up to 256 MB. */
#define AHEAD 16

static int check_args(Py_buffer *set, Py_buffer *keys, int log2_bits)
{
    if (log2_bits < 6 || log2_bits > 40) {
        PyErr_SetString(PyExc_ValueError, "log2_bits must be between 6 and 40");
        return -1;
    }
    if (set->len != ((Py_ssize_t)1 << (log2_bits - 3))) {
        PyErr_SetString(PyExc_ValueError, "the bit set's length does not match log2_bits");
        return -1;
    }
    if (((uintptr_t)set->buf | (uintptr_t)keys->buf) & 7) {
        PyErr_SetString(PyExc_ValueError, "the bit set and the keys must be 8-byte aligned");
        return -1;
    }
    if (keys->len % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "keys must be 64-bit (a multiple of 8 bytes)");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(set_bits_doc,
             "set_bits(bit_set, keys, log2_bits) -> None\n\n"
             "Set the bit each native uint64 key addresses (its top log2_bits bits).");

static PyObject *set_bits(PyObject *self, PyObject *args)
{
    Py_buffer set, keys;
    int log2_bits;
    if (!PyArg_ParseTuple(args, "w*y*i:set_bits", &set, &keys, &log2_bits))
        return NULL;
    if (check_args(&set, &keys, log2_bits) < 0) {
        PyBuffer_Release(&set);
        PyBuffer_Release(&keys);
        return NULL;
    }
    uint64_t *bits = set.buf;
    const uint64_t *k = keys.buf;
    Py_ssize_t n = keys.len / 8;
    int shift = 64 - log2_bits;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + AHEAD < n)
            __builtin_prefetch(&bits[(k[i + AHEAD] >> shift) >> 6], 1);
        uint64_t b = k[i] >> shift;
        bits[b >> 6] |= (uint64_t)1 << (b & 63);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&set);
    PyBuffer_Release(&keys);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(probe_doc,
             "probe(bit_set, keys, log2_bits, out) -> int\n\n"
             "out[i] = 1 if the bit keys[i] addresses is set, else 0 (out: one byte a key).\n"
             "Returns how many are set.");

static PyObject *probe(PyObject *self, PyObject *args)
{
    Py_buffer set, keys, out;
    int log2_bits;
    if (!PyArg_ParseTuple(args, "y*y*iw*:probe", &set, &keys, &log2_bits, &out))
        return NULL;
    PyObject *result = NULL;
    if (check_args(&set, &keys, log2_bits) < 0)
        goto done;
    if (out.len != keys.len / 8) {
        PyErr_SetString(PyExc_ValueError, "out must hold one byte per key");
        goto done;
    }
    const uint64_t *bits = set.buf;
    const uint64_t *k = keys.buf;
    uint8_t *o = out.buf;
    Py_ssize_t n = keys.len / 8, hits = 0;
    int shift = 64 - log2_bits;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + AHEAD < n)
            __builtin_prefetch(&bits[(k[i + AHEAD] >> shift) >> 6], 0);
        uint64_t b = k[i] >> shift;
        uint8_t hit = (uint8_t)((bits[b >> 6] >> (b & 63)) & 1);
        o[i] = hit;
        hits += hit;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(hits);
done:
    PyBuffer_Release(&set);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"set_bits", set_bits, METH_VARARGS, set_bits_doc},
    {"probe", probe, METH_VARARGS, probe_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "matching._bits",
    .m_doc = "Setting and probing a bit set addressed by the top bits of uint64 keys.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__bits(void) { return PyModule_Create(&module); }
