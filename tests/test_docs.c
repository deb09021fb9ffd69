/* SPDX-License-Identifier: MIT */
/*
 * test_docs.c - the documentation agrees with include/executor.h, and its code compiles.
 *
 * The header is the contract; these tests read it (its EXEC_API declarations, typedefs,
 * macros and EXEC_ERRNO_MAP) and hold README.md, the docs/ guides and the man pages in docs/man3/
 * to it. Each test lists every problem it finds, with file and line where it has one, and
 * then fails once.
 *
 *   tooling_docs_api_complete   every public function appears in docs/api.md as `name(`
 *   tooling_docs_names_exist    every exec_* / EXEC_* name the docs and man pages use exists
 *                               in the header (no renamed or invented functions, types, codes)
 *   tooling_docs_man_pages      every public function has a page (directly or through a .so
 *                               link) whose NAME lists it and whose SYNOPSIS declares it as
 *                               the header does; every page names only header functions, its
 *                               struct/enum/#define synopses match the header, and the pages
 *                               it refers to exist
 *   tooling_docs_man_errors     exec_strerror(3) lists every code of EXEC_ERRNO_MAP, with its
 *                               value and message, and no other
 *   tooling_docs_code_blocks    every ```c block of README.md and docs/<x>.md, every .EX
 *                               example of the man pages compiles as written; those with a
 *                               main() link against the library and run (main(void): exit 0;
 *                               main(argc, argv), run without arguments: no crash, no hang)
 *   tooling_docs_man_groff      groff -man -ww reports no warning on any page
 *
 * The names start with tooling_ so that the sanitizer and valgrind targets skip them (SAN_ARGS
 * in the Makefile): they check text and run compilers, not the library's memory.
 */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tasks.h"

#if !defined(EXEC_SRC_DIR) || !defined(EXEC_BUILD_DIR) || !defined(EXEC_TEST_CC) ||           \
    !defined(EXEC_TEST_SANFLAGS)
#error "EXEC_SRC_DIR, EXEC_BUILD_DIR, EXEC_TEST_CC and EXEC_TEST_SANFLAGS come from the Makefile"
#endif

#define HEADER EXEC_SRC_DIR "/include/executor.h"
#define MAN_DIR EXEC_SRC_DIR "/docs/man3"
/* A code block that runs gets this long (seconds, times EXEC_TEST_TIMEOUT_SCALE). */
#define BLOCK_LIMIT_S 20

/* ------------------------------------------------------------------------------------------ */
/* Small tools                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static int problems;

/* Notes one problem (printed at once); the test fails at the end if there was any. */
__attribute__((format(printf, 1, 2))) static void problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  - ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    problems++;
}

static void end_with_problems(const char *what)
{
    if (problems > 0)
        TEST_FAIL("%d problem%s with %s (listed above)", problems, problems == 1 ? "" : "s",
                  what);
}

