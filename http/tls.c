/*
 * HTTPS: the server's certificate chain and key, and the CA that client certificates are
 * checked against, read from their PEM files and swapped whole on a reload (SIGHUP).
 *
 * libmicrohttpd runs the handshakes with GnuTLS. Its credentials are fixed once the daemon runs,
 * so the server gives them through a retrieve callback (MHD_OPTION_HTTPS_CERT_CALLBACK), which
 * hands each new handshake the set in force: a reload changes what the next handshake sees and
 * leaves every open connection, and every watch stream on one, as it is. A replaced set is kept
 * until the server is freed (a handshake under way may still hold its pointers; reloads are
 * rare and a set is a few KiB).
 *
 * A watch stream leaves libmicrohttpd after its headers, as over plain HTTP (stream.c), and takes
 * with it only the sending half of its TLS session: the key, IV and sequence number GnuTLS
 * reached (gnutls_record_get_state). Its pump then seals each chunk as TLS records itself
 * (AES-GCM or ChaCha20-Poly1305, the only ciphers offered) and send()s them; what the reader
 * sends is read and dropped unopened, as over plain HTTP. An idle TLS stream thus costs an
 * AEAD key schedule more than a plain one, instead of a whole GnuTLS session and the
 * connection's memory pool.
 *
 * Client certificates are asked for (not required) on every handshake when a client CA is
 * configured, and checked here for each request against the CA in force, not by GnuTLS during
 * the handshake: a reload of the CA then applies to the next request, and a certificate that
 * is not valid gets a 401 Status rather than a failed handshake the client cannot read.
 */
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http_internal.h"

#define MAX_CHAIN 16 /* certificates in a chain, the server's or a client's */

/* TLS 1.2 and 1.3 only, with AEAD ciphers only (what a stream's pump seals: see below), in the
 * server's order: AES-GCM first, which this GnuTLS runs about ten times as fast as
 * ChaCha20-Poly1305 where the CPU has AES instructions (measured: 0.4 us against 4.5 us to seal
 * a 1.3 KB event), ChaCha20-Poly1305 for clients without AES. */
static char priorities[] = "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
                           "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-MAC-ALL:"
                           "+AEAD";

struct wc_http_tls_set {
    gnutls_pcert_st *chain; /* the server's chain, leaf first */
    unsigned n_chain;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t ca;   /* client CA, or NULL */
    struct wc_http_tls_set *older; /* replaced sets, kept until the server is freed */
};

static void set_free(wc_http_tls_set *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < t->n_chain; i++)
        gnutls_pcert_deinit(&t->chain[i]);
    free(t->chain);
    if (t->key)
        gnutls_privkey_deinit(t->key);
    if (t->ca)
        gnutls_x509_trust_list_deinit(t->ca, 1);
    free(t);
}

void wc_http_tls_free_all(wc_http_tls_set *t)
{
    while (t) {
        wc_http_tls_set *older = t->older;
        set_free(t);
        t = older;
    }
}

