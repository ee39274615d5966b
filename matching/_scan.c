/* Native scanner for delimited leak files: split lines, category masks, key normalisation.
 *
 * matching/fastscan.py owns the semantics and builds every table this file uses (the
 * delimiter, per-column kinds and category bits, which bytes or code points are White_Space,
 * the French phone prefixes and the phone validity automaton, the IBAN registry, the German
 * check methods of _german.h).  The scanner decides only what it is sure
 * reproduces the Python path byte for byte; everything else goes back to Python as a pending
 * value (decided by matching.identity.normalise) or a leftover line (split by the Python
 * parser).  Leak files are hostile: every index stays inside the line it belongs to, every
 * count is bounded, and allocation failures end the call with MemoryError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_german.h"

#define CAPSULE_NAME "matching._scan.config"

enum { KIND_NONE = 0, KIND_EMAIL = 1, KIND_IBAN = 2, KIND_PHONE = 3 };
enum {
    REASON_EMAIL_INVALID = 1,
    REASON_IBAN_MALFORMED = 2,
    REASON_IBAN_COUNTRY_OR_LENGTH = 3,
    REASON_IBAN_MOD97 = 4,
    REASON_IBAN_NATIONAL = 5,
    REASON_PHONE_INVALID = 6,
};
/* National check of a country, as matching/ibans.py applies it after mod-97. */
enum {
    ALGO_NONE = 0,
    ALGO_RIB = 1,
    ALGO_ES = 2,
    ALGO_IT = 3,
    ALGO_BE = 4,
    ALGO_REFERENCE = 5,
    ALGO_DE = 6, /* _german.h; the methods it does not reproduce stay pending */
};
enum { CLS_DIGIT = 1, CLS_UPPER = 2, CLS_LOWER = 4 };

#define IBAN_PARTS 16
#define IBAN_SPEC_BYTES (4 + 2 * IBAN_PARTS)
#define IBAN_COUNTRIES (26 * 26)
#define MAX_IBAN 34
#define MAX_EMAIL 254
#define MAX_LOCAL 64
#define PHONE_MAX_CHARS 30
/* Overseas calling codes the automaton's accepting bits can name (bits 1..7 of a byte). */
#define MAX_OVERSEAS 7
#define MAX_DFA_STATES 65535
/* Delimiter and quote positions kept per line; a line with more takes the byte-wise split. */
#define SPECIAL_CAP 4096

typedef struct {
    uint8_t length; /* 0: not in the registry */
    uint8_t algo;
    uint8_t nparts;
    uint8_t usable; /* 0: its BBAN regex did not translate, every value stays pending */
    uint8_t count[IBAN_PARTS];
    uint8_t cls[IBAN_PARTS];
} iban_spec;

typedef struct {
    uint8_t delim;
    Py_ssize_t ncols;
    uint8_t *kind;   /* per column */
    uint16_t *slot;  /* per column: index of its key column (what Python maps to a name) */
    uint16_t *bits;  /* per column: category bit, 0 when the column has no category */
    int single_byte; /* a single-byte ASCII superset (cp1252, latin-1...), else UTF-8 */
    uint8_t byte_ws[256];
    uint8_t byte_utf8[256][4]; /* length, then the UTF-8 bytes of the decoded byte */
    uint32_t *cp_ws; /* UTF-8: the White_Space code points above ASCII */
    Py_ssize_t n_cp_ws;
    int phones; /* the French phone fast path is on */
    uint8_t prefix[1000];
    int national;          /* the national stage is on too (an automaton was given) */
    uint16_t *dfa;         /* phone automaton: per state, the successor of each digit */
    uint8_t *dfa_accept;   /* per state: bit 0 valid as +33, bit 1 + i under overseas[i] */
    Py_ssize_t dfa_states;
    uint8_t overseas[MAX_OVERSEAS][3]; /* ASCII calling codes, three digits each */
    int n_overseas;
    iban_spec iban[IBAN_COUNTRIES];
    uint8_t it_odd[26];
    uint8_t es_w[10];
    de_tables german;
    Py_ssize_t line_cap; /* longer lines are leftovers */
} config;

/* ---- growable output buffers (no GIL needed: plain malloc) ---- */

typedef struct {
    char *p;
    size_t len, cap;
} obuf;

static int put(obuf *b, const void *src, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int put_u64(obuf *b, uint64_t v) { return put(b, &v, sizeof v); }
static int put_i64(obuf *b, int64_t v) { return put(b, &v, sizeof v); }
static int put_u32(obuf *b, uint32_t v) { return put(b, &v, sizeof v); }
static int put_u16(obuf *b, uint16_t v) { return put(b, &v, sizeof v); }
static int put_u8(obuf *b, uint8_t v) { return put(b, &v, sizeof v); }

enum {
    O_ROWS, O_CATS,
    /* decided values, grouped by kind (email, iban, phone): index, offsets, bytes each */
    O_CANON, O_CANON_END = O_CANON + 3 * 3 - 1,
    O_REJ_IDX, O_REJ_SLOT, O_REJ_REASON,
    O_PEND_IDX, O_PEND_SLOT, O_PEND_OFF, O_PEND_DATA,
    O_LEFT_ROW, O_LEFT_START, O_LEFT_END,
    O_BAD_ROW, O_BAD_FOUND,
    O_COUNT
};

typedef struct {
    obuf o[O_COUNT];
    uint32_t kept; /* kept_base + records decided natively so far in this call */
    char *scratch; /* one unescaped field, at most line_cap bytes */
    size_t scratch_cap;
} outputs;

/* ---- character helpers ---- */

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static inline int is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }
static inline int is_lower(uint8_t c) { return c >= 'a' && c <= 'z'; }
static inline int is_alnum(uint8_t c) { return is_digit(c) || is_upper(c) || is_lower(c); }
/* Rust's \s on ASCII: the White_Space property, which excludes \x1c-\x1f. */
static inline int is_ascii_ws(uint8_t c) { return c == ' ' || (c >= 0x09 && c <= 0x0d); }

/* Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF): what Rust accepts as is. */
static int valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else
            return 0;
        if (n - i - 1 < need)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += need + 1;
    }
    return 1;
}

/* Decode one code point of text already validated by valid_utf8; advances *i. */
static uint32_t next_cp(const uint8_t *s, size_t n, size_t *i)
{
    uint8_t c = s[*i];
    uint32_t cp;
    size_t need;
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c < 0xe0) {
        cp = c & 0x1f;
        need = 1;
    } else if (c < 0xf0) {
        cp = c & 0x0f;
        need = 2;
    } else {
        cp = c & 0x07;
        need = 3;
    }
    for (size_t k = 1; k <= need && *i + k < n; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3f);
    *i += need + 1;
    return cp;
}

static int cp_is_ws(const config *cfg, uint32_t cp)
{
    Py_ssize_t lo = 0, hi = cfg->n_cp_ws;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (cfg->cp_ws[mid] == cp)
            return 1;
        if (cfg->cp_ws[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* polars' str.contains(r"\S") on the decoded field: some character outside White_Space. */
static int present(const config *cfg, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (!is_ascii_ws(c))
                return 1;
            i++;
        } else if (cfg->single_byte) {
            if (!cfg->byte_ws[c])
                return 1;
            i++;
        } else {
            if (!cp_is_ws(cfg, next_cp(s, n, &i)))
                return 1;
        }
    }
    return 0;
}

/* ---- e-mail: matching/emails.py's ASCII rule ---- */

static int email_label_char(uint8_t c) { return is_digit(c) || is_lower(c) || c == '-'; }

static int strip_email_ws(uint8_t c)
{
    /* What str.strip() removes from ASCII text (emails._ASCII_WHITESPACE). */
    return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
}

/* 0: blank, 1: canonical written to out/out_len, 2: invalid. */
static int email_decide(const uint8_t *s, size_t n, uint8_t *out, size_t *out_len)
{
    size_t a = 0, b = n;
    while (a < b && strip_email_ws(s[a]))
        a++;
    while (b > a && strip_email_ws(s[b - 1]))
        b--;
    if (a == b)
        return 0;
    size_t len = b - a;
    if (len > MAX_EMAIL)
        return 2;
    for (size_t k = 0; k < len; k++) {
        uint8_t c = s[a + k];
        out[k] = is_upper(c) ? (uint8_t)(c + 32) : c;
    }
    size_t at = 0;
    while (at < len && out[at] != '@') {
        uint8_t c = out[at];
        if (c <= 0x20 || c == 0x7f)
            return 2;
        at++;
    }
    if (at == len || at < 1 || at > MAX_LOCAL)
        return 2;
    /* domain: labels of [a-z0-9-] not starting or ending with '-', at least two of them */
    size_t labels = 0, start = at + 1;
    if (start == len)
        return 2;
    for (size_t k = start; k <= len; k++) {
        if (k == len || out[k] == '.') {
            if (k == start)
                return 2;
            if (out[start] == '-' || out[k - 1] == '-')
                return 2;
            labels++;
            start = k + 1;
        } else if (!email_label_char(out[k]))
            return 2;
    }
    if (labels < 2)
        return 2;
    *out_len = len;
    return 1;
}

/* ---- phone: matching/phones.py's _staged_fast and _national_stage ---- */

static int phone_blank(const uint8_t *s, size_t n)
{
    /* phones._ASCII_BLANK: [ \t\n\r\x0b\x0c]* */
    for (size_t k = 0; k < n; k++)
        if (!is_ascii_ws(s[k]))
            return 0;
    return 1;
}

/* The accepting bits of a digit string: bit 0 valid as +33, bit 1 + i valid under the i-th
 * overseas code.  make_config checked that every successor is a state, so the walk stays in
 * the table whatever the digits. */
static unsigned phone_mask(const config *cfg, const uint8_t *d, size_t n)
{
    size_t state = 0;
    for (size_t k = 0; k < n; k++)
        state = cfg->dfa[state * 10 + (size_t)(d[k] - '0')];
    return cfg->dfa_accept[state];
}

static size_t phone_e164(uint8_t *out, const uint8_t *code, size_t code_len, const uint8_t *nsn)
{
    out[0] = '+';
    memcpy(out + 1, code, code_len);
    memcpy(out + 1 + code_len, nsn, 9);
    return 1 + code_len + 9;
}

enum { PHONE_PENDING = 0, PHONE_CANON = 1, PHONE_INVALID = 2 };

/* A value that is not blank: PHONE_CANON with the E.164 number in out, PHONE_INVALID, or
 * PHONE_PENDING when only the reference can tell (the Python stages decide nothing there). */
static int phone_decide(const config *cfg, const uint8_t *s, size_t n, uint8_t *out, size_t *out_len)
{
    size_t a = 0, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    size_t len = b - a;
    /* Every form below (_FAST_SHAPE, _BARE_NATIONAL) is at most PHONE_MAX_CHARS long. */
    if (len == 0 || len > PHONE_MAX_CHARS)
        return PHONE_PENDING;
    const uint8_t *t = s + a;
    int plus = t[0] == '+';
    size_t k = plus ? 1 : 0;
    if (k >= len || !(is_digit(t[k]) || t[k] == '('))
        return PHONE_PENDING;
    uint8_t digits[PHONE_MAX_CHARS];
    size_t nd = 0;
    for (; k < len; k++) {
        uint8_t c = t[k];
        if (is_digit(c))
            digits[nd++] = c;
        else if (!(c == ' ' || c == '.' || c == '(' || c == ')' || c == '-' || c == '/'))
            return PHONE_PENDING; /* not _FAST_SHAPE (its no-break space is not ASCII) */
    }
    /* The national number behind the prefix the regex forms allow; each prefix has its own
     * length, so the length alone says which one applies. */
    size_t skip = 0;
    int national = 1;
    if (plus) {
        if (nd == 11 && digits[0] == '3' && digits[1] == '3')
            skip = 2;
        else if (nd == 12 && digits[0] == '3' && digits[1] == '3' && digits[2] == '0')
            skip = 3;
        else
            national = 0;
    } else {
        if (nd == 9)
            skip = 0;
        else if (nd == 10 && digits[0] == '0')
            skip = 1;
        else if (nd == 11 && digits[0] == '3' && digits[1] == '3')
            skip = 2;
        else if (nd == 12 && !memcmp(digits, "330", 3))
            skip = 3;
        else if (nd == 13 && !memcmp(digits, "0033", 4))
            skip = 4;
        else if (nd == 14 && !memcmp(digits, "00330", 5))
            skip = 5;
        else
            national = 0;
    }
    if (national && digits[skip] == '0')
        national = 0; /* the forms want [1-9] first */
    if (national) {
        const uint8_t *nat = digits + skip;
        int p = (nat[0] - '0') * 100 + (nat[1] - '0') * 10 + (nat[2] - '0');
        if (cfg->prefix[p]) {
            *out_len = phone_e164(out, (const uint8_t *)"33", 2, nat);
            return PHONE_CANON;
        }
        if (!cfg->national)
            return PHONE_PENDING;
        /* The overseas rule: exactly one overseas code wins over +33; else +33 validity. */
        unsigned mask = phone_mask(cfg, nat, 9), found = 0;
        int only = -1;
        for (int i = 0; i < cfg->n_overseas; i++)
            if (mask >> (i + 1) & 1) {
                found++;
                only = i;
            }
        if (found == 1) {
            *out_len = phone_e164(out, cfg->overseas[only], 3, nat);
            return PHONE_CANON;
        }
        if (mask & 1) {
            *out_len = phone_e164(out, (const uint8_t *)"33", 2, nat);
            return PHONE_CANON;
        }
        return PHONE_INVALID;
    }
    if (!cfg->national)
        return PHONE_PENDING;
    if (plus) {
        /* _OVERSEAS_PLUS_FORM: an overseas calling code and nine digits, [1-9] first. */
        if (nd != 12 || digits[3] == '0')
            return PHONE_PENDING;
        for (int i = 0; i < cfg->n_overseas; i++)
            if (!memcmp(digits, cfg->overseas[i], 3)) {
                if (!(phone_mask(cfg, digits + 3, 9) >> (i + 1) & 1))
                    return PHONE_INVALID;
                *out_len = phone_e164(out, cfg->overseas[i], 3, digits + 3);
                return PHONE_CANON;
            }
        return PHONE_PENDING;
    }
    /* _BARE_NATIONAL (^0[1-9][0-9]{1,15}$ on the stripped text, separators not allowed) that
     * is not a national form: refused when no reading phonenumbers may choose is valid, the
     * zero stripped (under +33 or an overseas code) or kept (under +33). */
    if (nd != len || len < 3 || len > 17 || t[0] != '0' || t[1] == '0')
        return PHONE_PENDING;
    if (phone_mask(cfg, t + 1, len - 1) || (phone_mask(cfg, t, len) & 1))
        return PHONE_PENDING;
    return PHONE_INVALID;
}

/* ---- IBAN: matching/ibans.py's vectorised rules ---- */

static int rib_value(uint8_t c)
{
    if (is_digit(c))
        return c - '0';
    int i = c - 'A'; /* A..I -> 1..9, J..R -> 1..9, S..Z -> 2..9 */
    if (i < 9)
        return i + 1;
    if (i < 18)
        return i - 8;
    return i - 16;
}

static uint64_t digits_value(const uint8_t *s, size_t n, int rib)
{
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++)
        v = v * 10 + (uint64_t)(rib ? rib_value(s[k]) : s[k] - '0');
    return v;
}

