//! Driving U-Boot on a console: stop autoboot, run commands and collect
//! their output up to the next prompt, set the environment, boot over TFTP,
//! write images to eMMC/SD.
//!
//! Everything is matched on the byte stream, which also carries the
//! command echo; output is what comes between the echoed line and the next
//! prompt at the start of a line. Every command line is checked against
//! what U-Boot's line editor holds (CONFIG_SYS_CBSIZE), because an overlong
//! line is silently cut and the cut command would still run.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UBootConfig {
    /// `=> ` on mainline U-Boot; vendor builds vary (Amlogic: `=> `,
    /// some boards: `g12a_u212_v1#`).
    pub prompt: String,
    /// What U-Boot prints while counting down. Mainline: "Hit any key to
    /// stop autoboot"; Amlogic and Rockchip vendor trees print their own.
    pub autoboot_patterns: Vec<String>,
    /// Sent repeatedly once the countdown shows. Boards built with
    /// CONFIG_AUTOBOOT_KEYED need their specific string.
    pub interrupt: String,
    /// From power on to the countdown (or straight to a prompt).
    #[serde(with = "millis")]
    pub stop_timeout: Duration,
    #[serde(with = "millis")]
    pub command_timeout: Duration,
    /// Longest command line (CONFIG_SYS_CBSIZE minus the NUL).
    pub max_line: usize,
    /// Pause between typed bytes; a real UART without flow control can
    /// drop characters U-Boot does not read fast enough (zero for QEMU).
    #[serde(with = "millis")]
    pub char_delay: Duration,
}

impl Default for UBootConfig {
    fn default() -> Self {
        Self {
            prompt: "=> ".into(),
            autoboot_patterns: vec![
                "Hit any key to stop autoboot".into(),
                "Hit Enter or space or Ctrl+C key to stop autoboot".into(),
                "Press SPACE to abort autoboot".into(),
                "Hit key to stop autoboot".into(),
            ],
            interrupt: "\n".into(),
            stop_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(30),
            max_line: 255,
            char_delay: Duration::ZERO,
        }
    }
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(serde::Deserialize::deserialize(d)?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UBootError {
    #[error("timed out after {secs} s waiting for {what}; the console last showed: {tail:?}")]
    Timeout {
        what: String,
        secs: u64,
        tail: String,
    },
    #[error("the console closed while waiting for {0}")]
    Closed(String),
    #[error("console I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("`{command}` failed (exit status {status}): {output}")]
    Failed {
        command: String,
        status: i32,
        output: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// How the board gets its address for TFTP.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// `dhcp` (with autoload off, so that it does not fetch a file itself);
    /// `serverip` from the DHCP answer unless given.
    Dhcp { serverip: Option<String> },
    Static {
        ipaddr: String,
        netmask: String,
        serverip: String,
    },
}

/// What to fetch and boot. File names are relative to the TFTP root.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TftpBoot {
    pub network: Network,
    pub kernel: String,
    pub initrd: Option<String>,
    /// None: the device tree U-Boot already has (`${fdtcontroladdr}`; on
    /// QEMU the one QEMU generated).
    pub dtb: Option<String>,
    pub bootargs: String,
    /// RAM the kernel must leave alone, added to the device tree it boots
    /// with (see [`UBoot::reserve_memory`]); needs `fdt_addr_r`.
    #[serde(default)]
    pub reserve: Vec<Reserved>,
}

/// A region for the device tree's `/reserved-memory`, mapped by no one but
/// the driver that claims it (ramoops).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reserved {
    /// The node's name before its `@address`.
    pub name: String,
    pub address: u64,
    pub size: u64,
}

/// U-Boot on a console. `C` is any console (`Box<dyn Console>` too).
pub struct UBoot<C> {
    console: C,
    cfg: UBootConfig,
    buf: Vec<u8>,
    /// Everything received, for the caller's logs.
    transcript: Vec<u8>,
    serial: u64,
}

fn tail(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[b.len().saturating_sub(300)..]).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Environment variable names U-Boot accepts without quoting trouble.
fn check_name(name: &str) -> Result<(), UBootError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(UBootError::Invalid(format!(
            "{name:?} is not a U-Boot variable name (letters, digits, _ and .)"
        )));
    }
    Ok(())
}