/* The chain in `path` into t; 0 or a gnutls error with `why` filled. */
static int load_chain(wc_http_tls_set *t, const char *path, char *why, size_t why_len)
{
    gnutls_datum_t pem = {NULL, 0};
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int rc = gnutls_load_file(path, &pem);
    if (rc < 0) {
        snprintf(why, why_len, "--tls-cert-file %s: cannot read it: %s", path, gnutls_strerror(rc));
        return rc;
    }
    rc = gnutls_x509_crt_list_import2(&crts, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(pem.data);
    if (rc < 0 || n == 0 || n > MAX_CHAIN) {
        snprintf(why, why_len, "--tls-cert-file %s: not a PEM certificate chain of 1 to %d: %s",
                 path, MAX_CHAIN, rc < 0 ? gnutls_strerror(rc) : "no certificate");
        for (unsigned i = 0; i < n; i++)
            gnutls_x509_crt_deinit(crts[i]);
        gnutls_free(crts);
        return rc < 0 ? rc : GNUTLS_E_CERTIFICATE_ERROR;
    }
    t->chain = calloc(n, sizeof(*t->chain));
    rc = t->chain ? gnutls_pcert_import_x509_list(t->chain, crts, &n, 0) : GNUTLS_E_MEMORY_ERROR;
    if (rc == 0)
        t->n_chain = n;
    else
        snprintf(why, why_len, "--tls-cert-file %s: %s", path, gnutls_strerror(rc));
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    return rc;
}

/* The key in `path` into t, checked against the chain's leaf. */
static int load_key(wc_http_tls_set *t, const char *path, char *why, size_t why_len)
{
    gnutls_datum_t pem = {NULL, 0};
    int rc = gnutls_load_file(path, &pem);
    if (rc < 0) {
        snprintf(why, why_len, "--tls-private-key-file %s: cannot read it: %s", path,
                 gnutls_strerror(rc));
        return rc;
    }
    rc = gnutls_privkey_init(&t->key);
    if (rc == 0)
        rc = gnutls_privkey_import_x509_raw(t->key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_memset(pem.data, 0, pem.size);
    gnutls_free(pem.data);
    if (rc < 0) {
        snprintf(why, why_len, "--tls-private-key-file %s: not an unencrypted PEM private key: %s",
                 path, gnutls_strerror(rc));
        return rc;
    }
    /* The key must be the leaf's: compare the key ids of their public halves. */
    gnutls_pubkey_t pub = NULL;
    unsigned char a[64], b[64];
    size_t al = sizeof(a), bl = sizeof(b);
    rc = gnutls_pubkey_init(&pub);
    if (rc == 0)
        rc = gnutls_pubkey_import_privkey(pub, t->key, 0, 0);
    if (rc == 0)
        rc = gnutls_pubkey_get_key_id(pub, 0, a, &al);
    if (rc == 0)
        rc = gnutls_pubkey_get_key_id(t->chain[0].pubkey, 0, b, &bl);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (rc == 0 && (al != bl || memcmp(a, b, al) != 0))
        rc = GNUTLS_E_CERTIFICATE_KEY_MISMATCH;
    if (rc < 0)
        snprintf(why, why_len, "--tls-private-key-file %s: %s", path,
                 rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH
                     ? "the key does not match the first certificate of --tls-cert-file"
                     : gnutls_strerror(rc));
    return rc;
}

static int load_ca(wc_http_tls_set *t, const char *path, char *why, size_t why_len)
{
    int rc = gnutls_x509_trust_list_init(&t->ca, 0);
    if (rc == 0)
        rc = gnutls_x509_trust_list_add_trust_file(t->ca, path, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc > 0)
        return 0;
    snprintf(why, why_len, "--client-ca-file %s: no PEM certificate in it%s%s", path,
             rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror(rc) : "");
    return rc < 0 ? rc : GNUTLS_E_CERTIFICATE_ERROR;
}

int wc_http_tls_load(const char *cert, const char *key, const char *ca, wc_http_tls_set **out,
                     char *why, size_t why_len)
{
    wc_http_tls_set *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(why, why_len, "%s", "out of memory");
        return WC_ENOMEM;
    }
    int rc = load_chain(t, cert, why, why_len);
    if (rc == 0)
        rc = load_key(t, key, why, why_len);
    if (rc == 0 && ca)
        rc = load_ca(t, ca, why, why_len);
    if (rc != 0) {
        set_free(t);
        return WC_EINVAL;
    }
    *out = t;
    return 0;
}

void wc_http_tls_retire(wc_http_tls_set *t, wc_http_tls_set *older)
{
    t->older = older;
}

/*
 * GnuTLS asks for the certificate to present (libmicrohttpd's MHD_OPTION_HTTPS_CERT_CALLBACK):
 * the set in force, for this handshake. The connection is the session's pointer (libmicrohttpd
 * sets it), and the server is its slot's.
 */
static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    wc_http *h = wc_http_conn_server(gnutls_session_get_ptr(session));
    wc_http_tls_set *t = h ? atomic_load(&h->tls_set) : NULL;
    if (!t)
        return -1;
    *pcert = t->chain;
    *pcert_length = t->n_chain;
    *pkey = t->key;
    return 0;
}

void wc_http_tls_mhd_options(struct MHD_OptionItem out[3])
{
    out[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)retrieve};
    out[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, priorities};
    out[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}

/* The first value of `oid` in the subject of crt at index idx into buf; 0 or a gnutls error. */
static int dn_value(gnutls_x509_crt_t crt, const char *oid, unsigned idx, char *buf, size_t len)
{
    size_t n = len;
    int rc = gnutls_x509_crt_get_dn_by_oid(crt, oid, idx, 0, buf, &n);
    if (rc == 0 && (n == 0 || strlen(buf) != n))
        rc = GNUTLS_E_ASN1_DER_ERROR; /* empty, or a NUL inside */
    return rc;
}

