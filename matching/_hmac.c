/* Batch truncated HMAC-SHA256 over Arrow string buffers (the keyed hash's fast path).
 *
 * SHA-256 is written from FIPS 180-4; the SHA-NI path follows Intel's documented
 * SHA extension intrinsics and is chosen at run time, so the module still runs (via
 * the portable compression function) on a CPU without them; -DLW_NO_SHA_NI builds the
 * portable code only.  matching/keyed_hash.py owns the semantics, and
 * tests/matching/test_hmac_native.py checks every path byte for byte against Python's hmac.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LW_NO_SHA_NI)
#define LW_X86 1
#include <immintrin.h>
#endif

#define BLOCK 64
#define OUT_BYTES 16
/* Below this many values per thread, starting a thread costs more than it saves. */
#define MIN_PER_THREAD 16384
#define MAX_THREADS 64
/* Independent messages hashed together on the SHA-NI path. */
#ifndef NI_LANES
#define NI_LANES 4
#endif

static const uint32_t K256[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

static const uint32_t H0[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

typedef void (*compress_fn)(uint32_t st[8], const uint8_t *blocks, size_t nblocks);

/* ---- portable compression (FIPS 180-4 §6.2.2) ---- */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress_portable(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    uint32_t w[64];
    while (nblocks--) {
        for (int t = 0; t < 16; t++)
            w[t] = load_be32(p + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
        uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
        for (int t = 0; t < 64; t++) {
            uint32_t S1 = ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = h + S1 + ch + K256[t] + w[t];
            uint32_t S0 = ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        st[0] += a;
        st[1] += b;
        st[2] += c;
        st[3] += d;
        st[4] += e;
        st[5] += f;
        st[6] += g;
        st[7] += h;
        p += BLOCK;
    }
}

/* ---- SHA-NI compression ----
 * sha256rnds2 works on the state split as ABEF and CDGH; each call does two rounds
 * with W[t]+K[t] taken from the low 64 bits of its third operand. */

#ifdef LW_X86
#define NI __attribute__((target("sha,sse4.1")))

typedef struct {
    __m128i abef, cdgh;
} ni_state;

static inline NI ni_state ni_load(const uint32_t st[8])
{
    __m128i cdab = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[0]), 0xB1);
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[4]), 0x1B);
    return (ni_state){_mm_alignr_epi8(cdab, efgh, 8), _mm_blend_epi16(efgh, cdab, 0xF0)};
}

static inline NI void ni_store(ni_state s, uint32_t st[8])
{
    __m128i feba = _mm_shuffle_epi32(s.abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(s.cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(dchg, feba, 8));
}

/* Byte-swapped loads of one 64-byte block: the message words W[0..15]. */
static inline NI void ni_load_block(__m128i w[4], const uint8_t *p)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    for (int i = 0; i < 4; i++)
        w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
}

/* One block (message words w, overwritten) into each of `lanes` independent states.
 * sha256rnds2 is latency bound, so interleaving independent messages fills the pipeline;
 * with `lanes` a constant the loops unroll into straight-line code and w stays in registers. */
