/* Spins in two assembler loops that are labels (STT_NOTYPE) rather than functions: one hidden,
 * as zstd's huf_decompress_amd64.S hides its loops, one of default visibility. perf 6.1 names
 * the samples of the visible one after its label and leaves the hidden one's unnamed
 * (elf_sym__is_label skips STV_HIDDEN and STV_INTERNAL; see ingest/src/symbols/elf.rs). */
#include <stdlib.h>
#include <time.h>

void hidden_loop(long n);
void visible_loop(long n);

__asm__(".text\n"
        ".hidden hidden_loop\n"
        "hidden_loop:\n"
        "1:  dec %rdi\n"
        "    jnz 1b\n"
        "    ret\n"
        ".globl visible_loop\n"
        "visible_loop:\n"
        "2:  dec %rdi\n"
        "    jnz 2b\n"
        "    ret\n");

__attribute__((noinline)) static long c_loop(long n) {
    volatile long x = 0;
    for (long i = 0; i < n; i++)
        x += i;
    return x;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long sum = 0;
    do {
        hidden_loop(1000000);
        visible_loop(1000000);
        sum += c_loop(300000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
    return (int)(sum & 1);
}
