/*
 * The checks and parsers every module shares, each in one place: UTF-8, Kubernetes' DNS-1123
 * names, decimal numbers, and a listen address, with the scans eight bytes at a time under
 * them and the writing of a decimal. They never print and never allocate; each parser returns
 * 0 or WC_EINVAL (or a bool for a plain yes/no), each scan and writer a length.
 */
#ifndef WCACHED_PARSE_H
#define WCACHED_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (at most n >= 1 bytes), or 0 when there is none:
 * no overlong form, no surrogate, nothing past U+10FFFF. */
size_t wc_utf8_len(const unsigned char *s, size_t n);

/*
 * Scanning eight bytes at a time: each test below says exactly whether some byte of a word is
 * of a kind (the carries of the subtraction can mark a byte after a true one, never a word
 * without one), and the scanners then look at that word one byte at a time.
 */
#define WC_BYTES_01 0x0101010101010101ull
#define WC_BYTES_80 0x8080808080808080ull

static inline uint64_t wc_word8(const char *s)
{
    uint64_t w;
    memcpy(&w, s, sizeof(w));
    return w;
}

/* Nonzero when some byte of w is below n (n <= 128). */
static inline uint64_t wc_word8_below(uint64_t w, unsigned n)
{
    return (w - WC_BYTES_01 * n) & ~w & WC_BYTES_80;
}

/* Nonzero when some byte of w is c. */
static inline uint64_t wc_word8_has(uint64_t w, unsigned char c)
{
    return wc_word8_below(w ^ (WC_BYTES_01 * c), 1);
}

/* Nonzero when some byte of w is 0x7f or above (a byte 0xff carries, but is itself seen). */
static inline uint64_t wc_word8_from_7f(uint64_t w)
{
    return (w | (w + WC_BYTES_01)) & WC_BYTES_80;
}

/* The length of the run of bytes at s (at most n) that a JSON string holds as they are: no
 * quote, backslash or control character. */
static inline size_t wc_json_plain(const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = wc_word8(s + i);
        if (wc_word8_below(w, 0x20) | wc_word8_has(w, '"') | wc_word8_has(w, '\\'))
            break;
    }
    while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20)
        i++;
    return i;
}

/* True when all n bytes at s are valid UTF-8. */
bool wc_utf8_valid(const char *s, size_t n);

/* A DNS-1123 label, as Kubernetes' IsDNS1123Label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1 to 63. */
bool wc_dns_label_valid(const char *s, size_t n);

/* A DNS-1123 subdomain, as Kubernetes' IsDNS1123Subdomain: at most 253 characters of
 * dot-separated parts, each [a-z0-9]([-a-z0-9]*[a-z0-9])? (no bound of 63 on a part). */
bool wc_dns_subdomain_valid(const char *s, size_t n);

/* v in decimal, as printf's "%" PRId64 writes it, NUL-terminated, in out; the length. */
size_t wc_i64_dec(int64_t v, char out[24]);

/* The n characters at s as a whole decimal number in [min, max]: digits only, a leading '-'
 * only when min < 0; no space, no '+'. 0 or WC_EINVAL. */
int wc_parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out);

/* The same for an unsigned 64-bit number (all 64 bits). 0 or WC_EINVAL. */
int wc_parse_u64(const char *s, size_t n, uint64_t *out);

/* Splits "HOST:PORT" or "[V6]:PORT" (PORT 0-65535) into a NUL-terminated host (room for
 * host_len bytes) and the port. 0 or WC_EINVAL. */
int wc_parse_listen(const char *s, char *host, size_t host_len, uint16_t *port);

#endif
