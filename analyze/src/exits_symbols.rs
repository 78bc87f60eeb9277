//! A guest `/proc/kallsyms` (or `nm -n`) lookup: sorted (address, name), each symbol covering
//! up to the next one. analyze keeps its own small reader: it never depends on ingest.

/// Guest kernel symbols from a kallsyms text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestKallsyms {
    symbols: Vec<(u64, String)>,
}

impl GuestKallsyms {
    /// Parses `ADDRESS TYPE NAME [MODULE]` lines; other lines are skipped. Absolute (`a`/`A`)
    /// symbols and zero addresses cover nothing and are left out. Of aliases at one address the
    /// one perf would show wins: global over local, fewer leading underscores, longer name.
    pub fn parse(text: &str) -> GuestKallsyms {
        let mut all: Vec<(u64, bool, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let ty = it.next()?;
                let name = it.next()?;
                let global = ty.chars().next().is_some_and(|c| c.is_ascii_uppercase());
                (addr != 0 && !ty.eq_ignore_ascii_case("a"))
                    .then(|| (addr, global, name.to_string()))
            })
            .collect();
        let rank = |s: &(u64, bool, String)| {
            (
                !s.1,
                s.2.len() - s.2.trim_start_matches('_').len(),
                usize::MAX - s.2.len(),
            )
        };
        all.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| rank(a).cmp(&rank(b))));
        all.dedup_by_key(|s| s.0);
        GuestKallsyms {
            symbols: all.into_iter().map(|(a, _, n)| (a, n)).collect(),
        }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether no symbol was read.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The symbol covering `addr` (the last one starting at or below it).
    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        i.checked_sub(1).map(|i| self.symbols[i].1.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_covers_up_to_the_next() {
        let k = GuestKallsyms::parse(
            "ffffffff81000010 T serial_puts\nffffffff81000000 T _text\nffffffff81000000 T startup_64\nffffffff81000000 t __x\n0000000000000000 A zero\n",
        );
        assert_eq!(k.lookup(0xffffffff81000024), Some("serial_puts"));
        assert_eq!(k.lookup(0xffffffff81000000), Some("startup_64"));
        assert_eq!(k.lookup(0xffffffff8100000f), Some("startup_64"));
        assert_eq!(k.lookup(0x1000), None);
        assert_eq!(k.len(), 2);
    }
}
