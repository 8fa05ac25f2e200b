//! What a stream can be opened for: `shell:`, `shell,v2,...:` and `exec:`
//! run a command; `sync:` moves files; `root:` answers as adbd does when it
//! already runs as root; `reboot:TARGET` reboots, into the bootloader the
//! way Android asks it to (a bootloader message in the misc partition).

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;

use crate::device::Input;
use crate::shell::{id, packet, Depacketizer};

pub enum Service {
    /// A command run by /bin/sh. v2 frames stdin, stdout, stderr and the
    /// exit status (shell_protocol.h); v1 and `exec:` are raw bytes, with
    /// stderr mixed into stdout for v1 and dropped by `exec:`, as adbd does.
    Shell {
        command: String,
        framing: Framing,
    },
    Sync,
    Root,
    /// `reboot:` (empty target) or `reboot:bootloader`.
    Reboot(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    V2,
    V1,
    Exec,
}

/// `shell,v2,raw:ls` and its relatives; None for what this adbd lacks.
pub fn parse(name: &str) -> Option<Service> {
    if name == "sync:" {
        return Some(Service::Sync);
    }
    if name == "root:" {
        return Some(Service::Root);
    }
    if let Some(target) = name.strip_prefix("reboot:") {
        return matches!(target, "" | "bootloader").then(|| Service::Reboot(target.into()));
    }
    if let Some(command) = name.strip_prefix("exec:") {
        return Some(Service::Shell {
            command: command.into(),
            framing: Framing::Exec,
        });
    }
    let rest = name.strip_prefix("shell")?;
    let (args, command) = rest.split_once(':')?;
    let v2 = args.split(',').any(|a| a == "v2");
    Some(Service::Shell {
        command: command.into(),
        framing: if v2 { Framing::V2 } else { Framing::V1 },
    })
}

impl Service {
    pub fn run(self, input: Input, out: Sender<Vec<u8>>) {
        match self {
            Service::Shell { command, framing } => shell(&command, framing, input, out),
            Service::Sync => {
                if let Err(e) = crate::sync::serve(input, &out) {
                    eprintln!("hilt-adbd: sync: {e}");
                }
            }
            Service::Root => {
                drop(input);
                let _ = out.send(root_answer(unsafe { libc::geteuid() }).into());
            }
            Service::Reboot(target) => {
                drop(input);
                match crate::reboot::reboot(&target) {
                    Ok(()) => {}
                    Err(e) => {
                        let _ = out.send(format!("reboot failed: {e}\n").into_bytes());
                    }
                }
            }
        }
    }
}

/// adbd's words, which `adb root` prints and hosts match on.
fn root_answer(euid: u32) -> &'static str {
    if euid == 0 {
        "adbd is already running as root\n"
    } else {
        // This adbd cannot restart itself as root, as a production build's
        // cannot.
        "adbd cannot run as root in production builds\n"
    }
}

fn spawn(command: &str, framing: Framing) -> io::Result<Child> {
    let mut c = Command::new("/bin/sh");
    if command.is_empty() {
        c.arg("-i");
    } else {
        c.arg("-c").arg(command);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if framing == Framing::Exec {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        // Its own process group, so that closing the stream ends a
        // pipeline, not just the shell.
        .process_group(0)
        .spawn()
}

fn shell(command: &str, framing: Framing, mut input: Input, out: Sender<Vec<u8>>) {
    let frame = move |pid: u8, data: &[u8]| match framing {
        Framing::V2 => packet(pid, data),
        _ => data.to_vec(),
    };
    let mut child = match spawn(command, framing) {
        Ok(c) => c,
        Err(e) => {
            let _ = out.send(frame(id::STDERR, format!("/bin/sh: {e}\n").as_bytes()));
            if framing == Framing::V2 {
                let _ = out.send(packet(id::EXIT, &[127]));
            }
            return;
        }
    };
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take();
    // The host's writes go to stdin; its close ends the command.
    std::thread::spawn(move || {
        let mut depacketizer = Depacketizer::default();
        while let Some(chunk) = input.next_chunk() {
            let pieces = match framing {
                Framing::V2 => match depacketizer.push(&chunk) {
                    Ok(p) => p,
                    // A broken stream: the command is killed below.
                    Err(_) => break,
                },
                _ => vec![(id::STDIN, chunk)],
            };
            for (pid, data) in pieces {
                match pid {
                    id::STDIN => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&data).and_then(|_| s.flush()).is_err() {
                                stdin = None;
                            }
                        }
                    }
                    id::CLOSE_STDIN => stdin = None,
                    _ => {}
                }
            }
        }
        // SIGKILL to the group: harmless once it has exited, and the
        // group id is not reused while the shell is unreaped.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    });
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| (id::STDOUT, Box::new(s) as Box<dyn Read + Send>)),
        child
            .stderr
            .take()
            .map(|s| (id::STDERR, Box::new(s) as Box<dyn Read + Send>)),
    ]
    .into_iter()
    .flatten()
    .map(|(pid, mut r)| {
        let out = out.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || out.send(frame(pid, &buf[..n])).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().ok().and_then(|s| s.code()).unwrap_or(255);
    if framing == Framing::V2 {
        let _ = out.send(packet(id::EXIT, &[status.clamp(0, 255) as u8]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_as_hosts_send_them() {
        let shell = |n: &str| match parse(n) {
            Some(Service::Shell { command, framing }) => Some((command, framing)),
            _ => None,
        };
        assert_eq!(
            shell("shell,v2,raw:ls -l"),
            Some(("ls -l".into(), Framing::V2))
        );
        assert_eq!(
            shell("shell:echo a:b"),
            Some(("echo a:b".into(), Framing::V1))
        );
        assert_eq!(shell("shell,raw:id"), Some(("id".into(), Framing::V1)));
        assert_eq!(shell("exec:cat"), Some(("cat".into(), Framing::Exec)));
        assert!(matches!(parse("sync:"), Some(Service::Sync)));
        assert!(matches!(parse("root:"), Some(Service::Root)));
        assert!(matches!(parse("reboot:"), Some(Service::Reboot(t)) if t.is_empty()));
        assert!(
            matches!(parse("reboot:bootloader"), Some(Service::Reboot(t)) if t == "bootloader")
        );
        assert!(parse("reboot:recovery").is_none());
        assert!(parse("tcpip:5555").is_none());
        assert_eq!(root_answer(0), "adbd is already running as root\n");
        assert!(root_answer(1000).contains("cannot run as root"));
    }
}
