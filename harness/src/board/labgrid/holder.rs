//! hilt's holder record in a place's tag: which process on which boot of
//! which host holds the place, until when. labgrid's locks never expire,
//! so this is what lets a later hilt tell a dead holder from a live one.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub host: String,
    pub pid: u32,
    pub boot: String,
    /// Unix seconds; renewed while the holder runs.
    pub expires: u64,
}

use crate::lease::{boot_id, now, pid_alive};

impl Record {
    pub fn mine(ttl: Duration) -> Record {
        Record {
            host: crate::lease::hostname(),
            pid: std::process::id(),
            boot: boot_id(),
            expires: now() + ttl.as_secs().max(1),
        }
    }

    /// `host:H,pid:P,boot:B,expires:E`: labgrid tag values are one string,
    /// and `labgrid-client set-tags` splits its argument at `=`.
    pub fn encode(&self) -> String {
        format!(
            "host:{},pid:{},boot:{},expires:{}",
            self.host, self.pid, self.boot, self.expires
        )
    }

    pub fn decode(s: &str) -> Option<Record> {
        let mut host = None;
        let mut pid = None;
        let mut boot = None;
        let mut expires = None;
        for kv in s.split(',') {
            let (k, v) = kv.split_once(':')?;
            match k {
                "host" => host = Some(v.to_string()),
                "pid" => pid = v.parse().ok(),
                "boot" => boot = Some(v.to_string()),
                "expires" => expires = v.parse().ok(),
                _ => {}
            }
        }
        Some(Record {
            host: host?,
            pid: pid?,
            boot: boot?,
            expires: expires?,
        })
    }

    /// Why the holder is certainly gone, if it is: its record expired, its
    /// host rebooted, or its pid is dead on this boot of this host. A
    /// holder on another host is only gone once its record expires.
    pub fn gone(&self) -> Option<String> {
        self.gone_at(now(), &crate::lease::hostname(), &boot_id())
    }

    fn gone_at(&self, at: u64, host: &str, boot: &str) -> Option<String> {
        if self.expires <= at {
            return Some(format!("its record expired {} s ago", at - self.expires));
        }
        if self.host == host && !boot.is_empty() {
            if self.boot != boot {
                return Some("its host has rebooted since".into());
            }
            if !pid_alive(self.pid) {
                return Some(format!("its pid {} is dead", self.pid));
            }
        }
        None
    }

    pub fn describe(&self) -> String {
        format!(
            "hilt pid {} on {}, record expires in {} s",
            self.pid,
            self.host,
            self.expires.saturating_sub(now())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_only_provably_gone_holders_are_gone() {
        let me = Record::mine(Duration::from_secs(60));
        assert_eq!(Record::decode(&me.encode()), Some(me.clone()));
        assert_eq!(Record::decode("pid:1"), None);
        assert_eq!(me.gone(), None, "this process is alive");
        let at = now();
        let host = crate::lease::hostname();
        let boot = boot_id();
        assert!(!boot.is_empty());
        // A dead pid on this boot of this host.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = Record {
            pid: child.id(),
            ..me.clone()
        };
        child.wait().unwrap();
        assert!(dead.gone_at(at, &host, &boot).unwrap().contains("dead"));
        // The same pid on another boot: the host rebooted.
        let rebooted = Record {
            boot: "0".into(),
            ..me.clone()
        };
        assert!(rebooted
            .gone_at(at, &host, &boot)
            .unwrap()
            .contains("rebooted"));
        // Another host's holder, alive as far as anyone here can tell.
        let elsewhere = Record {
            host: "other-host".into(),
            pid: dead.pid,
            ..me.clone()
        };
        assert_eq!(elsewhere.gone_at(at, &host, &boot), None);
        let expired = Record {
            expires: at - 5,
            ..elsewhere
        };
        assert!(expired
            .gone_at(at, &host, &boot)
            .unwrap()
            .contains("expired"));
    }
}