static int all_digits(const uint8_t *s, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!is_digit(s[k]))
            return 0;
    return 1;
}

static int es_check(int total)
{
    int d = 11 - total % 11;
    return d == 11 ? 0 : (d == 10 ? 1 : d);
}

/* 1 passes, 0 fails, -1 not sure (pending). bban is upper-case [A-Z0-9]. */
static int national_ok(const config *cfg, int algo, const uint8_t *bban, size_t n)
{
    switch (algo) {
    case ALGO_RIB: {
        if (n != 23)
            return -1;
        uint64_t bank = digits_value(bban, 5, 1), branch = digits_value(bban + 5, 5, 1);
        uint64_t account = digits_value(bban + 10, 11, 1), key = digits_value(bban + 21, 2, 1);
        return 97 - (89 * bank + 15 * branch + 3 * account) % 97 == key;
    }
    case ALGO_ES: {
        if (n != 20 || !all_digits(bban, 20))
            return -1;
        int first = 0, second = 0;
        for (int i = 0; i < 8; i++)
            first += cfg->es_w[2 + i] * (bban[i] - '0');
        for (int i = 0; i < 10; i++)
            second += cfg->es_w[i] * (bban[10 + i] - '0');
        return es_check(first) * 10 + es_check(second) == (bban[8] - '0') * 10 + (bban[9] - '0');
    }
    case ALGO_IT: {
        if (n != 23 || !is_upper(bban[0]))
            return -1;
        int total = 0;
        for (int i = 0; i < 22; i++) {
            uint8_t c = bban[1 + i];
            int v = is_digit(c) ? c - '0' : c - 'A';
            total += (i + 1) % 2 == 0 ? v : cfg->it_odd[v];
        }
        return 'A' + total % 26 == bban[0];
    }
    case ALGO_BE: {
        if (n != 12 || !all_digits(bban, 12))
            return -1;
        uint64_t rem = digits_value(bban, 10, 0) % 97;
        return (rem == 0 ? 97 : rem) == digits_value(bban + 10, 2, 0);
    }
    case ALGO_DE:
        return de_check(&cfg->german, bban, n);
    case ALGO_NONE:
        return 1;
    default:
        return -1;
    }
}

static int part_ok(uint8_t cls, uint8_t c)
{
    return ((cls & CLS_DIGIT) && is_digit(c)) || ((cls & CLS_UPPER) && is_upper(c)) ||
           ((cls & CLS_LOWER) && is_lower(c));
}

/* 0 blank, 1 canonical, 2 pending, or a reason code (> 2 mapped below). */
enum { IBAN_BLANK = 0, IBAN_CANON = 1, IBAN_PENDING = 2, IBAN_REJECT = 3 };

