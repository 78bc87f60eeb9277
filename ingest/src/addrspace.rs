//! Process address spaces rebuilt from MMAP/MMAP2/FORK records, to turn a callchain address into
//! (dso, offset in the dso) the way perf's `maps__find` + `map__map_ip` do.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

/// One mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Map {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) pgoff: u64,
    pub(crate) filename: Arc<str>,
    pub(crate) build_id: Option<Arc<[u8]>>,
}

/// Mappings per (machine, pid); kernel mappings (pid -1) per machine.
#[derive(Debug, Default)]
pub(crate) struct AddressSpaces {
    procs: HashMap<(bool, i32), Space, foldhash::fast::FixedState>,
}

/// One address space: its mappings by start address, and the one the last lookup found
/// (callchains hit the same mapping frame after frame).
#[derive(Debug, Default, Clone)]
struct Space {
    maps: Vec<Map>,
    last: Cell<usize>,
}

impl AddressSpaces {
    /// Adds a mapping, replacing the parts of older mappings it overlaps (as perf's
    /// `maps__fixup_overlappings` does).
    pub(crate) fn mmap(&mut self, guest: bool, pid: i32, map: Map) {
        if map.end <= map.start {
            return;
        }
        let space = self.procs.entry((guest, pid)).or_default();
        let maps = &mut space.maps;
        let mut kept = Vec::with_capacity(maps.len() + 2);
        for m in maps.drain(..) {
            if m.end <= map.start || m.start >= map.end {
                kept.push(m);
                continue;
            }
            if m.start < map.start {
                kept.push(Map {
                    end: map.start,
                    ..m.clone()
                });
            }
            if m.end > map.end {
                let cut = map.end - m.start;
                kept.push(Map {
                    start: map.end,
                    pgoff: m.pgoff.wrapping_add(cut),
                    ..m.clone()
                });
            }
        }
        let at = kept.partition_point(|m| m.start < map.start);
        kept.insert(at, map);
        kept.sort_by_key(|m| m.start);
        *maps = kept;
    }

    /// A new process: perf's `machine__process_fork_event` drops what it knew of the pid and
    /// gives it a copy of its parent's mappings (`clone`), or none (threads share their
    /// process's).
    pub(crate) fn fork(&mut self, guest: bool, pid: i32, ppid: i32, clone: bool) {
        if pid == ppid {
            return;
        }
        match self.procs.get(&(guest, ppid)).cloned().filter(|_| clone) {
            Some(parent) => {
                self.procs.insert((guest, pid), parent);
            }
            None => {
                self.procs.remove(&(guest, pid));
            }
        }
    }

    /// Whether `pid` (-1: the kernel) of this machine has any mapping.
    pub(crate) fn has(&self, guest: bool, pid: i32) -> bool {
        self.procs
            .get(&(guest, pid))
            .is_some_and(|s| !s.maps.is_empty())
    }

    /// Every mapping of `pid`, by start address.
    pub(crate) fn maps(&self, guest: bool, pid: i32) -> &[Map] {
        self.procs
            .get(&(guest, pid))
            .map_or(&[], |s| s.maps.as_slice())
    }

    /// The mapping of `pid` that contains `addr`.
    pub(crate) fn find(&self, guest: bool, pid: i32, addr: u64) -> Option<&Map> {
        let space = self.procs.get(&(guest, pid))?;
        let maps = &space.maps;
        if let Some(m) = maps.get(space.last.get())
            && m.start <= addr
            && addr < m.end
        {
            return Some(m);
        }
        let i = maps.partition_point(|m| m.start <= addr).checked_sub(1)?;
        let m = maps.get(i)?;
        space.last.set(i);
        (addr < m.end).then_some(m)
    }
}

/// perf's short name of a kernel mapping: `[kernel.kallsyms]` for the kernel itself,
/// `[module]` for a module path (`-` becomes `_`, as the kernel names modules).
pub(crate) fn kernel_dso_name(filename: &str) -> String {
    if filename.starts_with("[kernel.kallsyms]") {
        return "[kernel.kallsyms]".to_string();
    }
    if filename.starts_with('[') {
        return filename.to_string();
    }
    let base = filename.rsplit('/').next().unwrap_or(filename);
    let stem = base.split(".ko").next().unwrap_or(base);
    format!("[{}]", stem.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(start: u64, end: u64, name: &str) -> Map {
        Map {
            start,
            end,
            pgoff: 0,
            filename: Arc::from(name),
            build_id: None,
        }
    }

    #[test]
    fn overlapping_mmaps_split_older_ones() {
        let mut a = AddressSpaces::default();
        a.mmap(false, 1, map(0x1000, 0x5000, "a"));
        a.mmap(false, 1, map(0x2000, 0x3000, "b"));
        assert_eq!(
            &*a.find(false, 1, 0x1500)
                .map(|m| m.filename.clone())
                .unwrap_or_default(),
            "a"
        );
        assert_eq!(
            &*a.find(false, 1, 0x2500)
                .map(|m| m.filename.clone())
                .unwrap_or_default(),
            "b"
        );
        let tail = a.find(false, 1, 0x4000).cloned();
        assert_eq!(tail.as_ref().map(|m| m.pgoff), Some(0x2000));
        assert!(a.find(false, 1, 0x5000).is_none());
        a.fork(false, 2, 1, true);
        assert!(a.find(false, 2, 0x2500).is_some());
        // perf's synthesized FORK of a running task (PERF_RECORD_MISC_FORK_EXEC): no copy.
        a.fork(false, 2, 1, false);
        assert!(a.find(false, 2, 0x2500).is_none());
    }

    #[test]
    fn module_names() {
        assert_eq!(
            kernel_dso_name("[kernel.kallsyms]_text"),
            "[kernel.kallsyms]"
        );
        assert_eq!(
            kernel_dso_name("/lib/modules/4.4.0/kernel/drivers/net/virtio-net.ko"),
            "[virtio_net]"
        );
    }
}
