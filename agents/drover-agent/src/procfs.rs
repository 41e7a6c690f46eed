//! Reading `/proc`: a process's state and start time, and the PID-reuse check that
//! decides whether a recorded pid is still the process the agent started.

use crate::sandbox::ProcessRecord;

/// The fields of `/proc/<pid>/stat` the agent needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), ...
    pub state: char,
    /// Field 5: the process group.
    pub pgrp: i64,
    /// Field 22: start time in clock ticks after boot.
    pub start_time: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(5 - 3)?.parse().ok()?;
    let start_time = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgrp,
        start_time,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process (or it is unreadable).
pub fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// What became of a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Still running, and the same process (start times match).
    Alive,
    /// Exited but not yet reaped by its parent.
    Zombie,
    /// No process has that pid.
    Gone,
    /// Another process now has that pid.
    Reused,
}

/// The PID-reuse check: `stat` is what `/proc` says now about the recorded pid.
pub fn liveness(stat: Option<&ProcStat>, recorded: &ProcessRecord) -> Liveness {
    match stat {
        None => Liveness::Gone,
        Some(s) if s.start_time != recorded.start_time => Liveness::Reused,
        Some(s) if s.state == 'Z' || s.state == 'X' => Liveness::Zombie,
        Some(_) => Liveness::Alive,
    }
}

/// [`liveness`] of a recorded process, read from `/proc` now.
pub fn check(recorded: &ProcessRecord) -> Liveness {
    liveness(read_stat(recorded.pid).as_ref(), recorded)
}

/// The record of the current process (the shim records itself with it).
pub fn current_process() -> Option<ProcessRecord> {
    let pid = std::process::id();
    read_stat(pid).map(|s| ProcessRecord {
        pid,
        start_time: s.start_time,
    })
}

/// This process's resident set size in bytes, from `/proc/self/status`.
pub fn self_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&text)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (my (weird) prog) S 1 4242 4242 0 -1 4194560 150 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615";

    #[test]
    fn parses_fields_after_the_last_paren() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4242);
        assert_eq!(s.start_time, 987654);
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S 1").is_none());
    }

    #[test]
    fn pid_reuse_check() {
        let rec = ProcessRecord {
            pid: 4242,
            start_time: 987654,
        };
        let s = parse_stat(STAT).unwrap();
        assert_eq!(liveness(Some(&s), &rec), Liveness::Alive);
        assert_eq!(liveness(None, &rec), Liveness::Gone);
        let other = ProcStat { start_time: 1, ..s };
        assert_eq!(liveness(Some(&other), &rec), Liveness::Reused);
        let zombie = ProcStat { state: 'Z', ..s };
        assert_eq!(liveness(Some(&zombie), &rec), Liveness::Zombie);
    }

    #[test]
    fn reads_itself() {
        let me = current_process().unwrap();
        assert_eq!(check(&me), Liveness::Alive);
        assert!(self_rss_bytes().unwrap() > 0);
        assert_eq!(
            parse_vm_rss("Name: x\nVmRSS:\t  1024 kB\n"),
            Some(1024 * 1024)
        );
    }
}
