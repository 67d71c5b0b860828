//! Files and folders that hold patient data are private to the service's user, whatever the
//! umask (CONTRACT §7): folders the service creates are 0700; the SQLite database with its
//! `-wal` and `-shm` files, backups, exports and `.eml` files are 0600.
//!
//! The rule that keeps it simple: whatever the service creates on disk is created here, with
//! its mode given explicitly. The umask of 077 that `main` sets ([`private_umask`]) is the
//! second belt, for what a library creates on its own (SQLite's journals and temporary files);
//! tests and other library users keep their own umask, and the modes still hold.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the folders the service creates.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of the files the service writes.
pub const PRIVATE_FILE: u32 = 0o600;

/// Permission bits that let someone other than the owner in.
const GROUP_AND_OTHERS: u32 = 0o077;

/// Sets the process's umask to 077, so that no file or folder it creates, through this
/// module or not, is open to group or others. Called first thing by the `reprise` binary.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` and any missing parent with mode 0700. A folder that already exists is left
/// as it is: it may be the operator's (`/var/lib`, a home folder, `/tmp`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Opens `path` for writing as a private file: created with mode 0600, or, if it exists,
/// emptied and made 0600 before anything is written to it (an export replacing an older one
/// that was readable by others). Devices and pipes (`/dev/stdout`) keep their mode.
pub fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE)
        .open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_file() && metadata.permissions().mode() & GROUP_AND_OTHERS != 0 {
        file.set_permissions(Permissions::from_mode(PRIVATE_FILE))?;
    }
    Ok(file)
}

/// A temporary file in `dir`, mode 0600, to be renamed into place once whole (backups,
/// `.eml` files): the name it gets keeps the mode.
pub fn private_tempfile_in(dir: &Path, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(Permissions::from_mode(PRIVATE_FILE))
        .tempfile_in(dir)
}

/// A scratch folder of the service's own (0700) in `TMPDIR`, removed with all it holds when
/// dropped: an `.xlsx` export is made in one (its library's row file, the finished workbook).
pub fn private_scratch_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(Permissions::from_mode(PRIVATE_DIR))
        .tempdir()
}

/// A scratch file with no name in `dir` (`O_TMPFILE` on Linux: no other process ever sees it
/// in a folder), mode 0600, gone when dropped.
pub fn private_scratch_file_in(dir: &Path) -> io::Result<File> {
    let file = tempfile::tempfile_in(dir)?;
    // tempfile leaves an unnamed file to the umask (0644 under the usual 022).
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE))?;
    Ok(file)
}

/// Makes a SQLite database private before SQLite first opens it. Its folder is created 0700
/// if missing. A missing database file is created empty with mode 0600: SQLite takes an empty
/// file for a new database, and gives the `-wal` and `-shm` files it creates the database
/// file's mode. An existing database file, `-wal` or `-shm` that group or others may read is
/// made 0600, with a warning (a database made by an older version, or restored with `cp`).
pub fn prepare_sqlite_database(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)
            .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
    }
    for file in [
        path.to_path_buf(),
        beside(path, "-wal"),
        beside(path, "-shm"),
    ] {
        match tighten(&file) {
            Ok(None) => {}
            Ok(Some(was)) => tracing::warn!(
                file = %file.display(),
                was = format!("{was:o}"),
                "the database file was readable by other users: made private (0600)"
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Someone else's file (the command line run as another user): SQLite will say
            // whether it can be used; the data is no more exposed than it was.
            Err(e) => tracing::warn!(
                file = %file.display(),
                error = %e,
                "the database file is readable by other users and cannot be made private"
            ),
        }
    }
    Ok(())
}

/// Removes group and others' access to a regular file that has some: returns its old mode
/// bits, or `None` if it was private already.
fn tighten(path: &Path) -> io::Result<Option<u32>> {
    let metadata = std::fs::metadata(path)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if !metadata.is_file() || mode & GROUP_AND_OTHERS == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, Permissions::from_mode(PRIVATE_FILE))?;
    Ok(Some(mode))
}

/// `reprise.db` → `reprise.db-wal`: SQLite's names for its companion files.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_new_database_gets_a_private_folder_and_an_empty_private_file() {
        let root = tempfile::tempdir().expect("folder");
        let db = root.path().join("a/b/reprise.db");
        prepare_sqlite_database(&db).expect("prepared");
        assert_eq!(mode(&root.path().join("a")), PRIVATE_DIR);
        assert_eq!(mode(&root.path().join("a/b")), PRIVATE_DIR);
        assert_eq!(mode(&db), PRIVATE_FILE);
        assert_eq!(std::fs::metadata(&db).expect("file").len(), 0);
        // A second start changes nothing.
        prepare_sqlite_database(&db).expect("prepared again");
        assert_eq!(mode(&db), PRIVATE_FILE);
    }

    #[test]
    fn an_open_database_and_its_wal_are_tightened_and_nothing_else() {
        let root = tempfile::tempdir().expect("folder");
        std::fs::set_permissions(root.path(), Permissions::from_mode(0o755)).expect("chmod");
        let db = root.path().join("reprise.db");
        let other = root.path().join("notes.txt");
        for file in [&db, &beside(&db, "-wal"), &other] {
            std::fs::write(file, b"x").expect("written");
            std::fs::set_permissions(file, Permissions::from_mode(0o644)).expect("chmod");
        }
        prepare_sqlite_database(&db).expect("prepared");
        assert_eq!(mode(&db), PRIVATE_FILE);
        assert_eq!(mode(&beside(&db, "-wal")), PRIVATE_FILE);
        assert!(!beside(&db, "-shm").exists(), "nothing created beside it");
        assert_eq!(mode(&other), 0o644);
        // The folder existed: it is the operator's, left as it was.
        assert_eq!(mode(root.path()), 0o755);
    }

    #[test]
    fn scratch_folders_and_files_are_private_and_go_away() {
        let dir = private_scratch_dir("reprise-test-").expect("folder");
        let path = dir.path().to_path_buf();
        assert_eq!(mode(&path), PRIVATE_DIR);
        let file = private_scratch_file_in(&path).expect("created");
        let metadata = file.metadata().expect("metadata");
        assert_eq!(metadata.permissions().mode() & 0o7777, PRIVATE_FILE);
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(&metadata),
            0,
            "no name in any folder"
        );
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_private_file_replacing_a_readable_one_is_private_before_it_is_written() {
        let root = tempfile::tempdir().expect("folder");
        let out = root.path().join("list.csv");
        std::fs::write(&out, b"old content").expect("written");
        std::fs::set_permissions(&out, Permissions::from_mode(0o644)).expect("chmod");
        let file = create_private(&out).expect("opened");
        assert_eq!(mode(&out), PRIVATE_FILE);
        assert_eq!(file.metadata().expect("metadata").len(), 0, "emptied");
        let fresh = root.path().join("fresh.csv");
        drop(create_private(&fresh).expect("created"));
        assert_eq!(mode(&fresh), PRIVATE_FILE);
    }
}