static int iban_decide(const config *cfg, const uint8_t *s, size_t n, uint8_t *out, size_t *out_len,
                       int *reason)
{
    size_t len = 0;
    int alnum = 1;
    for (size_t k = 0; k < n; k++) {
        uint8_t c = s[k];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '-' || c == '.')
            continue;
        if (!is_alnum(c))
            alnum = 0;
        else if (len < MAX_IBAN + 1)
            out[len] = is_lower(c) ? (uint8_t)(c - 32) : c;
        len++;
    }
    if (len == 0)
        return IBAN_BLANK;
    if (!alnum) {
        *reason = REASON_IBAN_MALFORMED;
        return IBAN_REJECT;
    }
    if (len > MAX_IBAN) {
        *reason = REASON_IBAN_COUNTRY_OR_LENGTH;
        return IBAN_REJECT;
    }
    if (len < 5 || !is_upper(out[0]) || !is_upper(out[1]) || !is_digit(out[2]) || !is_digit(out[3]))
        return IBAN_PENDING;
    const iban_spec *spec = &cfg->iban[(out[0] - 'A') * 26 + (out[1] - 'A')];
    if (spec->length == 0 || spec->length != len || !spec->usable)
        return IBAN_PENDING;
    /* BBAN structure, part by part (the registry's regex as (count, class) runs) */
    size_t at = 4;
    int formatted = 1;
    for (int p = 0; p < spec->nparts && formatted; p++) {
        for (int c = 0; c < spec->count[p]; c++) {
            if (at >= len || !part_ok(spec->cls[p], out[at])) {
                formatted = 0;
                break;
            }
            at++;
        }
    }
    if (at != len)
        formatted = 0;
    if (!formatted) {
        *reason = REASON_IBAN_MALFORMED;
        return IBAN_REJECT;
    }
    /* ISO 7064 mod 97-10 over the rearranged IBAN (BBAN, then country and check digits),
     * letters as 10..35; reduced only when the accumulator nears 2^63 / 100 */
    uint64_t acc = 0;
    for (size_t k = 0; k < len; k++) {
        uint8_t c = out[(k + 4) % len];
        acc = is_digit(c) ? acc * 10 + (uint64_t)(c - '0') : acc * 100 + (uint64_t)(c - 'A' + 10);
        if (acc >= 10000000000000000ULL)
            acc %= 97;
    }
    uint32_t rem = (uint32_t)(acc % 97);
    int check = (out[2] - '0') * 10 + (out[3] - '0');
    if (rem != 1 || check < 2 || check > 98) {
        *reason = REASON_IBAN_MOD97;
        return IBAN_REJECT;
    }
    int ok = national_ok(cfg, spec->algo, out + 4, len - 4);
    if (ok < 0)
        return IBAN_PENDING;
    if (!ok) {
        *reason = REASON_IBAN_NATIONAL;
        return IBAN_REJECT;
    }
    *out_len = len;
    return IBAN_CANON;
}

/* ---- one record ---- */

typedef struct {
    Py_ssize_t start, end; /* content span in the buffer (inside the quotes if quoted) */
    int escaped;           /* holds "" pairs */
} span;

/* ---- one pass over a line: where its delimiters and quotes are ---- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define LOWS 0x7f7f7f7f7f7f7f7fULL

/* 0x80 in every byte of w equal to c, exactly (no borrow between bytes). */
static inline uint64_t eq_mask(uint64_t w, uint8_t c)
{
    uint64_t x = w ^ (ONES * c);
    return ~(((x & LOWS) + LOWS) | x | LOWS);
}

typedef struct {
    Py_ssize_t quotes;
    int high, cr;
    size_t n_special; /* may exceed the capacity: then the positions are incomplete */
} line_facts;

/* Positions (relative to s) of delimiter and quote bytes in [s, e), in order, and what else
 * the line holds; eight bytes at a time (loads via memcpy: no alignment assumption). */
static void line_pass(const config *cfg, const uint8_t *buf, Py_ssize_t s, Py_ssize_t e,
                      uint32_t *special, size_t cap, line_facts *lf)
{
    Py_ssize_t i = s;
    size_t n = 0;
    uint64_t high = 0, cr = 0;
    Py_ssize_t quotes = 0;
    for (; e - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w); /* the first byte in the lowest bits, as ctz expects */
#endif
        high |= w & HIGHS;
        cr |= eq_mask(w, '\r');
        uint64_t q = eq_mask(w, '"');
        uint64_t m = eq_mask(w, cfg->delim) | q;
        quotes += (Py_ssize_t)(((q >> 7) * ONES) >> 56); /* bytes set in q */
        while (m) {
            if (n < cap)
                special[n] = (uint32_t)(i - s + (__builtin_ctzll(m) >> 3));
            n++;
            m &= m - 1;
        }
    }
    for (; i < e; i++) {
        uint8_t c = buf[i];
        high |= c & 0x80;
        cr |= c == '\r';
        if (c == '"' || c == cfg->delim) {
            quotes += c == '"';
            if (n < cap)
                special[n] = (uint32_t)(i - s);
            n++;
        }
    }
    lf->quotes = quotes;
    lf->high = high != 0;
    lf->cr = cr != 0;
    lf->n_special = n;
}

/* Split [s, e) at the delimiter with strict quoting (a field is bare without any quote, or
 * quoted from its first to its last byte with only "" inside), walking only the delimiter
 * and quote positions in `special`. Returns the field count, or -1 when the quoting is
 * anything else. Spans are stored for the first ncols fields. */