/* The whole file, NUL-terminated, malloc'd; NULL (errno set) if it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            TEST_FAIL("out of memory reading %s", path);
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static char *must_slurp(const char *path)
{
    char *s = slurp(path);
    if (s == NULL)
        TEST_FAIL("%s: %s", path, strerror(errno));
    return s;
}

static bool is_ident(int c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* 1-based line number of @p inside @text. */
static int line_of(const char *text, const char *p)
{
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

/* @path relative to the source directory, for messages. */
static const char *rel(const char *path)
{
    size_t n = strlen(EXEC_SRC_DIR);
    return strncmp(path, EXEC_SRC_DIR "/", n + 1) == 0 ? path + n + 1 : path;
}

/* C comments replaced by one space each (string and character literals kept). In place. */
static void strip_comments(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '/' && r[1] == '*') {
            const char *e = strstr(r + 2, "*/");
            r = e ? e + 2 : r + strlen(r);
            *w++ = ' ';
        } else if (r[0] == '/' && r[1] == '/') {
            while (*r && *r != '\n')
                r++;
        } else if (*r == '"' || *r == '\'') {
            char q = *r;
            *w++ = *r++;
            while (*r && *r != q && *r != '\n') {
                if (*r == '\\' && r[1])
                    *w++ = *r++;
                *w++ = *r++;
            }
            if (*r == q)
                *w++ = *r++;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/*
 * C text in a canonical spacing, so that declarations compare whatever their line breaks:
 * whitespace is dropped, except one space between two identifier characters.
 * "int  exec_cq_fd(const exec_cq_t *cq );" gives "int exec_cq_fd(const exec_cq_t*cq);".
 */
static void canon(const char *in, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    bool space = false;
    for (size_t i = 0; i < len && in[i] && n + 2 < cap; i++) {
        if (isspace((unsigned char)in[i])) {
            space = true;
            continue;
        }
        if (space && n > 0 && is_ident(out[n - 1]) && is_ident(in[i]))
            out[n++] = ' ';
        space = false;
        out[n++] = in[i];
    }
    out[n] = '\0';
}

/* The identifier that starts at @p (at most 63 characters of it), into @id; its length. */
static size_t ident_at(const char *p, char id[64])
{
    size_t n = 0;
    while (is_ident(p[n]) && n < 63) {
        id[n] = p[n];
        n++;
    }
    id[n] = '\0';
    return n;
}

/* The identifier that ends just before @end (which lies inside @text), into @out. */
static void ident_before(const char *text, const char *end, char *out, size_t cap)
{
    const char *p = end;
    while (p > text && isspace((unsigned char)p[-1]))
        p--;
    const char *e = p;
    while (p > text && is_ident(p[-1]))
        p--;
    size_t n = (size_t)(e - p) < cap - 1 ? (size_t)(e - p) : cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* What the header declares                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define MAX_FNS 128
#define MAX_NAMES 512
#define MAX_TYPES 32

struct header {
    char *raw;                /* the file as written */
    char *code;               /* the same without comments */
    size_t nfns;              /* EXEC_API functions: */
    char fn[MAX_FNS][64];     /* ...their names */
    char decl[MAX_FNS][512];  /* ...canonical declarations, "EXEC_API " dropped, ';' kept */
    size_t ncbs;              /* typedef'd function types, e.g. exec_task_fn */
    char cb[MAX_TYPES][64];
    size_t nnames;            /* every exec_ / EXEC_ identifier written in the header */
    char name[MAX_NAMES][64];
    size_t ncodes;            /* EXEC_ERRNO_MAP: "EXEC_" NAME, value, message */
    char code_name[64][64];
    int code_value[64];
    char code_msg[64][128];
};

static bool in_list(const char (*list)[64], size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static void add_name(struct header *h, const char *s)
{
    if (in_list(h->name, h->nnames, s) || h->nnames == MAX_NAMES)
        return;
    size_t n = strlen(s) < 63 ? strlen(s) : 63;
    memmove(h->name[h->nnames], s, n);
    h->name[h->nnames++][n] = '\0';
}

static void read_header(struct header *h)
{
    memset(h, 0, sizeof *h);
    h->raw = must_slurp(HEADER);
    h->code = must_slurp(HEADER);
    strip_comments(h->code);

    /* EXEC_API functions: every line of the code that starts with "EXEC_API ". */
    for (const char *p = h->code; (p = strstr(p, "EXEC_API ")) != NULL; p++) {
        if (p != h->code && p[-1] != '\n')
            continue; /* the #define of EXEC_API itself */
        const char *paren = strchr(p, '('), *semi = strchr(p, ';');
        if (paren == NULL || semi == NULL || paren > semi || h->nfns == MAX_FNS)
            TEST_FAIL("%s:%d: cannot read this EXEC_API declaration", HEADER,
                      line_of(h->code, p));
        ident_before(h->code, paren, h->fn[h->nfns], 64);
        const char *d = p + strlen("EXEC_API ");
        canon(d, (size_t)(semi + 1 - d), h->decl[h->nfns], 512);
        h->nfns++;
    }
    /* Function types: "typedef <type> exec_xxx(<params>);". */
    for (const char *p = h->code; (p = strstr(p, "typedef ")) != NULL; p++) {
        const char *paren = strchr(p, '('), *semi = strchr(p, ';'), *brace = strchr(p, '{');
        if (paren && semi && paren < semi && (brace == NULL || brace > semi) &&
            h->ncbs < MAX_TYPES)
            ident_before(h->code, paren, h->cb[h->ncbs++], 64);
    }
    /* Error codes: the lines "    X(NAME, value, "message")" of EXEC_ERRNO_MAP. */
    for (const char *p = h->raw; (p = strstr(p, "X(")) != NULL; p++) {
        char nm[48], msg[128];
        int v;
        if (p > h->raw && (is_ident(p[-1]) || p[-1] == '('))
            continue;
        if (sscanf(p, "X(%47[A-Z0-9_], %d, \"%127[^\"]\")", nm, &v, msg) == 3 &&
            h->ncodes < 64) {
            snprintf(h->code_name[h->ncodes], 64, "EXEC_%s", nm);
            h->code_value[h->ncodes] = v;
            snprintf(h->code_msg[h->ncodes], 128, "%s", msg);
            add_name(h, h->code_name[h->ncodes]);
            h->ncodes++;
        }
    }
    /* Every identifier starting with exec_ or EXEC_, comments included. */
    for (const char *p = h->raw; *p; p++) {
        if ((strncmp(p, "exec_", 5) == 0 || strncmp(p, "EXEC_", 5) == 0) &&
            (p == h->raw || !is_ident(p[-1]))) {
            char id[64];
            size_t n = ident_at(p, id);
            add_name(h, id);
            p += n - 1;
        }
    }
    /* The parser must have seen the header, or every check below would pass vacuously. */
    if (h->nfns < 30 || h->ncbs < 3 || h->ncodes < 15 ||
        !in_list(h->fn, h->nfns, "exec_create") || !in_list(h->cb, h->ncbs, "exec_task_fn"))
        TEST_FAIL("%s: read %zu functions, %zu function types, %zu error codes: the parser "
                  "in %s no longer understands the header",
                  HEADER, h->nfns, h->ncbs, h->ncodes, __FILE__);
}

static void free_header(struct header *h)
{
    free(h->raw);
    free(h->code);
}

static int fn_index(const struct header *h, const char *name)
{
    for (size_t i = 0; i < h->nfns; i++)
        if (strcmp(h->fn[i], name) == 0)
            return (int)i;
    return -1;
}

/*
 * The members of "typedef struct|enum <tag> { ... } @type;" in the comment-free C text
 * @code, each in canonical spacing, into @members; returns how many (-1 if not found).
 */
static int members_of(const char *code, const char *type, char (*members)[160], int cap)
{
    char want[96];
    snprintf(want, sizeof want, "}%s;", type); /* canonical spacing */
    const char *end = NULL;
    for (const char *p = code; end == NULL && (p = strchr(p, '}')) != NULL; p++) {
        char c[96];
        canon(p, strcspn(p, ";") + 1, c, sizeof c);
        if (strcmp(c, want) == 0)
            end = p;
    }
    if (end == NULL)
        return -1;
    const char *open = end;
    while (open > code && *open != '{')
        open--;
    if (*open != '{')
        return -1;
    const char *kw = open;
    while (kw > code && strncmp(kw, "typedef", 7) != 0)
        kw--;
    char sep = strstr(kw, "enum") != NULL && strstr(kw, "enum") < open ? ',' : ';';
    int n = 0;
    for (const char *p = open + 1; p < end;) {
        size_t len = 0;
        while (p + len < end && p[len] != sep)
            len++;
        char m[160];
        canon(p, len, m, sizeof m);
        if (m[0] != '\0' && n < cap)
            snprintf(members[n++], 160, "%s", m);
        p += len + 1;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Man pages                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* troff escapes of the pages, and what they stand for in plain text. */
static const struct {
    const char *esc, *text;
} escapes[] = {
    {"\\fB", ""}, {"\\fI", ""}, {"\\fR", ""}, {"\\fP", ""},  {"\\f(CW", ""},
    {"\\-", "-"}, {"\\e", "\\"}, {"\\&", ""}, {"\\(dq", "\""}, {"\\(aq", "'"},
    {"\\(bu", "*"}, {"\\(ga", "`"}, {"\\ ", " "}, {"\\%", ""}, {"\\(em", "--"},
};

/* Appends the plain text of troff text @s (@len bytes) to @out. */
static void unescape(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = strlen(out);
    for (size_t i = 0; i < len && n + 4 < cap;) {
        bool done = false;
        if (s[i] == '\\') {
            for (size_t k = 0; k < sizeof escapes / sizeof escapes[0]; k++) {
                size_t el = strlen(escapes[k].esc);
                if (i + el <= len && strncmp(s + i, escapes[k].esc, el) == 0) {
                    n += (size_t)snprintf(out + n, cap - n, "%s", escapes[k].text);
                    i += el;
                    done = true;
                    break;
                }
            }
        }
        if (!done)
            out[n++] = s[i++];
    }
    out[n] = '\0';
}

/*
 * The plain text of one troff line of a page: font macros (.B, .BI, .BR ...) give their
 * arguments (joined by spaces for .B/.I, run together for the alternating ones); other
 * requests give an empty line; text lines give themselves. Appends it and '\n' to @out.
 */
static void plain_line(const char *line, size_t len, char *out, size_t cap)
{
    if (len == 0 || (line[0] != '.' && line[0] != '\'')) {
        unescape(line, len, out, cap);
    } else {
        char mac[8] = "";
        size_t m = 1;
        while (m < len && m < 7 && !isspace((unsigned char)line[m])) {
            mac[m - 1] = line[m];
            m++;
        }
        mac[m - 1] = '\0';
        bool font = strcmp(mac, "B") == 0 || strcmp(mac, "I") == 0 || strcmp(mac, "SM") == 0;
        bool alt = strlen(mac) == 2 && strchr("BIR", mac[0]) && strchr("BIR", mac[1]);
        if (font || alt) {
            int args = 0;
            for (size_t i = m; i < len;) {
                while (i < len && line[i] == ' ')
                    i++;
                if (i >= len)
                    break;
                char arg[512] = "";
                size_t a = 0;
                if (line[i] == '"') {
                    for (i++; i < len && a < sizeof arg - 1; i++) {
                        if (line[i] == '"' && i + 1 < len && line[i + 1] == '"')
                            arg[a++] = line[i++];
                        else if (line[i] == '"')
                            break;
                        else
                            arg[a++] = line[i];
                    }
                    i++;
                } else {
                    while (i < len && line[i] != ' ' && a < sizeof arg - 1)
                        arg[a++] = line[i++];
                }
                arg[a] = '\0';
                if (font && args > 0)
                    unescape(" ", 1, out, cap);
                unescape(arg, a, out, cap);
                args++;
            }
        }
    }
    size_t n = strlen(out);
    if (n + 1 < cap) {
        out[n] = '\n';
        out[n + 1] = '\0';
    }
}

#define PAGE_TEXT (1 << 16)

struct page {
    char path[512];
    char base[128];   /* file name without ".3" */
    char *raw;
    bool link;        /* a ".so" page */
    char target[512]; /* its target, if a link */
    char names[16][64];
    int nnames;       /* names of the NAME section */
    char *plain;      /* the whole page in plain text */
    char *synopsis;   /* SYNOPSIS in plain text, comments stripped */
};

/* Plain text of the section @name of @raw (empty if absent), into @out (PAGE_TEXT bytes). */
static void section_text(const char *raw, const char *name, char *out)
{
    out[0] = '\0';
    char head[64];
    snprintf(head, sizeof head, ".SH %s\n", name);
    const char *p = strstr(raw, head);
    if (p == NULL)
        return;
    p += strlen(head);
    while (*p && strncmp(p, ".SH ", 4) != 0) {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, ".\\\"", 3) != 0)
            plain_line(p, len, out, PAGE_TEXT);
        p += len + (p[len] == '\n');
    }
}

static bool read_page(const char *path, struct page *pg)
{
    memset(pg, 0, sizeof *pg);
    snprintf(pg->path, sizeof pg->path, "%s", path);
    snprintf(pg->base, sizeof pg->base, "%s", strrchr(path, '/') + 1);
    char *dot = strrchr(pg->base, '.');
    if (dot != NULL)
        *dot = '\0';
    pg->raw = slurp(path);
    if (pg->raw == NULL)
        return false;
    const char *first = pg->raw;
    while (strncmp(first, ".\\\"", 3) == 0 && strchr(first, '\n') != NULL)
        first = strchr(first, '\n') + 1;
    if (strncmp(first, ".so ", 4) == 0) {
        pg->link = true;
        char t[256];
        snprintf(t, sizeof t, "%.*s", (int)strcspn(first + 4, " \n"), first + 4);
        snprintf(pg->target, sizeof pg->target, "%s/docs/%s", EXEC_SRC_DIR, t);
        return true;
    }
    pg->plain = calloc(1, PAGE_TEXT);
    pg->synopsis = calloc(1, PAGE_TEXT);
    char *name = calloc(1, PAGE_TEXT);
    if (pg->plain == NULL || pg->synopsis == NULL || name == NULL)
        TEST_FAIL("out of memory");
    for (const char *p = pg->raw; *p;) {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, ".\\\"", 3) != 0)
            plain_line(p, len, pg->plain, PAGE_TEXT);
        p += len + (p[len] == '\n');
    }
    section_text(pg->raw, "SYNOPSIS", pg->synopsis);
    strip_comments(pg->synopsis);
    section_text(pg->raw, "NAME", name);
    /* "a, b, c - what they do": the names end at " - ". */
    for (char *c = name; *c; c++)
        if (*c == '\n')
            *c = ' ';
    char *dash = strstr(name, " - ");
    if (dash != NULL)
        *dash = '\0';
    for (char *tok = strtok(name, ", "); tok != NULL && pg->nnames < 16;
         tok = strtok(NULL, ", "))
        snprintf(pg->names[pg->nnames++], 64, "%s", tok);
    free(name);
    if (dash == NULL)
        pg->nnames = 0;
    return true;
}

static void free_page(struct page *pg)
{
    free(pg->raw);
    free(pg->plain);
    free(pg->synopsis);
}

static bool page_names(const struct page *pg, const char *fn)
{
    for (int i = 0; i < pg->nnames; i++)
        if (strcmp(pg->names[i], fn) == 0)
            return true;
    return false;
}

/* The SYNOPSIS of @pg against the header: typedef'd structs and enums, and #defines. */
static void check_synopsis_types(const struct header *h, const struct page *pg)
{
    for (const char *p = pg->synopsis; (p = strstr(p, "typedef ")) != NULL; p++) {
        const char *open = strchr(p, '{'), *semi = strchr(p, ';');
        if (open == NULL || (semi != NULL && semi < open))
            continue; /* a function type: checked by the name checks */
        const char *close = strchr(open, '}');
        if (close == NULL) {
            problem("%s: SYNOPSIS: unterminated typedef", rel(pg->path));
            return;
        }
        char type[64];
        sscanf(close + 1, " %63[A-Za-z0-9_]", type);
        char want[64][160], got[64][160];
        int nw = members_of(h->code, type, want, 64);
        int ng = members_of(pg->synopsis, type, got, 64);
        if (nw < 0) {
            problem("%s: SYNOPSIS defines %s, which the header does not", rel(pg->path), type);
            continue;
        }
        for (int i = 0; i < nw || i < ng; i++)
            if (i >= nw || i >= ng || strcmp(want[i], got[i]) != 0) {
                problem("%s: SYNOPSIS: member %d of %s is \"%s\", the header's \"%s\"",
                        rel(pg->path), i + 1, type, i < ng ? got[i] : "(none)",
                        i < nw ? want[i] : "(none)");
                break;
            }
    }
    for (const char *p = pg->synopsis; (p = strstr(p, "#define ")) != NULL; p++) {
        char mac[64], rest[128] = "";
        if (sscanf(p, "#define %63[A-Za-z0-9_]%127[^\n]", mac, rest) < 1)
            continue;
        char def[128];
        snprintf(def, sizeof def, "#define %s", mac);
        const char *hd = strstr(h->code, def);
        while (hd != NULL && is_ident(hd[strlen(def)]))
            hd = strstr(hd + 1, def);
        if (hd == NULL) {
            problem("%s: SYNOPSIS: %s is not a macro of the header", rel(pg->path), mac);
            continue;
        }
        char gv[128], hv[256];
        canon(rest, strlen(rest), gv, sizeof gv);
        const char *hval = hd + strlen(def);
        size_t hlen = 0;
        while (hval[hlen] && !(hval[hlen] == '\n' && (hlen == 0 || hval[hlen - 1] != '\\')))
            hlen++;
        char hbuf[256];
        snprintf(hbuf, sizeof hbuf, "%.*s", (int)hlen, hval);
        for (char *c = hbuf; *c; c++)
            if (*c == '\\' && c[1] == '\n')
                *c = ' ';
        canon(hbuf, strlen(hbuf), hv, sizeof hv);
        if (gv[0] != '\0' && strcmp(gv, hv) != 0)
            problem("%s: SYNOPSIS: #define %s %s, the header's is %s", rel(pg->path), mac, gv,
                    hv);
    }
}

/* References "name(3)" in the plain text of @pg to pages of this library must exist. */
static void check_references(const struct page *pg)
{
    for (const char *p = pg->plain; (p = strstr(p, "(3)")) != NULL; p++) {
        char ref[128];
        ident_before(pg->plain, p, ref, sizeof ref);
        if (strncmp(ref, "exec_", 5) != 0 && strcmp(ref, "libexecutor") != 0)
            continue;
        char path[4096];
        if (access(fmt(path, "%s/%s.3", MAN_DIR, ref), R_OK) != 0)
            problem("%s:%d: refers to %s(3), which has no page", rel(pg->path),
                    line_of(pg->plain, p), ref);
    }
}

TEST(tooling_docs_man_pages)
{
    struct header *h = malloc(sizeof *h);
    ASSERT_NOT_NULL(h);
    read_header(h);
    char path[4096];

    /* Every public function: a page that names it and declares it as the header does. */
    for (size_t i = 0; i < h->nfns; i++) {
        struct page pg, target;
        if (!read_page(fmt(path, "%s/%s.3", MAN_DIR, h->fn[i]), &pg)) {
            problem("%s(): no page docs/man3/%s.3", h->fn[i], h->fn[i]);
            continue;
        }
        const struct page *doc = &pg;
        bool have_target = false;
        if (pg.link) {
            if (!read_page(pg.target, &target) || target.link) {
                problem("%s: .so %s: %s", rel(pg.path), rel(pg.target),
                        target.raw == NULL ? "no such page" : "a link to a link");
                free_page(&pg);
                if (target.raw != NULL)
                    free_page(&target);
                continue;
            }
            doc = &target;
            have_target = true;
        }
        if (!page_names(doc, h->fn[i]))
            problem("%s: its NAME section does not list %s", rel(doc->path), h->fn[i]);
        char syn[PAGE_TEXT / 4];
        canon(doc->synopsis, strlen(doc->synopsis), syn, sizeof syn);
        if (strstr(syn, h->decl[i]) == NULL)
            problem("%s: its SYNOPSIS does not declare %s as the header does: %s",
                    rel(doc->path), h->fn[i], h->decl[i]);
        free_page(&pg);
        if (have_target)
            free_page(&target);
    }

    /* Every page: named after what it documents, naming only what exists. */
    glob_t g;
    ASSERT_EQ(glob(MAN_DIR "/*.3", 0, NULL, &g), 0);
    ASSERT_GT(g.gl_pathc, h->nfns); /* one page per function, plus libexecutor.3 */
    bool overview = false;
    for (size_t k = 0; k < g.gl_pathc; k++) {
        struct page pg;
        if (!read_page(g.gl_pathv[k], &pg)) {
            problem("%s: %s", rel(g.gl_pathv[k]), strerror(errno));
            continue;
        }
        if (pg.link) {
            if (access(pg.target, R_OK) != 0)
                problem("%s: .so target %s does not exist", rel(pg.path), rel(pg.target));
            if (fn_index(h, pg.base) < 0)
                problem("%s: a link page for %s, which the header does not declare",
                        rel(pg.path), pg.base);
            free_page(&pg);
            continue;
        }
        char th[256];
        snprintf(th, sizeof th, "\n.TH %s 3 ", pg.base);
        if (strstr(pg.raw, th) == NULL && strncmp(pg.raw, th + 1, strlen(th + 1)) != 0)
            problem("%s: no \".TH %s 3 ...\" line", rel(pg.path), pg.base);
        if (pg.nnames == 0)
            problem("%s: no NAME section of the form \"name, ... \\- summary\"", rel(pg.path));
        if (strcmp(pg.base, "libexecutor") == 0) {
            overview = true;
        } else {
            if (!page_names(&pg, pg.base))
                problem("%s: its NAME section does not list %s", rel(pg.path), pg.base);
            for (int i = 0; i < pg.nnames; i++)
                if (fn_index(h, pg.names[i]) < 0)
                    problem("%s: NAME lists %s, which the header does not declare",
                            rel(pg.path), pg.names[i]);
        }
        /* Every exec_xxx( the page writes is a function or function type of the header. */
        for (const char *p = pg.plain; (p = strstr(p, "exec_")) != NULL; p++) {
            if (p > pg.plain && is_ident(p[-1]))
                continue;
            char id[64];
            size_t n = ident_at(p, id);
            if (p[n] == '(' && strncmp(id, "exec__", 6) != 0 && fn_index(h, id) < 0 &&
                !in_list(h->cb, h->ncbs, id))
                problem("%s:%d: %s() is not a function of the header", rel(pg.path),
                        line_of(pg.plain, p), id);
        }
        check_synopsis_types(h, &pg);
        check_references(&pg);
        free_page(&pg);
    }
    globfree(&g);
    if (!overview)
        problem("docs/man3/libexecutor.3: the overview page is missing");
    free_header(h);
    free(h);
    end_with_problems("the man pages");
}

TEST(tooling_docs_man_errors)
{
    struct header *h = malloc(sizeof *h);
    ASSERT_NOT_NULL(h);
    read_header(h);
    struct page pg;
    if (!read_page(MAN_DIR "/exec_strerror.3", &pg) || pg.link)
        TEST_FAIL("docs/man3/exec_strerror.3: missing or a link");
    char *errors = calloc(1, PAGE_TEXT);
    ASSERT_NOT_NULL(errors);
    section_text(pg.raw, "ERRORS", errors);

    /* Each code as "EXEC_NAME\n(value) message\n", in the header's order. */
    const char *from = errors;
    for (size_t i = 0; i < h->ncodes; i++) {
        char want[256];
        snprintf(want, sizeof want, "%s\n(%d) %s\n", h->code_name[i], h->code_value[i],
                 h->code_msg[i]);
        const char *at = strstr(errors, want);
        if (at == NULL)
            problem("exec_strerror.3, ERRORS: no entry \"%s (%d) %s\"", h->code_name[i],
                    h->code_value[i], h->code_msg[i]);
        else if (at < from)
            problem("exec_strerror.3, ERRORS: %s is not in the header's order",
                    h->code_name[i]);
        else
            from = at;
    }
    /* ...and no other. */
    size_t entries = 0;
    for (const char *p = errors; *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != '\0')) {
        char id[64];
        if (sscanf(p, "%63[A-Z0-9_]\n", id) == 1 && strncmp(id, "EXEC_", 5) == 0 &&
            p[strlen(id)] == '\n') {
            entries++;
            if (!in_list(h->code_name, h->ncodes, id))
                problem("exec_strerror.3, ERRORS: %s is not a code of EXEC_ERRNO_MAP", id);
        }
    }
    if (entries != h->ncodes)
        problem("exec_strerror.3, ERRORS: %zu entries, EXEC_ERRNO_MAP has %zu codes", entries,
                h->ncodes);
    free(errors);
    free_page(&pg);
    free_header(h);
    free(h);
    end_with_problems("the error table of exec_strerror(3)");
}

/* ------------------------------------------------------------------------------------------ */
/* docs/api.md and names everywhere                                                            */
/* ------------------------------------------------------------------------------------------ */

TEST(tooling_docs_api_complete)
{
    struct header *h = malloc(sizeof *h);
    ASSERT_NOT_NULL(h);
    read_header(h);
    char *api = must_slurp(EXEC_SRC_DIR "/docs/api.md");
    for (size_t i = 0; i < h->nfns; i++) {
        char call[80];
        snprintf(call, sizeof call, "%s(", h->fn[i]);
        bool found = false;
        for (const char *p = api; !found && (p = strstr(p, call)) != NULL; p++)
            found = p == api || !is_ident(p[-1]);
        if (!found)
            problem("%s: declared in include/executor.h, missing from docs/api.md (as `%s`)",
                    h->fn[i], call);
    }
    free(api);
    free_header(h);
    free(h);
    end_with_problems("docs/api.md");
}

/* include/executor_mpi.h (the MPI backend's one call), while tooling_docs_names_exist runs. */
static char *mpi_header;

/* Whether @id occurs in @text as a whole identifier. */
static bool word_in(const char *text, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = strstr(text, id); p; p = strstr(p + 1, id))
        if ((p == text || !is_ident(p[-1])) && !is_ident(p[n]))
            return true;
    return false;
}

