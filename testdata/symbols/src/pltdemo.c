/* Calls strlen through lld's PLT (its .plt has sh_entsize 0) in a loop, so that samples land
 * in the PLT stubs: perf 6.1 cannot name them (see ingest/src/symbols/elf.rs, plt_symbols_of). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *words[] = {"a", "bb", "ccc", "dddd"};

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t sum = 0;
    do {
        for (int i = 0; i < 100000; i++)
            sum += strlen(words[i & 3]);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
    return (int)(sum & 1);
}
