//! A directory on the API host (or a mount on it) as a backup store.
//!
//! The filesystem store writes an object to a temporary file beside its final name, syncs it
//! and renames it into place, so an object either is complete or does not exist: a process
//! killed mid-backup leaves only a `.partial` file, which listing ignores and the next attempt
//! replaces. Keys are checked to stay inside the store's root.

use std::path::{Component, Path, PathBuf};

use tokio::fs;
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::object::StoreError;

const PARTIAL: &str = ".partial";

/// A directory on the API host (or a mount on it).
#[derive(Debug, Clone)]
pub struct FilesystemStore {
    root: PathBuf,
}

/// An object being written: write the sealed bytes to it, then [`Upload::commit`]. Dropped
/// without a commit, the partial file stays until the next upload of the key replaces it.
pub struct Upload {
    file: fs::File,
    partial: PathBuf,
    target: PathBuf,
}

impl Upload {
    pub fn writer(&mut self) -> &mut fs::File {
        &mut self.file
    }

    /// Makes the object visible, complete and durable.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        fs::rename(&self.partial, &self.target).await?;
        if let Some(dir) = self.target.parent() {
            fs::File::open(dir).await?.sync_all().await?;
        }
        Ok(())
    }
}

impl FilesystemStore {
    /// A store rooted at `root`, which must be an absolute path to an existing directory.
    pub fn new(root: &Path) -> Result<Self, StoreError> {
        if !root.is_absolute() {
            return Err(StoreError::Unusable(format!("{} is not an absolute path", root.display())));
        }
        if !root.is_dir() {
            return Err(StoreError::Unusable(format!("{} is not a directory", root.display())));
        }
        Ok(Self { root: root.to_path_buf() })
    }

    /// The file of `key`: relative, plain components only (no `..`, no absolute part).
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let rel = Path::new(key);
        let plain = !key.is_empty()
            && !key.ends_with(PARTIAL)
            && key.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
            && rel.components().all(|c| matches!(c, Component::Normal(_)))
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        if !plain {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(rel))
    }

    pub async fn upload(&self, key: &str) -> Result<Upload, StoreError> {
        let target = self.path(key)?;
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).await?;
        }
        let partial = target.with_file_name(format!(
            "{}{PARTIAL}",
            target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        let file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial).await?;
        Ok(Upload { file, partial, target })
    }

    pub async fn open(&self, key: &str) -> Result<impl AsyncRead + Unpin, StoreError> {
        match fs::File::open(self.path(key)?).await {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(key.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the object; an object already gone is not an error (a retried delete).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub async fn size(&self, key: &str) -> Result<u64, StoreError> {
        match fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(key.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Complete objects under `prefix` (a directory key), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.path(prefix)?;
        let mut out = Vec::new();
        let mut entries = match fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().await?.is_file() && !name.ends_with(PARTIAL) {
                out.push(format!("{}/{name}", prefix.trim_end_matches('/')));
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn store() -> (tempfile::TempDir, FilesystemStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FilesystemStore::new(dir.path()).expect("store");
        (dir, store)
    }

    #[tokio::test]
    async fn objects_appear_only_when_committed() {
        let (_dir, s) = store();
        let mut up = s.upload("t/d/b1.dump.sealed").await.expect("upload");
        up.writer().write_all(b"half").await.expect("write");
        // Killed here: nothing listed, nothing to open.
        drop(up);
        assert!(s.list("t/d").await.expect("list").is_empty());
        assert!(matches!(s.open("t/d/b1.dump.sealed").await, Err(StoreError::NotFound(_))));
        // The next attempt replaces the partial file.
        let mut up = s.upload("t/d/b1.dump.sealed").await.expect("upload");
        up.writer().write_all(b"whole").await.expect("write");
        up.commit().await.expect("commit");
        assert_eq!(s.list("t/d").await.expect("list"), vec!["t/d/b1.dump.sealed"]);
        let mut back = String::new();
        s.open("t/d/b1.dump.sealed").await.expect("open").read_to_string(&mut back).await.expect("read");
        assert_eq!(back, "whole");
        assert_eq!(s.size("t/d/b1.dump.sealed").await.expect("size"), 5);
        s.delete("t/d/b1.dump.sealed").await.expect("delete");
        s.delete("t/d/b1.dump.sealed").await.expect("delete again");
        assert!(s.list("t/d").await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn keys_stay_inside_the_root() {
        let (_dir, s) = store();
        for bad in ["", "../x", "/etc/passwd", "a/../../x", "a/./b", "a b", "x.partial", "a\0b"] {
            assert!(matches!(s.upload(bad).await, Err(StoreError::InvalidKey(_))), "{bad:?}");
        }
        assert!(FilesystemStore::new(Path::new("relative")).is_err());
    }
}