/* The exec_* and EXEC_* names of @text (a file, or the plain text of a page) exist. */
static void check_names(const struct header *h, const char *file, const char *text)
{
    for (const char *p = text; *p; p++) {
        bool lower = strncmp(p, "exec_", 5) == 0, upper = strncmp(p, "EXEC_", 5) == 0;
        if ((!lower && !upper) || (p > text && (is_ident(p[-1]) || p[-1] == '\\')))
            continue;
        char id[64];
        size_t n = ident_at(p, id);
        const char *at = p;
        p += n - 1;
        if (at[n] == '*' || strncmp(id, "exec__", 6) == 0 || strncmp(id, "EXEC__", 6) == 0 ||
            in_list(h->name, h->nnames, id))
            continue; /* a prefix ("exec_shm_*", "EXEC_E*"), an internal name, or known */
        if (lower && at[n] == '(' && in_list(h->cb, h->ncbs, id))
            continue;
        if (mpi_header && word_in(mpi_header, id))
            continue; /* declared by the MPI backend's header */
        problem("%s:%d: %s is not in include/executor.h", rel(file), line_of(text, at), id);
    }
}

TEST(tooling_docs_names_exist)
{
    struct header *h = malloc(sizeof *h);
    ASSERT_NOT_NULL(h);
    read_header(h);
    mpi_header = must_slurp(EXEC_SRC_DIR "/include/executor_mpi.h");
    glob_t g;
    ASSERT_EQ(glob(EXEC_SRC_DIR "/docs/*.md", 0, NULL, &g), 0);
    ASSERT_EQ(glob(EXEC_SRC_DIR "/README.md", GLOB_APPEND, NULL, &g), 0);
    ASSERT_EQ(glob(MAN_DIR "/*.3", GLOB_APPEND, NULL, &g), 0);
    size_t checked = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        if (strcmp(path + strlen(path) - 2, ".3") == 0) {
            struct page pg;
            if (!read_page(path, &pg)) {
                problem("%s: %s", rel(path), strerror(errno));
                continue;
            }
            if (!pg.link) {
                check_names(h, path, pg.plain);
                checked++;
            }
            free_page(&pg);
        } else {
            char *text = must_slurp(path);
            check_names(h, path, text);
            checked++;
            free(text);
        }
    }
    globfree(&g);
    ASSERT_GE(checked, 4); /* README.md, docs/api.md, a guide, a page at least */
    free(mpi_header);
    mpi_header = NULL;
    free_header(h);
    free(h);
    end_with_problems("names in the docs");
}

