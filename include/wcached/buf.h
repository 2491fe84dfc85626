/*
 * The one growable byte buffer, for building request and response bodies and for collecting a
 * transfer's bytes. After an allocation failure `oom` is set and appends are ignored, so a
 * builder checks once, at the end. `p` is NUL-terminated whenever it is not NULL. A zeroed
 * wc_buf is empty and ready; the caller owns `p` (wc_buf_free, or take it and free it).
 */
#ifndef WCACHED_BUF_H
#define WCACHED_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wc_buf {
    char *p;
    size_t len, cap;
    bool oom;
} wc_buf;

void wc_buf_put(wc_buf *b, const void *s, size_t n);
void wc_buf_puts(wc_buf *b, const char *s);
/* Room for n more bytes and a NUL at p + len, or NULL (oom set, or already set). The caller
 * writes at most n bytes there, then adds what it wrote to len and stores the NUL after it. */
char *wc_buf_room(wc_buf *b, size_t n);
/* Appends v in decimal. */
void wc_buf_i64(wc_buf *b, int64_t v);
void wc_buf_u64(wc_buf *b, uint64_t v);
void wc_buf_printf(wc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted JSON string; bytes that are not valid UTF-8 become U+FFFD. */
void wc_buf_json(wc_buf *b, const char *s, size_t n);
void wc_buf_free(wc_buf *b);

#endif