static Py_ssize_t split_special(const config *cfg, const uint8_t *buf, Py_ssize_t s, Py_ssize_t e,
                                const uint32_t *special, size_t n, span *spans)
{
    Py_ssize_t count = 0, i = s;
    size_t k = 0;
    const uint8_t d = cfg->delim;
    for (;;) {
        span f = {i, i, 0};
        if (i < e && buf[i] == '"') {
            k++; /* the opening quote is special[k - 1] */
            Py_ssize_t j;
            for (;;) {
                while (k < n && buf[s + special[k]] != '"')
                    k++; /* delimiters inside the quotes */
                if (k >= n)
                    return -1; /* unterminated */
                j = s + special[k];
                if (k + 1 < n && (Py_ssize_t)special[k + 1] == j - s + 1 && buf[j + 1] == '"') {
                    f.escaped = 1;
                    k += 2;
                    continue;
                }
                break;
            }
            k++; /* the closing quote */
            f.start = i + 1;
            f.end = j;
            i = j + 1;
            if (i < e && buf[i] != d)
                return -1; /* bytes after the closing quote */
            if (i < e)
                k++; /* the delimiter right after it */
        } else {
            Py_ssize_t j = k < n ? s + special[k] : e;
            if (j < e && buf[j] == '"')
                return -1; /* a quote inside a bare field */
            if (j < e)
                k++;
            f.start = i;
            f.end = j;
            i = j;
        }
        if (count < cfg->ncols)
            spans[count] = f;
        count++;
        if (i >= e)
            return count;
        i++;
    }
}


/* Write a pending value as UTF-8 (single-byte encodings are decoded as transcoding would). */
static int put_pending(const config *cfg, outputs *out, uint16_t slot, const uint8_t *s, size_t n)
{
    obuf *data = &out->o[O_PEND_DATA];
    if (put_u32(&out->o[O_PEND_IDX], out->kept) || put_u16(&out->o[O_PEND_SLOT], slot))
        return -1;
    if (!cfg->single_byte) {
        if (put(data, s, n))
            return -1;
    } else {
        for (size_t k = 0; k < n; k++) {
            const uint8_t *u = cfg->byte_utf8[s[k]];
            if (put(data, u + 1, u[0]))
                return -1;
        }
    }
    return put_i64(&out->o[O_PEND_OFF], (int64_t)data->len);
}

/* A decided value of a kind: grouped by kind, so that Python hashes each group with the
 * kind's own prefix straight from these buffers. */
static int put_canon(outputs *out, int kind, const uint8_t *s, size_t n)
{
    obuf *group = &out->o[O_CANON + 3 * (kind - 1)];
    if (put_u32(&group[0], out->kept) || put(&group[2], s, n))
        return -1;
    return put_i64(&group[1], (int64_t)group[2].len);
}

static int put_reject(outputs *out, uint16_t slot, int reason)
{
    return put_u32(&out->o[O_REJ_IDX], out->kept) || put_u16(&out->o[O_REJ_SLOT], slot) ||
           put_u8(&out->o[O_REJ_REASON], (uint8_t)reason);
}

static int key_value(const config *cfg, outputs *out, int kind, uint16_t slot, const uint8_t *s,
                     size_t n)
{
    uint8_t canon[MAX_EMAIL + 1];
    size_t clen = 0;
    int ascii = 1;
    for (size_t k = 0; k < n; k++)
        if (s[k] >= 0x80) {
            ascii = 0;
            break;
        }
    if (!ascii)
        return put_pending(cfg, out, slot, s, n);
    switch (kind) {
    case KIND_EMAIL:
        switch (email_decide(s, n, canon, &clen)) {
        case 0:
            return 0;
        case 1:
            return put_canon(out, kind, canon, clen);
        default:
            return put_reject(out, slot, REASON_EMAIL_INVALID);
        }
    case KIND_PHONE:
        if (phone_blank(s, n))
            return 0;
        if (cfg->phones)
            switch (phone_decide(cfg, s, n, canon, &clen)) {
            case PHONE_CANON:
                return put_canon(out, kind, canon, clen);
            case PHONE_INVALID:
                return put_reject(out, slot, REASON_PHONE_INVALID);
            default:
                break;
            }
        return put_pending(cfg, out, slot, s, n);
    case KIND_IBAN: {
        int reason = 0;
        switch (iban_decide(cfg, s, n, canon, &clen, &reason)) {
        case IBAN_BLANK:
            return 0;
        case IBAN_CANON:
            return put_canon(out, kind, canon, clen);
        case IBAN_REJECT:
            return put_reject(out, slot, reason);
        default:
            return put_pending(cfg, out, slot, s, n);
        }
    }
    default:
        return 0;
    }
}

/* A well-formed record with the right field count: its mask and key values. */
static int record(const config *cfg, outputs *out, const uint8_t *buf, const span *spans,
                  uint64_t row)
{
    uint16_t mask = 0;
    for (Py_ssize_t c = 0; c < cfg->ncols; c++) {
        if (!cfg->bits[c] && !cfg->kind[c])
            continue;
        const span *f = &spans[c];
        const uint8_t *s = buf + f->start;
        size_t n = (size_t)(f->end - f->start);
        if (n == 0)
            continue; /* an empty field is null: absent, and no key */
        if (f->escaped) {
            /* "" -> " into scratch; the result is shorter than the span */
            size_t m = 0;
            for (size_t k = 0; k < n && m < out->scratch_cap; k++) {
                out->scratch[m++] = (char)s[k];
                if (s[k] == '"')
                    k++;
            }
            s = (const uint8_t *)out->scratch;
            n = m;
        }
        if (cfg->bits[c] && !(mask & cfg->bits[c]) && present(cfg, s, n))
            mask |= cfg->bits[c];
        if (cfg->kind[c] && key_value(cfg, out, cfg->kind[c], cfg->slot[c], s, n))
            return -1;
    }
    if (put_u64(&out->o[O_ROWS], row) || put_u16(&out->o[O_CATS], mask))
        return -1;
    out->kept++;
    return 0;
}

typedef struct {
    Py_ssize_t pos;      /* where the next call starts */
    uint64_t next_row;   /* the next record's number */
    uint64_t lines;      /* physical lines consumed */
    int stop;            /* a line with an odd number of quotes starts at pos */
    int oom;
} scan_state;

