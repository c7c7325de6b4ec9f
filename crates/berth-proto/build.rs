//! Compiles the gRPC protocol (needs `protoc`, Debian's protobuf-compiler).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/berth/v1/containers.proto",
        "proto/berth/v1/tasks.proto",
        "proto/berth/v1/events.proto",
    ];
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
