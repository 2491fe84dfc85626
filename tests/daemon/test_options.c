/*
 * The daemon's options as a user reads them: `wcached --help` and the README's options table
 * name the same flags with the same defaults (both come from the modules' WC_*_ defaults, and
 * this holds the README to them).
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The whole output of `cmd` (a new string); *status is what pclose says. */
static char *run_status(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    size_t k;
    while ((k = fread(out + len, 1, cap - len - 1, p)) > 0)
        len += k;
    out[len] = '\0';
    *status = pclose(p);
    return out;
}

/* The whole output of `cmd`, which must succeed. */
static char *run(const char *cmd)
{
    int status;
    char *out = run_status(cmd, &status);
    cr_assert_eq(status, 0, "%s failed", cmd);
    return out;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* One option as a document states it: its flag and its default ("" when none is stated). */
typedef struct entry {
    char flag[64];
    char def[128];
} entry;

/* The options table of the README: rows "| `--flag ARG` | default | what |". */
static size_t readme_options(const char *readme, entry *out, size_t max)
{
    size_t n = 0;
    for (const char *line = readme; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "| `--", 5) != 0)
            continue;
        cr_assert_lt(n, max);
        entry *e = &out[n++];
        memset(e, 0, sizeof(*e));
        sscanf(line + 3, "%63[^ `]", e->flag);
        const char *col = strstr(line + 1, " | ");
        cr_assert_not_null(col, "%.60s", line);
        col += 3;
        size_t k = 0;
        for (; col[k] && col[k] != '|' && col[k] != '\n' && k + 1 < sizeof(e->def); k++)
            e->def[k] = col[k];
        /* Backticks and surrounding space off; the first word is the value. */
        char tmp[128] = "";
        size_t t = 0;
        for (size_t i = 0; i < k; i++)
            if (e->def[i] != '`')
                tmp[t++] = e->def[i];
        tmp[t] = '\0';
        sscanf(tmp, "%127s", e->def);
        if (t == 0 || strspn(tmp, " ") == t)
            e->def[0] = '\0';
    }
    return n;
}

/* The default that --help states for `flag`: the word after "(default " in its block. */
static const char *help_default(const char *help, const char *flag, char *out, size_t len)
{
    char key[sizeof(((entry *)0)->flag) + 4];
    snprintf(key, sizeof(key), "\n  %.63s", flag);
    const char *at = strstr(help, key);
    cr_assert_not_null(at, "--help does not name %s", flag);
    const char *end = strstr(at + strlen(key), "\n  --");
    const char *d = strstr(at, "(default");
    if (!d || (end && d > end))
        return NULL;
    d += strlen("(default");
    if (*d != ' ')
        return NULL; /* "(default: words)": prose, not a value */
    size_t n = strcspn(d + 1, ")\n");
    const char *note = strstr(d + 1, ": "); /* "(default 300000: 5 minutes ..." */
    if (note && note < d + 1 + n)
        n = (size_t)(note - (d + 1));
    cr_assert_lt(n, len);
    memcpy(out, d + 1, n);
    out[n] = '\0';
    return out;
}

Test(options, the_readme_table_and_help_agree_on_flags_and_defaults)
{
    const char *bin = getenv("WCACHED_BIN");
    const char *readme_path = getenv("WCACHED_README");
    cr_assert(bin && readme_path);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --help", bin);
    char *help = run(cmd);
    char *readme = read_file(readme_path);
    entry rows[64];
    size_t n = readme_options(readme, rows, 64);
    cr_assert_geq(n, 10, "the README's options table has %zu rows", n);
    size_t compared = 0;
    for (size_t i = 0; i < n; i++) {
        char want[128];
        const char *d = help_default(help, rows[i].flag, want, sizeof(want));
        if (!d)
            continue;
        cr_expect_str_eq(rows[i].def, d, "%s: the README says '%s', --help '%s'", rows[i].flag,
                         rows[i].def, d);
        compared++;
    }
    cr_assert_geq(compared, 8, "only %zu defaults compared", compared);
    /* And every flag --help names is in the table. */
    for (const char *p = strstr(help, "\n  --"); p; p = strstr(p + 1, "\n  --")) {
        char flag[64];
        sscanf(p + 3, "%63[^ ,\n]", flag);
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "--etcd-password-file") == 0)
            continue; /* --help is the help; the password file is in --etcd-user's row */
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(rows[i].flag, flag) == 0;
        if (!found)
            found = strstr(readme, flag) && strstr(strstr(readme, "| option |"), flag);
        cr_expect(found, "--help names %s, the README's table does not", flag);
    }
    free(help);
    free(readme);
}

