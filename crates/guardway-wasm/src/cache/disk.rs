//! The disk tier: verified artifacts at `<dir>/<engine fingerprint>/<module hash>.cwasm`,
//! written atomically, private to the current user, bounded by bytes (oldest mtime evicted).
//!
//! File layout (little-endian): an [`ARTIFACT_HEADER_LEN`]-byte header —
//! magic `GWCWASM\0`, format version (u32), CPU baseline (u32: 0 native, 2
//! x86-64-v2, 3 x86-64-v3; zero in artifacts of earlier builds, which were all
//! native), engine fingerprint (16 bytes), BLAKE3 of the module bytes (32),
//! compile time in nanoseconds (u64), artifact length (u64), BLAKE3 of the
//! artifact (32) — followed by the artifact produced by `Module::serialize`.
//!
//! An artifact compiled for a CPU baseline (`guardway cache warm
//! --cpu-baseline`) lives in the directory of the engine that compiled it; a
//! process whose own directory lacks the module looks for such portable
//! artifacts in the other fingerprint directories ([`DiskTier::read_portable`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::error::DiskError;
use super::key::{CacheKey, EngineFingerprint, parse_hex_array};
use crate::engine::CpuBaseline;

/// File extension of artifacts.
pub const ARTIFACT_EXTENSION: &str = "cwasm";
/// Suffix of artifacts being written (renamed into place when complete).
const TEMP_SUFFIX: &str = ".cwasm.tmp";
/// Temporary files older than this were left by a process that died mid-write.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

const MAGIC: [u8; 8] = *b"GWCWASM\0";
/// Version of the artifact file layout this build reads and writes.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;
/// Length of the header that precedes every artifact.
pub const ARTIFACT_HEADER_LEN: usize = 112;

/// Why an artifact file cannot be used. Such a file is deleted and the
/// module recompiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArtifactDefect {
    Truncated { length: u64 },
    NotAnArtifact,
    FormatVersion { found: u32 },
    ForeignFingerprint { found: String },
    ForeignModule,
    LengthMismatch { header: u64, actual: u64 },
    ChecksumMismatch,
    NotAFile,
    Insecure { reason: String },
    Rejected { message: String },
}

impl fmt::Display for ArtifactDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { length } => write!(f, "truncated ({length} bytes)"),
            Self::NotAnArtifact => write!(f, "not a guardway artifact (bad magic)"),
            Self::FormatVersion { found } => write!(
                f,
                "artifact format version {found}, expected {ARTIFACT_FORMAT_VERSION}"
            ),
            Self::ForeignFingerprint { found } => {
                write!(f, "compiled by a different engine (fingerprint {found})")
            }
            Self::ForeignModule => write!(f, "artifact of a different module"),
            Self::LengthMismatch { header, actual } => write!(
                f,
                "artifact length {actual} differs from the header's {header}"
            ),
            Self::ChecksumMismatch => write!(f, "artifact checksum mismatch (corrupted)"),
            Self::NotAFile => write!(f, "not a regular file"),
            Self::Insecure { reason } => write!(f, "insecure: {reason}"),
            Self::Rejected { message } => write!(f, "rejected by the engine: {message}"),
        }
    }
}

/// A file whose header and checksum matched the requested key.
pub(crate) struct VerifiedArtifact {
    file: Vec<u8>,
    pub compile_time: Duration,
    /// The CPU baseline the header names; `None` for a code this build does not know.
    pub cpu: Option<CpuBaseline>,
}

impl VerifiedArtifact {
    /// The bytes produced by `Module::serialize`, checksum verified.
    pub fn artifact(&self) -> &[u8] {
        &self.file[ARTIFACT_HEADER_LEN..]
    }
}

pub(crate) enum DiskRead {
    Missing,
    Found(VerifiedArtifact),
    Defective {
        path: PathBuf,
        defect: ArtifactDefect,
    },
    Failed(DiskError),
}

/// The header that precedes an artifact.
pub(crate) fn encode_header(
    key: &CacheKey,
    compile_time: Duration,
    artifact: &[u8],
    cpu: CpuBaseline,
) -> [u8; ARTIFACT_HEADER_LEN] {
    encode_header_with_version(key, compile_time, artifact, cpu, ARTIFACT_FORMAT_VERSION)
}

