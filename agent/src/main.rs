//! hilt-agent: the small program that runs on the board under test.
//!
//! `hilt-agent` talks to the host over its virtio-serial port;
//! `hilt-agent worker <json>` is how it starts its own workload processes.

use std::path::PathBuf;

use hilt_agent::{channel, faults, kmsg, run, sampler, selfwatch, swap, sys, watch, workloads};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hilt_protocol::{
    AgentFault, AgentMsg, Hello, HostMsg, Stage, AGENT_PORT_NAME, PROTOCOL_VERSION,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--version") => println!(
            "hilt-agent {} (protocol {PROTOCOL_VERSION})",
            env!("CARGO_PKG_VERSION")
        ),
        Some("worker") => {
            if let Err(e) = workloads::worker_main(args.get(2).map(String::as_str).unwrap_or("")) {
                eprintln!("hilt-agent worker: {e}");
                std::process::exit(1);
            }
        }
        Some("--port") => agent(args.get(2).map(PathBuf::from)),
        Some("swap-filler") => hilt_agent::control::swap_filler(),
        // The bio-wait control's task: blocks in submit_bio_wait, by design.
        Some("zeroout") => {
            unsafe { libc::prctl(libc::PR_SET_NAME, c"hilt-zeroout".as_ptr()) };
            let node = std::path::Path::new(args.get(2).map(String::as_str).unwrap_or(""));
            if let Err(e) = hilt_agent::control::zeroout(node) {
                eprintln!("hilt-agent zeroout: {e}");
                std::process::exit(1);
            }
        }
        // The positive control's victim: blocks in the kernel, by design.
        Some("swapoff") => {
            // Wait for the go from the control, which first freezes swap.
            // Locked in memory: a fault on a swapped-out page of its own
            // would block it in the pipe read (holding the pipe's mutex)
            // instead of in swapoff, where the control wants it.
            sys::clear_io_flusher();
            unsafe {
                libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE);
                libc::prctl(libc::PR_SET_NAME, c"hilt-swapoff".as_ptr());
            }
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
            if go.trim() != "go" {
                return;
            }
            if let Err(e) = swap::swapoff(std::path::Path::new(
                args.get(2).map(String::as_str).unwrap_or(""),
            )) {
                eprintln!("hilt-agent swapoff: {e}");
                std::process::exit(1);
            }
        }
        None => agent(None),
        Some(other) => {
            eprintln!("usage: hilt-agent [--version | --port DEVICE | --port stdio]\nunknown argument {other:?}");
            std::process::exit(2);
        }
    }
}

fn agent(port: Option<PathBuf>) {
    if let Err(e) = sys::harden_self() {
        eprintln!("hilt-agent: warning: {e}");
    }
    let stdio = port.as_deref() == Some(std::path::Path::new(channel::STDIO));
    let opened = if stdio {
        channel::open_stdio().map_err(|e| format!("using stdin and stdout as the channel: {e}"))
    } else {
        // A board without virtio-serial names its channel on the kernel
        // command line: `hilt.agent_port=console` shares the UART with printk.
        port.or_else(|| sys::cmdline_value("hilt.agent_port").map(|p| channel::port_path(&p)))
            .map(Ok)
            .unwrap_or_else(|| wait_for_port(Duration::from_secs(20)))
            .map_err(|e| e.to_string())
            .and_then(|p| channel::open(&p).map_err(|e| format!("opening {}: {e}", p.display())))
    };
    let (tx, mut rx) = match opened {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hilt-agent: {e}");
            std::process::exit(1);
        }
    };
    let (release, version, machine) = sys::uname();
    tx.send(&AgentMsg::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        kernel_release: release,
        kernel_version: version,
        machine,
        uptime_ms: sys::uptime_ms(),
        mem_total_kb: sampler::read_mem().total_kb,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        facts: sys::kernel_facts(),
        mmc: sys::mmc_cards(),
    }));
    let pstore = sys::take_pstore();
    if !pstore.is_empty() {
        tx.send(&AgentMsg::Pstore { files: pstore });
    }
    selfwatch::spawn(tx.clone());
    let watched = Arc::new(watch::Shared::default());
    watch::spawn(tx.clone(), watched.clone());
    {
        let tx = tx.clone();
        sys::spawn("heartbeat", move || loop {
            tx.send(&AgentMsg::Heartbeat {
                uptime_ms: sys::uptime_ms(),
            });
            std::thread::sleep(Duration::from_secs(1));
        });
    }
    {
        let tx = tx.clone();
        let watched = watched.clone();
        sys::spawn("kmsg", move || {
            if let Err(e) = kmsg::run(tx.clone(), &watched) {
                tx.send(&AgentMsg::Error {
                    stage: Stage::Watch,
                    message: format!("/dev/kmsg: {e}"),
                });
            }
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (start_tx, start_rx) = mpsc::channel();
    {
        let stop = stop.clone();
        let tx = tx.clone();
        sys::spawn("commands", move || {
            while let Some(msg) = rx.recv() {
                match msg {
                    HostMsg::Start { spec } => {
                        let _ = start_tx.send(spec);
                    }
                    HostMsg::Stop => stop.store(true, Ordering::Relaxed),
                    HostMsg::Fault { fault } => match fault {
                        AgentFault::Exit => std::process::exit(3),
                        AgentFault::Mute => channel::MUTED.store(true, Ordering::Relaxed),
                        AgentFault::SamplerFreeze { ms } => faults::freeze_sampler(ms),
                        AgentFault::Panic => {
                            let _ = sys::sysrq('c');
                        }
                        // Its own thread: a slow UART must not hold up commands.
                        AgentFault::ConsoleFlood { bytes } => {
                            let tx = tx.clone();
                            sys::spawn("flood", move || {
                                if let Err(e) = faults::console_flood(bytes) {
                                    tx.send(&AgentMsg::Error {
                                        stage: Stage::Channel,
                                        message: format!("console flood: {e}"),
                                    });
                                }
                            });
                        }
                        AgentFault::ChannelGarbage => tx.garbage(&AgentMsg::Heartbeat {
                            uptime_ms: sys::uptime_ms(),
                        }),
                    },
                    HostMsg::Sysrq { key } => {
                        if let Err(e) = sys::sysrq(key) {
                            tx.send(&AgentMsg::Error {
                                stage: Stage::Channel,
                                message: e.to_string(),
                            });
                        }
                    }
                }
            }
            // The host hung up. On a shared console that never happens; on
            // an SSH or adb channel nobody will hear the agent again, so a
            // running workload stops and the agent exits below.
            stop.store(true, Ordering::Relaxed);
        });
    }
    // The agent keeps watching after a run: the host decides when the board
    // powers off, and late kernel reports still matter.
    while let Ok(spec) = start_rx.recv() {
        stop.store(false, Ordering::Relaxed);
        if let Ok(mut w) = watched.spec.lock() {
            *w = Some(spec.watch.clone());
        }
        run::run(&spec, &tx, &stop);
    }
    if stdio {
        std::process::exit(0);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn wait_for_port(limit: Duration) -> std::io::Result<PathBuf> {
    let t = Instant::now();
    loop {
        match channel::find_port(AGENT_PORT_NAME) {
            Ok(p) => return Ok(p),
            Err(e) if t.elapsed() > limit => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
