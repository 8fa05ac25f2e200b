//! Hosts, one connection after another ([`serve`]), and one host's
//! commands, one at a time, each answered with INFO lines and then OKAY,
//! FAIL or (for a download) DATA.

use std::io;
use std::net::TcpListener;

use crate::config::Next;
use crate::device::Device;
use crate::flash::{self, FlashError};
use crate::log::VIOLATION;
use crate::transport::{Kind, Link, LinkError, MAX_RESPONSE};
use crate::vars;

/// The final answer to a command.
enum Answer {
    Okay(String),
    Fail(String),
    /// OKAY, then the device stops serving: the host asked it to boot.
    Leave(Next, &'static str),
}

/// One connection's state: the device, the link, and the board's RAM,
/// which holds the last download.
struct Session<'a> {
    dev: &'a Device,
    link: &'a mut Link,
    ram: &'a mut Vec<u8>,
}

/// Serves commands until the host leaves (`None`) or asks the board to
/// boot.
pub(crate) fn run(
    dev: &Device,
    link: &mut Link,
    ram: &mut Vec<u8>,
) -> Result<Option<Next>, LinkError> {
    let mut s = Session { dev, link, ram };
    while let Some(packet) = s.link.recv_command()? {
        let cmd = String::from_utf8_lossy(&packet).into_owned();
        dev.note(format!("cmd {}", cmd.escape_debug()));
        match s.answer(&cmd)? {
            Answer::Okay(text) => s.link.send(Kind::Okay, &text)?,
            Answer::Fail(why) => {
                dev.note(format!("FAIL {why}"));
                s.link.send(Kind::Fail, &why)?;
            }
            Answer::Leave(next, saying) => {
                s.link.send(Kind::Info, saying)?;
                s.link.send(Kind::Okay, "")?;
                dev.note(format!("leaving the bootloader: {saying}"));
                return Ok(Some(next));
            }
        }
    }
    Ok(None)
}

fn not_found(name: &str) -> Answer {
    Answer::Fail(format!("partition '{name}' not found"))
}

impl Session<'_> {
    fn answer(&mut self, cmd: &str) -> Result<Answer, LinkError> {
        let dev = self.dev;
        let (verb, arg) = cmd.split_once(':').unwrap_or((cmd, ""));
        Ok(match verb {
            "getvar" if arg == "all" => {
                let lines = vars::all(dev.config(), &dev.partitions());
                for line in lines {
                    self.link.send(Kind::Info, &line)?;
                }
                Answer::Okay(String::new())
            }
            "getvar" => match vars::get(arg, dev.config(), &dev.partitions()) {
                // A value that would not fit the response is not a value.
                Some(v) if v.len() <= MAX_RESPONSE - 4 => Answer::Okay(v),
                _ => Answer::Fail("unknown variable".into()),
            },
            "download" => return self.download(arg),
            "flash" => return self.flash(arg),
            "erase" => self.erase(arg),
            "boot" if !dev.config().boot_once => Answer::Fail(
                "this bootloader has nowhere to put an image to boot: start it with --boot-once FILE"
                    .into(),
            ),
            "boot" if self.ram.is_empty() => {
                Answer::Fail("nothing downloaded to boot: send `download` first".into())
            }
            "boot" => {
                dev.record_boot(self.ram);
                Answer::Leave(
                    Next::BootOnce(std::mem::take(self.ram)),
                    "booting the downloaded image",
                )
            }
            "continue" | "reboot" => Answer::Leave(Next::BootOs, "rebooting"),
            "reboot-bootloader" => {
                Answer::Leave(Next::Bootloader, "rebooting into the bootloader")
            }
            _ => Answer::Fail(format!("unknown command {verb:?}")),
        })
    }

    fn download(&mut self, arg: &str) -> Result<Answer, LinkError> {
        let max = self.dev.config().max_download;
        let hex = arg.len() == 8 && arg.bytes().all(|b| b.is_ascii_hexdigit());
        let len = match u32::from_str_radix(arg, 16) {
            Ok(n) if hex => n,
            _ => {
                return Ok(Answer::Fail(format!(
                    "download size {arg:?}: expected 8 hex digits"
                )))
            }
        };
        if len > max {
            return Ok(Answer::Fail(format!(
                "a {len}-byte download is over max-download-size {max}: split the image"
            )));
        }
        self.link.send(Kind::Data, &format!("{len:08x}"))?;
        if let Err(e) = self.link.recv_data(self.ram, len as usize) {
            // Half an image must not be flashed by the next connection.
            self.ram.clear();
            return Err(e);
        }
        Ok(Answer::Okay(String::new()))
    }

    fn flash(&mut self, name: &str) -> Result<Answer, LinkError> {
        let mut table = self.dev.partitions();
        let Some(part) = table.get_mut(name) else {
            return Ok(not_found(name));
        };
        let ops = match flash::plan(part.size(), self.ram) {
            Ok(ops) => ops,
            Err(e) => {
                if let FlashError::Sparse(_) = e {
                    self.dev.note(format!("{VIOLATION}{e}"));
                }
                return Ok(Answer::Fail(e.to_string()));
            }
        };
        self.link.send(Kind::Info, &format!("writing '{name}'"))?;
        Ok(match flash::write(part.as_mut(), &ops) {
            Ok(()) => Answer::Okay(String::new()),
            Err(e) => Answer::Fail(format!("writing '{name}' failed: {e}")),
        })
    }

    fn erase(&self, name: &str) -> Answer {
        let mut table = self.dev.partitions();
        let Some(part) = table.get_mut(name) else {
            return not_found(name);
        };
        match flash::erase(part.as_mut()) {
            Ok(()) => Answer::Okay(String::new()),
            Err(e) => Answer::Fail(format!("erasing '{name}' failed: {e}")),
        }
    }
}

/// Serves hosts on `listener`, one connection after another (the host
/// tool opens one per invocation), until one asks to leave the
/// bootloader; that host has its OKAY when this returns.
pub fn serve(dev: &Device, listener: &TcpListener) -> io::Result<Next> {
    // The download buffer is the board's RAM: what one connection
    // downloaded is still there for the next, as on a real board.
    let mut ram = Vec::new();
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let served = Link::accept(stream, dev.config().handshake_timeout).and_then(|link| {
            let Some(mut link) = link else {
                return Ok(None);
            };
            dev.note(format!("host {peer} connected"));
            run(dev, &mut link, &mut ram)
        });
        match served {
            Ok(Some(next)) => return Ok(next),
            Ok(None) => {}
            Err(LinkError::Violation(v)) => dev.note(format!("{VIOLATION}{v} (host {peer})")),
            Err(LinkError::Io(e)) => dev.note(format!("host {peer} lost: {e}")),
        }
    }
}