int wc_http_tls_peer_user(wc_http *h, struct MHD_Connection *conn, wc_http_user *u)
{
    wc_http_tls_set *t = atomic_load(&h->tls_set);
    if (!t || !t->ca)
        return WC_ENOENT;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? ci->tls_session : NULL;
    unsigned n = 0;
    const gnutls_datum_t *peers = session ? gnutls_certificate_get_peers(session, &n) : NULL;
    if (!peers || n == 0)
        return WC_ENOENT;
    if (n > MAX_CHAIN)
        return WC_EINVAL;
    gnutls_x509_crt_t crts[MAX_CHAIN];
    unsigned got = 0;
    int rc = 0;
    for (; got < n && rc == 0; got++) {
        rc = gnutls_x509_crt_init(&crts[got]);
        if (rc < 0)
            break;
        rc = gnutls_x509_crt_import(crts[got], &peers[got], GNUTLS_X509_FMT_DER);
    }
    /* Signed by the CA, in its validity period, and made for client authentication (as the
     * apiserver asks of a client certificate). */
    unsigned status = 1;
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_CLIENT};
    if (rc == 0)
        rc = gnutls_x509_trust_list_verify_crt2(t->ca, crts, n, &purpose, 1, 0, &status, NULL);
    int out = WC_EINVAL;
    char name[WC_HTTP_AUTH_NAME_MAX];
    if (rc == 0 && status == 0 &&
        dn_value(crts[0], GNUTLS_OID_X520_COMMON_NAME, 0, name, sizeof(name)) == 0) {
        char groups[WC_HTTP_AUTH_GROUPS_MAX][WC_HTTP_AUTH_NAME_MAX];
        const char *gp[WC_HTTP_AUTH_GROUPS_MAX];
        size_t ng = 0;
        int grc = 0;
        for (unsigned i = 0;; i++) {
            char g[WC_HTTP_AUTH_NAME_MAX];
            grc = dn_value(crts[0], GNUTLS_OID_X520_ORGANIZATION_NAME, i, g, sizeof(g));
            if (grc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
                grc = 0;
                break;
            }
            if (grc < 0 || ng == WC_HTTP_AUTH_GROUPS_MAX)
                break;
            memcpy(groups[ng], g, sizeof(g));
            gp[ng] = groups[ng];
            ng++;
        }
        if (grc == 0 && ng < WC_HTTP_AUTH_GROUPS_MAX && wc_http_auth_user_set(u, name, gp, ng) == 0)
            out = 0;
    }
    for (unsigned i = 0; i < got && i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    return out;
}

void wc_http_tls_ask_client_cert(wc_http *h, struct MHD_Connection *conn)
{
    if (!h->client_ca_file)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci && ci->tls_session)
        gnutls_certificate_server_set_request(ci->tls_session, GNUTLS_CERT_REQUEST);
}

/* ---------------------------------------------------------------------------------------
 * A watch stream's half of a TLS session: the records it sends, sealed by its pump
 * ------------------------------------------------------------------------------------- */

#define TAG_LEN 16
#define MIN_PLAIN 512 /* the smallest record a client may ask for (max_fragment_length) */
/* Records under one key before a stream is ended (its reader watches again): below TLS 1.3's
 * limit for AES-GCM (2^24.5 full records). */
#define SEQ_BUDGET (1ull << 24)

struct wc_http_tls_tx {
    /* The cipher is keyed by the pump, at the first record: so its memory comes from the
     * pump's heap, and not from between the handshakes' freed buffers on libmicrohttpd's
     * thread, where it would keep their pages in. Until then the key waits here. */
    gnutls_aead_cipher_hd_t aead;
    gnutls_cipher_algorithm_t algo;
    unsigned char key[32];
    unsigned key_len;
    unsigned char iv[12]; /* XORed with the sequence number; TLS 1.2 GCM: the salt, 4 bytes */
    uint64_t seq, seq_end;
    bool tls13;          /* the content type goes inside the record, after the data */
    bool explicit_nonce; /* TLS 1.2 GCM: salt and 8 bytes sent with each record */
    size_t max_plain;
};

