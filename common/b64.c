/* Base64 (see include/wcached/b64.h). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "wcached/b64.h"
#include "wcached/err.h"

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t wc_b64_encode_to(const void *in, size_t n, char *out, wc_b64_kind kind)
{
    const char *tab = kind == WC_B64_URL ? URL : STD;
    const unsigned char *u = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)u[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)u[i + 1] << 8;
        if (i + 2 < n)
            v |= u[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        else if (kind == WC_B64_STD)
            out[o++] = '=';
        if (i + 2 < n)
            out[o++] = tab[v & 63];
        else if (kind == WC_B64_STD)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

char *wc_b64_encode(const void *in, size_t n, wc_b64_kind kind)
{
    char *out = malloc(wc_b64_encoded_size(n));
    if (out)
        wc_b64_encode_to(in, n, out, kind);
    return out;
}

/* Each byte's six bits, or -1 (0 in the table) when it is not of the kind's alphabet. Both
 * kinds take '-' and '_'; only the standard one takes '+' and '/'. */
#define B64_DIGITS                                                                                 \
    ['A'] = 1 + 0, ['B'] = 1 + 1, ['C'] = 1 + 2, ['D'] = 1 + 3, ['E'] = 1 + 4, ['F'] = 1 + 5,      \
    ['G'] = 1 + 6, ['H'] = 1 + 7, ['I'] = 1 + 8, ['J'] = 1 + 9, ['K'] = 1 + 10, ['L'] = 1 + 11,    \
    ['M'] = 1 + 12, ['N'] = 1 + 13, ['O'] = 1 + 14, ['P'] = 1 + 15, ['Q'] = 1 + 16,                \
    ['R'] = 1 + 17, ['S'] = 1 + 18, ['T'] = 1 + 19, ['U'] = 1 + 20, ['V'] = 1 + 21,                \
    ['W'] = 1 + 22, ['X'] = 1 + 23, ['Y'] = 1 + 24, ['Z'] = 1 + 25, ['a'] = 1 + 26,                \
    ['b'] = 1 + 27, ['c'] = 1 + 28, ['d'] = 1 + 29, ['e'] = 1 + 30, ['f'] = 1 + 31,                \
    ['g'] = 1 + 32, ['h'] = 1 + 33, ['i'] = 1 + 34, ['j'] = 1 + 35, ['k'] = 1 + 36,                \
    ['l'] = 1 + 37, ['m'] = 1 + 38, ['n'] = 1 + 39, ['o'] = 1 + 40, ['p'] = 1 + 41,                \
    ['q'] = 1 + 42, ['r'] = 1 + 43, ['s'] = 1 + 44, ['t'] = 1 + 45, ['u'] = 1 + 46,                \
    ['v'] = 1 + 47, ['w'] = 1 + 48, ['x'] = 1 + 49, ['y'] = 1 + 50, ['z'] = 1 + 51,                \
    ['0'] = 1 + 52, ['1'] = 1 + 53, ['2'] = 1 + 54, ['3'] = 1 + 55, ['4'] = 1 + 56,                \
    ['5'] = 1 + 57, ['6'] = 1 + 58, ['7'] = 1 + 59, ['8'] = 1 + 60, ['9'] = 1 + 61,                \
    ['-'] = 1 + 62, ['_'] = 1 + 63
static const unsigned char DEC_STD[256] = {B64_DIGITS, ['+'] = 1 + 62, ['/'] = 1 + 63};
static const unsigned char DEC_URL[256] = {B64_DIGITS};

static int value(unsigned char c, wc_b64_kind kind)
{
    return (kind == WC_B64_STD ? DEC_STD : DEC_URL)[c] - 1;
}

/* A quad's four characters' bits already in place, QUAD_BAD for a character not of the kind's
 * alphabet: a quad is the OR of four lookups and one test. Made once from DEC_STD and DEC_URL. */
#define QUAD_BAD 0x80000000u
static uint32_t QUAD[2][4][256];
static pthread_once_t quad_once = PTHREAD_ONCE_INIT;

static void quad_init(void)
{
    for (int k = 0; k < 2; k++) {
        const unsigned char *dec = k == 0 ? DEC_STD : DEC_URL;
        for (int i = 0; i < 4; i++)
            for (int c = 0; c < 256; c++)
                QUAD[k][i][c] = dec[c] ? (uint32_t)(dec[c] - 1) << (18 - 6 * i) : QUAD_BAD;
    }
}

int wc_b64_decode_to(const char *in, size_t n, void *out, size_t *out_len, wc_b64_kind kind)
{
    if (kind == WC_B64_STD)
        while (n > 0 && in[n - 1] == '=')
            n--;
    if (n % 4 == 1)
        return WC_EINVAL;
    unsigned char *u = out;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    /* Whole quads first, three bytes each, with no bits left over between them. */
    pthread_once(&quad_once, quad_init);
    const uint32_t(*t)[256] = QUAD[kind == WC_B64_STD ? 0 : 1];
    const unsigned char *q = (const unsigned char *)in;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v = t[0][q[i]] | t[1][q[i + 1]] | t[2][q[i + 2]] | t[3][q[i + 3]];
        if (v & QUAD_BAD)
            return WC_EINVAL;
        u[o] = (unsigned char)(v >> 16);
        u[o + 1] = (unsigned char)(v >> 8);
        u[o + 2] = (unsigned char)v;
        o += 3;
    }
    for (; i < n; i++) {
        int v = value((unsigned char)in[i], kind);
        if (v < 0)
            return WC_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            u[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (kind == WC_B64_URL && acc != 0)
        return WC_EINVAL; /* non-zero trailing bits: not what an encoder makes */
    *out_len = o;
    return 0;
}
