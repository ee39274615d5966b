/* Naming a batch of unnamed files (O_TMPFILE) in one call, without the GIL.
 *
 * notify/batch_writer.py owns the semantics (when a batch may be named, what a failure
 * means) and names files one by one where this module was not built.  This file only takes
 * the loop out of Python: a thread naming a batch while its process drafts the next one
 * would otherwise take the GIL back for every file (two system calls each), and drafting ran
 * slower that way than with the drafting thread naming its own batches (measured).
 *
 * A name is one path component: a name holding "/" or NUL, or empty, or "." or "..", is
 * refused (EINVAL) before anything is linked, so no file can land outside the folder.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Linking by descriptor (AT_EMPTY_PATH) needs Linux 6.10 or CAP_DAC_READ_SEARCH; the caller
 * says whether to try it, and learns whether it was refused (then /proc/self/fd/N is linked
 * instead, for this file and the rest of the call). */
static int link_one(int fd, int folder, const char *name, int *by_descriptor)
{
    if (*by_descriptor) {
        if (linkat(fd, "", folder, name, AT_EMPTY_PATH) == 0)
            return 0;
        if (errno != ENOENT && errno != EPERM && errno != EINVAL && errno != ENOSYS)
            return -1;
        *by_descriptor = 0;
    }
    char path[48];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, path, folder, name, AT_SYMLINK_FOLLOW);
}

static int plain_name(const char *name, Py_ssize_t len)
{
    if (len == 0 || (Py_ssize_t)strlen(name) != len || strchr(name, '/') != NULL)
        return 0;
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

PyDoc_STRVAR(name_unnamed_doc,
             "name_unnamed(folder, fds, names, by_descriptor) -> (named, errno, by_descriptor)\n\n"
             "Give each unnamed file open as fds[i] the name names[i] (bytes) in the open\n"
             "folder, replacing a file of that name, then close its descriptor; in order, until\n"
             "one fails.  Links by descriptor while by_descriptor holds and the kernel allows it,\n"
             "else through /proc/self/fd.  Returns how many were named (and closed), the\n"
             "failure's errno (0 when all were), and whether linking by descriptor still holds\n"
             "(1 or 0).\n"
             "The descriptors from the failed one on stay open.");

static PyObject *name_unnamed(PyObject *self, PyObject *args)
{
    int folder, by_descriptor;
    PyObject *fds_arg, *names_arg;
    if (!PyArg_ParseTuple(args, "iOOp:name_unnamed", &folder, &fds_arg, &names_arg,
                          &by_descriptor))
        return NULL;
    PyObject *fds = PySequence_Fast(fds_arg, "fds must be a sequence");
    if (fds == NULL)
        return NULL;
    PyObject *names = PySequence_Fast(names_arg, "names must be a sequence");
    if (names == NULL) {
        Py_DECREF(fds);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fds);
    int *fd = NULL;
    const char **name = NULL;
    if (PySequence_Fast_GET_SIZE(names) != n) {
        PyErr_SetString(PyExc_ValueError, "fds and names differ in length");
        goto done;
    }
    fd = PyMem_Malloc(sizeof(int) * (size_t)(n ? n : 1));
    name = PyMem_Malloc(sizeof(char *) * (size_t)(n ? n : 1));
    if (fd == NULL || name == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long value = PyLong_AsLong(PySequence_Fast_GET_ITEM(fds, i));
        if (value == -1 && PyErr_Occurred())
            goto done;
        if (value < 0 || value > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "a descriptor out of range");
            goto done;
        }
        fd[i] = (int)value;
        PyObject *item = PySequence_Fast_GET_ITEM(names, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "names must be bytes");
            goto done;
        }
        /* The names list holds a reference to each bytes object until the call returns. */
        name[i] = PyBytes_AS_STRING(item);
        if (!plain_name(name[i], PyBytes_GET_SIZE(item))) {
            result = Py_BuildValue("(nii)", (Py_ssize_t)0, EINVAL, by_descriptor);
            goto done;
        }
    }
    Py_ssize_t named = 0;
    int error = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; named < n; named++) {
        if (link_one(fd[named], folder, name[named], &by_descriptor) != 0) {
            /* A draft written again: remove the earlier file of that name, link once more. */
            if (errno != EEXIST || unlinkat(folder, name[named], 0) != 0 ||
                link_one(fd[named], folder, name[named], &by_descriptor) != 0) {
                error = errno;
                break;
            }
        }
        close(fd[named]);
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(nii)", named, error, by_descriptor);
done:
    PyMem_Free(fd);
    PyMem_Free(name);
    Py_DECREF(fds);
    Py_DECREF(names);
    return result;
}

static PyMethodDef methods[] = {
    {"name_unnamed", name_unnamed, METH_VARARGS, name_unnamed_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "notify._files",
    .m_doc = "Naming a batch of unnamed files in one call, without the GIL.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__files(void) { return PyModule_Create(&module); }
