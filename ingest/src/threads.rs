//! perf's thread model, reduced to what names a sample: which comm a thread has when a sample
//! is processed. Follows `machine__process_{comm,fork,exit}_event` of perf 6.1 so that the
//! `comm` column equals what `perf script` prints.

use std::collections::HashMap;

/// One comm a thread carried, with the interval it was current (host perf clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommSpan {
    /// Guest machine (true) or host.
    pub guest: bool,
    /// Process id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// The name.
    pub comm: String,
    /// When it became current (`None`: before the recording or unknown).
    pub start_ns: Option<u64>,
    /// When it stopped being current (`None`: still current at the end).
    pub end_ns: Option<u64>,
    /// Set by exec.
    pub exec: bool,
    /// The thread's exit time, if an EXIT record was seen.
    pub exit_ns: Option<u64>,
}

#[derive(Debug, Clone)]
struct Thread {
    pid: i32,
    comm: String,
    comm_set: bool,
    /// Index of this thread's current span in `spans`, once it has a real comm.
    span: Option<usize>,
}

#[derive(Debug, Default)]
struct Machine {
    /// foldhash, not SipHash: looked up for every sample.
    threads: HashMap<i32, Thread, foldhash::fast::FixedState>,
}

/// Host and guest machines with their threads.
#[derive(Debug, Default)]
pub(crate) struct ThreadModel {
    host: Machine,
    guest: Machine,
    spans: Vec<CommSpan>,
}

impl ThreadModel {
    /// A model with perf's idle thread (`swapper`, tid 0) registered on the host.
    pub(crate) fn new() -> Self {
        let mut m = ThreadModel::default();
        m.set_comm(false, 0, 0, "swapper", None, false);
        m
    }

    fn machine(&mut self, guest: bool) -> &mut Machine {
        if guest {
            &mut self.guest
        } else {
            &mut self.host
        }
    }

    fn findnew(&mut self, guest: bool, pid: i32, tid: i32) -> &mut Thread {
        let m = self.machine(guest);
        m.threads.entry(tid).or_insert_with(|| Thread {
            pid,
            comm: format!(":{tid}"),
            comm_set: false,
            span: None,
        })
    }

    /// The comm perf prints for a sample of `tid` now (creating the thread as perf does).
    pub(crate) fn comm(&mut self, guest: bool, pid: i32, tid: i32) -> &str {
        let t = self.findnew(guest, pid, tid);
        if t.pid == -1 && pid != -1 {
            t.pid = pid;
        }
        &t.comm
    }

    /// `PERF_RECORD_COMM`.
    pub(crate) fn set_comm(
        &mut self,
        guest: bool,
        pid: i32,
        tid: i32,
        comm: &str,
        time: Option<u64>,
        exec: bool,
    ) {
        let idx = self.spans.len();
        let prev_span = {
            let t = self.findnew(guest, pid, tid);
            t.pid = pid;
            t.comm = comm.to_string();
            t.comm_set = true;
            t.span.replace(idx)
        };
        if let Some(p) = prev_span.and_then(|p| self.spans.get_mut(p)) {
            p.end_ns = time;
        }
        self.spans.push(CommSpan {
            guest,
            pid,
            tid,
            comm: comm.to_string(),
            start_ns: time,
            end_ns: None,
            exec,
            exit_ns: None,
        });
    }

    /// `PERF_RECORD_FORK`: the child replaces any thread with its tid and inherits the parent's
    /// comm if the parent has one.
    pub(crate) fn fork(
        &mut self,
        guest: bool,
        pid: i32,
        tid: i32,
        ppid: i32,
        ptid: i32,
        time: Option<u64>,
    ) {
        let parent = {
            let p = self.findnew(guest, ppid, ptid);
            p.comm_set.then(|| p.comm.clone())
        };
        if let Some(old) = self.machine(guest).threads.remove(&tid)
            && let Some(s) = old.span.and_then(|s| self.spans.get_mut(s))
        {
            s.end_ns = s.end_ns.or(time);
        }
        self.findnew(guest, pid, tid);
        if let Some(comm) = parent {
            self.set_comm(guest, pid, tid, &comm, time, false);
        }
    }

    /// `PERF_RECORD_EXIT`: the thread stays known (perf 6.1 keeps exited threads).
    pub(crate) fn exit(&mut self, guest: bool, tid: i32, time: Option<u64>) {
        let span = self.machine(guest).threads.get(&tid).and_then(|t| t.span);
        if let Some(s) = span.and_then(|s| self.spans.get_mut(s)) {
            s.exit_ns = time;
        }
    }

    /// Every comm span, in the order they were set.
    pub(crate) fn spans(&self) -> &[CommSpan] {
        &self.spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_inherits_and_unknown_threads_are_colon_tid() {
        let mut m = ThreadModel::new();
        assert_eq!(m.comm(false, 0, 0), "swapper");
        assert_eq!(m.comm(false, 5, 7), ":7");
        m.set_comm(false, 10, 10, "qemu", Some(1), false);
        m.fork(false, 10, 11, 10, 10, Some(2));
        assert_eq!(m.comm(false, 10, 11), "qemu");
        m.set_comm(false, 10, 11, "CPU 0/KVM", Some(3), false);
        assert_eq!(m.comm(false, 10, 11), "CPU 0/KVM");
        // Guest machines have their own threads: perf prints ":tid" for guest samples.
        assert_eq!(m.comm(true, 10, 11), ":11");
    }
}
