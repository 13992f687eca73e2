//! Model files and scoring arithmetic. One integration-test binary for the crate.

mod model_files;
mod scoring;

/// The repository's `models/` folder.
pub fn models_dir() -> std::path::PathBuf {
    std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../models")
}
