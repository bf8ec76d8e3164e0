/*
 * A tiny SQLite client for the integration tests (tests/old_sqlite.rs): it links one SQLite
 * amalgamation (an old release, or the current one built without JSON functions) and plays an
 * app that writes the database with that SQLite.
 *
 *   driver --version               prints sqlite3_libversion() and whether JSON functions exist
 *   driver DB [SQL...]             runs each SQL argument (or, with none, all of stdin) on DB
 *
 * Each statement's result rows are printed, columns separated by '|'. The first error is printed
 * to stderr and the driver exits 1 (a busy database is waited for up to 10 s, as apps do).
 * Only APIs present in SQLite 3.7 are used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"

static int run(sqlite3 *db, const char *sql) {
    const char *tail = sql;
    while (tail && *tail) {
        sqlite3_stmt *st = 0;
        int rc = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
        if (rc != SQLITE_OK) {
            fprintf(stderr, "error: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        if (!st) continue; /* whitespace or a comment */
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int i, n = sqlite3_column_count(st);
            for (i = 0; i < n; i++) {
                const unsigned char *v = sqlite3_column_text(st, i);
                printf("%s%s", i ? "|" : "", v ? (const char *)v : "");
            }
            printf("\n");
        }
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "error: %s\n", sqlite3_errmsg(db));
            sqlite3_finalize(st);
            return 1;
        }
        sqlite3_finalize(st);
    }
    return 0;
}

static char *read_all(FILE *f) {
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    if (buf) buf[len] = 0;
    return buf;
}

int main(int argc, char **argv) {
    sqlite3 *db;
    int i, rc = 0;
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        sqlite3_open(":memory:", &db);
        printf("%s", sqlite3_libversion());
        if (run(db, "SELECT 1 WHERE 0") == 0) {
            sqlite3_stmt *st = 0;
            int json = sqlite3_prepare_v2(db, "SELECT json_array(1)", -1, &st, 0) == SQLITE_OK;
            sqlite3_finalize(st);
            printf(json ? " (json)\n" : " (no json)\n");
        }
        sqlite3_close(db);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s --version | %s DB [SQL...]\n", argv[0], argv[0]);
        return 2;
    }
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, 0) != SQLITE_OK) {
        fprintf(stderr, "error: cannot open %s: %s\n", argv[1], sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_busy_timeout(db, 10000);
    if (argc == 2) {
        char *sql = read_all(stdin);
        rc = sql ? run(db, sql) : 1;
        free(sql);
    }
    for (i = 2; i < argc && rc == 0; i++) rc = run(db, argv[i]);
    if (sqlite3_close(db) != SQLITE_OK) {
        fprintf(stderr, "error: close: %s\n", sqlite3_errmsg(db));
        rc = 1;
    }
    return rc;
}