static void scan_lines(const config *cfg, const uint8_t *buf, Py_ssize_t len, int eof,
                       Py_ssize_t max_records, outputs *out, span *spans, uint32_t *special,
                       size_t special_cap, scan_state *st)
{
    Py_ssize_t pos = st->pos, records = 0;
    while (pos < len && records < max_records) {
        const uint8_t *nl = memchr(buf + pos, '\n', (size_t)(len - pos));
        Py_ssize_t line_end, next;
        if (nl) {
            line_end = nl - buf;
            next = line_end + 1;
        } else {
            if (!eof)
                break; /* the caller cuts blocks at a newline; a partial line waits */
            line_end = next = len;
        }
        Py_ssize_t s = pos, e = line_end;
        /* polars drops one \r before the line end, and only one */
        if (e > s && buf[e - 1] == '\r')
            e--;
        const uint8_t *nul = memchr(buf + s, 0, (size_t)(e - s));
        Py_ssize_t pre = nul ? nul - buf : e;
        if (pre == s && (!nul || nul + 1 == buf + e || nul[1] == 0)) {
            /* blank to the Python path (nothing before the first NUL, nothing between it and
               the next one or the line end): not a record. Else a NUL line is handed back. */
            st->lines++;
            pos = next;
            continue;
        }
        line_facts lf;
        line_pass(cfg, buf, s, pre, special, special_cap, &lf);
        Py_ssize_t quotes = lf.quotes;
        int high = lf.high, cr = lf.cr;
        if (quotes % 2) {
            st->stop = 1; /* a quoted field spans lines: the csv-module path takes over here */
            break;
        }
        uint64_t row = st->next_row++;
        records++;
        st->lines++;
        pos = next;
        int leftover = nul != NULL || e - s > cfg->line_cap ||
                       (!cfg->single_byte && high && !valid_utf8(buf + s, (size_t)(e - s)));
        /* polars reads quoted lines as one joined text: a \r or a leading BOM there is read
         * differently from a bare line, so those lines take the Python path */
        if (!leftover && quotes &&
            (cr || (e - s >= 3 && buf[s] == 0xef && buf[s + 1] == 0xbb && buf[s + 2] == 0xbf)))
            leftover = 1;
        /* more delimiters and quotes than the index holds: a table thousands of columns
         * wide, rare enough for the Python path */
        if (lf.n_special > special_cap)
            leftover = 1;
        Py_ssize_t found = 0;
        if (!leftover)
            found = split_special(cfg, buf, s, e, special, lf.n_special, spans);
        if (found < 0)
            leftover = 1;
        if (leftover) {
            if (put_u64(&out->o[O_LEFT_ROW], row) || put_i64(&out->o[O_LEFT_START], s) ||
                put_i64(&out->o[O_LEFT_END], line_end)) {
                st->oom = 1;
                break;
            }
            continue;
        }
        if (found != cfg->ncols) {
            if (put_u64(&out->o[O_BAD_ROW], row) || put_u64(&out->o[O_BAD_FOUND], (uint64_t)found)) {
                st->oom = 1;
                break;
            }
            continue;
        }
        if (record(cfg, out, buf, spans, row)) {
            st->oom = 1;
            break;
        }
    }
    st->pos = pos;
}

/* ---- Python interface ---- */

/* Free a config and every table it owns (NULL tables and a NULL config are fine). */
static void config_destroy(config *cfg)
{
    if (!cfg)
        return;
    free(cfg->kind);
    free(cfg->slot);
    free(cfg->bits);
    free(cfg->cp_ws);
    free(cfg->dfa);
    free(cfg->dfa_accept);
    de_tables_free(&cfg->german);
    free(cfg);
}

static void config_free(PyObject *capsule)
{
    config_destroy(PyCapsule_GetPointer(capsule, CAPSULE_NAME));
}

PyDoc_STRVAR(make_config_doc,
"make_config(delim, kinds, slots, bits, single_byte, byte_ws, byte_utf8, cp_ws, prefixes,\n"
"            dfa, dfa_accept, overseas, iban, it_odd, es_weights, de_methods, de_codes,\n"
"            de_method_of, de_fallback, line_cap) -> capsule\n\n"
"Tables built by matching.fastscan: kinds (u8 per column), slots and bits (native u16 per\n"
"column), byte_ws (256), byte_utf8 (256 x 4), cp_ws (native u32, sorted), prefixes (1000\n"
"bytes, or empty to leave every phone pending), dfa (native u16, states x 10, start 0; empty\n"
"for no national stage), dfa_accept (u8 per state), overseas (3 ASCII digits per code),\n"
"iban (676 x 36), it_odd (26), es_weights (10), the German tables (see german_check;\n"
"all empty: German values stay pending).");

