//! Compiles the CRI v1 protocol (needs `protoc`, Debian's protobuf-compiler).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/runtime/v1/api.proto";
    tonic_prost_build::configure().compile_protos(&[proto], &["proto"])?;
    println!("cargo:rerun-if-changed={proto}");
    Ok(())
}
