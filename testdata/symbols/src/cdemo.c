/* A small CPU-bound C program for symbol-resolution tests (kvmtrace testdata/symbols). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((noinline)) unsigned long leaf_mix(unsigned long x) {
    for (int i = 0; i < 200; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

__attribute__((noinline)) unsigned long middle_a(unsigned long x) { return leaf_mix(x) ^ leaf_mix(x + 1); }

__attribute__((noinline)) unsigned long middle_b(unsigned long x) {
    unsigned long s = 0;
    for (int i = 0; i < 3; i++) s += middle_a(x + i);
    return s;
}

static int cmp(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

__attribute__((noinline)) unsigned long sorter(unsigned long seed) {
    unsigned long v[512];
    for (int i = 0; i < 512; i++) v[i] = seed = seed * 2862933555777941757UL + 3037000493UL;
    qsort(v, 512, sizeof v[0], cmp);
    return v[17];
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    double end = now() + secs;
    unsigned long acc = 1;
    while (now() < end) {
        acc += middle_b(acc);
        acc += sorter(acc);
    }
    printf("%lu\n", acc & 0xff);
    return 0;
}
