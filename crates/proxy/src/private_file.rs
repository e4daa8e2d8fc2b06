//! Files only their owner may read (keys, tokens): written through a new
//! file of a random name, created exclusively with mode 0600 and renamed
//! into place, into a directory that is this user's and that no one else
//! may write to. Nothing another user planted (a file, a link) is written
//! through or read, and no reader sees half a file. A leaf: autocert's
//! keys and `gatehouse tcp`'s token cache both use it.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path`, creating its directory (0700) if needed.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)?;
    check_dir(parent)?;
    let mut f = tempfile::NamedTempFile::new_in(parent)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    f.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// At most `limit` bytes of `path`, when its directory passes
/// [`check_dir`] and the file is not a link.
pub fn read(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    check_dir(path.parent()?).ok()?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut out = Vec::new();
    f.take(limit).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The directory is a real directory of this user's (or root's), and no
/// one else may write to it.
pub fn check_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir)?;
    let owner_ok = m.uid() == current_uid() || m.uid() == 0;
    if !m.is_dir() || !owner_ok || m.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} must be a directory of this user's that no one else may write to",
            dir.display()
        )));
    }
    Ok(())
}

/// Every directory above `dir` (links resolved) is this user's or root's,
/// and others may write to it only when it is sticky (as `/tmp`):
/// otherwise another user could swap `dir` for a tree of theirs between a
/// check and an open (OpenSSH's StrictModes rule). Returns the first
/// directory that fails.
pub fn check_ancestors(dir: &Path) -> Result<(), std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(dir).map_err(|_| dir.to_path_buf())?;
    let me = current_uid();
    for ancestor in real.ancestors().skip(1) {
        let m = std::fs::metadata(ancestor).map_err(|_| ancestor.to_path_buf())?;
        let sticky = m.mode() & 0o1000 != 0;
        let others_write = m.mode() & 0o022 != 0;
        if (m.uid() != me && m.uid() != 0) || (others_write && !sticky) {
            return Err(ancestor.to_path_buf());
        }
    }
    Ok(())
}

/// This process's user id: the owner of `/proc/self` (without `unsafe`).
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn owner_only_files_in_private_directories_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keys/a.key");
        write(&key, b"secret").unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert_eq!(read(&key, 1024).unwrap(), b"secret");
        // Never into, nor out of, a directory others may write to.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(write(&shared.join("k"), b"secret").is_err());
        // Never through a link.
        std::os::unix::fs::symlink(&key, key.with_extension("link")).unwrap();
        assert!(read(&key.with_extension("link"), 1024).is_none());
    }
}
