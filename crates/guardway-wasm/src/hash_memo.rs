//! The BLAKE3 hashes of module bytes already seen, so that loading the same guard again
//! costs no hashing: by file (path plus metadata) and by shared buffer (the `Arc`'s address).

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Files whose hashes are remembered; the oldest is forgotten beyond this.
const FILE_MEMO_LEN: usize = 256;
/// Shared buffers whose hashes are remembered.
const SHARED_MEMO_LEN: usize = 64;
/// A file modified this shortly before it was hashed may change again within the
/// resolution of its timestamps without its metadata showing it; such a hash is not
/// trusted later (the file is hashed again).
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What identifies one version of a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    device: u64,
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

impl FileStamp {
    fn of(metadata: &Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            device: metadata.dev(),
            #[cfg(unix)]
            inode: metadata.ino(),
            #[cfg(unix)]
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

struct FileEntry {
    path: PathBuf,
    stamp: FileStamp,
    hash: [u8; 32],
}

/// A shared buffer seen before and the hash of its bytes.
type SharedEntry = (Weak<[u8]>, [u8; 32]);

static FILES: Mutex<Vec<FileEntry>> = Mutex::new(Vec::new());
static SHARED: Mutex<Vec<SharedEntry>> = Mutex::new(Vec::new());

/// The remembered hash of the file at `path`, if its metadata is unchanged since.
pub(crate) fn hash_of_file(path: &Path, metadata: &Metadata) -> Option<[u8; 32]> {
    let stamp = FileStamp::of(metadata);
    FILES
        .lock()
        .iter()
        .find(|entry| entry.path == path && entry.stamp == stamp)
        .map(|entry| entry.hash)
}

/// Remembers the hash of the file at `path` read with this metadata, unless the file was
/// modified too recently for its metadata to tell a later change apart.
pub(crate) fn remember_file(path: &Path, metadata: &Metadata, hash: [u8; 32]) {
    let stamp = FileStamp::of(metadata);
    let settled = stamp.modified.is_some_and(|modified| {
        SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|age| age >= RACY_WINDOW)
    });
    if !settled {
        return;
    }
    let mut files = FILES.lock();
    files.retain(|entry| entry.path != path);
    if files.len() >= FILE_MEMO_LEN {
        files.remove(0);
    }
    files.push(FileEntry {
        path: path.to_owned(),
        stamp,
        hash,
    });
}

/// The hash of `bytes`, remembered per shared buffer: a buffer seen before is not hashed
/// again. (A remembered `Weak` keeps its allocation from being reused, so an equal address
/// with live strong references is the same, immutable buffer.)
pub(crate) fn hash_of_shared(bytes: &Arc<[u8]>) -> [u8; 32] {
    let address = Arc::as_ptr(bytes).cast::<u8>();
    {
        let memo = SHARED.lock();
        if let Some((_, hash)) = memo
            .iter()
            .find(|(weak, _)| weak.as_ptr().cast::<u8>() == address && weak.strong_count() > 0)
        {
            return *hash;
        }
    }
    let hash = *blake3::hash(bytes).as_bytes();
    let mut memo = SHARED.lock();
    // Buffers no longer used by anyone are forgotten (their allocations are released).
    memo.retain(|(weak, _)| weak.strong_count() > 0);
    if memo.len() >= SHARED_MEMO_LEN {
        memo.remove(0);
    }
    memo.push((Arc::downgrade(bytes), hash));
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_buffer_is_hashed_once_and_a_new_one_again() {
        let first: Arc<[u8]> = Arc::from(&b"\0asm one"[..]);
        let hash = hash_of_shared(&first);
        assert_eq!(hash, *blake3::hash(&first).as_bytes());
        assert_eq!(hash_of_shared(&first.clone()), hash);
        let second: Arc<[u8]> = Arc::from(&b"\0asm two"[..]);
        assert_eq!(hash_of_shared(&second), *blake3::hash(&second).as_bytes());
    }

    #[test]
    fn a_file_is_remembered_only_once_settled_and_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guard.wasm");
        std::fs::write(&path, b"version one").unwrap();
        let fresh = std::fs::metadata(&path).unwrap();
        // Just written: not trusted.
        remember_file(&path, &fresh, [1; 32]);
        assert_eq!(hash_of_file(&path, &fresh), None);

        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let settled = std::fs::metadata(&path).unwrap();
        remember_file(&path, &settled, [2; 32]);
        assert_eq!(hash_of_file(&path, &settled), Some([2; 32]));

        std::fs::write(&path, b"version two, longer").unwrap();
        let changed = std::fs::metadata(&path).unwrap();
        assert_eq!(hash_of_file(&path, &changed), None);
    }
}
