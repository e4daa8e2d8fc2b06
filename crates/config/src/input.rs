//! Reading configuration input (the file, and files it names) within the
//! size limit.

use std::path::{Path, PathBuf};

use crate::yaml::MAX_INPUT_BYTES;

/// Reads a file the configuration names (or is), at most
/// [`MAX_INPUT_BYTES`]: the read stops one byte past the limit, so
/// `/dev/zero`, an endless pipe or a wrong huge file is refused at once.
pub fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than the limit of {} MiB for configuration input",
            MAX_INPUT_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Why a file could not be read, in words: the system's reason without
/// its error number (`No such file or directory`, not `... (os error 2)`).
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

/// A path the configuration names, relative to the configuration file's
/// directory unless absolute.
pub(crate) fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}
