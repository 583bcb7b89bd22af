//! Compiles `proto/sluice/v1/*.proto` with protox (a Rust protobuf
//! compiler), so a fresh machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "sluice/v1/bus.proto",
        "sluice/v1/queues.proto",
        "sluice/v1/topics.proto",
        "sluice/v1/workflows.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        // Ordered maps encode the same way every time (stable fingerprints).
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
