//! Model files on disk: reading and writing the envelope, and finding the shipped default
//! model. The I/O edge of `followguard_core::model`, which only parses and serialises
//! bytes.

use followguard_core::model::{sha256_hex, Model, ModelError};
use std::path::{Path, PathBuf};

/// Model loaded when no `--model` flag is given: relative to the working directory, else
/// to the nearest ancestor of the executable that has it (see [`resolve_model_path`]).
pub const DEFAULT_MODEL_PATH: &str = "models/default.json";

/// Where a model path points. An explicit path is taken as given. The default one is
/// relative to the working directory (the repository root, or the image's WORKDIR); when
/// it is not there — a command run from another directory — the executable's ancestors
/// are searched (`target/release/followguard` → the checkout's `models/default.json`),
/// then the checkout the binary was built from (a target directory outside it), so the
/// shipped model is found wherever the command is started.
pub fn resolve_model_path(path: &Path, cwd: &Path, exe: Option<&Path>) -> PathBuf {
    if path != Path::new(DEFAULT_MODEL_PATH) || cwd.join(path).exists() {
        return path.to_path_buf();
    }
    // This crate sits at crates/<name> in the checkout.
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    exe.into_iter()
        .flat_map(|e| e.ancestors().skip(1))
        .chain(built_from)
        .map(|dir| dir.join(DEFAULT_MODEL_PATH))
        .find(|p| p.is_file())
        .unwrap_or_else(|| path.to_path_buf())
}

/// Loads and validates a model file (the default path resolved as
/// [`resolve_model_path`] says).
pub fn load(path: &Path) -> Result<Model, ModelError> {
    let (cwd, exe) = (std::env::current_dir(), std::env::current_exe());
    let cwd = cwd.unwrap_or_default();
    let path = &resolve_model_path(path, &cwd, exe.ok().as_deref());
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: p.clone(),
        source,
    })?;
    Model::from_bytes(&bytes, &p)
}

/// Writes the model's envelope; the sha256 of what was written is returned.
pub fn save(model: &Model, path: &Path) -> Result<String, ModelError> {
    let bytes = model.to_json();
    std::fs::write(path, &bytes).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(sha256_hex(&bytes))
}
