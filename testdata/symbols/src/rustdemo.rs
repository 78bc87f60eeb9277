// A small CPU-bound Rust program (kvmtrace testdata/symbols).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[inline(never)]
fn mix(mut x: u64) -> u64 {
    for i in 0..200u64 {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ i;
    }
    x
}

#[inline(never)]
fn build_map(seed: u64) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    let mut s = seed;
    for i in 0..64 {
        s = mix(s);
        m.insert(s, i);
    }
    m
}

struct Worker {
    acc: u64,
}

impl Worker {
    #[inline(never)]
    fn run(&mut self) {
        let m = build_map(self.acc);
        self.acc = self.acc.wrapping_add(m.keys().fold(0, |a, k| a ^ k));
        let mut v: Vec<u64> = (0..256).map(|i| mix(self.acc + i)).collect();
        v.sort_unstable();
        self.acc ^= v[128];
    }
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0.3);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut w = Worker { acc: 1 };
    while Instant::now() < end {
        w.run();
    }
    println!("{}", w.acc & 0xff);
}
