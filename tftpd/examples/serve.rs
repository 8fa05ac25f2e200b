//! Serves a directory until interrupted, printing each transfer:
//! `cargo run --release -p hilt-tftpd --example serve -- DIR [ADDR:PORT]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: serve DIR [ADDR:PORT]")?;
    let addr = args.next().unwrap_or_else(|| "0.0.0.0:69".into()).parse()?;
    let server = hilt_tftpd::Server::start(addr, std::path::Path::new(&dir))?;
    eprintln!("serving {dir} on {}", server.local_addr());
    let mut seen = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let t = server.transfers();
        for t in &t[seen..] {
            eprintln!("{} {}: {:?}", t.peer, t.file, t.outcome);
        }
        seen = t.len();
    }
}