/* What wcached logs in its first second with `args`, against an etcd that is not there. */
static char *first_second(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "timeout -s TERM 1 '%s' --listen %s --etcd-endpoints http://127.0.0.1:1 2>&1",
             getenv("WCACHED_BIN"), args);
    int status;
    return run_status(cmd, &status);
}

Test(options, listening_beyond_loopback_without_authentication_warns)
{
    char *out = first_second("0.0.0.0:0");
    cr_assert(strstr(out, "listening on http://"), "%s", out);
    cr_assert(strstr(out, "beyond loopback with no authentication"), "%s", out);
    free(out);
    out = first_second("127.0.0.1:0");
    cr_assert(strstr(out, "listening on http://"), "%s", out);
    cr_assert_null(strstr(out, "beyond loopback"), "%s", out);
    free(out);
}

Test(options, json_logs_are_one_object_per_line)
{
    char *out = first_second("127.0.0.1:0 --log-format json");
    size_t lines = 0;
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        cr_assert_eq(strncmp(line, "{\"ts\":\"", 7), 0, "%s", line);
        cr_assert(strstr(line, "\",\"level\":\"") && strstr(line, "\",\"msg\":\""), "%s", line);
        cr_assert_eq(line[strlen(line) - 1], '}', "%s", line);
        lines++;
    }
    cr_assert_geq(lines, 2, "%s", out);
    free(out);
    int status;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' --log-format xml 2>&1", getenv("WCACHED_BIN"));
    out = run_status(cmd, &status);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s", out);
    cr_assert(strstr(out, "--log-format: 'xml' is not text or json"), "%s", out);
    free(out);
}

/* Status 2, and a first line that says `says`, for `args`. */
static void refused(const char *args, const char *says)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", getenv("WCACHED_BIN"), args);
    int status;
    char *out = run_status(cmd, &status);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: %s", args, out);
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
    cr_assert(strstr(out, says), "%s: %s", args, out);
    free(out);
}

Test(options, a_bearer_token_file_holds_a_token_and_goes_without_etcd_user)
{
    char dir[] = "/tmp/wcached-token-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char empty[96], good[96], args[512];
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    snprintf(good, sizeof(good), "%s/good", dir);
    FILE *f = fopen(empty, "w");
    fclose(f);
    f = fopen(good, "w");
    fputs("sekrit-token\n", f);
    fclose(f);
    snprintf(args, sizeof(args), "--etcd-token-file %s", empty);
    refused(args, "--etcd-token-file: '");
    snprintf(args, sizeof(args), "--etcd-token-file %s/none", dir);
    refused(args, "--etcd-token-file: cannot read");
    snprintf(args, sizeof(args), "--etcd-token-file %s --etcd-user u", good);
    refused(args, "--etcd-token-file and --etcd-user: one or the other");
    /* A good one starts, and the token is not in what it logs. */
    snprintf(args, sizeof(args), "127.0.0.1:0 --etcd-token-file %s", good);
    char *out = first_second(args);
    cr_assert(strstr(out, "listening on http://"), "%s", out);
    cr_assert_null(strstr(out, "sekrit"), "%s", out);
    free(out);
    unlink(empty);
    unlink(good);
    rmdir(dir);
}

/* Runs wcached with `args` (and `env` before it, may be ""); expects exit 2 and one line
 * that says `says`, then the usage hint, and nothing else. */
static void expect_refused(const char *env, const char *args, const char *says)
{
    char cmd[1024];
    int status;
    snprintf(cmd, sizeof(cmd), "%s '%s' %s 2>&1", env, getenv("WCACHED_BIN"), args);
    char *out = run_status(cmd, &status);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: %s", args, out);
    cr_assert(strncmp(out, "wcached: ", 9) == 0 && strstr(out, says), "%s: %s", args, out);
    const char *nl = strchr(out, '\n');
    cr_assert(nl && strcmp(nl + 1, "Try 'wcached --help' for more information.\n") == 0, "%s: %s",
              args, out);
    free(out);
}

Test(options, bad_request_limits_get_one_line_and_exit_2)
{
    const char *flags[] = {"--max-query-params", "--max-uri-bytes", "--max-page-size",
                           "--max-timeout-seconds"};
    const char *bad[] = {"0", "-1", "ten", "1e3", "", "99999999999999999999"};
    for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            char args[128], says[128];
            snprintf(args, sizeof(args), "%s '%s'", flags[f], bad[b]);
            snprintf(says, sizeof(says), "%s: '%s' is not ", flags[f], bad[b]);
            expect_refused("", args, says);
        }
    }
    /* past each upper bound, and from the environment as from a flag */
    expect_refused("", "--max-query-params 10001", "from 1 to 10000");
    expect_refused("", "--max-uri-bytes 1023", "from 1024 to 1048576");
    expect_refused("", "--max-page-size 10000001", "from 1 to 10000000");
    expect_refused("", "--max-timeout-seconds 315360001", "from 1 to 315360000");
    expect_refused("WCACHED_MAX_QUERY_PARAMS=many", "", "--max-query-params: 'many'");
    expect_refused("WCACHED_MAX_URI_BYTES=1k", "", "--max-uri-bytes: '1k'");
    expect_refused("WCACHED_MAX_PAGE_SIZE=0", "", "--max-page-size: '0'");
    expect_refused("WCACHED_MAX_TIMEOUT_SECONDS=1h", "", "--max-timeout-seconds: '1h'");
    /* the flag wins over the environment */
    expect_refused("WCACHED_MAX_PAGE_SIZE=500", "--max-page-size 0", "--max-page-size: '0'");
}