fn encode_header_with_version(
    key: &CacheKey,
    compile_time: Duration,
    artifact: &[u8],
    cpu: CpuBaseline,
    version: u32,
) -> [u8; ARTIFACT_HEADER_LEN] {
    let mut header = [0u8; ARTIFACT_HEADER_LEN];
    let compile_nanos = u64::try_from(compile_time.as_nanos()).unwrap_or(u64::MAX);
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&version.to_le_bytes());
    header[12..16].copy_from_slice(&cpu.code().to_le_bytes());
    header[16..32].copy_from_slice(key.fingerprint().as_bytes());
    header[32..64].copy_from_slice(key.module_hash());
    header[64..72].copy_from_slice(&compile_nanos.to_le_bytes());
    header[72..80].copy_from_slice(&(artifact.len() as u64).to_le_bytes());
    header[80..112].copy_from_slice(blake3::hash(artifact).as_bytes());
    header
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Checks a whole artifact file against the key it was looked up by.
pub(crate) fn verify(file: Vec<u8>, key: &CacheKey) -> Result<VerifiedArtifact, ArtifactDefect> {
    let length = file.len() as u64;
    if file.len() < 12 {
        return Err(ArtifactDefect::Truncated { length });
    }
    if file[0..8] != MAGIC {
        return Err(ArtifactDefect::NotAnArtifact);
    }
    let version = read_u32(&file, 8);
    if version != ARTIFACT_FORMAT_VERSION {
        return Err(ArtifactDefect::FormatVersion { found: version });
    }
    if file.len() < ARTIFACT_HEADER_LEN {
        return Err(ArtifactDefect::Truncated { length });
    }
    if &file[16..32] != key.fingerprint().as_bytes() {
        let mut found = [0u8; 16];
        found.copy_from_slice(&file[16..32]);
        return Err(ArtifactDefect::ForeignFingerprint {
            found: EngineFingerprint::from_bytes(found).to_string(),
        });
    }
    if &file[32..64] != key.module_hash() {
        return Err(ArtifactDefect::ForeignModule);
    }
    let compile_nanos = read_u64(&file, 64);
    let header_length = read_u64(&file, 72);
    let actual = (file.len() - ARTIFACT_HEADER_LEN) as u64;
    if header_length != actual {
        return Err(if actual < header_length {
            ArtifactDefect::Truncated { length }
        } else {
            ArtifactDefect::LengthMismatch {
                header: header_length,
                actual,
            }
        });
    }
    if blake3::hash(&file[ARTIFACT_HEADER_LEN..]).as_bytes()[..] != file[80..112] {
        return Err(ArtifactDefect::ChecksumMismatch);
    }
    let cpu = CpuBaseline::from_code(read_u32(&file, 12));
    Ok(VerifiedArtifact {
        file,
        compile_time: Duration::from_nanos(compile_nanos),
        cpu,
    })
}

/// The disk tier of one cache. Shared by reference between threads; all its
/// operations are safe to run concurrently, also with other processes using
/// the same directory.
pub(crate) struct DiskTier {
    root: PathBuf,
    max_bytes: u64,
    checked_fingerprints: Mutex<HashSet<EngineFingerprint>>,
}

/// What making room on disk did.
#[derive(Default)]
pub(crate) struct BoundReport {
    pub total_bytes: u64,
    pub evicted: u64,
    pub errors: Vec<DiskError>,
}

