/*
 * Base64, the one implementation: the standard alphabet with padding (etcd's JSON gateway
 * carries keys and values that way; the /keys valueBase64 field) and the URL alphabet without
 * padding (continue tokens).
 */
#ifndef WCACHED_B64_H
#define WCACHED_B64_H

#include <stddef.h>

typedef enum wc_b64_kind {
    WC_B64_STD = 0, /* + / and '=' padding; decoding also takes - _ and missing padding */
    WC_B64_URL = 1, /* - _ without padding; decoding is strict: nothing else is taken */
} wc_b64_kind;

/* Room `out` needs to encode n bytes, NUL included. */
static inline size_t wc_b64_encoded_size(size_t n)
{
    return (n + 2) / 3 * 4 + 1;
}

/* Encodes n bytes into out (wc_b64_encoded_size(n) bytes), NUL-terminated; returns the
 * length. */
size_t wc_b64_encode_to(const void *in, size_t n, char *out, wc_b64_kind kind);

/* Encodes into a new NUL-terminated string, or NULL. */
char *wc_b64_encode(const void *in, size_t n, wc_b64_kind kind);

/*
 * Decodes n characters into out (room for 3 * (n / 4) + 2 bytes) and sets *out_len. Returns 0, or
 * WC_EINVAL for a character outside the kind's alphabet, an impossible length, or (URL kind)
 * non-zero trailing bits no encoder makes.
 */
int wc_b64_decode_to(const char *in, size_t n, void *out, size_t *out_len, wc_b64_kind kind);

#endif
