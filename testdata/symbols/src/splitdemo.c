/* Split DWARF (kvmtrace testdata/symbols): built with -gsplit-dwarf and packaged by llvm-dwp
 * into splitdemo.dwp, so that function names and the inlined `twice` live only in the
 * package; the binary's skeleton unit holds the line table alone. */
static inline __attribute__((always_inline)) int twice(int x) { return x * 2 + 1; }

__attribute__((noinline)) int work(int x) {
    int s = 0;
    for (int i = 0; i < x; i++)
        s += twice(i) ^ s;
    return s;
}

int main(int argc, char **argv) {
    (void)argv;
    return work(argc * 1000) & 1;
}
