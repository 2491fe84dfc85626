/* Base64 (see include/wcached/b64.h). */
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

static int value(unsigned char c, wc_b64_kind kind)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || (c == '+' && kind == WC_B64_STD))
        return 62;
    if (c == '_' || (c == '/' && kind == WC_B64_STD))
        return 63;
    return -1;
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
    for (size_t i = 0; i < n; i++) {
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