/* ------------------------------------------------------------------------------------------ */
/* Code blocks                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Runs @cmd with sh, its output into @log (truncated first); returns its exit status, or -1
 * if it did not exit normally. */
static int sh(const char *log, const char *cmd)
{
    char full[8192];
    if (snprintf(full, sizeof full, "( %s ) >'%s' 2>&1", cmd, log) >= (int)sizeof full)
        TEST_FAIL("command too long");
    int st = system(full);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void show_log(const char *log)
{
    char *text = slurp(log);
    if (text != NULL) {
        fprintf(stderr, "%s%s", text, text[0] && text[strlen(text) - 1] != '\n' ? "\n" : "");
        free(text);
    }
}

/*
 * Compiles the C file @src (whose first line is a #line naming where it comes from) and, if
 * it has a main(), links it with the library and runs it in @dir. Notes a problem on failure.
 */
static void check_block(const char *dir, const char *src)
{
    char *code = must_slurp(src);
    char where[600] = "";
    int line;
    char file[512];
    if (sscanf(code, "#line %d \"%511[^\"]\"", &line, file) == 2)
        snprintf(where, sizeof where, "%s:%d", rel(file), line);
    else
        snprintf(where, sizeof where, "%s", src);
    bool strict = strstr(code, "main(void)") != NULL;
    bool has_main = strict || strstr(code, "main(int") != NULL;
    free(code);

    char exe[4096], log[4096], cmd[4096];
    snprintf(exe, sizeof exe, "%.*s", (int)(strlen(src) - 2), src); /* drop ".c" */
    fmt(log, "%s.log", exe);
    /* As a reader would build it: plain C11, the warnings the project uses. */
    fmt(cmd, "%s %s -std=c11 -pedantic -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes "
             "-O1 -I'%s/include' %s -o '%s%s' '%s' %s",
        EXEC_TEST_CC, EXEC_TEST_SANFLAGS, EXEC_SRC_DIR,
        has_main ? "" : "-Wno-unused-function -c", exe, has_main ? "" : ".o", src,
        has_main ? "'" EXEC_BUILD_DIR "/libexecutor.a' -pthread -lm" : "");
    if (sh(log, cmd) != 0) {
        problem("%s: this block does not %s:", where, has_main ? "compile and link" : "compile");
        show_log(log);
        return;
    }
    if (!has_main)
        return;
    unsigned limit = BLOCK_LIMIT_S * (unsigned)test_timeout_scale();
    fmt(cmd, "cd '%s' && timeout -k 5 %u '%s' </dev/null", dir, limit, exe);
    int st = sh(log, cmd);
    if (st == 124 || st == 137)
        problem("%s: the program did not finish within %u s", where, limit);
    else if (st < 0 || st >= 126)
        problem("%s: the program crashed (status %d)", where, st);
    else if (strict && st != 0)
        problem("%s: the program exited with status %d, want 0", where, st);
    else
        return;
    show_log(log);
}

/* Writes the .EX ... .EE examples of the man page @path as C files into @dir; prints their
 * paths into @list (one per line); returns how many. */
static int extract_man_examples(const char *path, const char *dir, FILE *list)
{
    char *raw = must_slurp(path);
    const char *base = strrchr(path, '/') + 1;
    int n = 0;
    for (const char *p = raw; (p = strstr(p, "\n.EX\n")) != NULL;) {
        p += 5;
        const char *end = strstr(p, "\n.EE\n");
        if (end == NULL) {
            problem("%s:%d: .EX without .EE", rel(path), line_of(raw, p));
            break;
        }
        char out[4096];
        fmt(out, "%s/%.*s-%d.c", dir, (int)(strlen(base) - 2), base, ++n);
        FILE *f = fopen(out, "w");
        if (f == NULL)
            TEST_FAIL("create %s: %s", out, strerror(errno));
        fprintf(f, "#line %d \"%s\"\n", line_of(raw, p), path);
        char *text = calloc(1, (size_t)(end - p) * 2 + 16);
        ASSERT_NOT_NULL(text);
        unescape(p, (size_t)(end + 1 - p), text, (size_t)(end - p) * 2 + 16);
        fputs(text, f);
        free(text);
        if (fclose(f) != 0)
            TEST_FAIL("write %s: %s", out, strerror(errno));
        fprintf(list, "%s\n", out);
        p = end;
    }
    free(raw);
    return n;
}

TEST(tooling_docs_code_blocks)
{
    char lib[4096];
    fmt(lib, "%s/libexecutor.a", EXEC_BUILD_DIR);
    if (access(lib, R_OK) != 0)
        TEST_FAIL("%s: %s (build it with `make lib`)", lib, strerror(errno));
    const char *dir = test_tmpdir();
    char listpath[4096], log[4096], cmd[4096];
    fmt(listpath, "%s/blocks", dir);
    fmt(log, "%s/extract.log", dir);

    /* README.md and docs/<x>.md: every ```c block, through the project's extractor. */
    glob_t g;
    ASSERT_EQ(glob(EXEC_SRC_DIR "/README.md", 0, NULL, &g), 0);
    ASSERT_EQ(glob(EXEC_SRC_DIR "/docs/*.md", GLOB_APPEND, NULL, &g), 0);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int st = sh(log, fmt(cmd, "sh '%s/tests/tooling/extract-c-blocks.sh' '%s' '%s' >>'%s'",
                             EXEC_SRC_DIR, g.gl_pathv[i], dir, listpath));
        if (st != 0 && st != 1) { /* 1: no ```c block in that file */
            problem("%s: extract-c-blocks.sh failed (%d):", rel(g.gl_pathv[i]), st);
            show_log(log);
        }
    }
    globfree(&g);
    /* The man pages' examples. */
    FILE *list = fopen(listpath, "a");
    ASSERT_NOT_NULL(list);
    int man_examples = 0;
    if (glob(MAN_DIR "/*.3", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            man_examples += extract_man_examples(g.gl_pathv[i], dir, list);
        globfree(&g);
    }
    ASSERT_EQ(fclose(list), 0);

    char *blocks = must_slurp(listpath);
    int n = 0;
    for (char *p = strtok(blocks, "\n"); p != NULL; p = strtok(NULL, "\n")) {
        check_block(dir, p);
        n++;
    }
    free(blocks);
    fprintf(stderr, "# %d code blocks checked (%d from man pages)\n", n, man_examples);
    ASSERT_GT(n - man_examples, 1); /* README.md has one, docs/api.md one per function */
    end_with_problems("code blocks of the docs");
}

/* ------------------------------------------------------------------------------------------ */
/* groff                                                                                       */
/* ------------------------------------------------------------------------------------------ */

TEST(tooling_docs_man_groff)
{
    const char *dir = test_tmpdir();
    char log[4096], cmd[4096];
    fmt(log, "%s/groff.log", dir);
    if (sh(log, "command -v groff") != 0) {
        fprintf(stderr, "# skip: groff is not installed (Debian: apt-get install groff-base)\n");
        return;
    }
    glob_t g;
    ASSERT_EQ(glob(MAN_DIR "/*.3", 0, NULL, &g), 0);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        /* From docs/, where ".so man3/x.3" resolves as it will under share/man. */
        const char *page = strrchr(g.gl_pathv[i], '/') + 1;
        int st = sh(log, fmt(cmd, "cd '%s/docs' && groff -man -Tutf8 -ww -z 'man3/%s'",
                             EXEC_SRC_DIR, page));
        char *text = slurp(log);
        if (st != 0 || text == NULL || text[0] != '\0') {
            problem("docs/man3/%s: groff -man -ww: status %d%s", page, st,
                    text && text[0] ? ", warnings:" : "");
            if (text != NULL)
                fputs(text, stderr);
        }
        free(text);
    }
    globfree(&g);
    end_with_problems("groff");
}
