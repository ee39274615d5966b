/* A notice's .eml from its shape's skeleton and its values, in one call.
 *
 * notify/outbox.py owns the format: which lines of a shape hold values, how the skeleton is
 * cut, when a notice must take the generic path.  It fills skeletons from Python where this
 * module was not built, and the tests hold both paths to the same bytes.  This file only
 * takes the per-notice loop out of Python: each value line filled and encoded as
 * quoted-printable, then the whole file copied once into its bytes object.
 *
 * The encoding is binascii.b2a_qp(line, istext=True) with its defaults (no quoting of tabs
 * and spaces inside a line, not a header), for lines that hold no CR (ours end with LF):
 *   - a byte above 126, "=", a control byte other than tab, a tab or space that ends the
 *     data, or a "." alone at the start of a line (before LF, NUL or the end) is written as
 *     "=XX" (upper-case hex), after a soft break ("=" LF) when the line would reach 76;
 *   - LF ends the line; a tab or space just written before it becomes "=09" / "=20";
 *   - any other byte is written as it is, after a soft break when the line would reach 76,
 *     unless it ends the data or an LF follows it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#define QP_LINE 76

static const char HEX[] = "0123456789ABCDEF";

/* Worst case of qp(): every byte escaped (3) after a soft break (2). */
static Py_ssize_t qp_bound(Py_ssize_t n)
{
    return 5 * n + 2;
}

static int must_escape(const unsigned char *data, Py_ssize_t n, Py_ssize_t i, Py_ssize_t linelen)
{
    unsigned char c = data[i];
    if (c > 126 || c == '=')
        return 1;
    if (c == ' ' || c == '\t')
        return i + 1 == n;
    if (c == '.' && linelen == 0)
        return i + 1 == n || data[i + 1] == '\n' || data[i + 1] == 0;
    return c < 33 && c != '\n';
}

/* Quoted-printable of data[0:n] into out (room for qp_bound(n)); returns the length.
 * data holds no CR: line_length() leaves such lines to the generic path first. */
static Py_ssize_t qp(const unsigned char *data, Py_ssize_t n, char *out)
{
    Py_ssize_t o = 0, linelen = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = data[i];
        if (must_escape(data, n, i, linelen)) {
            if (linelen + 3 >= QP_LINE) {
                out[o++] = '=';
                out[o++] = '\n';
                linelen = 0;
            }
            out[o++] = '=';
            out[o++] = HEX[c >> 4];
            out[o++] = HEX[c & 15];
            linelen += 3;
        } else if (c == '\n') {
            if (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t')) {
                unsigned char space = (unsigned char)out[o - 1];
                out[o - 1] = '=';
                out[o++] = HEX[space >> 4];
                out[o++] = HEX[space & 15];
            }
            out[o++] = '\n';
            linelen = 0;
        } else {
            if (i + 1 != n && data[i + 1] != '\n' && linelen + 1 >= QP_LINE) {
                out[o++] = '=';
                out[o++] = '\n';
                linelen = 0;
            }
            out[o++] = (char)c;
            linelen++;
        }
    }
    return o;
}

/* A value line: (segments, slots), the segments around the values (one more than slots),
 * each slot an index into the values. */
static int line_parts(PyObject *line, PyObject **segments, PyObject **slots)
{
    if (!PyTuple_Check(line) || PyTuple_GET_SIZE(line) != 2)
        return -1;
    *segments = PyTuple_GET_ITEM(line, 0);
    *slots = PyTuple_GET_ITEM(line, 1);
    if (!PyTuple_Check(*segments) || !PyTuple_Check(*slots) ||
        PyTuple_GET_SIZE(*segments) != PyTuple_GET_SIZE(*slots) + 1)
        return -1;
    return 0;
}

/* The line's length filled with ``values``; -1 on a malformed line, -2 when the generic path
 * must decide: a CR anywhere, or an LF in a value (a line's own LF ends its last segment). */
static Py_ssize_t line_length(PyObject *line, PyObject *values)
{
    PyObject *segments, *slots;
    if (line_parts(line, &segments, &slots) < 0)
        return -1;
    Py_ssize_t total = 0, count = PyTuple_GET_SIZE(slots);
    for (Py_ssize_t k = 0; k <= count; k++) {
        PyObject *segment = PyTuple_GET_ITEM(segments, k);
        if (!PyBytes_Check(segment))
            return -1;
        if (memchr(PyBytes_AS_STRING(segment), '\r', (size_t)PyBytes_GET_SIZE(segment)) != NULL)
            return -2;
        total += PyBytes_GET_SIZE(segment);
        if (k == count)
            break;
        Py_ssize_t slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(slots, k));
        if (slot < 0 || slot >= PyTuple_GET_SIZE(values))
            return -1;
        PyObject *value = PyTuple_GET_ITEM(values, slot);
        if (!PyBytes_Check(value))
            return -1;
        const char *v = PyBytes_AS_STRING(value);
        Py_ssize_t len = PyBytes_GET_SIZE(value);
        if (memchr(v, '\n', (size_t)len) != NULL || memchr(v, '\r', (size_t)len) != NULL)
            return -2;
        total += len;
    }
    return total;
}

