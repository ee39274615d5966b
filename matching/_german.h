/* German national check digits: schwifty's methods (schwifty/checksum/germany.py), natively.
 *
 * matching/german_checks.py reads schwifty's classes into the tables below and decides which
 * methods they describe exactly; every other method, and every bank code using one, is
 * DE_SCHWIFTY here: the caller leaves the value to schwifty.  Each function mirrors the
 * schwifty function named in its comment, quirks included: the answer wanted is schwifty's,
 * not the Bundesbank's.  Included by _scan.c; plain C, no Python objects.
 */
#ifndef LEAKWATCH_GERMAN_H
#define LEAKWATCH_GERMAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DE_ACCOUNT 10       /* schwifty's ACCOUNT_CODE_LENGTH */
#define DE_BANK 8
#define DE_BBAN (DE_BANK + DE_ACCOUNT)
#define DE_WEIGHTS 10
#define DE_VARIANTS 4
#define DE_WEIGHTED_BYTES (14 + DE_WEIGHTS)
#define DE_METHOD_BYTES (8 + DE_VARIANTS * DE_WEIGHTED_BYTES)
#define DE_MAX_METHODS 250
#define DE_NO_MINUEND 255

/* A bank code's entry: a method index, or one of these. */
enum { DE_UNCHECKED = 254, DE_SCHWIFTY = 255 };
/* Outcomes: DE_RAISE is schwifty's InvalidBBANChecksum, a failed check for the caller. */
enum { DE_FAIL = 0, DE_PASS = 1, DE_UNSURE = -1, DE_RAISE = -2 };

/* Which schwifty function each step of WeightedModulus.compute resolves to. */
enum { DE_SUMMAND_PRODUCT, DE_SUMMAND_DIGIT_SUM, DE_SUMMAND_LAST_DIGIT, DE_SUMMAND_24 };
enum { DE_SUM_PLAIN, DE_SUM_MINUS_ONE };
enum { DE_REMAINDER_MOD, DE_REMAINDER_21 };
enum { DE_RECONCILE_PLAIN, DE_RECONCILE_02, DE_RECONCILE_11 };
enum { DE_DIGITS_PLAIN, DE_DIGITS_24, DE_DIGITS_61, DE_DIGITS_76 };
enum { DE_POSITIONS_PLAIN, DE_POSITIONS_88 };
enum { DE_ADJUST_PLAIN, DE_ADJUST_26 };
/* Which validate: WeightedModulus's, or the method's own around it. */
enum {
    DE_RULE_WEIGHTED,
    DE_RULE_08,
    DE_RULE_09,
    DE_RULE_16,
    DE_RULE_25,
    DE_RULE_63,
    DE_RULE_76,
    DE_RULE_95,
    DE_RULE_99,
    DE_RULE_ANY,
    DE_RULE_C1,
    DE_RULE_COUNT
};

/* One WeightedModulus subclass: its class attributes and which functions it resolves to. */
typedef struct {
    uint8_t modulus;
    uint8_t minuend; /* DE_NO_MINUEND: None */
    uint8_t start, end, check; /* schwifty's Positions, counted from 1 */
    uint8_t reverse;
    uint8_t summand, sum, remainder, reconcile, digits, positions, adjust;
    uint8_t nweights;
    uint8_t weights[DE_WEIGHTS];
} de_weighted;

typedef struct {
    uint8_t rule;
    uint8_t nvariants;
    uint32_t threshold; /* method 08's min_account_code */
    de_weighted variant[DE_VARIANTS];
} de_method;

typedef struct {
    int on; /* tables were given: German values are decided here */
    ptrdiff_t nmethods, nbanks;
    de_method *methods;
    uint32_t *codes; /* sorted, as numbers */
    uint8_t *method_of; /* per code: a method index, DE_UNCHECKED or DE_SCHWIFTY */
    uint8_t fallback;   /* for a bank code not in the registry */
} de_tables;

static int de_digit_sum(long number)
{
    /* germany.digit_sum: below 10 (negatives too) the number itself */
    if (number < 10)
        return (int)number;
    int total = 0;
    for (; number > 0; number /= 10)
        total += (int)(number % 10);
    return total;
}

/* WeightedModulus.adjust_input */
static void de_adjust(const de_weighted *p, const uint8_t *acct, uint8_t *out)
{
    if (p->adjust == DE_ADJUST_26 && acct[0] == '0' && acct[1] == '0') {
        memcpy(out, acct + 2, DE_ACCOUNT - 2);
        out[DE_ACCOUNT - 2] = out[DE_ACCOUNT - 1] = '0';
    } else {
        memcpy(out, acct, DE_ACCOUNT);
    }
}

