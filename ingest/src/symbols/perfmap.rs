//! JIT symbols from a perf map, `/tmp/perf-<pid>.map`: what V8 (`node --perf-basic-prof`), the
//! JVM's perf-map-agent or `python -X perf` write for the code they generate. perf names an
//! anonymous executable mapping of process `pid` by that file (`map__new`) and reads it as
//! `dso__load_perf_map` does; so does this module. No crate reads the format (one line per
//! symbol: `START SIZE name`, both numbers hex).

/// One symbol of a perf map.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PerfMapSymbol {
    start: u64,
    /// Exclusive; `start` for a symbol of size 0 (perf's `symbol__new`).
    end: u64,
    name: String,
}

/// The symbols of a perf map, sorted by start (equal starts in file order).
#[derive(Debug, Default)]
pub(crate) struct PerfMap {
    symbols: Vec<PerfMapSymbol>,
}

/// How many symbols before the last one starting at or below an address are tried when that
/// one does not contain it (a JIT's map lists code that moved or died, so entries overlap).
const OVERLAP_LOOKBACK: usize = 64;

impl PerfMap {
    /// Parses a perf map as perf does: each line loses its last byte (the newline), a
    /// number is what `strtoull(.., 16)` reads there (nothing: 0), one byte follows each, a
    /// line leaving fewer than three bytes after either is skipped, and the name is the rest.
    pub(crate) fn parse(bytes: &[u8]) -> PerfMap {
        let mut symbols = Vec::new();
        for raw in bytes.split_inclusive(|&b| b == b'\n') {
            let line = &raw[..raw.len().saturating_sub(1)];
            let (start, n) = strtoull_hex(line);
            let mut len = n + 1;
            if len + 2 >= line.len() {
                continue;
            }
            let (size, n) = strtoull_hex(&line[len..]);
            len += n + 1;
            if len + 2 >= line.len() {
                continue;
            }
            symbols.push(PerfMapSymbol {
                start,
                end: start.saturating_add(size),
                name: String::from_utf8_lossy(&line[len..]).into_owned(),
            });
        }
        // Stable: among equal starts the first listed is found first, as in perf's tree
        // (an equal start goes to the right of the one already there).
        symbols.sort_by_key(|s| s.start);
        PerfMap { symbols }
    }

    /// The symbol holding `addr` and the offset into it.
    pub(crate) fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let upto = self.symbols.partition_point(|s| s.start <= addr);
        let last_start = self.symbols.get(upto.checked_sub(1)?)?.start;
        // The first listed of the symbols starting at the latest start, then earlier ones.
        let first_of_last = self.symbols[..upto].partition_point(|s| s.start < last_start);
        let candidates = self.symbols[first_of_last..upto]
            .iter()
            .chain(self.symbols[..first_of_last].iter().rev())
            .take(OVERLAP_LOOKBACK);
        for s in candidates {
            if addr < s.end || (addr == s.start && s.end == s.start) {
                return Some((s.name.as_str(), addr - s.start));
            }
        }
        None
    }

    /// Number of symbols.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.symbols.len()
    }
}

/// Whether a dso path names a perf map (`perf-<pid>.map`).
pub(crate) fn is_perf_map(dso: &str) -> bool {
    let base = dso.rsplit('/').next().unwrap_or(dso);
    base.strip_prefix("perf-")
        .and_then(|r| r.strip_suffix(".map"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// What `strtoull(s, &end, 16)` reads at the start of `s` (leading blanks, an optional `0x`;
/// saturating) and how many bytes it took (0 when no digit).
fn strtoull_hex(s: &[u8]) -> (u64, usize) {
    let blanks = s
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .count();
    let mut i = blanks;
    if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
    }
    let digits = s[i..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return (0, 0);
    }
    let v = s[i..i + digits].iter().fold(0u64, |v, &b| {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        v.checked_mul(16)
            .and_then(|v| v.checked_add(d))
            .unwrap_or(u64::MAX)
    });
    (v, i + digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up_as_perf() {
        let map = PerfMap::parse(
            b"7f00001000 40 JS:*fib /tmp/hot.js:1:13\n\
              7f00001040 20 JS:^work /tmp/hot.js:2:14\n\
              7f00001000 10 JS:~fib /tmp/hot.js:1:13\n\
              7f00002000 0 Zero\n\
              12 3 ab\n\
              0x7f00003000 8 LazyCompile:~x (file.js:1)\n\
              7f00004000 8 last line without newlinE",
        );
        // `12 3 ab` leaves two bytes for a name: skipped, as perf does.
        assert_eq!(map.len(), 6);
        assert_eq!(
            map.lookup(0x7f00004000),
            Some(("last line without newlin", 0))
        );
        assert_eq!(
            map.lookup(0x7f00001008),
            Some(("JS:*fib /tmp/hot.js:1:13", 8))
        );
        assert_eq!(
            map.lookup(0x7f0000103f),
            Some(("JS:*fib /tmp/hot.js:1:13", 0x3f))
        );
        assert_eq!(
            map.lookup(0x7f00001040),
            Some(("JS:^work /tmp/hot.js:2:14", 0))
        );
        assert_eq!(map.lookup(0x7f00001060), None);
        assert_eq!(map.lookup(0x7f00002000), Some(("Zero", 0)));
        assert_eq!(map.lookup(0x7f00002001), None);
        assert_eq!(
            map.lookup(0x7f00003004),
            Some(("LazyCompile:~x (file.js:1)", 4))
        );
        assert_eq!(map.lookup(0x10), None);
    }

    #[test]
    fn names_perf_maps() {
        assert!(is_perf_map("/tmp/perf-14199.map"));
        assert!(!is_perf_map("/tmp/perf-.map"));
        assert!(!is_perf_map("/usr/lib/libperf-1.so"));
        assert!(!is_perf_map("//anon"));
    }
}
