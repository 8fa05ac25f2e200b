// Compiles labgrid's coordinator protocol in pure Rust (protox), so building hilt needs
// no `protoc` binary. The .proto is vendored from the labgrid release named in
// proto/README.md.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/labgrid-coordinator.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
