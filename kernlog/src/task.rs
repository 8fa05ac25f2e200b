//! Which task a report blames, from the patterns in `formats::TASK_PATTERNS`.

use crate::compile::tables;
use crate::Task;

/// Reports name the culprit early; later lines describe other tasks.
const SEARCH_LIMIT: usize = 4 * 1024;

pub(crate) fn find(report: &str) -> Option<Task> {
    let mut end = report.len().min(SEARCH_LIMIT);
    while !report.is_char_boundary(end) {
        end -= 1;
    }
    let text = &report[..end];
    tables().task_patterns.iter().find_map(|(needle, re)| {
        // Every pattern matches within one line: try only the lines holding its literal.
        let mut pos = 0;
        while let Some(hit) = needle.find(&text.as_bytes()[pos..]) {
            let hit = pos + hit;
            let start = text[..hit].rfind('\n').map_or(0, |n| n + 1);
            let end = text[hit..].find('\n').map_or(text.len(), |n| hit + n);
            pos = end;
            let Some(caps) = re.captures(&text[start..end]) else {
                continue;
            };
            let comm = caps.name("comm")?.as_str().trim();
            if comm.is_empty() {
                return None;
            }
            let pid = caps
                .name("pid")
                .and_then(|p| p.as_str().parse().ok())
                .or_else(|| pid_of(text, comm));
            return Some(Task {
                comm: comm.to_string(),
                pid,
            });
        }
        None
    })
}

/// For headers that name only the command (`foo invoked oom-killer:`), the pid is on
/// the `CPU: N PID: P Comm: foo` line that follows.
fn pid_of(text: &str, comm: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let rest = &line[line.find("PID: ")? + 5..];
        let (pid, after) = rest.split_once(' ')?;
        let named = after.strip_prefix("Comm: ")?.split(' ').next()?;
        (named == comm).then(|| pid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(s: &str) -> Option<(String, Option<u32>)> {
        find(s).map(|t| (t.comm, t.pid))
    }

    #[test]
    fn hung_task_comm_may_contain_colons() {
        assert_eq!(
            task("INFO: task kworker/0:2H:127 blocked for more than 10 seconds.\n"),
            Some(("kworker/0:2H".into(), Some(127)))
        );
    }

    #[test]
    fn common_shapes() {
        assert_eq!(
            task("watchdog: BUG: soft lockup - CPU#1 stuck for 134s! [syz-executor738:4553]\n"),
            Some(("syz-executor738".into(), Some(4553)))
        );
        assert_eq!(
            task("BUG: KASAN: use-after-free in f+0x1/0x2\nRead of size 8 at addr ffff8800 by task syz/77\n"),
            Some(("syz".into(), Some(77)))
        );
        assert_eq!(
            task("WARNING: CPU: 0 PID: 5 at x.c:1 f+0x1/0x2\nCPU: 1 PID: 4070 Comm: syz-executor Not tainted\n"),
            Some(("syz-executor".into(), Some(4070)))
        );
        assert_eq!(
            task("stress invoked oom-killer: gfp_mask=0x0\nCPU: 2 PID: 991 Comm: stress Not tainted 6.1\n"),
            Some(("stress".into(), Some(991)))
        );
        assert_eq!(
            task("Out of memory: Killed process 1234 (stress-ng-vm) total-vm:100kB\n"),
            Some(("stress-ng-vm".into(), Some(1234)))
        );
        assert_eq!(task("no task here\n"), None);
    }
}
