/* kvmtrace test program: runs a call chain for a while after exec'ing itself once, so that
 * the process had this binary mapped at another address before the exec (perf keeps that
 * mapping; its DWARF unwinder then looks for the CFI at the wrong base).
 * Built without frame pointers: frames are found by CFI or not at all.
 * SPDX-License-Identifier: MIT OR Apache-2.0 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) unsigned long leaf(unsigned long x)
{
    for (int i = 0; i < 1000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

__attribute__((noinline)) unsigned long middle(unsigned long x)
{
    unsigned long buf[16];
    for (int i = 0; i < 16; i++)
        buf[i] = leaf(x + i);
    return buf[x % 16] ^ buf[3];
}

__attribute__((noinline)) unsigned long outer(unsigned long x)
{
    return middle(x) + middle(x ^ 0x5555);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "exec") == 0) {
        /* Keep this image mapped long enough to be recorded, then replace it. */
        char *args[] = {argv[0], argv[2], NULL};
        execv("/proc/self/exe", args);
        return 1;
    }
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    double end = now() + secs;
    unsigned long x = 1;
    while (now() < end)
        x = outer(x);
    return (int)(x & 1);
}