static inline NI void ni_rounds(ni_state *s, __m128i (*w)[4], const int lanes)
{
    ni_state in[NI_LANES];
    for (int l = 0; l < lanes; l++)
        in[l] = s[l];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        __m128i k = _mm_loadu_si128((const __m128i *)&K256[4 * i]);
#pragma GCC unroll 8
        for (int l = 0; l < lanes; l++) {
            if (i >= 4) {
                /* W[t..t+3] from groups i-4 (w[i&3]), i-3, i-2 and i-1. */
                __m128i x = _mm_sha256msg1_epu32(w[l][i & 3], w[l][(i + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(w[l][(i + 3) & 3], w[l][(i + 2) & 3], 4));
                w[l][i & 3] = _mm_sha256msg2_epu32(x, w[l][(i + 3) & 3]);
            }
            /* Each rnds2 takes (CDGH, ABEF) and returns the new ABEF; the old ABEF is the
             * new CDGH, hence the swapped roles of the two calls. */
            __m128i wk = _mm_add_epi32(w[l][i & 3], k);
            s[l].cdgh = _mm_sha256rnds2_epu32(s[l].cdgh, s[l].abef, wk);
            s[l].abef = _mm_sha256rnds2_epu32(s[l].abef, s[l].cdgh, _mm_shuffle_epi32(wk, 0x0E));
        }
    }
    for (int l = 0; l < lanes; l++) {
        s[l].abef = _mm_add_epi32(s[l].abef, in[l].abef);
        s[l].cdgh = _mm_add_epi32(s[l].cdgh, in[l].cdgh);
    }
}

static NI void compress_shani(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    ni_state s = ni_load(st);
    __m128i w[1][4];
    for (; nblocks; nblocks--, p += BLOCK) {
        ni_load_block(w[0], p);
        ni_rounds(&s, w, 1);
    }
    ni_store(s, st);
}
#endif

static int have_sha_ni(void)
{
#ifdef LW_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") &&
           __builtin_cpu_supports("ssse3");
#else
    return 0;
#endif
}

/* ---- streaming SHA-256, used only to set up the HMAC states ---- */

typedef struct {
    uint32_t h[8];
    uint8_t buf[BLOCK];
    size_t buflen;
    uint64_t total;
} sha_stream;

static void stream_init(sha_stream *s)
{
    memcpy(s->h, H0, sizeof H0);
    s->buflen = 0;
    s->total = 0;
}

static void stream_update(sha_stream *s, const uint8_t *p, size_t len)
{
    s->total += len;
    while (len) {
        size_t take = BLOCK - s->buflen;
        if (take > len)
            take = len;
        memcpy(s->buf + s->buflen, p, take);
        s->buflen += take;
        p += take;
        len -= take;
        if (s->buflen == BLOCK) {
            compress_portable(s->h, s->buf, 1);
            s->buflen = 0;
        }
    }
}

static void stream_final(sha_stream *s, uint8_t out[32])
{
    uint8_t pad[2 * BLOCK] = {0};
    uint64_t bits = s->total * 8;
    size_t t = s->buflen;
    memcpy(pad, s->buf, t);
    pad[t++] = 0x80;
    size_t nb = t + 8 <= BLOCK ? 1 : 2;
    store_be64(pad + nb * BLOCK - 8, bits);
    compress_portable(s->h, pad, nb);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, s->h[i]);
}

/* ---- HMAC of one value ---- */

typedef struct {
    uint32_t inner[8];  /* after K^ipad and the whole blocks of the prefix */
    uint32_t outer[8];  /* after K^opad */
    uint8_t tail[BLOCK]; /* prefix bytes not yet compressed, then zeros */
    size_t tail_len;
    uint64_t absorbed;  /* bytes compressed into inner */
} hmac_ctx;

static void hmac_setup(hmac_ctx *c, const uint8_t *key, size_t key_len, const uint8_t *prefix,
                       size_t prefix_len)
{
    uint8_t k[BLOCK] = {0}, pad[BLOCK];
    sha_stream s;
    if (key_len > BLOCK) { /* RFC 2104 §2: long keys are hashed first */
        stream_init(&s);
        stream_update(&s, key, key_len);
        stream_final(&s, k);
    } else {
        memcpy(k, key, key_len);
    }
    stream_init(&s);
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    stream_update(&s, pad, BLOCK);
    stream_update(&s, prefix, prefix_len);
    memcpy(c->inner, s.h, 32);
    memset(c->tail, 0, BLOCK);
    memcpy(c->tail, s.buf, s.buflen);
    c->tail_len = s.buflen;
    c->absorbed = s.total - s.buflen;

    stream_init(&s);
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    stream_update(&s, pad, BLOCK);
    memcpy(c->outer, s.h, 32);
    memset(k, 0, sizeof k);
    memset(pad, 0, sizeof pad);
}