/* WeightedModulus.get_positions */
static void de_positions(const de_weighted *p, const uint8_t *acct, int *start, int *end,
                         int *check)
{
    if (p->positions == DE_POSITIONS_88 && acct[2] == '9') {
        *start = 3, *end = 9, *check = 10;
        return;
    }
    *start = p->start, *end = p->end, *check = p->check;
}

/* WeightedModulus.compute (adjust_input, get_digits, compute_weighted_sum, compute_remainder,
 * the minuend, reconcile): 0 with *out the check digit as a number (any value: schwifty
 * compares its decimal text with one character) and *remainder its self.remainder, or
 * DE_RAISE or DE_UNSURE. */
static int de_compute(const de_weighted *p, const uint8_t *raw, int *out, int *remainder)
{
    uint8_t acct[DE_ACCOUNT];
    de_adjust(p, raw, acct);
    int start, end, check;
    de_positions(p, acct, &start, &end, &check);
    uint8_t d[DE_ACCOUNT + 2];
    int n = 0;
    for (int i = start - 1; i < end; i++)
        d[n++] = acct[i];
    if (p->reverse)
        for (int i = 0; i < n / 2; i++) {
            uint8_t t = d[i];
            d[i] = d[n - 1 - i];
            d[n - 1 - i] = t;
        }
    int skip = 0;
    switch (p->digits) {
    case DE_DIGITS_24:
        if (n == 0)
            return DE_UNSURE; /* schwifty: IndexError */
        if (d[0] >= '3' && d[0] <= '6')
            skip = 1;
        else if (d[0] == '9')
            skip = n < 3 ? n : 3;
        while (skip < n && d[skip] == '0')
            skip++;
        break;
    case DE_DIGITS_61:
        if (acct[8] == '8') {
            memmove(d + 2, d, (size_t)n);
            d[0] = acct[9], d[1] = acct[8];
            n += 2;
        }
        break;
    case DE_DIGITS_76:
        while (n > 0 && d[n - 1] == '0')
            n--;
        break;
    }
    long total = 0;
    for (int i = skip; i < n; i++) {
        int w = p->weights[(i - skip) % p->nweights];
        int x = (d[i] - '0') * w;
        switch (p->summand) {
        case DE_SUMMAND_DIGIT_SUM:
            x = de_digit_sum(x);
            break;
        case DE_SUMMAND_LAST_DIGIT:
            x %= 10;
            break;
        case DE_SUMMAND_24:
            x = (x + w) % 11;
            break;
        }
        total += x;
    }
    if (p->sum == DE_SUM_MINUS_ONE)
        total -= 1;
    long r;
    if (p->remainder == DE_REMAINDER_21) {
        r = total;
        while (r >= 10)
            r = de_digit_sum(r);
    } else {
        r = total % p->modulus; /* Python's %: never negative for a positive modulus */
        if (r < 0)
            r += p->modulus;
    }
    *remainder = (int)r;
    long c = p->minuend == DE_NO_MINUEND ? r : p->minuend - r;
    switch (p->reconcile) {
    case DE_RECONCILE_02:
        if (r == 0)
            c = 0;
        else if (r == 1)
            return DE_RAISE;
        break;
    case DE_RECONCILE_11:
        c = c == 10 ? 9 : (c >= 10 ? 0 : c);
        break;
    default:
        c = c >= 10 ? 0 : c;
    }
    *out = (int)c;
    return 0;
}

/* schwifty compares str(check_digit) with one character of the account code */
static int de_same(int check_digit, uint8_t c)
{
    return check_digit >= 0 && check_digit <= 9 && c == '0' + check_digit;
}

/* WeightedModulus.validate: DE_PASS, DE_FAIL, DE_RAISE or DE_UNSURE. */
static int de_weighted_ok(const de_weighted *p, const uint8_t *raw, int *remainder)
{
    uint8_t acct[DE_ACCOUNT];
    de_adjust(p, raw, acct);
    int c, status = de_compute(p, raw, &c, remainder);
    if (status)
        return status;
    int start, end, check;
    de_positions(p, acct, &start, &end, &check);
    return de_same(c, acct[check - 1]) ? DE_PASS : DE_FAIL;
}

static uint64_t de_number(const uint8_t *acct)
{
    uint64_t v = 0;
    for (int i = 0; i < DE_ACCOUNT; i++)
        v = v * 10 + (uint64_t)(acct[i] - '0');
    return v;
}