impl DiskTier {
    /// Creates (0700) and checks the directory. On error the caller falls
    /// back to memory only.
    pub fn open(root: PathBuf, max_bytes: u64) -> Result<Self, DiskError> {
        let unusable = |cause: String| DiskError::Unusable {
            dir: root.clone(),
            cause,
        };
        create_private_dir_all(&root).map_err(|err| unusable(err.to_string()))?;
        let metadata = fs::metadata(&root).map_err(|err| unusable(err.to_string()))?;
        if !metadata.is_dir() {
            return Err(unusable("not a directory".to_owned()));
        }
        check_private(&metadata).map_err(unusable)?;
        check_writable(&root).map_err(|err| unusable(err.to_string()))?;
        Ok(Self {
            root,
            max_bytes,
            checked_fingerprints: Mutex::new(HashSet::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn artifact_path(&self, key: &CacheKey) -> PathBuf {
        self.root
            .join(key.fingerprint().to_string())
            .join(format!("{}.{ARTIFACT_EXTENSION}", key.module_hash_hex()))
    }

    /// Returns the fingerprint's directory after checking that only the
    /// current user can modify it; with `create`, creates it (0700) first.
    /// `Ok(None)`: it does not exist and `create` is false. An insecure or
    /// uncreatable directory is [`DiskError::Unusable`].
    fn fingerprint_dir(
        &self,
        fingerprint: EngineFingerprint,
        create: bool,
    ) -> Result<Option<PathBuf>, DiskError> {
        let dir = self.root.join(fingerprint.to_string());
        if self.checked_fingerprints.lock().contains(&fingerprint) {
            return Ok(Some(dir));
        }
        let unusable = |cause: String| DiskError::Unusable {
            dir: dir.clone(),
            cause,
        };
        if create {
            match create_private_dir(&dir) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(unusable(err.to_string())),
            }
        }
        let metadata = match fs::symlink_metadata(&dir) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(err) => return Err(unusable(err.to_string())),
        };
        if !metadata.is_dir() {
            return Err(unusable("not a directory".to_owned()));
        }
        check_private(&metadata).map_err(unusable)?;
        self.checked_fingerprints.lock().insert(fingerprint);
        Ok(Some(dir))
    }

    /// Reads and verifies the artifact of `key`, marking it recently used.
    pub fn read(&self, key: &CacheKey) -> DiskRead {
        match self.fingerprint_dir(key.fingerprint(), false) {
            Ok(Some(_)) => {}
            Ok(None) => return DiskRead::Missing,
            Err(err) => return DiskRead::Failed(err),
        }
        read_artifact(self.artifact_path(key), key)
    }

    /// The artifacts of `key`'s module compiled for a CPU baseline by other engines (in
    /// other fingerprint directories), highest baseline first. Other engines' native
    /// artifacts, unusable files and directories other users could modify are passed over
    /// silently: they are not this engine's to judge or delete.
    pub fn read_portable(&self, key: &CacheKey) -> Vec<(PathBuf, VerifiedArtifact)> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let file_name = format!("{}.{ARTIFACT_EXTENSION}", key.module_hash_hex());
        let candidates = entries
            .flatten()
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(EngineFingerprint::parse_hex)
            })
            .filter(|fingerprint| *fingerprint != key.fingerprint());
        let mut found = Vec::new();
        for fingerprint in candidates {
            let path = self.root.join(fingerprint.to_string()).join(&file_name);
            // The header names the baseline: other engines' native artifacts are not read.
            if !peek_cpu(&path).is_some_and(CpuBaseline::is_portable)
                || !matches!(self.fingerprint_dir(fingerprint, false), Ok(Some(_)))
            {
                continue;
            }
            let other = key.for_fingerprint(fingerprint);
            if let DiskRead::Found(artifact) = read_artifact(self.artifact_path(&other), &other)
                && artifact.cpu.is_some_and(CpuBaseline::is_portable)
            {
                found.push((self.artifact_path(&other), artifact));
            }
        }
        found.sort_by_key(|(_, artifact)| std::cmp::Reverse(artifact.cpu));
        found
    }
}

/// How recently an artifact must have been marked used for a read to leave its
/// modification time alone: the granularity of least-recently-used eviction.
const RECENT: Duration = Duration::from_secs(60);

