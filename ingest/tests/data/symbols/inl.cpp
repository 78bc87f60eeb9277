// Test program for kvmtrace's symbol layer: inlined frames, templates,
// namespaces and C++ demangling. Build (g++ 12, Debian):
//   g++ -O2 -g -fno-pie -no-pie -Wl,--build-id=sha1 -o inl inl.cpp
//   objcopy --only-keep-debug inl inl.debug
//   objcopy --strip-all --add-gnu-debuglink=inl.debug inl inl.stripped
#include <cstdio>
#include <cstdlib>

namespace kvm {
namespace exits {

__attribute__((always_inline)) static inline int decode_reason(int code) {
    volatile int scale = 3;
    return code * scale + 7;
}

__attribute__((always_inline)) static inline int handle_io(int code) {
    int r = decode_reason(code);
    if (r & 1) {
        r ^= 0x55;
    }
    return r;
}

template <typename T>
__attribute__((noinline)) T dispatch(T code) {
    T acc = 0;
    for (T i = 0; i < code; ++i) {
        acc += handle_io(static_cast<int>(i));
    }
    return acc;
}

}  // namespace exits
}  // namespace kvm

struct Counter {
    long total = 0;
    __attribute__((noinline)) void add(long v);
};

void Counter::add(long v) {
    total += kvm::exits::dispatch<long>(v);
}

extern "C" __attribute__((noinline)) int c_entry(int n) {
    return kvm::exits::dispatch<int>(n);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? std::atoi(argv[1]) : 10;
    Counter c;
    c.add(n);
    std::printf("%ld %d\n", c.total, c_entry(n));
    return 0;
}
