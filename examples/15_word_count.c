/* SPDX-License-Identifier: MIT */
/*
 * 15_word_count.c - count the words of a file too large to hold, line by line, on worker
 * processes, with exec_map_stream().
 *
 * The producer reads the next lines (fgets) on the calling thread, a batch at a time; a worker
 * process counts the words of each line; the consumer adds the counts up in input order. At most a
 * window of lines (here 4096 lines of 256 bytes) is in memory at once, however long the file is:
 * the map reads the next lines only when earlier results have been consumed.
 *
 * Usage: 15_word_count [FILE]   (without FILE it writes and counts a generated file of
 * 400,000 lines in the temporary directory, then removes it).
 */
#include <ctype.h>
#include <executor.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES 256

struct counts {
    FILE *in;
    uint64_t lines, words;
};

/* The task, in a worker process: the words of one line. */
static int count_words(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)out_cap;
    const char *line = arg;
    uint32_t words = 0;
    int in_word = 0;
    for (size_t i = 0; i < arg_size && line[i]; i++) {
        int space = isspace((unsigned char)line[i]);
        words += !space && !in_word;
        in_word = !space;
    }
    memcpy(out, &words, sizeof words);
    *out_size = sizeof words;
    return 0;
}

/* The producer: up to @max next lines, one per item (a longer line is cut into pieces; a word
 * at a cut is counted twice, which the generated file never has). */
static int next_lines(void *items, size_t max, size_t size, size_t *count, void *user_data)
{
    struct counts *c = user_data;
    size_t k = 0;
    for (; k < max; k++) {
        char *line = (char *)items + k * size;
        memset(line, 0, size);
        if (!fgets(line, (int)size, c->in))
            break;
    }
    *count = k;
    return ferror(c->in) ? EXEC_ESYS : 0;
}

/* The consumer: a batch of word counts, in input order. */
static int add(size_t first, size_t count, const int *status, const void *results,
               void *user_data)
{
    (void)first;
    struct counts *c = user_data;
    for (size_t i = 0; i < count; i++) {
        if (status[i] != 0)
            return 1; /* stop: cannot count this line */
        uint32_t words;
        memcpy(&words, (const char *)results + i * sizeof words, sizeof words);
        c->words += words;
        c->lines++;
    }
    return 0;
}

/* A file of @lines lines: line i holds i % 17 + 1 words. Returns the number of words. */
static uint64_t generate(const char *path, int lines)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    uint64_t words = 0;
    for (int i = 0; i < lines; i++) {
        int n = i % 17 + 1;
        for (int k = 0; k < n; k++)
            fprintf(f, "%sword%d", k ? " " : "", (i + k) % 1000);
        fputc('\n', f);
        words += (uint64_t)n;
    }
    fclose(f);
    return words;
}

int main(int argc, char **argv)
{
    char path[256];
    uint64_t want = 0;
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(path, sizeof path, "%s/word_count_%d.txt", tmp, (int)getpid());
        want = generate(path, 400000);
    }
    struct counts c = {fopen(path, "r"), 0, 0};
    if (!c.in) {
        perror(path);
        return 1;
    }
    exec_config_t cfg = {0};
    cfg.backend = EXEC_BACKEND_PROCESSES;
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != 0) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }
    exec_stream_opts_t opts = {0};
    opts.window = 4096;
    r = exec_map_stream(ex, count_words, LINE_MAX_BYTES, sizeof(uint32_t), next_lines, add, &c,
                        &opts);
    exec_destroy(ex);
    fclose(c.in);
    if (argc <= 1)
        unlink(path);
    if (r != 0) {
        fprintf(stderr, "exec_map_stream: %s\n", exec_strerror(r));
        return 1;
    }
    printf("%llu lines, %llu words\n", (unsigned long long)c.lines,
           (unsigned long long)c.words);
    if (argc <= 1)
        printf("expected %llu words: %s\n", (unsigned long long)want,
               want == c.words ? "ok" : "WRONG");
    return 0;
}