static inline void hmac_one(const hmac_ctx *c, compress_fn compress, const uint8_t *v, size_t len,
                            uint8_t *out)
{
    uint32_t st[8];
    uint8_t blk[2 * BLOCK];
    size_t t = c->tail_len;
    uint64_t bits = (c->absorbed + t + len) * 8;

    memcpy(st, c->inner, 32);
    memcpy(blk, c->tail, t);
    if (len >= BLOCK - t) {
        size_t take = BLOCK - t;
        memcpy(blk + t, v, take);
        compress(st, blk, 1);
        v += take;
        len -= take;
        size_t whole = len / BLOCK;
        if (whole) {
            compress(st, v, whole);
            v += whole * BLOCK;
            len -= whole * BLOCK;
        }
        t = 0;
    }
    memcpy(blk + t, v, len);
    t += len;
    blk[t++] = 0x80;
    size_t nb = t + 8 <= BLOCK ? 1 : 2;
    memset(blk + t, 0, nb * BLOCK - 8 - t);
    store_be64(blk + nb * BLOCK - 8, bits);
    compress(st, blk, nb);

    /* Outer hash: one block, the 32-byte inner digest then padding for 96 bytes. */
    uint8_t ob[BLOCK] = {0};
    for (int i = 0; i < 8; i++)
        store_be32(ob + 4 * i, st[i]);
    ob[32] = 0x80;
    store_be64(ob + BLOCK - 8, (uint64_t)(BLOCK + 32) * 8);
    memcpy(st, c->outer, 32);
    compress(st, ob, 1);
    for (int i = 0; i < OUT_BYTES / 4; i++)
        store_be32(out + 4 * i, st[i]);
}

/* Values whose prefix tail, bytes and padding fit one block (the common case: phones, IBANs,
 * most e-mail addresses) take the multi-lane SHA-NI path. */
static inline int fits_one_block(const hmac_ctx *c, size_t len)
{
    return c->tail_len + len + 9 <= BLOCK;
}

#ifdef LW_X86
static NI void hmac_lanes_shani(const hmac_ctx *c, const uint8_t *const *v, const size_t *len,
                                uint8_t *const *out)
{
    uint8_t blk[NI_LANES][BLOCK];
    __m128i w[NI_LANES][4];
    ni_state s[NI_LANES];
    const ni_state inner = ni_load(c->inner), outer = ni_load(c->outer);

    for (int l = 0; l < NI_LANES; l++) {
        /* c->tail is zero past tail_len, so it doubles as the block's template. */
        size_t t = c->tail_len;
        memcpy(blk[l], c->tail, BLOCK);
        memcpy(blk[l] + t, v[l], len[l]);
        blk[l][t + len[l]] = 0x80;
        store_be64(blk[l] + BLOCK - 8, (c->absorbed + t + len[l]) * 8);
    }
    /* Loaded only once every block is written: a wide load right after the narrow stores
     * that built it cannot be forwarded and stalls. */
    for (int l = 0; l < NI_LANES; l++) {
        ni_load_block(w[l], blk[l]);
        s[l] = inner;
    }
    ni_rounds(s, w, NI_LANES);

    /* The outer block's words straight from the registers: the inner digest H0..H7, the
     * padding bit, and the length of K^opad plus 32 bytes. */
    const __m128i pad_word = _mm_setr_epi32((int)0x80000000u, 0, 0, 0);
    const __m128i len_word = _mm_setr_epi32(0, 0, 0, (BLOCK + 32) * 8);
    for (int l = 0; l < NI_LANES; l++) {
        __m128i feba = _mm_shuffle_epi32(s[l].abef, 0x1B);
        __m128i dchg = _mm_shuffle_epi32(s[l].cdgh, 0xB1);
        w[l][0] = _mm_blend_epi16(feba, dchg, 0xF0); /* H0 H1 H2 H3 */
        w[l][1] = _mm_alignr_epi8(dchg, feba, 8);    /* H4 H5 H6 H7 */
        w[l][2] = pad_word;
        w[l][3] = len_word;
        s[l] = outer;
    }
    ni_rounds(s, w, NI_LANES);

    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    for (int l = 0; l < NI_LANES; l++) {
        __m128i dcba = _mm_blend_epi16(_mm_shuffle_epi32(s[l].abef, 0x1B),
                                       _mm_shuffle_epi32(s[l].cdgh, 0xB1), 0xF0);
        _mm_storeu_si128((__m128i *)out[l], _mm_shuffle_epi8(dcba, bswap));
    }
}
#endif

/* ---- batch over Arrow buffers ---- */

typedef struct {
    const hmac_ctx *ctx;
    compress_fn compress;
    const uint8_t *data;
    Py_ssize_t data_len;
    const uint8_t *offsets; /* int64, n + 1 entries, possibly unaligned */
    const uint8_t *validity; /* Arrow bitmap or NULL */
    Py_ssize_t validity_offset;
    Py_ssize_t start, end;
    uint8_t *out;
    uint64_t *k1, *k2; /* words mode: out is scratch, turned into these two arrays */
    int lanes; /* use the multi-lane SHA-NI path for one-block values */
    int bad;   /* offsets out of order or out of the data buffer */
} job;

