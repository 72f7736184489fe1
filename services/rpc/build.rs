//! Compiles `proto/switchyard/v1/switchyard.proto` without `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = format!("{root}/switchyard/v1/switchyard.proto");
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([&file], [root])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
