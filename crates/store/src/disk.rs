//! Free disk space, for migrations that rewrite a table.

use std::path::Path;

/// Bytes free for an unprivileged writer on the file system holding `path` (a file or a
/// directory); None where it cannot be told (other systems, a path that does not exist).
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = if path.is_dir() { path } else { path.parent()? };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a NUL-terminated path and `stat` a buffer of the right type, which
        // statvfs fills when it returns 0 (and which is read only then).
        let stat = unsafe {
            if libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) != 0 {
                return None;
            }
            stat.assume_init()
        };
        Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_free_space_of_a_directory_and_of_a_file_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.db");
        std::fs::write(&file, b"x").unwrap();
        let free = free_bytes(dir.path()).expect("unix");
        assert!(free > 0);
        assert!(free_bytes(&file).is_some());
        assert_eq!(free_bytes(Path::new("/no/such/dir/x.db")), None);
    }
}
