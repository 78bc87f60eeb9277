#!/bin/sh
# Rebuilds testdata/symbols: binaries, recordings and perf's reference outputs.
# Run as root on x86_64 Linux with perf, gcc, g++, rustc and zstd (see README.md).
# The programs are built and run from /kvmtrace-symbols, the path their MMAPs name.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=/kvmtrace-symbols
mkdir -p "$bin"
cd "$bin"
gcc -g -O1 -fno-omit-frame-pointer -o cdemo "$here/src/cdemo.c"
g++ -g -O2 -fno-omit-frame-pointer -no-pie -o cppinline "$here/src/cppinline.cpp"
rustc -C debuginfo=2 -O -C force-frame-pointers=yes -C panic=abort -C codegen-units=1 \
    -o rustdemo "$here/src/rustdemo.rs"
gcc -g -O1 -fomit-frame-pointer -o reexec "$here/src/reexec.c"
gcc -g -O1 -fno-omit-frame-pointer -o labeldemo "$here/src/labeldemo.c"
# Split DWARF in a package (llvm-dwp; DWARF 4: LLVM 14's dwp spun on gcc 12's DWARF 5 units).
gcc -g -gdwarf-4 -gsplit-dwarf -O1 -o splitdemo "$here/src/splitdemo.c"
llvm-dwp -e splitdemo -o "$here/splitdemo.dwp"
rm -f splitdemo.dwo
zstd -q -19 -f -o "$here/splitdemo.zst" splitdemo
# lld's .plt (sh_entsize 0): rustup ships lld as rust-lld; gcc finds it as ld.lld under -B.
lld=$(mktemp -d)
ln -s "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld" "$lld/ld.lld"
gcc -g -O1 -fno-omit-frame-pointer -fno-builtin-strlen -B"$lld" -fuse-ld=lld -o pltdemo "$here/src/pltdemo.c"
rm -rf "$lld"
zstd -q -19 -f -o "$here/pltdemo.zst" pltdemo
# forkdemo: a parent and its exec'd child both map libforkdemo.so (no frame pointers). Record
# system-wide after the exec (perf synthesizes the child's FORK) in a run where the parent's
# library lies below the child's.
gcc -g -O1 -fomit-frame-pointer -fPIC -shared -o libforkdemo.so "$here/src/libforkdemo.c"
gcc -g -O1 -fomit-frame-pointer -o forkdemo "$here/src/forkdemo.c" -L. -lforkdemo -Wl,-rpath,'$ORIGIN'
while :; do
    ./forkdemo parent 1.0 &
    parent=$!
    sleep 0.1
    child=$(pgrep -P "$parent")
    pb=$(grep -m1 libforkdemo "/proc/$parent/maps" | cut -d- -f1)
    cb=$(grep -m1 libforkdemo "/proc/$child/maps" | cut -d- -f1)
    if [ $((0x$pb < 0x$cb)) -eq 1 ]; then
        timeout -s INT 0.5 perf record -q -a -e cpu-clock:u --call-graph dwarf,4096 -F 2000 \
            -o "$here/forkdemo.dwarf.perf.data" || true
        wait "$parent"
        break
    fi
    wait "$parent"
done
zstd -q -19 -f -o "$here/forkdemo.zst" forkdemo
zstd -q -19 -f -o "$here/libforkdemo.so.zst" libforkdemo.so
for p in cdemo cppinline rustdemo labeldemo; do
    perf record -N -q -e cpu-clock:u -F 4000 -g -o "$here/$p.fp.perf.data" "./$p" 0.3
done
perf record -N -q -e cpu-clock:u -F 4000 --call-graph dwarf,4096 -z \
    -o "$here/cppinline.dwarf.perf.data" ./cppinline 0.3
# reexec maps itself, then execs itself: keep a recording where the second image lies above
# the first (ASLR decides; about half the runs), the case where perf's unwinder misses the CFI.
while :; do
    perf record -N -q -e cpu-clock:u -F 4000 --call-graph dwarf,4096 -z \
        -o "$here/reexec.dwarf.perf.data" ./reexec exec 0.3 || true
    set -- $(perf script -i "$here/reexec.dwarf.perf.data" --show-mmap-events 2>/dev/null |
        awk '/MMAP2.*reexec/ && /r-xp/ { print substr($6, 2, index($6, "(") - 2) }')
    [ $# -eq 2 ] && [ $(($2 > $1)) -eq 1 ] && break
done
# perf resolves against a copy of the binaries only (--symfs) and an empty build-id cache,
# so that libc & co stay unresolved exactly as they do for kvmtrace in the test.
symfs=$(mktemp -d)
mkdir -p "$symfs/bids" "$symfs/root$bin"
cp cdemo cppinline rustdemo reexec labeldemo "$symfs/root$bin/"
for p in cdemo cppinline rustdemo reexec labeldemo; do zstd -q -19 -f -o "$here/$p.zst" "$p"; done
for f in cdemo.fp cppinline.fp rustdemo.fp labeldemo.fp cppinline.dwarf reexec.dwarf; do
    perf --buildid-dir "$symfs/bids" script -i "$here/$f.perf.data" --symfs "$symfs/root" \
        --ns -F tid,time,ip,sym,dso --no-inline | zstd -q -19 -f -o "$here/$f.script.txt.zst"
    perf --buildid-dir "$symfs/bids" script -i "$here/$f.perf.data" --symfs "$symfs/root" \
        --ns -F tid,time,ip,sym,dso,srcline --inline | zstd -q -19 -f -o "$here/$f.script-inline.txt.zst"
done
rm -rf "$symfs"
