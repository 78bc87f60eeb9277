// A small CPU-bound C++ program with forced inlining (kvmtrace testdata/symbols).
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>
#include <algorithm>

namespace demo {

static double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((always_inline)) inline unsigned long rotl(unsigned long x, int k) {
    return (x << k) | (x >> (64 - k));
}

__attribute__((always_inline)) inline unsigned long step(unsigned long x) {
    for (int i = 0; i < 50; i++) x = rotl(x * 0x9E3779B97F4A7C15UL, 17) ^ i;
    return x;
}

template <typename T>
struct Accumulator {
    T total{};
    __attribute__((always_inline)) inline void add(T v) { total += step(v); }
};

__attribute__((noinline)) unsigned long hash_block(const std::vector<unsigned long> &v) {
    Accumulator<unsigned long> acc;
    for (unsigned long x : v) acc.add(x);
    return acc.total;
}

__attribute__((noinline)) unsigned long sort_block(std::vector<unsigned long> &v) {
    std::sort(v.begin(), v.end(), [](unsigned long a, unsigned long b) { return rotl(a, 3) < rotl(b, 3); });
    return v[v.size() / 2];
}

class Worker {
  public:
    explicit Worker(unsigned long seed) : data_(256, seed) {}
    __attribute__((noinline)) unsigned long run() {
        for (auto &x : data_) x = x * 6364136223846793005UL + 1442695040888963407UL;
        return hash_block(data_) + sort_block(data_);
    }
  private:
    std::vector<unsigned long> data_;
};

}  // namespace demo

int main(int argc, char **argv) {
    double secs = argc > 1 ? std::atof(argv[1]) : 0.3;
    double end = demo::now() + secs;
    unsigned long acc = 7;
    while (demo::now() < end) {
        demo::Worker w(acc);
        acc += w.run();
    }
    std::printf("%lu\n", acc & 0xff);
    return 0;
}
