//! A stand-in for qemu-system-aarch64 that replays one recorded iteration,
//! for measuring how many boards one hilt drives at once without paying
//! for emulation (scripts/bench-boards).
//!
//! hilt starts it exactly as it starts QEMU (a board file whose
//! `qemu.binary` names it): it serves the console and agent sockets named
//! on its command line, and replays `$HILT_SIM_RUN`'s first iteration at
//! the recorded pace: the console bytes by their console.ts times, the
//! agent's records (from events.jsonl) re-framed with their t_ms. hilt's
//! side is unchanged: its decoder, console capture, kernel-log parser and
//! results writer do the same work as with a real board.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hilt_protocol::{encode_frame, AgentMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::time::{sleep_until, Instant};

fn socket_path(args: &[String], id: &str) -> Option<PathBuf> {
    args.iter()
        .filter(|a| a.contains(&format!("id={id}")))
        .find_map(|a| a.split(',').find_map(|p| p.strip_prefix("path=")))
        .map(PathBuf::from)
}

/// The first iteration's directory and its agent records, with their times.
fn recording(run: &Path) -> anyhow::Result<(PathBuf, Vec<(u64, AgentMsg)>)> {
    let events = std::fs::read_to_string(run.join("events.jsonl"))?;
    let mut first: Option<(String, u64)> = None;
    let mut msgs = Vec::new();
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let key = (
            v["variant"].as_str().unwrap_or_default().to_string(),
            v["iteration"].as_u64().unwrap_or_default(),
        );
        if v["control"].is_string() {
            continue;
        }
        let first = first.get_or_insert_with(|| key.clone());
        if *first != key || v["source"] != "agent" {
            continue;
        }
        if let Ok(m) = serde_json::from_value::<AgentMsg>(v.clone()) {
            msgs.push((v["t_ms"].as_u64().unwrap_or_default(), m));
        }
    }
    let (variant, iteration) = first.ok_or_else(|| anyhow::anyhow!("no iteration in the run"))?;
    let dir = run
        .join("iterations")
        .join(format!("{variant}-{iteration:03}"));
    Ok((dir, msgs))
}

/// console.log in the chunks it arrived in, with their offsets in ms.
fn console_chunks(dir: &Path) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let log = std::fs::read(dir.join("console.log"))?;
    let ts = std::fs::read_to_string(dir.join("console.ts"))?;
    let marks: Vec<(usize, u64)> = ts
        .lines()
        .filter_map(|l| {
            let (o, t) = l.split_once(' ')?;
            Some((o.parse().ok()?, t.parse().ok()?))
        })
        .collect();
    let t0 = marks.first().map(|m| m.1).unwrap_or(0);
    let mut out = Vec::new();
    for (i, &(off, t)) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map(|m| m.0).unwrap_or(log.len());
        if off < end && end <= log.len() {
            out.push((t - t0, log[off..end].to_vec()));
        }
    }
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let run = PathBuf::from(std::env::var_os("HILT_SIM_RUN").ok_or_else(|| {
        anyhow::anyhow!("set HILT_SIM_RUN to the directory of a finished hilt run to replay")
    })?);
    let console_path =
        socket_path(&args, "con0").ok_or_else(|| anyhow::anyhow!("no con0 chardev"))?;
    let agent_path =
        socket_path(&args, "agent0").ok_or_else(|| anyhow::anyhow!("no agent0 chardev"))?;
    let (dir, msgs) = recording(&run)?;
    let chunks = console_chunks(&dir)?;
    let console_l = UnixListener::bind(&console_path)?;
    let agent_l = UnixListener::bind(&agent_path)?;
    let (mut console, _) = console_l.accept().await?;
    let (agent, _) = agent_l.accept().await?;
    let start = Instant::now();
    let (mut agent_rd, mut agent_wr) = agent.into_split();
    // What the host sends (the run spec, sysrq requests) is read and dropped.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while matches!(agent_rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let console_task = tokio::spawn(async move {
        for (t, bytes) in chunks {
            sleep_until(start + Duration::from_millis(t)).await;
            if console.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // A board stays on until it is powered off.
        std::future::pending::<()>().await;
    });
    let mut buf = Vec::new();
    for (seq, (t, m)) in msgs.iter().enumerate() {
        sleep_until(start + Duration::from_millis(*t)).await;
        buf.clear();
        encode_frame(seq as u64, m, &mut buf);
        if agent_wr.write_all(&buf).await.is_err() {
            break;
        }
    }
    let _ = console_task.await;
    Ok(())
}
