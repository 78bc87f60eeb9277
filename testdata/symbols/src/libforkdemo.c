/* The library of forkdemo.c: a call chain that only its CFI can unwind. */
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) static unsigned long leaf(unsigned long x) {
    for (int i = 0; i < 1000; i++)
        x = x * 6364136223846793005ul + 1442695040888963407ul;
    return x;
}

__attribute__((noinline)) static unsigned long middle(unsigned long x) { return leaf(x) ^ 1; }

double spin(double secs) {
    double t0 = now();
    unsigned long x = 1;
    do {
        for (int i = 0; i < 1000; i++)
            x = middle(x);
    } while (now() - t0 < secs);
    return (double)(x & 1);
}