/// Proves that files can be created in `dir` before relying on it: this process may write
/// there, and the file system is not read-only. One system call; creating and deleting a
/// probe file would cost two inode updates on every start.
#[cfg(unix)]
fn check_writable(dir: &Path) -> io::Result<()> {
    use rustix::fs::{Access, AtFlags, CWD, accessat};
    accessat(
        CWD,
        dir,
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(io::Error::from)
}

#[cfg(not(unix))]
fn check_writable(dir: &Path) -> io::Result<()> {
    tempfile::Builder::new()
        .prefix(".probe")
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map(drop)
}

/// The CPU baseline named by the header of the artifact at `path`, if it is one.
fn peek_cpu(path: &Path) -> Option<CpuBaseline> {
    let mut head = [0u8; 16];
    File::open(path).ok()?.read_exact(&mut head).ok()?;
    if head[0..8] != MAGIC || read_u32(&head, 8) != ARTIFACT_FORMAT_VERSION {
        return None;
    }
    CpuBaseline::from_code(read_u32(&head, 12))
}

/// Reads the file at `path` and verifies it as the artifact of `key`, marking it recently
/// used.
fn read_artifact(path: PathBuf, key: &CacheKey) -> DiskRead {
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return DiskRead::Missing,
        Err(source) => return DiskRead::Failed(DiskError::Read { path, source }),
    };
    let metadata = match file.metadata() {
        Ok(metadata) => metadata,
        Err(source) => return DiskRead::Failed(DiskError::Read { path, source }),
    };
    if !metadata.is_file() {
        return DiskRead::Defective {
            path,
            defect: ArtifactDefect::NotAFile,
        };
    }
    if let Err(reason) = check_private(&metadata) {
        return DiskRead::Defective {
            path,
            defect: ArtifactDefect::Insecure { reason },
        };
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    if let Err(source) = file.read_to_end(&mut bytes) {
        return DiskRead::Failed(DiskError::Read { path, source });
    }
    match verify(bytes, key) {
        Ok(artifact) => {
            // Recently used: eviction removes the oldest modification time first. An
            // artifact touched less than RECENT ago is left as it is (a write of its inode
            // on every start of a short process). Failing to touch only makes eviction
            // less fair.
            let now = SystemTime::now();
            let recent = metadata
                .modified()
                .is_ok_and(|modified| now.duration_since(modified).is_ok_and(|age| age < RECENT));
            if !recent && let Err(err) = file.set_modified(now) {
                tracing::debug!(path = %path.display(), error = %err, "cannot touch cached artifact");
            }
            DiskRead::Found(artifact)
        }
        Err(defect) => DiskRead::Defective { path, defect },
    }
}

impl DiskTier {
    /// Writes the artifact of `key` to a temporary file in the same
    /// directory and renames it into place, replacing any previous file.
    /// Returns the file's length.
    pub fn write(
        &self,
        key: &CacheKey,
        artifact: &[u8],
        compile_time: Duration,
        cpu: CpuBaseline,
    ) -> Result<u64, DiskError> {
        let dir = self
            .fingerprint_dir(key.fingerprint(), true)?
            .unwrap_or_else(|| self.root.join(key.fingerprint().to_string()));
        let path = self.artifact_path(key);
        let header = encode_header(key, compile_time, artifact, cpu);
        write_atomically(&dir, &path, &[&header, artifact])?;
        Ok((header.len() + artifact.len()) as u64)
    }

    /// Deletes a file; one that is already gone is fine.
    pub fn remove(&self, path: &Path) -> Result<(), DiskError> {
        remove_file(path)
    }

    /// Deletes the least recently used artifacts (all fingerprints) until
    /// the directory holds at most `max_bytes`, and stale temporary files.
    pub fn enforce_bound(&self) -> BoundReport {
        let mut report = BoundReport::default();
        let listing = match scan(&self.root) {
            Ok(listing) => listing,
            Err(err) => {
                report.errors.push(err);
                return report;
            }
        };
        report.errors.extend(listing.errors);
        for temp in &listing.stale_temps {
            // Another process may still be writing a young temporary file;
            // only old ones are removed. A failure here is harmless.
            let _ = fs::remove_file(temp);
        }
        let mut artifacts = listing.artifacts;
        let mut total: u64 = artifacts.iter().map(|a| a.len).sum();
        artifacts.sort_by_key(|a| a.modified);
        for artifact in artifacts {
            if total <= self.max_bytes {
                break;
            }
            match remove_file(&artifact.path) {
                Ok(()) => {
                    total = total.saturating_sub(artifact.len);
                    report.evicted += 1;
                }
                Err(err) => report.errors.push(err),
            }
        }
        report.total_bytes = total;
        report
    }

    /// Bytes of artifacts currently in the directory.
    pub fn current_bytes(&self) -> Result<u64, DiskError> {
        let listing = scan(&self.root)?;
        Ok(listing.artifacts.iter().map(|a| a.len).sum())
    }
}

fn remove_file(path: &Path) -> Result<(), DiskError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DiskError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_atomically(dir: &Path, path: &Path, parts: &[&[u8]]) -> Result<(), DiskError> {
    let write_error = |source: io::Error| DiskError::Write {
        path: path.to_owned(),
        source,
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".").suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut temp = builder.tempfile_in(dir).map_err(write_error)?;
    for part in parts {
        temp.write_all(part).map_err(write_error)?;
    }
    temp.as_file().sync_data().map_err(write_error)?;
    temp.persist(path).map_err(|err| write_error(err.error))?;
    Ok(())
}

fn create_private_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Deserialising an artifact runs its code, so only files and directories
/// that no other user can modify are trusted: owned by the effective user,
/// not writable by group or others.
#[cfg(unix)]
fn check_private(metadata: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!("writable by other users (mode {mode:04o})"));
    }
    let owner = metadata.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        return Err(format!("owned by uid {owner}, not by the current uid {me}"));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_metadata: &fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// One artifact file found by [`scan`].