/* Method 63's and 76's second try: sub-account "00" left out, leading zeros instead. */
static int de_shifted_ok(const de_weighted *p, const uint8_t *acct)
{
    uint8_t shifted[DE_ACCOUNT];
    memcpy(shifted, acct + 2, DE_ACCOUNT - 2);
    shifted[DE_ACCOUNT - 2] = shifted[DE_ACCOUNT - 1] = '0';
    int r;
    return de_weighted_ok(p, shifted, &r);
}

static int de_in_0_4_6_7_8_9(uint8_t c) { return c == '0' || (c >= '4' && c != '5'); }

/* The method's validate (schwifty's Algorithm<rule>.validate) on a 10-digit account code. */
static int de_method_ok(const de_method *m, const uint8_t *acct)
{
    const de_weighted *v = m->variant;
    int r, status, c;
    switch (m->rule) {
    case DE_RULE_WEIGHTED:
        return de_weighted_ok(v, acct, &r);
    case DE_RULE_08:
        return de_number(acct) < m->threshold ? DE_PASS : de_weighted_ok(v, acct, &r);
    case DE_RULE_09:
        return DE_PASS;
    case DE_RULE_16:
        status = de_compute(v, acct, &c, &r);
        if (status)
            return status;
        if (r == 1 && acct[8] == acct[9])
            return DE_PASS;
        return de_same(c, acct[v->check - 1]) ? DE_PASS : DE_FAIL;
    case DE_RULE_25:
        status = de_weighted_ok(v, acct, &r);
        if (status < 0)
            return status;
        if (r == 1 && acct[1] != '8' && acct[1] != '9')
            return DE_FAIL;
        return status;
    case DE_RULE_63:
        if (acct[0] != '0')
            return DE_FAIL;
        status = de_weighted_ok(v, acct, &r);
        if (status != DE_FAIL)
            return status;
        return acct[1] == '0' && acct[2] == '0' ? de_shifted_ok(v, acct) : DE_FAIL;
    case DE_RULE_76:
        if (!de_in_0_4_6_7_8_9(acct[0]))
            return DE_FAIL;
        status = de_weighted_ok(v, acct, &r);
        if (status != DE_FAIL)
            return status;
        return acct[0] == '0' && acct[1] == '0' && de_in_0_4_6_7_8_9(acct[2])
                   ? de_shifted_ok(v, acct)
                   : DE_FAIL;
    case DE_RULE_95: {
        uint64_t number = de_number(acct);
        if ((number >= 1 && number <= 1999999) || (number >= 9000000 && number <= 25999999) ||
            (number >= 396000000 && number <= 499999999) ||
            (number >= 700000000 && number <= 799999999) ||
            (number >= 910000000 && number <= 989999999))
            return DE_PASS;
        return de_weighted_ok(v, acct, &r);
    }
    case DE_RULE_99: {
        uint64_t number = de_number(acct);
        if (number >= 396000000 && number <= 499999999)
            return DE_PASS;
        return de_weighted_ok(v, acct, &r);
    }
    case DE_RULE_ANY:
        /* any(...) over the variants: an exception in one ends it */
        for (int i = 0; i < m->nvariants; i++) {
            status = de_weighted_ok(&v[i], acct, &r);
            if (status != DE_FAIL)
                return status;
        }
        return DE_FAIL;
    case DE_RULE_C1:
        return de_weighted_ok(&v[acct[0] == '5' ? 0 : 1], acct, &r);
    }
    return DE_UNSURE;
}

/* The national check of a German BBAN (18 bytes): DE_PASS, DE_FAIL (a raised
 * InvalidBBANChecksum included) or DE_UNSURE (schwifty decides). */
static int de_check(const de_tables *t, const uint8_t *bban, size_t n)
{
    if (!t->on || n != DE_BBAN)
        return DE_UNSURE;
    uint32_t code = 0;
    for (int i = 0; i < DE_BBAN; i++) {
        if (bban[i] < '0' || bban[i] > '9')
            return DE_UNSURE;
        if (i < DE_BANK)
            code = code * 10 + (uint32_t)(bban[i] - '0');
    }
    uint8_t method = t->fallback;
    ptrdiff_t lo = 0, hi = t->nbanks;
    while (lo < hi) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        if (t->codes[mid] < code)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->nbanks && t->codes[lo] == code)
        method = t->method_of[lo];
    if (method == DE_UNCHECKED)
        return DE_PASS;
    if (method >= t->nmethods)
        return DE_UNSURE;
    int ok = de_method_ok(&t->methods[method], bban + DE_BANK);
    return ok == DE_RAISE ? DE_FAIL : ok;
}

