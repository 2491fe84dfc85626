/*
 * libFuzzer target: arbitrary bytes from "etcd" through the line splitter and the watch and
 * range parsers, fed in two chunks split where the first byte says. Garbage must be refused
 * with a code, never crash or over-read; and the range and watch parsers' fast paths must
 * answer as jansson does wherever they answer at all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cut = data[0] % size;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if (cut > n)
        cut = n;
    wc_linebuf lb;
    wc_linebuf_init(&lb, 1 << 16);
    const char *line;
    size_t len;
    for (int part = 0; part < 2; part++) {
        const char *p = part ? in + cut : in;
        size_t pn = part ? n - cut : cut;
        if (wc_linebuf_feed(&lb, p, pn) != 0)
            break;
        while (wc_linebuf_next(&lb, &line, &len)) {
            wc_watch_resp r, wref;
            if (wc_etcd_parse_watch(line, len, &r) == 0)
                wc_watch_resp_free(&r);
            if (wc_etcd_parse_watch_fast(line, len, &r) == 0) {
                if (wc_etcd_parse_watch_json(line, len, &wref) != 0)
                    abort();
                if (!wc_watch_resp_equal(&r, &wref))
                    abort();
                wc_watch_resp_free(&wref);
                wc_watch_resp_free(&r);
            }
            wc_range_resp rr, ref;
            if (wc_etcd_parse_range(line, len, &rr) == 0)
                wc_range_resp_free(&rr);
            /* Where the fast path takes a range, jansson must take it and agree. */
            if (wc_etcd_parse_range_fast(line, len, &rr) == 0) {
                if (wc_etcd_parse_range_json(line, len, &ref) != 0)
                    abort();
                if (!wc_range_resp_equal(&rr, &ref))
                    abort();
                wc_range_resp_free(&ref);
                wc_range_resp_free(&rr);
            }
        }
    }
    wc_linebuf_free(&lb);
    char *out = NULL;
    size_t olen = 0;
    if (wc_b64_decode(in, n, &out, &olen) == 0)
        free(out);
    return 0;
}
