//! hilt-adbd: listens for adb hosts on a TCP port, as adbd does after
//! `adb tcpip`. Used on the emulated board; see the crate's docs.

use std::net::TcpListener;

fn main() {
    let mut port: u16 = 5555;
    let mut product = String::from("hilt");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--port", Some(v)) if v.parse::<u16>().is_ok() => port = v.parse().unwrap_or(port),
            ("--product", Some(v)) => product = v,
            _ => {
                eprintln!("usage: hilt-adbd [--port N] [--product NAME]");
                std::process::exit(2);
            }
        }
    }
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hilt-adbd: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    let banner = hilt_adbd::device::banner(&product);
    for sock in listener.incoming().flatten() {
        let banner = banner.clone();
        std::thread::spawn(move || {
            if let Err(e) = hilt_adbd::device::serve(sock, &banner) {
                eprintln!("hilt-adbd: connection ended: {e}");
            }
        });
    }
}
