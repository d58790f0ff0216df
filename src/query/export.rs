//! Where `COPY ... TO` may write: a server's clients export to object storage or
//! under one local directory, never anywhere the process can write (its own data
//! directory, its configuration, the system's files).

use std::path::{Component, Path};

/// The location a `COPY ... TO url` writes to when local files must stay under
/// `root`: object store URLs (`s3://`, `gs://`, ...) as they are, a relative path
/// under `root`, an absolute path only when it lies inside `root`. A path with `..`
/// is refused: it could climb out. `root` should be absolute (the server makes it so).
pub fn confine(url: &str, root: &Path) -> Result<String, String> {
    let path = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => rest,
        Some((scheme, _)) if is_scheme(scheme) => return Ok(url.to_string()),
        _ => url,
    };
    let path = Path::new(path);
    let refuse = |why: &str| {
        Err(format!(
            "COPY TO '{url}': {why}; local exports go under {} (a relative path is \
             resolved there)",
            root.display()
        ))
    };
    if path.components().any(|c| c == Component::ParentDir) {
        return refuse("'..' is not allowed");
    }
    if path.as_os_str().is_empty() {
        return refuse("no file named");
    }
    if path.is_absolute() {
        if !path.starts_with(root) {
            return refuse("the path is outside the export directory");
        }
        return Ok(path.to_string_lossy().into_owned());
    }
    Ok(root.join(path).to_string_lossy().into_owned())
}

/// A URL scheme as RFC 3986 spells it (so that `C:` or a bare word is no scheme).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_stay_under_the_root() {
        let root = Path::new("/srv/ms/exports");
        let ok = |url: &str| confine(url, root).unwrap();
        assert_eq!(ok("cpu.parquet"), "/srv/ms/exports/cpu.parquet");
        assert_eq!(ok("day/1/cpu.csv"), "/srv/ms/exports/day/1/cpu.csv");
        assert_eq!(ok("./cpu.parquet"), "/srv/ms/exports/./cpu.parquet");
        assert_eq!(ok("/srv/ms/exports/a.parquet"), "/srv/ms/exports/a.parquet");
        assert_eq!(ok("file:///srv/ms/exports/a"), "/srv/ms/exports/a");
        assert_eq!(ok("file://b.parquet"), "/srv/ms/exports/b.parquet");
        assert_eq!(ok("s3://bucket/cpu.parquet"), "s3://bucket/cpu.parquet");
        assert_eq!(ok("GS://b/x"), "GS://b/x");
        for bad in [
            "/etc/passwd",
            "/srv/ms/exports-other/a",
            "/srv/ms/data/wal/1.wal",
            "../wal/1.wal",
            "a/../../x",
            "/srv/ms/exports/../cold/manifest",
            "file:///etc/x",
            "file://../x",
            "",
        ] {
            let err = confine(bad, root).unwrap_err();
            assert!(err.contains("/srv/ms/exports"), "{bad}: {err}");
        }
    }
}
