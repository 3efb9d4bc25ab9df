/* Helpers shared by the C tests of libmesh: checks that print the
** library's error text, a minimal msgpack writer and reader, and a scan of
** /proc for processes this program left behind. */
#ifndef MESH_TESTUTIL_H
#define MESH_TESTUTIL_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mesh.h"

static int tu_failures;

#define FAILF(...)                                                     \
    do {                                                               \
        fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);          \
        fprintf(stderr, __VA_ARGS__);                                  \
        fprintf(stderr, "\n");                                         \
        tu_failures++;                                                 \
    } while (0)

/* CHECK_OK aborts the test on a failed call, printing the error text. */
#define CHECK_OK(call)                                                                       \
    do {                                                                                     \
        int32_t rc_ = (call);                                                                \
        if (rc_ != MESH_OK) {                                                                \
            fprintf(stderr, "%s:%d: FATAL: %s = %s: %s\n", __FILE__, __LINE__, #call,        \
                    mesh_status_name(rc_), mesh_errmsg());                                   \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

/* EXPECT checks a condition and goes on. */
#define EXPECT(cond, ...)                \
    do {                                 \
        if (!(cond)) FAILF(__VA_ARGS__); \
    } while (0)

/* EXPECT_RC checks that call returns want with a non-empty error text (for
** errors) and goes on. */
#define EXPECT_RC(want, call)                                                                      \
    do {                                                                                           \
        int32_t rc_ = (call);                                                                      \
        const char *msg_ = mesh_errmsg();                                                          \
        if (rc_ != (want)) {                                                                       \
            FAILF("%s = %s, want %s (%s)", #call, mesh_status_name(rc_), mesh_status_name(want), msg_); \
        } else if ((want) < 0 && (msg_ == NULL || msg_[0] == 0)) {                                 \
            FAILF("%s = %s with an empty error text", #call, mesh_status_name(rc_));              \
        } else if ((want) < 0 && getenv("MESH_TEST_VERBOSE")) {                                    \
            printf("  ok %-14s %s\n", mesh_status_name(rc_), msg_);                               \
        }                                                                                          \
    } while (0)

static inline double tu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- msgpack writer --------------------------------------------------- */

typedef struct {
    uint8_t *b;
    size_t len, cap;
} tu_mp;

static inline void tu_put(tu_mp *m, const void *p, size_t n) {
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2 + 64;
        m->b = realloc(m->b, m->cap);
        if (!m->b) abort();
    }
    memcpy(m->b + m->len, p, n);
    m->len += n;
}
static inline void tu_byte(tu_mp *m, uint8_t c) { tu_put(m, &c, 1); }
static inline void tu_be(tu_mp *m, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) tu_byte(m, (uint8_t)(v >> (8 * i)));
}
static inline void tu_map(tu_mp *m, uint32_t n) {
    if (n < 16) tu_byte(m, 0x80 | n);
    else { tu_byte(m, 0xde); tu_be(m, n, 2); }
}
static inline void tu_str(tu_mp *m, const char *s) {
    size_t n = strlen(s);
    if (n < 32) tu_byte(m, 0xa0 | n);
    else if (n < 256) { tu_byte(m, 0xd9); tu_byte(m, n); }
    else { tu_byte(m, 0xda); tu_be(m, n, 2); }
    tu_put(m, s, n);
}
static inline void tu_bin(tu_mp *m, const uint8_t *p, size_t n) {
    if (n < 256) { tu_byte(m, 0xc4); tu_byte(m, n); }
    else if (n < 65536) { tu_byte(m, 0xc5); tu_be(m, n, 2); }
    else { tu_byte(m, 0xc6); tu_be(m, n, 4); }
    tu_put(m, p, n);
}
static inline void tu_int(tu_mp *m, int64_t v) {
    if (v >= 0 && v < 128) tu_byte(m, (uint8_t)v);
    else if (v < 0 && v >= -32) tu_byte(m, (uint8_t)(0xe0 | (v + 32)));
    else { tu_byte(m, 0xd3); tu_be(m, (uint64_t)v, 8); }
}
static inline void tu_raw(tu_mp *m, const uint8_t *p, size_t n) { tu_put(m, p, n); }
static inline void tu_free(tu_mp *m) { free(m->b); m->b = NULL; m->len = m->cap = 0; }

/* ---- msgpack reader (just what the tests need) -------------------------- */

/* tu_read_int reads a msgpack integer at *p; returns 0 on success. */
static inline int tu_read_int(const uint8_t *p, size_t n, int64_t *out) {
    if (n < 1) return -1;
    uint8_t c = p[0];
    if (c < 0x80) { *out = c; return 0; }
    if (c >= 0xe0) { *out = (int8_t)c; return 0; }
    int w = 0, sgn = 0;
    switch (c) {
    case 0xcc: w = 1; break; case 0xcd: w = 2; break; case 0xce: w = 4; break; case 0xcf: w = 8; break;
    case 0xd0: w = 1; sgn = 1; break; case 0xd1: w = 2; sgn = 1; break;
    case 0xd2: w = 4; sgn = 1; break; case 0xd3: w = 8; sgn = 1; break;
    default: return -1;
    }
    if (n < (size_t)w + 1) return -1;
    uint64_t v = 0;
    for (int i = 0; i < w; i++) v = v << 8 | p[1 + i];
    if (sgn && w < 8 && (v >> (8 * w - 1))) v |= ~0ULL << (8 * w);
    *out = (int64_t)v;
    return 0;
}

/* ---- processes ------------------------------------------------------------- */

/* tu_ppid reads the parent pid of pid from /proc, or -1. */
static inline int tu_ppid(int pid, char *state) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close = strrchr(buf, ')');
    if (!close) return -1;
    char st;
    int ppid;
    if (sscanf(close + 1, " %c %d", &st, &ppid) != 2) return -1;
    if (state) *state = st;
    return ppid;
}

/* tu_count_descendants counts the live (or zombie) processes descended
** from this one, printing them when verbose. */
static inline int tu_count_descendants(int verbose) {
    enum { MAXP = 65536 };
    static int pids[MAXP], ppids[MAXP];
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAXP) {
        int pid = atoi(e->d_name);
        if (pid <= 0) continue;
        int pp = tu_ppid(pid, NULL);
        if (pp < 0) continue;
        pids[n] = pid;
        ppids[n] = pp;
        n++;
    }
    closedir(d);
    /* Walk the tree from this process. */
    int count = 0;
    int frontier[4096], nf = 0;
    frontier[nf++] = getpid();
    while (nf > 0) {
        int parent = frontier[--nf];
        for (int i = 0; i < n; i++) {
            if (ppids[i] == parent) {
                count++;
                if (verbose) fprintf(stderr, "  left behind: pid %d (parent %d)\n", pids[i], parent);
                if (nf < 4096) frontier[nf++] = pids[i];
            }
        }
    }
    return count;
}

/* tu_wait_no_descendants waits up to timeout_s for every descendant to be
** gone; it polls /proc because there is no event to wait on for a
** grandchild. Returns the number left. */
static inline int tu_wait_no_descendants(double timeout_s) {
    double deadline = tu_now() + timeout_s;
    for (;;) {
        int left = tu_count_descendants(0);
        if (left == 0) return 0;
        if (tu_now() > deadline) return tu_count_descendants(1);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static inline int tu_bufeq(const mesh_buf_t *a, const mesh_buf_t *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static inline void tu_hex(const char *label, const mesh_buf_t *b) {
    fprintf(stderr, "%s (%zu bytes):", label, b->len);
    for (size_t i = 0; i < b->len; i++) fprintf(stderr, " %02x", b->data[i]);
    fprintf(stderr, "\n");
}

static inline int tu_finish(const char *name) {
    if (tu_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, tu_failures);
        return 1;
    }
    printf("%s: PASS\n", name);
    return 0;
}

#endif