static inline int64_t load_i64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void *run_job(void *arg)
{
    job *j = arg;
    const uint8_t *lane_v[NI_LANES];
    size_t lane_len[NI_LANES];
    uint8_t *lane_out[NI_LANES];
    int pending = 0;
    int64_t lo = load_i64(j->offsets + 8 * j->start);

    for (Py_ssize_t i = j->start; i < j->end; i++) {
        int64_t hi = load_i64(j->offsets + 8 * (i + 1));
        uint8_t *out = j->out + OUT_BYTES * i;
        if (lo < 0 || hi < lo || hi > j->data_len) {
            j->bad = 1;
            return NULL;
        }
        const uint8_t *v = j->data + lo;
        size_t len = (size_t)(hi - lo);
        Py_ssize_t bit = j->validity_offset + i;
        lo = hi;
        if (j->validity && !((j->validity[bit >> 3] >> (bit & 7)) & 1)) {
            memset(out, 0, OUT_BYTES);
            continue;
        }
#ifdef LW_X86
        if (j->lanes && fits_one_block(j->ctx, len)) {
            lane_v[pending] = v;
            lane_len[pending] = len;
            lane_out[pending] = out;
            if (++pending == NI_LANES) {
                hmac_lanes_shani(j->ctx, lane_v, lane_len, lane_out);
                pending = 0;
            }
            continue;
        }
#endif
        hmac_one(j->ctx, j->compress, v, len, out);
    }
    for (int l = 0; l < pending; l++)
        hmac_one(j->ctx, j->compress, lane_v[l], lane_len[l], lane_out[l]);
    if (j->k1) {
        /* The 16 bytes as two big-endian 64-bit numbers (keyed_hash.py documents the order);
         * null values keep their zero bytes. */
        for (Py_ssize_t i = j->start; i < j->end; i++) {
            const uint8_t *d = j->out + OUT_BYTES * i;
            j->k1[i] = ((uint64_t)load_be32(d) << 32) | load_be32(d + 4);
            j->k2[i] = ((uint64_t)load_be32(d + 8) << 32) | load_be32(d + 12);
        }
    }
    return NULL;
}

static int sha_ni_ok;

/* The batch shared by both entry points: 16 bytes per value into `digests` (n * 16), and in
 * words mode (k1 and k2 not NULL) the same bytes as two arrays of n 64-bit numbers. */
static PyObject *hmac_batch(PyObject *args, PyObject *kwargs, const char *format, int words)
{
    static char *kwlist[] = {"key", "prefix", "data", "offsets", "validity",
                             "validity_offset", "n", "threads", "portable", NULL};
    Py_buffer key = {0}, prefix = {0}, data = {0}, offsets = {0}, validity = {0};
    PyObject *validity_obj = Py_None;
    Py_ssize_t validity_offset = 0, n = 0;
    int threads = 2, portable = 0;
    PyObject *result = NULL;
    uint8_t *scratch = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, format, kwlist, &key, &prefix, &data,
                                     &offsets, &validity_obj, &validity_offset, &n, &threads,
                                     &portable))
        return NULL;
    if (validity_obj != Py_None && PyObject_GetBuffer(validity_obj, &validity, PyBUF_SIMPLE) < 0)
        goto done;
    if (n < 0 || validity_offset < 0) {
        PyErr_SetString(PyExc_ValueError, "n and validity_offset must be >= 0");
        goto done;
    }
    if (n > PY_SSIZE_T_MAX / OUT_BYTES) {
        PyErr_SetString(PyExc_ValueError, "n is too large");
        goto done;
    }
    if (offsets.len / 8 < n + 1) {
        PyErr_SetString(PyExc_ValueError, "offsets holds fewer than n + 1 int64 values");
        goto done;
    }
    if (validity.buf && (validity.len * 8 < validity_offset + n)) {
        PyErr_SetString(PyExc_ValueError, "validity bitmap shorter than validity_offset + n bits");
        goto done;
    }
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > 1 && n / threads < MIN_PER_THREAD)
        threads = (int)(n / MIN_PER_THREAD) > 1 ? (int)(n / MIN_PER_THREAD) : 1;

    /* Words mode returns k1 then k2 (2 * 8 bytes per value): the digests go to scratch. */
    result = PyBytes_FromStringAndSize(NULL, n * OUT_BYTES);
    if (!result)
        goto done;
    uint8_t *digests = (uint8_t *)PyBytes_AS_STRING(result);
    uint64_t *k1 = NULL, *k2 = NULL;
    if (words) {
        scratch = PyMem_RawMalloc(n ? (size_t)n * OUT_BYTES : 1);
        if (!scratch) {
            Py_CLEAR(result);
            PyErr_NoMemory();
            goto done;
        }
        k1 = (uint64_t *)digests; /* PyBytes data is aligned well beyond 8 bytes */
        k2 = k1 + n;
        digests = scratch;
    }

    hmac_ctx ctx;
    hmac_setup(&ctx, key.buf, (size_t)key.len, prefix.buf, (size_t)prefix.len);
    int use_ni = sha_ni_ok && !portable;