struct ArtifactFile {
    path: PathBuf,
    fingerprint: EngineFingerprint,
    len: u64,
    modified: SystemTime,
}

struct Listing {
    artifacts: Vec<ArtifactFile>,
    temps: Vec<(PathBuf, u64)>,
    stale_temps: Vec<PathBuf>,
    errors: Vec<DiskError>,
}

fn is_artifact_name(name: &str) -> bool {
    name.strip_suffix(".cwasm")
        .is_some_and(|stem| parse_hex_array::<32>(stem).is_some())
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// Lists this cache's files (`<fingerprint>/<hash>.cwasm` and temporary
/// files); anything else in the directory is left alone.
fn scan(root: &Path) -> Result<Listing, DiskError> {
    let scan_error = |path: &Path, source: io::Error| DiskError::Scan {
        path: path.to_owned(),
        source,
    };
    let mut listing = Listing {
        artifacts: Vec::new(),
        temps: Vec::new(),
        stale_temps: Vec::new(),
        errors: Vec::new(),
    };
    let now = SystemTime::now();
    for entry in fs::read_dir(root).map_err(|err| scan_error(root, err))? {
        let entry = entry.map_err(|err| scan_error(root, err))?;
        let Some(fingerprint) = entry
            .file_name()
            .to_str()
            .and_then(EngineFingerprint::parse_hex)
        else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let files = match fs::read_dir(&dir) {
            Ok(files) => files,
            Err(err) => {
                listing.errors.push(scan_error(&dir, err));
                continue;
            }
        };
        for file in files.flatten() {
            let name = file.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if is_artifact_name(name) {
                listing.artifacts.push(ArtifactFile {
                    path: file.path(),
                    fingerprint,
                    len: metadata.len(),
                    modified,
                });
            } else if is_temp_name(name) {
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP_AGE {
                    listing.stale_temps.push(file.path());
                }
                listing.temps.push((file.path(), metadata.len()));
            }
        }
    }
    Ok(listing)
}

/// What a cache directory holds, per engine fingerprint (see [`disk_usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Artifact count and bytes per engine fingerprint.
    pub by_fingerprint: BTreeMap<EngineFingerprint, FingerprintUsage>,
    /// Temporary files (writes in progress or left by a crashed process).
    pub temp_files: u64,
    pub temp_bytes: u64,
}

impl DiskUsage {
    pub fn artifacts(&self) -> u64 {
        self.by_fingerprint.values().map(|u| u.artifacts).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.by_fingerprint.values().map(|u| u.bytes).sum()
    }
}

/// Artifacts of one engine fingerprint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FingerprintUsage {
    pub artifacts: u64,
    pub bytes: u64,
    /// The CPU baseline the first readable artifact's header names (`None` when none
    /// could be read).
    pub cpu_baseline: Option<CpuBaseline>,
}

impl PartialOrd for EngineFingerprint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EngineFingerprint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// Counts the artifacts in a cache directory without loading any.
///
/// # Errors
/// [`DiskError::Scan`] when the directory cannot be listed.
pub fn disk_usage(dir: &Path) -> Result<DiskUsage, DiskError> {
    let listing = scan(dir)?;
    let mut usage = DiskUsage::default();
    for artifact in &listing.artifacts {
        let entry = usage
            .by_fingerprint
            .entry(artifact.fingerprint)
            .or_default();
        entry.artifacts += 1;
        entry.bytes += artifact.len;
        if entry.cpu_baseline.is_none() {
            entry.cpu_baseline = peek_cpu(&artifact.path);
        }
    }
    usage.temp_files = listing.temps.len() as u64;
    usage.temp_bytes = listing.temps.iter().map(|(_, len)| len).sum();
    Ok(usage)
}