/// Words (file names, addresses) that go on a command line unquoted.
fn check_word(what: &str, w: &str) -> Result<(), UBootError> {
    if w.is_empty()
        || !w
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:+,@".contains(&b))
    {
        return Err(UBootError::Invalid(format!(
            "{what} {w:?} has characters U-Boot's shell would interpret"
        )));
    }
    Ok(())
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> UBoot<C> {
    pub fn new(console: C, cfg: UBootConfig) -> Self {
        Self {
            console,
            cfg,
            buf: Vec::new(),
            transcript: Vec::new(),
            serial: 0,
        }
    }

    pub fn into_console(self) -> C {
        self.console
    }

    pub fn transcript(&self) -> &[u8] {
        &self.transcript
    }

    async fn fill(&mut self, deadline: Instant, what: &str) -> Result<(), UBootError> {
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout_at(deadline, self.console.read(&mut chunk)).await {
            Err(_) => {
                let secs = self.cfg.command_timeout.as_secs();
                return Err(UBootError::Timeout {
                    what: what.into(),
                    secs,
                    tail: tail(&self.transcript),
                });
            }
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(UBootError::Closed(what.into()));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        self.transcript.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Waits for any of `patterns`; returns its index and what came before
    /// it, and consumes both.
    async fn wait_any(
        &mut self,
        patterns: &[Vec<u8>],
        limit: Duration,
        what: &str,
    ) -> Result<(usize, Vec<u8>), UBootError> {
        let deadline = Instant::now() + limit;
        loop {
            let hit = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| find(&self.buf, p).map(|at| (at, i)))
                .min();
            if let Some((at, i)) = hit {
                let before = self.buf[..at].to_vec();
                self.buf.drain(..at + patterns[i].len());
                return Ok((i, before));
            }
            self.fill(deadline, what).await.map_err(|e| match e {
                UBootError::Timeout { tail, .. } => UBootError::Timeout {
                    what: what.into(),
                    secs: limit.as_secs(),
                    tail,
                },
                e => e,
            })?;
        }
    }

    /// Waits for `pattern` in the output (e.g. "Starting kernel" after
    /// booti); returns what came before it.
    pub async fn expect(&mut self, pattern: &str, limit: Duration) -> Result<String, UBootError> {
        let (_, before) = self
            .wait_any(
                &[pattern.as_bytes().to_vec()],
                limit,
                &format!("{pattern:?}"),
            )
            .await?;
        Ok(String::from_utf8_lossy(&before).into_owned())
    }

    async fn type_line(&mut self, line: &str) -> Result<(), UBootError> {
        if line.len() > self.cfg.max_line {
            return Err(UBootError::Invalid(format!(
                "a {}-byte command line is longer than U-Boot's {} (CONFIG_SYS_CBSIZE): it would be cut",
                line.len(),
                self.cfg.max_line
            )));
        }
        if line.contains(['\n', '\r']) {
            return Err(UBootError::Invalid(
                "a U-Boot command must be one line".into(),
            ));
        }
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        if self.cfg.char_delay.is_zero() {
            self.console.write_all(&bytes).await?;
        } else {
            for b in bytes {
                self.console.write_all(&[b]).await?;
                self.console.flush().await?;
                tokio::time::sleep(self.cfg.char_delay).await;
            }
        }
        self.console.flush().await?;
        Ok(())
    }

    /// From power on: waits for the countdown (or a prompt, when autoboot
    /// is off), interrupts it, and leaves U-Boot at a clean prompt.
    pub async fn stop_autoboot(&mut self) -> Result<(), UBootError> {
        let mut patterns: Vec<Vec<u8>> = self
            .cfg
            .autoboot_patterns
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        patterns.push(self.cfg.prompt.as_bytes().to_vec());
        let at_prompt = self.cfg.autoboot_patterns.len();
        let (hit, _) = self
            .wait_any(
                &patterns,
                self.cfg.stop_timeout,
                "U-Boot's autoboot countdown",
            )
            .await?;
        if hit != at_prompt {
            // Keep pressing until a prompt shows: the first key can land
            // before U-Boot polls, and some boards need several.
            let deadline = Instant::now() + Duration::from_secs(10);
            let prompt = self.cfg.prompt.as_bytes().to_vec();
            loop {
                self.console
                    .write_all(self.cfg.interrupt.as_bytes())
                    .await?;
                self.console.flush().await?;
                let step = Instant::now() + Duration::from_millis(100);
                let mut seen = false;
                while Instant::now() < step {
                    if find(&self.buf, &prompt).is_some() {
                        seen = true;
                        break;
                    }
                    match self.fill(step, "").await {
                        Ok(()) => {}
                        Err(UBootError::Timeout { .. }) => break,
                        Err(e) => return Err(e),
                    }
                }
                if seen {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(UBootError::Timeout {
                        what: "a prompt after interrupting autoboot (is `interrupt` right for this board?)".into(),
                        secs: 10,
                        tail: tail(&self.transcript),
                    });
                }
            }
        }
        self.sync().await
    }

    /// Gets in step with the prompt: extra prompts from extra keys, and any
    /// half-typed line, are left behind.
    pub async fn sync(&mut self) -> Result<(), UBootError> {
        // Ctrl-C clears a half-typed line in U-Boot's editor.
        self.console.write_all(b"\x03").await?;
        self.serial += 1;
        let marker = format!("hilt-sync-{}", self.serial);
        // The marker is built by the shell, so its echo (with the quotes
        // splitting it) does not match, only the output does.
        self.type_line(&format!("echo hilt-sync-''{}", self.serial))
            .await?;
        let limit = self.cfg.command_timeout;
        let pats = [format!("\n{marker}").into_bytes()];
        self.wait_any(&pats, limit, "U-Boot to answer").await?;
        let prompt = [format!("\n{}", self.cfg.prompt).into_bytes()];
        self.wait_any(&prompt, limit, "U-Boot's prompt").await?;
        Ok(())
    }

    /// Runs a command; returns its output (without echo, prompt and the last
    /// line break; lines joined with \n). Does not check whether it
    /// succeeded: see [`Self::run_checked`].
    pub async fn run(&mut self, command: &str) -> Result<String, UBootError> {
        self.run_for(command, self.cfg.command_timeout).await
    }

    /// [`Self::run`] with a time limit of its own (TFTP, mmc write).
    pub async fn run_for(&mut self, command: &str, limit: Duration) -> Result<String, UBootError> {
        self.type_line(command).await?;
        // The echo ends at the first line break after what we typed.
        self.wait_any(
            &[b"\n".to_vec()],
            limit,
            &format!("the echo of `{command}`"),
        )
        .await?;
        // Put the echo's line break back: a command without output is
        // followed by the prompt at once, which must still match "\n=> ".
        self.buf.insert(0, b'\n');
        let prompt = [format!("\n{}", self.cfg.prompt).into_bytes()];
        let (_, out) = self
            .wait_any(&prompt, limit, &format!("`{command}` to finish"))
            .await?;
        // Empty when the prompt follows the echo at once (no output).
        let out = out.get(1..).unwrap_or_default();
        Ok(String::from_utf8_lossy(out).replace('\r', ""))
    }

    /// Runs a command and fails with its output if its status is not 0.
    pub async fn run_checked(&mut self, command: &str) -> Result<String, UBootError> {
        self.run_checked_for(command, self.cfg.command_timeout)
            .await
    }

    pub async fn run_checked_for(
        &mut self,
        command: &str,
        limit: Duration,
    ) -> Result<String, UBootError> {
        // `$?` is the status of the last command in U-Boot's hush shell.
        let out = self
            .run_for(&format!("{command}; echo hilt-status=$?"), limit)
            .await?;
        let (body, status) = match out.rfind("hilt-status=") {
            Some(at) => (&out[..at], out[at + "hilt-status=".len()..].trim()),
            None => {
                return Err(UBootError::Invalid(format!(
                    "no status after `{command}`: {out:?}"
                )))
            }
        };
        let status: i32 = status
            .parse()
            .map_err(|_| UBootError::Invalid(format!("bad status {status:?} after `{command}`")))?;
        let body = body.strip_suffix('\n').unwrap_or(body).to_string();
        if status != 0 {
            return Err(UBootError::Failed {
                command: command.into(),
                status,
                output: body.trim_end().into(),
            });
        }
        Ok(body)
    }

    /// `setenv name 'value'`. Values longer than a command line are built
    /// up in pieces; a value with a single quote cannot be quoted for
    /// U-Boot's shell and is refused.
    pub async fn setenv(&mut self, name: &str, value: &str) -> Result<(), UBootError> {
        check_name(name)?;
        if value.contains(['\'', '\n', '\r']) {
            return Err(UBootError::Invalid(format!(
                "the value of {name} contains a quote or line break"
            )));
        }
        // The longest line is a continuation with run_checked's status echo.
        let overhead = format!("setenv {name} \"${{{name}}}\"' '; echo hilt-status=$?").len();
        let room = self.cfg.max_line.saturating_sub(overhead);
        if room < 16 {
            return Err(UBootError::Invalid(format!(
                "max_line {} leaves no room for {name}'s value",
                self.cfg.max_line
            )));
        }
        let mut pieces: Vec<String> = Vec::new();
        for word in value.split(' ') {
            match pieces.last_mut() {
                Some(p) if p.len() + 1 + word.len() <= room => {
                    p.push(' ');
                    p.push_str(word);
                }
                _ if word.len() > room => {
                    return Err(UBootError::Invalid(format!(
                        "a word of {name}'s value is longer than a line"
                    )))
                }
                _ => pieces.push(word.to_string()),
            }
        }
        for (i, piece) in pieces.iter().enumerate() {
            let line = if i == 0 {
                format!("setenv {name} '{piece}'")
            } else {
                format!("setenv {name} \"${{{name}}}\"' {piece}'")
            };
            self.run_checked(&line).await?;
        }
        Ok(())
    }

    /// The value of a variable, None if unset.
    pub async fn getenv(&mut self, name: &str) -> Result<Option<String>, UBootError> {
        check_name(name)?;
        let out = self.run(&format!("printenv {name}")).await?;
        let prefix = format!("{name}=");
        Ok(out
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_string))
    }

    /// `tftpboot ${addr_var} file`; returns the size U-Boot loaded.
    pub async fn tftp(
        &mut self,
        addr_var: &str,
        file: &str,
        limit: Duration,
    ) -> Result<u64, UBootError> {
        check_name(addr_var)?;
        check_word("file name", file)?;
        self.run_checked_for(&format!("tftpboot ${{{addr_var}}} {file}"), limit)
            .await?;
        let size = self
            .getenv("filesize")
            .await?
            .ok_or_else(|| UBootError::Invalid("no filesize after tftpboot".into()))?;
        u64::from_str_radix(size.trim_start_matches("0x"), 16)
            .map_err(|_| UBootError::Invalid(format!("filesize {size:?}")))
    }

    /// Brings the network up for TFTP: DHCP, or a static address.
    pub async fn net_up(&mut self, network: &Network, limit: Duration) -> Result<(), UBootError> {
        match network {
            Network::Dhcp { serverip } => {
                self.setenv("autoload", "no").await?;
                self.run_checked_for("dhcp", limit).await?;
                if let Some(ip) = serverip {
                    check_word("serverip", ip)?;
                    self.setenv("serverip", ip).await?;
                }
            }
            Network::Static {
                ipaddr,
                netmask,
                serverip,
            } => {
                for (n, v) in [
                    ("ipaddr", ipaddr),
                    ("netmask", netmask),
                    ("serverip", serverip),
                ] {
                    check_word(n, v)?;
                    self.setenv(n, v).await?;
                }
            }
        }
        Ok(())
    }

    /// Fetches kernel, device tree and initrd over TFTP and `booti`s them.
    /// Returns when booti was typed; from there on the console is the
    /// kernel's.
    pub async fn tftp_boot(
        &mut self,
        b: &TftpBoot,
        transfer_limit: Duration,
    ) -> Result<(), UBootError> {
        self.net_up(&b.network, transfer_limit).await?;
        self.tftp("kernel_addr_r", &b.kernel, transfer_limit)
            .await?;
        let fdt = match &b.dtb {
            Some(dtb) => {
                self.tftp("fdt_addr_r", dtb, transfer_limit).await?;
                "${fdt_addr_r}"
            }
            None if !b.reserve.is_empty() => {
                // U-Boot's own tree is live (its drivers hold offsets into
                // it): the kernel gets an edited copy instead.
                self.run_checked("fdt addr ${fdtcontroladdr}").await?;
                self.run_checked("fdt header get hilt_fdt_size totalsize")
                    .await?;
                self.run_checked("fdt move ${fdtcontroladdr} ${fdt_addr_r} ${hilt_fdt_size}")
                    .await?;
                "${fdt_addr_r}"
            }
            None => "${fdtcontroladdr}",
        };
        if !b.reserve.is_empty() {
            self.reserve_memory("fdt_addr_r", &b.reserve).await?;
        }
        let initrd = match &b.initrd {
            Some(initrd) => {
                let size = self.tftp("ramdisk_addr_r", initrd, transfer_limit).await?;
                format!("${{ramdisk_addr_r}}:{size:#x}")
            }
            None => "-".into(),
        };
        self.setenv("bootargs", &b.bootargs).await?;
        // No prompt comes back from a successful booti.
        self.type_line(&format!("booti ${{kernel_addr_r}} {initrd} {fdt}"))
            .await?;
        Ok(())
    }

    /// Adds `regions` to the device tree at `${fdt_var}` as `no-map`
    /// children of `/reserved-memory` (created when the tree has none), in
    /// the cell sizes that node declares. Needs `fdt` (CONFIG_CMD_FDT).
    pub async fn reserve_memory(
        &mut self,
        fdt_var: &str,
        regions: &[Reserved],
    ) -> Result<(), UBootError> {
        check_name(fdt_var)?;
        self.run_checked(&format!("fdt addr ${{{fdt_var}}}"))
            .await?;
        // Room for the new nodes: a tree loaded from a file has none.
        self.run_checked("fdt resize 0x1000").await?;
        let cells = if self.run_checked("fdt list /reserved-memory").await.is_ok() {
            [
                self.fdt_cells("#address-cells").await?,
                self.fdt_cells("#size-cells").await?,
            ]
        } else {
            self.run_checked("fdt mknode / reserved-memory").await?;
            // `#` starts a comment in U-Boot's shell unless quoted.
            self.run_checked("fdt set /reserved-memory '#address-cells' <2>")
                .await?;
            self.run_checked("fdt set /reserved-memory '#size-cells' <2>")
                .await?;
            self.run_checked("fdt set /reserved-memory ranges").await?;
            [2, 2]
        };
        for r in regions {
            check_word("region name", &r.name)?;
            let node = format!("{}@{:x}", r.name, r.address);
            let reg = [(r.address, cells[0]), (r.size, cells[1])]
                .iter()
                .map(|&(v, n)| as_cells(v, n))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    UBootError::Invalid(format!(
                        "{node} (size {:#x}) does not fit this device tree's /reserved-memory cells {cells:?}",
                        r.size
                    ))
                })?
                .join(" ");
            self.run_checked(&format!("fdt mknode /reserved-memory {node}"))
                .await?;
            self.run_checked(&format!("fdt set /reserved-memory/{node} reg <{reg}>"))
                .await?;
            self.run_checked(&format!("fdt set /reserved-memory/{node} no-map"))
                .await?;
        }
        Ok(())
    }

    /// One of `/reserved-memory`'s cell counts (1 or 2).
    async fn fdt_cells(&mut self, prop: &str) -> Result<u32, UBootError> {
        self.run_checked(&format!(
            "fdt get value hilt_cells /reserved-memory '{prop}'"
        ))
        .await?;
        let text = self.getenv("hilt_cells").await?.unwrap_or_default();
        let n = match text.trim().strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => text.trim().parse().ok(),
        };
        n.filter(|n| (1..=2).contains(n)).ok_or_else(|| {
            UBootError::Invalid(format!("/reserved-memory {prop} is {text:?}, not 1 or 2"))
        })
    }

    /// Scans `interface` and makes `dev` its current device (`mmc dev 0`),
    /// as the commands that follow (`mmc info`, `mmc write`) need.
    pub async fn select_device(
        &mut self,
        interface: BlockInterface,
        dev: u32,
        limit: Duration,
    ) -> Result<(), UBootError> {
        self.run_checked_for(interface.scan_command(), limit)
            .await?;
        self.run_checked(&format!("{} dev {dev}", interface.name()))
            .await?;
        Ok(())
    }

    /// Writes `bytes` (already in RAM at `${addr_var}`, e.g. after tftp)
    /// to block device `dev` of `interface` from block `start` (512-byte
    /// blocks), and checks U-Boot's "blocks written: OK".
    pub async fn block_write(
        &mut self,
        interface: BlockInterface,
        dev: u32,
        addr_var: &str,
        start: u64,
        bytes: u64,
        limit: Duration,
    ) -> Result<(), UBootError> {
        check_name(addr_var)?;
        let name = interface.name();
        self.select_device(interface, dev, limit).await?;
        let blocks = bytes.div_ceil(512);
        let out = self
            .run_checked_for(
                &format!("{name} write ${{{addr_var}}} {start:#x} {blocks:#x}"),
                limit,
            )
            .await?;
        if !out.contains("written: OK") {
            return Err(UBootError::Failed {
                command: format!("{name} write"),
                status: 0,
                output: out.trim_end().into(),
            });
        }
        Ok(())
    }

    /// Where partition `part` of block device `dev` is, as U-Boot reads the
    /// device's partition table: (first block, blocks), in the device's
    /// blocks. Needs U-Boot's `part` command (CONFIG_CMD_PART).
    pub async fn partition_extent(
        &mut self,
        interface: BlockInterface,
        dev: u32,
        part: u32,
        limit: Duration,
    ) -> Result<(u64, u64), UBootError> {
        let name = interface.name();
        self.run_checked_for(interface.scan_command(), limit)
            .await?;
        let mut extent = [0u64; 2];
        for (what, value) in ["start", "size"].into_iter().zip(&mut extent) {
            self.run_checked(&format!("part {what} {name} {dev} {part} hilt_part"))
                .await?;
            // `part` stores the number in hex, without a 0x.
            let text = self.getenv("hilt_part").await?.unwrap_or_default();
            *value = u64::from_str_radix(text.trim(), 16).map_err(|_| {
                UBootError::Invalid(format!(
                    "`part {what} {name} {dev} {part}` gave {text:?}, not a hex number"
                ))
            })?;
        }
        Ok((extent[0], extent[1]))
    }

    /// [`Self::block_write`] to an eMMC or SD card (Amlogic boards: eMMC is
    /// usually `mmc 1`, the SD slot `mmc 0`).
    pub async fn mmc_write(
        &mut self,
        dev: u32,
        addr_var: &str,
        start: u64,
        bytes: u64,
        limit: Duration,
    ) -> Result<(), UBootError> {
        self.block_write(BlockInterface::Mmc, dev, addr_var, start, bytes, limit)
            .await
    }
}