#ifdef LW_X86
    compress_fn compress = use_ni ? compress_shani : compress_portable;
#else
    compress_fn compress = compress_portable;
#endif
    job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    int bad = 0;

    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){
            .ctx = &ctx,
            .compress = compress,
            .data = data.buf,
            .data_len = data.len,
            .offsets = offsets.buf,
            .validity = validity.buf,
            .validity_offset = validity_offset,
            .start = n * t / threads,
            .end = n * (t + 1) / threads,
            .out = digests,
            .k1 = k1,
            .k2 = k2,
            .lanes = use_ni,
            .bad = 0,
        };
    }
    /* The calling thread takes the first share; a thread that fails to start is run here. */
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tids[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_job(&jobs[t]);
    }
    for (int t = 0; t < threads; t++)
        bad |= jobs[t].bad;
    Py_END_ALLOW_THREADS

    memset(&ctx, 0, sizeof ctx);
    if (bad) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_ValueError, "offsets are decreasing or outside the data buffer");
    }
done:
    if (scratch) {
        memset(scratch, 0, (size_t)n * OUT_BYTES);
        PyMem_RawFree(scratch);
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    if (validity.buf)
        PyBuffer_Release(&validity);
    return result;
}

PyDoc_STRVAR(trunc16_doc,
"hmac_sha256_trunc16(key, prefix, data, offsets, validity, validity_offset, n, threads=2,\n"
"                    portable=False) -> bytes\n\n"
"First 16 bytes of HMAC-SHA256(key, prefix + data[offsets[i]:offsets[i+1]]) for i < n,\n"
"concatenated. offsets: n + 1 little-endian int64 (Arrow large_string offsets, already\n"
"shifted by the array offset). validity: Arrow bitmap or None; bit validity_offset + i\n"
"clear gives 16 zero bytes. The GIL is released; large batches are split over threads.\n"
"portable=True forces the portable compression function even where SHA-NI exists.");

static PyObject *trunc16(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return hmac_batch(args, kwargs, "y*y*y*y*Onn|ip:hmac_sha256_trunc16", 0);
}

PyDoc_STRVAR(words_doc,
"hmac_sha256_words(key, prefix, data, offsets, validity, validity_offset, n, threads=2,\n"
"                  portable=False) -> bytes\n\n"
"The same 16 bytes per value as hmac_sha256_trunc16, as two arrays of n native-endian\n"
"uint64: first k1 (bytes 0-7 read big-endian) for every value, then k2 (bytes 8-15).\n"
"A null value (validity bit clear) gives k1 = k2 = 0.");

static PyObject *words(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return hmac_batch(args, kwargs, "y*y*y*y*Onn|ip:hmac_sha256_words", 1);
}

static PyObject *sha_ni_available(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(sha_ni_ok);
}

static PyMethodDef methods[] = {
    {"hmac_sha256_trunc16", (PyCFunction)(void (*)(void))trunc16, METH_VARARGS | METH_KEYWORDS,
     trunc16_doc},
    {"hmac_sha256_words", (PyCFunction)(void (*)(void))words, METH_VARARGS | METH_KEYWORDS,
     words_doc},
    {"sha_ni_available", sha_ni_available, METH_NOARGS,
     "True when this CPU has the SHA extensions and the fast path is used by default."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "matching._hmac",
    .m_doc = "Batch truncated HMAC-SHA256 over Arrow string buffers.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__hmac(void)
{
    sha_ni_ok = have_sha_ni();
    return PyModule_Create(&module);
}