static void de_tables_free(de_tables *t)
{
    free(t->methods);
    free(t->codes);
    free(t->method_of);
    memset(t, 0, sizeof *t);
}

/* Read the tables matching/german_checks.py builds: methods (DE_METHOD_BYTES each: rule,
 * variants, two pad bytes, native u32 threshold, then DE_VARIANTS de_weighted of
 * DE_WEIGHTED_BYTES), codes (native u32, strictly increasing), one method byte per code, and
 * the fallback's.  Empty methods and codes: no tables, every German value is DE_UNSURE.
 * 0, or -1 with *error set (the tables are not ours) or -2 (out of memory). */
static int de_tables_read(de_tables *t, const uint8_t *methods, ptrdiff_t methods_len,
                          const uint8_t *codes, ptrdiff_t codes_len, const uint8_t *method_of,
                          ptrdiff_t method_of_len, int fallback, const char **error)
{
    memset(t, 0, sizeof *t);
    if (methods_len == 0 && codes_len == 0 && method_of_len == 0)
        return 0;
    *error = "malformed German tables";
    if (methods_len % DE_METHOD_BYTES || methods_len / DE_METHOD_BYTES > DE_MAX_METHODS ||
        codes_len % 4 || method_of_len != codes_len / 4 || fallback < 0 || fallback > 255)
        return -1;
    t->nmethods = methods_len / DE_METHOD_BYTES;
    t->nbanks = method_of_len;
    t->fallback = (uint8_t)fallback;
    t->methods = calloc((size_t)t->nmethods + 1, sizeof *t->methods);
    t->codes = malloc((size_t)codes_len + 4);
    t->method_of = malloc((size_t)method_of_len + 1);
    if (!t->methods || !t->codes || !t->method_of) {
        de_tables_free(t);
        return -2;
    }
    memcpy(t->codes, codes, (size_t)codes_len);
    memcpy(t->method_of, method_of, (size_t)method_of_len);
    for (ptrdiff_t i = 0; i < t->nbanks; i++)
        if (t->codes[i] > 99999999 || (i && t->codes[i] <= t->codes[i - 1]) ||
            (t->method_of[i] >= t->nmethods && t->method_of[i] < DE_UNCHECKED))
            goto bad;
    if (t->fallback >= t->nmethods && t->fallback < DE_UNCHECKED)
        goto bad;
    for (ptrdiff_t k = 0; k < t->nmethods; k++) {
        const uint8_t *b = methods + k * DE_METHOD_BYTES;
        de_method *m = &t->methods[k];
        m->rule = b[0];
        m->nvariants = b[1];
        memcpy(&m->threshold, b + 4, 4);
        int needed = m->rule == DE_RULE_09 ? 0 : m->rule == DE_RULE_C1 ? 2 : 1;
        if (m->rule >= DE_RULE_COUNT || m->nvariants > DE_VARIANTS || m->nvariants < needed)
            goto bad;
        for (int j = 0; j < m->nvariants; j++) {
            const uint8_t *w = b + 8 + j * DE_WEIGHTED_BYTES;
            de_weighted *p = &m->variant[j];
            p->modulus = w[0], p->minuend = w[1], p->start = w[2], p->end = w[3];
            p->check = w[4], p->reverse = w[5], p->summand = w[6], p->sum = w[7];
            p->remainder = w[8], p->reconcile = w[9], p->digits = w[10], p->positions = w[11];
            p->adjust = w[12], p->nweights = w[13];
            memcpy(p->weights, w + 14, DE_WEIGHTS);
            /* schwifty's asserts on positions hold; every index stays in the account code */
            if (p->modulus == 0 || p->start < 1 || p->end > DE_ACCOUNT ||
                p->end + 1 < p->start || p->check < 1 || p->check > DE_ACCOUNT ||
                p->reverse > 1 || p->summand > DE_SUMMAND_24 || p->sum > DE_SUM_MINUS_ONE ||
                p->remainder > DE_REMAINDER_21 || p->reconcile > DE_RECONCILE_11 ||
                p->digits > DE_DIGITS_76 || p->positions > DE_POSITIONS_88 ||
                p->adjust > DE_ADJUST_26 || p->nweights < 1 || p->nweights > DE_WEIGHTS)
                goto bad;
        }
    }
    t->on = 1;
    return 0;
bad:
    de_tables_free(t);
    return -1;
}

#endif