/// `v` as `n` device-tree cells (`0x0 0x4d000000` for two), None if it
/// does not fit.
fn as_cells(v: u64, n: u32) -> Option<String> {
    match n {
        1 => u32::try_from(v).ok().map(|v| format!("{v:#x}")),
        2 => Some(format!("{:#x} {:#x}", v >> 32, v & 0xffff_ffff)),
        _ => None,
    }
}

/// U-Boot block device commands that share `dev` and `write addr blk cnt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockInterface {
    Mmc,
    Virtio,
    Usb,
    Scsi,
}

impl BlockInterface {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mmc => "mmc",
            Self::Virtio => "virtio",
            Self::Usb => "usb",
            Self::Scsi => "scsi",
        }
    }

    /// Devices are only known to U-Boot after a scan, which autoboot may
    /// not have reached when it was stopped. `mmc list` probes every MMC
    /// host first: one found late (on PCI, after U-Boot's MMC init) is
    /// otherwise "no mmc device at slot 0" to `mmc rescan`.
    fn scan_command(self) -> &'static str {
        match self {
            Self::Mmc => "mmc list; mmc rescan",
            Self::Virtio => "virtio scan",
            Self::Usb => "usb start",
            Self::Scsi => "scsi scan",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_regions_are_written_in_the_nodes_cells() {
        assert_eq!(as_cells(0x4d00_0000, 2).as_deref(), Some("0x0 0x4d000000"));
        assert_eq!(
            as_cells(0x1_0000_0000, 2).as_deref(),
            Some("0x1 0x0"),
            "above 4 GiB"
        );
        assert_eq!(as_cells(0x10_0000, 1).as_deref(), Some("0x100000"));
        assert_eq!(as_cells(0x1_0000_0000, 1), None, "does not fit one cell");
        assert_eq!(as_cells(1, 3), None);
    }

    /// A scripted U-Boot on the far side of a duplex pipe: enough of its
    /// line editor (echo, prompt) to check the matching logic alone.
    async fn fake_uboot(mut io: tokio::io::DuplexStream) {
        io.write_all(b"U-Boot 2023.01\r\nHit any key to stop autoboot:  2 ")
            .await
            .unwrap();
        let mut line = Vec::new();
        let mut stopped = false;
        let mut b = [0u8; 1];
        while io.read(&mut b).await.unwrap_or(0) == 1 {
            match b[0] {
                b'\n' if !stopped => {
                    stopped = true;
                    io.write_all(b"\x08\x08\x08 0 \r\n=> ").await.unwrap();
                }
                b'\n' => {
                    let cmd = String::from_utf8(std::mem::take(&mut line)).unwrap();
                    io.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
                    let out = if let Some(rest) = cmd.strip_prefix("echo ") {
                        let rest = rest.replace("''", "");
                        if let Some((msg, _)) = rest.split_once("; echo hilt-status=$?") {
                            format!("{msg}\r\nhilt-status=0\r\n")
                        } else {
                            format!("{rest}\r\n")
                        }
                    } else if cmd.starts_with("false") {
                        "hilt-status=1\r\n".to_string()
                    } else {
                        "Unknown command\r\n".to_string()
                    };
                    io.write_all(format!("{out}=> ").as_bytes()).await.unwrap();
                }
                3 => line.clear(),
                c => line.push(c),
            }
        }
    }

    #[tokio::test]
    async fn stops_autoboot_runs_and_checks_commands() {
        let (a, b) = tokio::io::duplex(4096);
        tokio::spawn(fake_uboot(b));
        let mut u = UBoot::new(a, UBootConfig::default());
        u.stop_autoboot().await.unwrap();
        assert_eq!(
            u.run("echo hello => world").await.unwrap(),
            "hello => world"
        );
        assert_eq!(u.run_checked("echo x").await.unwrap(), "x");
        let err = u.run_checked("false").await.unwrap_err();
        assert!(matches!(err, UBootError::Failed { status: 1, .. }), "{err}");
        let long = "x".repeat(300);
        assert!(matches!(
            u.run(&long).await.unwrap_err(),
            UBootError::Invalid(_)
        ));
        assert!(u.setenv("bad name", "v").await.is_err());
        assert!(u.setenv("bootargs", "it's").await.is_err());
    }
}
