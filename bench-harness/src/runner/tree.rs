//! The process tree under a pid, read from `/proc`: who descends from
//! whom, and killing all of them. Used by the launcher to contain a query
//! and by the harness for what a lost launcher left behind.
//!
//! A walk is a snapshot: a process forked after it is not in it, so a
//! caller that kills a tree walks again until nothing is left.

use std::collections::HashMap;

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: i32,
    /// Its parent's pid.
    pub ppid: i32,
    /// Its state letter (`R`, `S`, `D`, `T`, `Z`, ...).
    pub state: char,
    /// Its command name (`comm`, at most 15 bytes).
    pub name: String,
}

impl Process {
    /// True once it has exited and waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid ...`; `comm` may hold
/// blanks and parentheses, so the last `)` ends it.
fn parse_stat(text: &str) -> Option<Process> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let name = text.get(open + 1..close)?.to_string();
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Process {
        pid,
        ppid,
        state,
        name,
    })
}

/// Every process whose parent chain reaches `root` (not `root` itself).
pub fn descendants(root: i32) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<Process>> = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(stat) = parse_stat(&text) {
            children.entry(stat.ppid).or_default().push(stat);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for child in children.remove(&parent).unwrap_or_default() {
            queue.push(child.pid);
            found.push(child);
        }
    }
    found
}

/// Sends `SIGKILL` to every descendant of `root` (the calling process);
/// returns those that were still running (not zombies).
pub fn kill_descendants(root: i32) -> Vec<Process> {
    let mut running = Vec::new();
    for process in descendants(root) {
        // SAFETY: kill has no memory effects. The pid was a descendant of
        // the caller a moment ago; a zombie's pid cannot be reused before
        // it is reaped, and a live one ends only by being reaped too.
        unsafe { libc::kill(process.pid, libc::SIGKILL) };
        if !process.is_zombie() {
            running.push(process);
        }
    }
    running
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_names() {
        let stat = parse_stat("123 (a b) c)) S 45 123 123 0 -1").unwrap();
        assert_eq!((stat.pid, stat.ppid, stat.state), (123, 45, 'S'));
        assert_eq!(stat.name, "a b) c)");
        assert!(parse_stat("garbage").is_none());
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = descendants(me);
        assert!(
            found
                .iter()
                .any(|p| p.pid == sleeper.id() as i32 && p.ppid == me),
            "{found:?}"
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }
}