/* The glibc tunables a running wcached started with `env` has in its environment (glibc's loader
 * may cut the variable's first copy into pieces as it reads it), and then its name. Every case
 * below starts it again with all four set, so it is read once they are there (or after 20 s),
 * however long the start again takes on a busy machine. */
static char *tunables_of_running(const char *env)
{
    char cmd[1024];
    snprintf(
        cmd, sizeof(cmd),
        "%s '%s' --listen 127.0.0.1:0 --etcd-endpoints http://127.0.0.1:1 >/dev/null 2>&1 & "
        "p=$!; for i in $(seq 400); do "
        "[ \"$(tr '\\0:' '\\n\\n' </proc/$p/environ 2>/dev/null | "
        "grep -c -e tcache_count= -e mmap_threshold= -e trim_threshold= -e mxfast=)\" = 4 ] && "
        "break; "
        "sleep 0.05; done; tr '\\0' '\\n' </proc/$p/environ | grep 'glibc\\.'; "
        "cat /proc/$p/comm; kill $p",
        env, getenv("WCACHED_BIN"));
    return run(cmd);
}

/* True when `out` (tunables_of_running's) holds each of the NULL-ended strings, and the
 * process's name. glibc's loader may leave the variable cut at its colons. */
static bool holds(const char *out, ...)
{
    va_list ap;
    va_start(ap, out);
    bool all = strstr(out, "wcached\n") != NULL;
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        all = all && strstr(out, s) != NULL;
    va_end(ap);
    return all;
}

Test(options, the_daemon_runs_with_its_malloc_tunables_unless_told_otherwise)
{
    if (strcmp(getenv("WCACHED_SANITIZED") ? getenv("WCACHED_SANITIZED") : "0", "0") != 0)
        cr_skip_test("a sanitizer's allocator is not glibc's");
    char *out = tunables_of_running("env -u GLIBC_TUNABLES");
    cr_assert(holds(out, "GLIBC_TUNABLES=glibc.malloc.tcache_count=0",
                    "glibc.malloc.mmap_threshold=4194304", "glibc.malloc.trim_threshold=2097152",
                    "glibc.malloc.mxfast=0", NULL),
              "%s", out);
    free(out);
    /* other tunables are kept */
    out = tunables_of_running("GLIBC_TUNABLES=glibc.malloc.arena_max=4");
    cr_assert(holds(out, "GLIBC_TUNABLES=glibc.malloc.arena_max=4", "glibc.malloc.tcache_count=0",
                    "glibc.malloc.mmap_threshold=4194304", "glibc.malloc.trim_threshold=2097152",
                    "glibc.malloc.mxfast=0", NULL),
              "%s", out);
    free(out);
    /* one the operator chose is left as it is, and the other one added */
    out = tunables_of_running("GLIBC_TUNABLES=glibc.malloc.tcache_count=7");
    cr_assert(holds(out, "GLIBC_TUNABLES=glibc.malloc.tcache_count=7",
                    "glibc.malloc.mmap_threshold=4194304", "glibc.malloc.trim_threshold=2097152",
                    "glibc.malloc.mxfast=0", NULL) &&
                  !strstr(out, "tcache_count=0"),
              "%s", out);
    free(out);
    out = tunables_of_running("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536");
    cr_assert(holds(out, "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536",
                    "glibc.malloc.tcache_count=0", NULL) &&
                  !strstr(out, "4194304"),
              "%s", out);
    free(out);
    /* both chosen: those are left, the others added */
    out = tunables_of_running(
        "GLIBC_TUNABLES=glibc.malloc.tcache_count=7:glibc.malloc.mmap_threshold=65536");
    cr_assert(holds(out, "GLIBC_TUNABLES=glibc.malloc.tcache_count=7", "mmap_threshold=65536",
                    "glibc.malloc.mxfast=0", NULL) &&
                  !strstr(out, "tcache_count=0") && !strstr(out, "4194304"),
              "%s", out);
    free(out);
}
