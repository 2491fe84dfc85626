/*
 * The upstream over TLS with client certificates (made with openssl at test time) and with
 * etcd auth: serving works, a token etcd no longer knows is renewed, bad credentials leave
 * wcached not ready with a reason, and no secret reaches the log or /metrics.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd.h"
#include "harness.h"

static struct wc_test_etcd etcd;
static wc_test_daemon daemon_;
static char pwfile[64] = "";

static void stop_all(void)
{
    if (daemon_.pid > 0)
        wc_test_daemon_stop(&daemon_, SIGTERM);
    wc_test_etcd_stop(&etcd);
    if (pwfile[0])
        unlink(pwfile);
}

TestSuite(secure, .fini = stop_all, .timeout = 180);

#define SECRET "s3cret-Pa55word"

static void write_password_file(const char *password)
{
    snprintf(pwfile, sizeof(pwfile), "/tmp/wcached-pw-XXXXXX");
    int fd = mkstemp(pwfile);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, password, strlen(password)), (ssize_t)strlen(password));
    cr_assert_eq(write(fd, "\n", 1), 1);
    close(fd);
}

/* A change written to etcd arrives on a watch through wcached. */
static void expect_change_flows(void)
{
    wc_test_watch *w = wc_test_watch_open(daemon_.base, "/keys/s/?watch=1");
    cr_assert_not_null(w);
    int64_t rev = 0;
    cr_assert_eq(wc_test_etcd_put(&etcd, "/s/k", "v", &rev), 0);
    /* The state comes first as ADDED events; the change follows. */
    json_t *ev;
    while ((ev = wc_test_watch_next(w, 10000)) != NULL && wc_test_ev_rv(ev) != rev)
        json_decref(ev);
    cr_assert_not_null(ev, "the change at %" PRId64 " reached the reader", rev);
    json_decref(ev);
    wc_test_watch_close(w);
}

/* The daemon's log and /metrics hold no trace of `secret`. */
static void expect_no_secret(const char *secret)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "grep -q -- '%s' '%s'", secret, daemon_.log_path);
    /* grep says 1 for "not found"; 2, a log it could not read, proves nothing. */
    int rc = system(cmd);
    cr_assert(rc != -1 && WIFEXITED(rc), "grep did not run");
    cr_assert_neq(WEXITSTATUS(rc), 0, "the log shows the secret");
    cr_assert_eq(WEXITSTATUS(rc), 1, "grep could not read the log %s", daemon_.log_path);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, "/metrics", &r), 0);
    cr_assert_null(strstr(r.body, secret), "/metrics shows the secret");
    wc_test_resp_free(&r);
}

Test(secure, tls_with_client_certificates)
{
    cr_assert_eq(wc_test_etcd_start_tls(&etcd, 1), 0, "etcd over TLS did not start");
    const char *args[] = {"--etcd-cacert",
                          wc_test_etcd_cert(&etcd, "ca.crt"),
                          "--etcd-cert",
                          wc_test_etcd_cert(&etcd, "client.crt"),
                          "--etcd-key",
                          wc_test_etcd_cert(&etcd, "client.key"),
                          NULL};
    cr_assert_eq(wc_test_daemon_start(&daemon_, wc_test_etcd_client_url(&etcd, 0), args, true), 0,
                 "see %s", daemon_.log_path);
    expect_change_flows();
}

Test(secure, tls_without_a_client_certificate_is_not_ready_and_says_why)
{
    cr_assert_eq(wc_test_etcd_start_tls(&etcd, 1), 0);
    const char *args[] = {"--etcd-cacert", wc_test_etcd_cert(&etcd, "ca.crt"), NULL};
    cr_assert_eq(wc_test_daemon_start(&daemon_, wc_test_etcd_client_url(&etcd, 0), args, false), 0);
    usleep(1000000);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, "/readyz", &r), 0);
    cr_assert_eq(r.code, 503);
    cr_assert_not_null(strstr(r.body, "upstream watch is"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "https://127.0.0.1"), "the reason names the endpoint: %s",
                       r.body);
    wc_test_resp_free(&r);
}

Test(secure, etcd_auth_with_token_renewal_after_etcd_forgets_it)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_etcd_enable_auth(&etcd, "root", SECRET), 0);
    write_password_file(SECRET);
    const char *args[] = {"--etcd-user", "root", "--etcd-password-file", pwfile, "--log-level",
                          "debug",       NULL};
    cr_assert_eq(wc_test_daemon_start(&daemon_, wc_test_etcd_client_url(&etcd, 0), args, true), 0,
                 "see %s", daemon_.log_path);
    expect_change_flows();
    /* A restart makes etcd forget every simple token: wcached must authenticate again. */
    cr_assert_eq(wc_test_etcd_restart_member(&etcd, 0), 0);
    cr_assert_eq(wc_test_etcd_login(&etcd, "root", SECRET), 0);
    for (int i = 0; i < 200; i++) {
        wc_test_resp r;
        if (wc_test_get(daemon_.base, "/readyz", &r) == 0 && r.code == 200) {
            wc_test_resp_free(&r);
            break;
        }
        wc_test_resp_free(&r);
        usleep(50000);
    }
    expect_change_flows();
    expect_no_secret(SECRET);
}

Test(secure, a_wrong_password_is_not_ready_and_never_logged)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_etcd_enable_auth(&etcd, "root", SECRET), 0);
    write_password_file("Wr0ng-Pa55word");
    const char *args[] = {"--etcd-user", "root", "--etcd-password-file", pwfile, "--log-level",
                          "debug",       NULL};
    cr_assert_eq(wc_test_daemon_start(&daemon_, wc_test_etcd_client_url(&etcd, 0), args, false), 0);
    usleep(1000000);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, "/readyz", &r), 0);
    cr_assert_eq(r.code, 503);
    cr_assert_not_null(strstr(r.body, "authentication as 'root' failed"), "%s", r.body);
    wc_test_resp_free(&r);
    expect_no_secret("Wr0ng-Pa55word");
}