static char *line_fill(PyObject *line, PyObject *values, char *raw)
{
    PyObject *segments = PyTuple_GET_ITEM(line, 0), *slots = PyTuple_GET_ITEM(line, 1);
    Py_ssize_t count = PyTuple_GET_SIZE(slots);
    for (Py_ssize_t k = 0; k <= count; k++) {
        PyObject *segment = PyTuple_GET_ITEM(segments, k);
        memcpy(raw, PyBytes_AS_STRING(segment), (size_t)PyBytes_GET_SIZE(segment));
        raw += PyBytes_GET_SIZE(segment);
        if (k == count)
            break;
        PyObject *value = PyTuple_GET_ITEM(values, PyLong_AsSsize_t(PyTuple_GET_ITEM(slots, k)));
        memcpy(raw, PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value));
        raw += PyBytes_GET_SIZE(value);
    }
    return raw;
}

PyDoc_STRVAR(assemble_doc,
             "assemble(literals, text_lines, html_lines, text_values, html_values, to, date,\n"
             "         notice_id) -> bytes | None\n\n"
             "The .eml: literals[0], to, literals[1], date, literals[2], notice_id, literals[3],\n"
             "notice_id, literals[4], then each value line encoded followed by the next\n"
             "literal: text_lines filled with text_values, then html_lines with html_values.\n"
             "A line is (segments, slots): its bytes around its values, and each value's index.\n"
             "None when a value holds a CR or LF, or a line holds a CR (the generic path\n"
             "decides those); TypeError when the skeleton is malformed.");

static PyObject *assemble(PyObject *self, PyObject *args)
{
    PyObject *literals, *text_lines, *html_lines, *text_values, *html_values;
    Py_buffer to, date, notice_id;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!y*y*y*", &PyTuple_Type, &literals, &PyTuple_Type,
                          &text_lines, &PyTuple_Type, &html_lines, &PyTuple_Type, &text_values,
                          &PyTuple_Type, &html_values, &to, &date, &notice_id))
        return NULL;
    PyObject *result = NULL;
    char *raw = NULL, *encoded = NULL;
    Py_ssize_t *lengths = NULL;
    Py_ssize_t text_n = PyTuple_GET_SIZE(text_lines), lines = text_n + PyTuple_GET_SIZE(html_lines);
    if (PyTuple_GET_SIZE(literals) != lines + 5) {
        PyErr_SetString(PyExc_TypeError, "assemble: one literal per gap, and one more");
        goto done;
    }
    Py_ssize_t fixed = to.len + date.len + 2 * notice_id.len;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(literals); k++) {
        PyObject *literal = PyTuple_GET_ITEM(literals, k);
        if (!PyBytes_Check(literal)) {
            PyErr_SetString(PyExc_TypeError, "assemble: literals must be bytes");
            goto done;
        }
        fixed += PyBytes_GET_SIZE(literal);
    }
    /* Each line's raw length, then room to fill the longest and to encode them all. */
    lengths = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(lines ? lines : 1));
    if (lengths == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t longest = 0, bound = 0;
    for (Py_ssize_t k = 0; k < lines; k++) {
        PyObject *line = k < text_n ? PyTuple_GET_ITEM(text_lines, k)
                                    : PyTuple_GET_ITEM(html_lines, k - text_n);
        Py_ssize_t length = line_length(line, k < text_n ? text_values : html_values);
        if (length == -2) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (length < 0) {
            PyErr_SetString(PyExc_TypeError, "assemble: malformed value line");
            goto done;
        }
        lengths[k] = length;
        longest = length > longest ? length : longest;
        bound += qp_bound(length);
    }
    raw = PyMem_Malloc((size_t)(longest ? longest : 1));
    encoded = PyMem_Malloc((size_t)(bound ? bound : 1));
    if (raw == NULL || encoded == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t used = 0;
    for (Py_ssize_t k = 0; k < lines; k++) {
        PyObject *line = k < text_n ? PyTuple_GET_ITEM(text_lines, k)
                                    : PyTuple_GET_ITEM(html_lines, k - text_n);
        line_fill(line, k < text_n ? text_values : html_values, raw);
        Py_ssize_t length = qp((const unsigned char *)raw, lengths[k], encoded + used);
        lengths[k] = length;
        used += length;
    }
    result = PyBytes_FromStringAndSize(NULL, fixed + used);
    if (result == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(result);
    const Py_buffer *gaps[4] = {&to, &date, &notice_id, &notice_id};
    const char *next = encoded;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(literals); k++) {
        PyObject *literal = PyTuple_GET_ITEM(literals, k);
        memcpy(out, PyBytes_AS_STRING(literal), (size_t)PyBytes_GET_SIZE(literal));
        out += PyBytes_GET_SIZE(literal);
        if (k < 4) {
            memcpy(out, gaps[k]->buf, (size_t)gaps[k]->len);
            out += gaps[k]->len;
        } else if (k - 4 < lines) {
            memcpy(out, next, (size_t)lengths[k - 4]);
            out += lengths[k - 4];
            next += lengths[k - 4];
        }
    }
done:
    PyMem_Free(lengths);
    PyMem_Free(raw);
    PyMem_Free(encoded);
    PyBuffer_Release(&to);
    PyBuffer_Release(&date);
    PyBuffer_Release(&notice_id);
    return result;
}

static PyMethodDef methods[] = {
    {"assemble", assemble, METH_VARARGS, assemble_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "notify._eml",
    .m_doc = "A notice's .eml from its shape's skeleton and its values, in one call.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__eml(void) { return PyModule_Create(&module); }