static PyObject *make_config(PyObject *self, PyObject *args)
{
    int delim, single_byte;
    Py_ssize_t line_cap;
    Py_buffer kinds = {0}, slots = {0}, bits = {0}, byte_ws = {0}, byte_utf8 = {0}, cp_ws = {0},
              prefixes = {0}, dfa = {0}, dfa_accept = {0}, overseas = {0}, iban = {0},
              it_odd = {0}, es_w = {0}, de_methods = {0}, de_codes = {0}, de_method_of = {0};
    int de_fallback;
    PyObject *result = NULL;
    config *cfg = NULL;
    if (!PyArg_ParseTuple(args, "iy*y*y*py*y*y*y*y*y*y*y*y*y*y*y*y*in:make_config", &delim,
                          &kinds, &slots, &bits, &single_byte, &byte_ws, &byte_utf8, &cp_ws,
                          &prefixes, &dfa, &dfa_accept, &overseas, &iban, &it_odd, &es_w,
                          &de_methods, &de_codes, &de_method_of, &de_fallback, &line_cap))
        return NULL;
    Py_ssize_t n = kinds.len;
    if (delim <= 0 || delim >= 0x80 || delim == '"' || delim == '\n' || delim == '\r' || n < 1 ||
        slots.len != 2 * n || bits.len != 2 * n || byte_ws.len != 256 || byte_utf8.len != 1024 ||
        cp_ws.len % 4 || (prefixes.len != 0 && prefixes.len != 1000) ||
        iban.len != IBAN_COUNTRIES * IBAN_SPEC_BYTES || it_odd.len != 26 || es_w.len != 10 ||
        line_cap < 1 || dfa.len % 20 || dfa.len / 20 > MAX_DFA_STATES ||
        dfa_accept.len != dfa.len / 20 || overseas.len % 3 || overseas.len / 3 > MAX_OVERSEAS ||
        (dfa.len != 0 && prefixes.len == 0)) {
        PyErr_SetString(PyExc_ValueError, "malformed scanner tables");
        goto done;
    }
    cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        goto nomem;
    cfg->delim = (uint8_t)delim;
    cfg->ncols = n;
    cfg->single_byte = single_byte;
    cfg->line_cap = line_cap;
    cfg->kind = malloc((size_t)n);
    cfg->slot = malloc((size_t)n * 2);
    cfg->bits = malloc((size_t)n * 2);
    cfg->n_cp_ws = cp_ws.len / 4;
    cfg->cp_ws = malloc((size_t)cp_ws.len + 4);
    if (!cfg->kind || !cfg->slot || !cfg->bits || !cfg->cp_ws)
        goto nomem;
    memcpy(cfg->kind, kinds.buf, (size_t)n);
    memcpy(cfg->slot, slots.buf, (size_t)n * 2);
    memcpy(cfg->bits, bits.buf, (size_t)n * 2);
    memcpy(cfg->cp_ws, cp_ws.buf, (size_t)cp_ws.len);
    memcpy(cfg->byte_ws, byte_ws.buf, 256);
    memcpy(cfg->byte_utf8, byte_utf8.buf, 1024);
    memcpy(cfg->it_odd, it_odd.buf, 26);
    memcpy(cfg->es_w, es_w.buf, 10);
    cfg->phones = prefixes.len == 1000;
    if (cfg->phones)
        memcpy(cfg->prefix, prefixes.buf, 1000);
    cfg->national = dfa.len != 0;
    if (cfg->national) {
        /* Checked once here so that walking the automaton never needs a bounds check. */
        cfg->dfa_states = dfa.len / 20;
        cfg->dfa = malloc((size_t)dfa.len);
        cfg->dfa_accept = malloc((size_t)dfa_accept.len);
        if (!cfg->dfa || !cfg->dfa_accept)
            goto nomem;
        memcpy(cfg->dfa, dfa.buf, (size_t)dfa.len);
        memcpy(cfg->dfa_accept, dfa_accept.buf, (size_t)dfa_accept.len);
        cfg->n_overseas = (int)(overseas.len / 3);
        memcpy(cfg->overseas, overseas.buf, (size_t)overseas.len);
        for (Py_ssize_t i = 0; i < cfg->dfa_states * 10; i++)
            if (cfg->dfa[i] >= cfg->dfa_states) {
                PyErr_SetString(PyExc_ValueError, "phone automaton successor out of range");
                goto done;
            }
        for (Py_ssize_t i = 0; i < cfg->dfa_states; i++)
            if (cfg->dfa_accept[i] >> (1 + cfg->n_overseas)) {
                PyErr_SetString(PyExc_ValueError, "phone automaton accepts an unknown code");
                goto done;
            }
        for (int i = 0; i < cfg->n_overseas; i++)
            for (int j = 0; j < 3; j++)
                if (!is_digit(cfg->overseas[i][j])) {
                    PyErr_SetString(PyExc_ValueError, "overseas calling code not digits");
                    goto done;
                }
    }
    for (Py_ssize_t c = 0; c < n; c++)
        if (cfg->kind[c] > KIND_PHONE) {
            PyErr_SetString(PyExc_ValueError, "unknown key kind");
            goto done;
        }
    for (int b = 0; b < 256; b++)
        if (cfg->byte_utf8[b][0] > 3) {
            PyErr_SetString(PyExc_ValueError, "a decoded byte is longer than 3 UTF-8 bytes");
            goto done;
        }
    for (int i = 0; i < 26; i++)
        if (cfg->it_odd[i] > 25) {
            PyErr_SetString(PyExc_ValueError, "Italian table out of range");
            goto done;
        }
    const uint8_t *spec = iban.buf;
    for (int c = 0; c < IBAN_COUNTRIES; c++, spec += IBAN_SPEC_BYTES) {
        iban_spec *is = &cfg->iban[c];
        is->length = spec[0];
        is->algo = spec[1];
        is->nparts = spec[2];
        is->usable = spec[3];
        if (is->nparts > IBAN_PARTS || is->length > MAX_IBAN || is->algo > ALGO_DE) {
            PyErr_SetString(PyExc_ValueError, "IBAN table out of range");
            goto done;
        }
        memcpy(is->count, spec + 4, IBAN_PARTS);
        memcpy(is->cls, spec + 4 + IBAN_PARTS, IBAN_PARTS);
    }
    const char *error = NULL;
    int read = de_tables_read(&cfg->german, de_methods.buf, de_methods.len, de_codes.buf,
                              de_codes.len, de_method_of.buf, de_method_of.len, de_fallback,
                              &error);
    if (read == -2)
        goto nomem;
    if (read) {
        PyErr_SetString(PyExc_ValueError, error);
        goto done;
    }
    result = PyCapsule_New(cfg, CAPSULE_NAME, config_free);
    if (result)
        cfg = NULL;
    goto done;
nomem:
    PyErr_NoMemory();
done:
    config_destroy(cfg);
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&slots);
    PyBuffer_Release(&bits);
    PyBuffer_Release(&byte_ws);
    PyBuffer_Release(&byte_utf8);
    PyBuffer_Release(&cp_ws);
    PyBuffer_Release(&prefixes);
    PyBuffer_Release(&dfa);
    PyBuffer_Release(&dfa_accept);
    PyBuffer_Release(&overseas);
    PyBuffer_Release(&iban);
    PyBuffer_Release(&it_odd);
    PyBuffer_Release(&es_w);
    PyBuffer_Release(&de_methods);
    PyBuffer_Release(&de_codes);
    PyBuffer_Release(&de_method_of);
    return result;
}

