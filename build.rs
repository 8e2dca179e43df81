//! Generates the protobuf types of `proto/` with a pure-Rust protobuf
//! compiler, so building needs no `protoc` on the machine: the ONNX model
//! format (`onnx.proto`) and the Prometheus remote-write request
//! (`remote.proto`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/onnx.proto", "proto/remote.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
