//! The operating-system side of an instance: how a process is identified, signalled and
//! checked for life.
//!
//! Owns every use of `nix` and of `/proc` in the runtime but the bridge's (which reads the
//! kernel's socket table and descriptors to tell its own clients). A process is named by its pid
//! together with its start time, so that a pid the kernel has since reused for an unrelated
//! process is never signalled.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process named so that pid reuse cannot fool us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ProcessId {
    pub(super) pid: u32,
    /// Field 22 of `/proc/<pid>/stat`, in clock ticks since boot.
    pub(super) start_time: u64,
}

impl ProcessId {
    /// Names the live process `pid`, or `None` if it is gone.
    pub(super) fn of(pid: u32) -> Option<Self> {
        let stat = read_stat(pid)?;
        Some(Self {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Names this process.
    pub(super) fn current() -> Option<Self> {
        Self::of(std::process::id())
    }

    /// Whether this very process still runs. A zombie does not: it holds no files and
    /// serves nothing, it only waits for its parent to reap it.
    pub(super) fn is_running(&self) -> bool {
        read_stat(self.pid)
            .is_some_and(|stat| stat.start_time == self.start_time && stat.state != 'Z')
    }

    /// Sends SIGKILL to this process's group when it leads one (the servers we start do),
    /// else to the process alone. Checks identity first; the race left between the check and
    /// the signal is a pid recycled within microseconds, which we accept.
    pub(super) fn kill_group(&self) {
        if !self.is_running() {
            return;
        }
        kill_group_unchecked(self.pid);
    }
}

/// Sends SIGKILL to the process group led by `pid` and to every descendant of `pid`, then
/// waits (up to 5 s) until they are all gone.
///
/// Descendants matter: PostgreSQL's backends call `setsid()`, so they are not in the
/// postmaster's group, and a backend busy loading data keeps writing into the data
/// directory for a while after its postmaster died. Removing the directory before they
/// are gone leaves half of it behind.
///
/// Only for a child we have not reaped yet: until then its pid cannot be reused.
pub(crate) fn kill_group_unchecked(pid: u32) {
    // Collected before the leader dies: afterwards its children are re-parented to init.
    let descendants: Vec<ProcessId> = descendants_of(pid)
        .into_iter()
        .filter_map(ProcessId::of)
        .collect();
    if let Some(leader) = as_pid(pid) {
        // Errors mean the group or process is already gone, which is what we want.
        if killpg(leader, Signal::SIGKILL).is_err() {
            let _ = kill(leader, Signal::SIGKILL);
        }
    }
    for process in &descendants {
        if process.is_running() {
            signal_unchecked(process.pid, Signal::SIGKILL);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while descendants.iter().any(ProcessId::is_running) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Every process below `pid` in the process tree, read from `/proc`.
fn descendants_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| Some((child, read_parent(child)?)))
        .collect();
    let mut found = vec![pid];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        index += 1;
    }
    found.remove(0);
    found
}

fn read_parent(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); the parent pid is field 4.
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `signal` to `pid` only (a graceful shutdown request to a server we started and
/// have not reaped).
pub(super) fn signal_unchecked(pid: u32, signal: Signal) {
    if let Some(pid) = as_pid(pid) {
        let _ = kill(pid, signal);
    }
}

fn as_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .map(Pid::from_raw)
}

struct Stat {
    state: char,
    start_time: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 is the command name in parentheses and may itself contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22, 19 further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// Every process below `pid`, from the parents `/proc/<pid>/stat` names.
pub fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // The command name in parentheses may hold spaces and parentheses: the state and
            // the parent follow the last `)`.
            let parent = stat
                .get(stat.rfind(')')? + 1..)?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, parent))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, p)| *p == parent) {
            if !found.contains(child) {
                found.push(*child);
                frontier.push(*child);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_running_and_a_forged_start_time_is_not() {
        let me = ProcessId::current().expect("/proc is readable");
        assert!(me.is_running());
        let forged = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!forged.is_running());
    }

    #[test]
    fn reaped_child_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_running());
        }
    }
}