PyDoc_STRVAR(german_check_doc,
"german_check(methods, codes, method_of, fallback, bbans) -> bytes\n\n"
"The German national check of each 18-byte BBAN in bbans: 1 passes, 0 fails, 2 not decided\n"
"here (schwifty decides). Tables as matching.german_checks builds them: methods, codes\n"
"(native u32, increasing), method_of (u8 per code), fallback (for a code not in codes).");

static PyObject *german_check(PyObject *self, PyObject *args)
{
    Py_buffer methods = {0}, codes = {0}, method_of = {0}, bbans = {0};
    int fallback;
    PyObject *result = NULL;
    de_tables t;
    memset(&t, 0, sizeof t);
    if (!PyArg_ParseTuple(args, "y*y*y*iy*:german_check", &methods, &codes, &method_of,
                          &fallback, &bbans))
        return NULL;
    const char *error = NULL;
    int read = de_tables_read(&t, methods.buf, methods.len, codes.buf, codes.len,
                              method_of.buf, method_of.len, fallback, &error);
    if (read == -2) {
        PyErr_NoMemory();
        goto done;
    }
    if (read) {
        PyErr_SetString(PyExc_ValueError, error);
        goto done;
    }
    if (!t.on || bbans.len % DE_BBAN) {
        PyErr_SetString(PyExc_ValueError, "no German tables, or bbans not 18-byte BBANs");
        goto done;
    }
    Py_ssize_t n = bbans.len / DE_BBAN;
    result = PyBytes_FromStringAndSize(NULL, n);
    if (!result)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    const uint8_t *b = bbans.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int ok = de_check(&t, b + i * DE_BBAN, DE_BBAN);
        out[i] = ok == DE_UNSURE ? 2 : (uint8_t)ok;
    }
done:
    de_tables_free(&t);
    PyBuffer_Release(&methods);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&method_of);
    PyBuffer_Release(&bbans);
    return result;
}

PyDoc_STRVAR(scan_doc,
"scan(config, buf, pos, eof, first_row, max_records, kept_base) -> tuple\n\n"
"Scan the lines of buf from byte pos (buf holds whole lines; the last one may lack its\n"
"newline only when eof) until max_records records or a line with an odd number of quotes.\n"
"Indexes of kept records (the *_idx arrays) count from kept_base, so that the arrays of\n"
"several calls concatenate into one batch.\n"
"Returns (pos, next_row, lines, stop, rows, cats, then for e-mails, IBANs and phones in\n"
"turn: decided_idx, decided_off, decided_data; then rej_idx, rej_slot, rej_reason,\n"
"pend_idx, pend_slot, pend_off, pend_data,\n"
"left_row, left_start, left_end, bad_row, bad_found): native-endian arrays as bytes.\n"
"The GIL is released while scanning.");

static PyObject *scan(PyObject *self, PyObject *args)
{
    PyObject *capsule;
    Py_buffer buf = {0};
    Py_ssize_t pos, max_records, kept_base;
    unsigned long long first_row;
    int eof;
    if (!PyArg_ParseTuple(args, "Oy*npKnn:scan", &capsule, &buf, &pos, &eof, &first_row,
                          &max_records, &kept_base))
        return NULL;
    PyObject *result = NULL;
    span *spans = NULL;
    uint32_t *special = NULL;
    outputs out;
    memset(&out, 0, sizeof out);
    const config *cfg = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (!cfg)
        goto done;
    if (pos < 0 || pos > buf.len || max_records < 0 || max_records > INT32_MAX ||
        first_row == 0 || kept_base < 0 || kept_base > (Py_ssize_t)UINT32_MAX - max_records) {
        PyErr_SetString(PyExc_ValueError,
                        "pos, max_records, first_row or kept_base out of range");
        goto done;
    }
    out.kept = (uint32_t)kept_base;
    spans = malloc((size_t)cfg->ncols * sizeof *spans);
    special = malloc(SPECIAL_CAP * sizeof *special);
    out.scratch_cap = (size_t)cfg->line_cap;
    out.scratch = malloc(out.scratch_cap);
    /* offsets arrays start at 0 (Arrow layout) */
    int offsets_ok = put_i64(&out.o[O_PEND_OFF], 0) == 0;
    for (int k = 0; k < 3; k++)
        offsets_ok = offsets_ok && put_i64(&out.o[O_CANON + 3 * k + 1], 0) == 0;
    if (!spans || !special || !out.scratch || !offsets_ok) {
        PyErr_NoMemory();
        goto done;
    }
    scan_state st = {.pos = pos, .next_row = first_row};
    Py_BEGIN_ALLOW_THREADS
    scan_lines(cfg, buf.buf, buf.len, eof, max_records, &out, spans, special, SPECIAL_CAP, &st);
    Py_END_ALLOW_THREADS
    if (st.oom) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyTuple_New(4 + O_COUNT);
    if (!result)
        goto done;
    PyTuple_SET_ITEM(result, 0, PyLong_FromSsize_t(st.pos));
    PyTuple_SET_ITEM(result, 1, PyLong_FromUnsignedLongLong(st.next_row));
    PyTuple_SET_ITEM(result, 2, PyLong_FromUnsignedLongLong(st.lines));
    PyTuple_SET_ITEM(result, 3, PyBool_FromLong(st.stop));
    for (int i = 0; i < O_COUNT; i++)
        PyTuple_SET_ITEM(result, 4 + i,
                         PyBytes_FromStringAndSize(out.o[i].p ? out.o[i].p : "",
                                                   (Py_ssize_t)out.o[i].len));
    for (int i = 0; i < 4 + O_COUNT; i++)
        if (!PyTuple_GET_ITEM(result, i)) {
            Py_CLEAR(result);
            break;
        }
done:
    for (int i = 0; i < O_COUNT; i++)
        free(out.o[i].p);
    free(out.scratch);
    free(spans);
    free(special);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"make_config", make_config, METH_VARARGS, make_config_doc},
    {"scan", scan, METH_VARARGS, scan_doc},
    {"german_check", german_check, METH_VARARGS, german_check_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "matching._scan",
    .m_doc = "Native scanner for delimited leak files (see matching/fastscan.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    return PyModule_Create(&module);
}