int wc_http_tls_tx_take(void *session, wc_http_tls_tx **out)
{
    gnutls_session_t ss = session;
    gnutls_protocol_t v = gnutls_protocol_get_version(ss);
    gnutls_cipher_algorithm_t c = gnutls_cipher_get(ss);
    bool gcm = c == GNUTLS_CIPHER_AES_128_GCM || c == GNUTLS_CIPHER_AES_256_GCM;
    if ((v != GNUTLS_TLS1_2 && v != GNUTLS_TLS1_3) ||
        (!gcm && c != GNUTLS_CIPHER_CHACHA20_POLY1305))
        return WC_EINVAL; /* the priorities allow nothing else */
    gnutls_datum_t mac, iv, key;
    unsigned char seq[8];
    if (gnutls_record_get_state(ss, 0, &mac, &iv, &key, seq) < 0)
        return WC_EINVAL;
    wc_http_tls_tx *t = calloc(1, sizeof(*t));
    if (!t)
        return WC_ENOMEM;
    t->tls13 = v == GNUTLS_TLS1_3;
    t->explicit_nonce = !t->tls13 && gcm;
    size_t iv_len = t->explicit_nonce ? 4 : 12;
    size_t max = gnutls_record_get_max_size(ss);
    t->max_plain = max >= MIN_PLAIN && max < 16384 ? max : 16384;
    for (int i = 0; i < 8; i++)
        t->seq = t->seq << 8 | seq[i];
    t->seq_end = t->seq + SEQ_BUDGET;
    if (iv.size < iv_len || key.size > sizeof(t->key)) {
        free(t);
        return WC_EINVAL;
    }
    t->algo = c;
    t->key_len = key.size;
    memcpy(t->key, key.data, key.size);
    memcpy(t->iv, iv.data, iv_len);
    *out = t;
    return 0;
}

void wc_http_tls_tx_free(wc_http_tls_tx *t)
{
    if (!t)
        return;
    if (t->aead)
        gnutls_aead_cipher_deinit(t->aead);
    gnutls_memset(t->key, 0, sizeof(t->key));
    gnutls_memset(t->iv, 0, sizeof(t->iv));
    free(t);
}

bool wc_http_tls_tx_worn(const wc_http_tls_tx *t, size_t next_len)
{
    return t->seq + next_len / MIN_PLAIN + 2 >= t->seq_end;
}

size_t wc_http_tls_sealed_max(size_t len)
{
    return len + (len / MIN_PLAIN + 1) * (5 + 8 + 1 + TAG_LEN);
}

/*
 * One record: header, [explicit nonce,] the data encrypted in place after being copied in,
 * [the inner content type,] the tag. TLS 1.3 (RFC 8446, 5.2-5.3): the outer type is application
 * data, the header is the additional data, the nonce is the IV XOR the sequence number. TLS 1.2
 * (RFC 5246 6.2.3.3, 5288, 7905): the additional data is sequence, type, version and length of
 * the data; GCM's nonce is the 4-byte salt and the 8 bytes sent (the sequence number here),
 * ChaCha20-Poly1305's is the IV XOR the sequence number.
 */
ssize_t wc_http_tls_seal(wc_http_tls_tx *t, unsigned char type, const char *p, size_t len,
                         char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (!t->aead) {
        gnutls_datum_t key = {t->key, t->key_len};
        if (gnutls_aead_cipher_init(&t->aead, t->algo, &key) < 0) {
            t->aead = NULL;
            return -1;
        }
        gnutls_memset(t->key, 0, sizeof(t->key));
    }
    do {
        size_t n = len > t->max_plain ? t->max_plain : len;
        size_t pre = 5 + (t->explicit_nonce ? 8 : 0);
        size_t body = n + (t->tls13 ? 1 : 0);
        size_t wire = pre - 5 + body + TAG_LEN;
        unsigned char sq[8], nonce[12], aad[13];
        for (int i = 0; i < 8; i++)
            sq[i] = (unsigned char)(t->seq >> (56 - 8 * i));
        o[0] = t->tls13 ? 23 : type;
        o[1] = 3;
        o[2] = 3;
        o[3] = (unsigned char)(wire >> 8);
        o[4] = (unsigned char)wire;
        memcpy(nonce, t->iv, 12);
        if (t->explicit_nonce) {
            memcpy(nonce + 4, sq, 8);
            memcpy(o + 5, sq, 8);
        } else {
            for (int i = 0; i < 8; i++)
                nonce[4 + i] ^= sq[i];
        }
        memcpy(o + pre, p, n);
        size_t aad_len = 5;
        if (t->tls13) {
            o[pre + n] = type;
            memcpy(aad, o, 5);
        } else {
            memcpy(aad, sq, 8);
            aad[8] = type;
            aad[9] = 3;
            aad[10] = 3;
            aad[11] = (unsigned char)(n >> 8);
            aad[12] = (unsigned char)n;
            aad_len = 13;
        }
        giovec_t a = {aad, aad_len}, d = {o + pre, body};
        size_t tag_len = TAG_LEN;
        if (gnutls_aead_cipher_encryptv2(t->aead, nonce, sizeof(nonce), &a, 1, &d, 1,
                                         o + pre + body, &tag_len) < 0 ||
            tag_len != TAG_LEN)
            return -1;
        t->seq++;
        o += pre + body + TAG_LEN;
        p += n;
        len -= n;
    } while (len > 0);
    return (ssize_t)(o - (unsigned char *)out);
}