/// What [`clear_disk_cache`] removed, and what it could not.
#[derive(Debug, Default)]
pub struct ClearReport {
    pub removed_files: u64,
    pub removed_bytes: u64,
    pub errors: Vec<DiskError>,
}

/// Deletes every artifact and temporary file of this cache's layout in
/// `dir`, and the fingerprint directories left empty. Other files are kept.
/// A directory that does not exist is already clear.
pub fn clear_disk_cache(dir: &Path) -> ClearReport {
    let mut report = ClearReport::default();
    let listing = match scan(dir) {
        Ok(listing) => listing,
        Err(DiskError::Scan { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return report;
        }
        Err(err) => {
            report.errors.push(err);
            return report;
        }
    };
    report.errors.extend(listing.errors);
    let mut dirs = HashSet::new();
    let files = listing
        .artifacts
        .iter()
        .map(|a| (a.path.clone(), a.len))
        .chain(listing.temps.iter().cloned());
    for (path, len) in files {
        if let Some(parent) = path.parent() {
            dirs.insert(parent.to_owned());
        }
        match remove_file(&path) {
            Ok(()) => {
                report.removed_files += 1;
                report.removed_bytes += len;
            }
            Err(err) => report.errors.push(err),
        }
    }
    for dir in dirs {
        // Only succeeds when empty; a directory holding other files stays.
        let _ = fs::remove_dir(dir);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey::with_fingerprint(EngineFingerprint::from_bytes([7; 16]), b"module")
    }

    fn file(key: &CacheKey, artifact: &[u8]) -> Vec<u8> {
        let mut file = encode_header(
            key,
            Duration::from_millis(5),
            artifact,
            CpuBaseline::X86_64V3,
        )
        .to_vec();
        file.extend_from_slice(artifact);
        file
    }

    #[test]
    fn a_well_formed_file_verifies() {
        let key = key();
        let verified = verify(file(&key, b"artifact"), &key).unwrap();
        assert_eq!(verified.artifact(), b"artifact");
        assert_eq!(verified.compile_time, Duration::from_millis(5));
        assert_eq!(verified.cpu, Some(CpuBaseline::X86_64V3));
    }

    #[test]
    fn every_defect_is_named() {
        let key = key();
        let good = file(&key, b"artifact bytes");

        let truncated = good[..good.len() - 3].to_vec();
        assert!(matches!(
            verify(truncated, &key),
            Err(ArtifactDefect::Truncated { .. })
        ));
        assert!(matches!(
            verify(good[..40].to_vec(), &key),
            Err(ArtifactDefect::Truncated { .. })
        ));
        assert!(matches!(
            verify(Vec::new(), &key),
            Err(ArtifactDefect::Truncated { .. })
        ));

        let mut corrupted = good.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 1;
        assert_eq!(
            verify(corrupted, &key).err(),
            Some(ArtifactDefect::ChecksumMismatch)
        );

        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            verify(longer, &key),
            Err(ArtifactDefect::LengthMismatch { .. })
        ));

        let mut magic = good.clone();
        magic[0] = b'X';
        assert_eq!(
            verify(magic, &key).err(),
            Some(ArtifactDefect::NotAnArtifact)
        );

        let mut old =
            encode_header_with_version(&key, Duration::ZERO, b"a", CpuBaseline::Native, 0).to_vec();
        old.push(b'a');
        assert_eq!(
            verify(old, &key).err(),
            Some(ArtifactDefect::FormatVersion { found: 0 })
        );

        let other_engine =
            CacheKey::with_fingerprint(EngineFingerprint::from_bytes([8; 16]), b"module");
        assert!(matches!(
            verify(good.clone(), &other_engine),
            Err(ArtifactDefect::ForeignFingerprint { .. })
        ));

        let other_module =
            CacheKey::with_fingerprint(EngineFingerprint::from_bytes([7; 16]), b"other");
        assert_eq!(
            verify(good, &other_module).err(),
            Some(ArtifactDefect::ForeignModule)
        );
    }

    #[test]
    fn names_of_the_layout() {
        assert!(is_artifact_name(&format!("{}.cwasm", "ab".repeat(32))));
        assert!(!is_artifact_name("notes.cwasm"));
        assert!(is_temp_name(".abc.cwasm.tmp"));
        assert!(!is_temp_name("abc.cwasm.tmp"));
    }
}
