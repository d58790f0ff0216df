//! Files alerting keeps in the data directory:
//! - `alerts/state.json`: every rule's instances (`group/alert` → instances), so that
//!   pending and firing alerts keep their `active_at` across a restart and resolved
//!   ones are still notified;
//! - `alerts/api_rules.yml`: the groups created through the admin API.
//!
//! Both are written to a temporary file, synced, then renamed over the old one, so a
//! crash leaves either the old or the new file, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AlertError;
use super::rule::RuleFile;
use super::state::RuleState;

/// Version of the state file's format.
pub const STATE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    rules: BTreeMap<String, RuleState>,
}

/// The state file in `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The API rules file in `dir`.
pub fn api_rules_path(dir: &Path) -> PathBuf {
    dir.join("api_rules.yml")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AlertError + '_ {
    move |source| AlertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the saved states; a missing file is no state. A file of an unknown version
/// or damaged is an error (the caller decides to start empty and says so).
pub fn load_state(dir: &Path) -> Result<BTreeMap<String, RuleState>, AlertError> {
    let path = state_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let file: StateFile = serde_json::from_str(&text)
        .map_err(|e| AlertError::Parse(format!("{}: {e}", path.display())))?;
    if file.version != STATE_VERSION {
        return Err(AlertError::Parse(format!(
            "{}: state file version {} (this build reads {STATE_VERSION})",
            path.display(),
            file.version
        )));
    }
    Ok(file.rules)
}

/// Writes the states atomically.
pub fn save_state(dir: &Path, rules: BTreeMap<String, RuleState>) -> Result<(), AlertError> {
    let text = serde_json::to_string(&StateFile {
        version: STATE_VERSION,
        rules,
    })
    .map_err(|e| AlertError::Parse(e.to_string()))?;
    write_atomic(&state_path(dir), text.as_bytes())
}

/// Reads the groups created through the API; a missing file is none.
pub fn load_api_rules(dir: &Path) -> Result<RuleFile, AlertError> {
    let path = api_rules_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(t) => RuleFile::parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RuleFile::default()),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Writes the groups created through the API atomically.
pub fn save_api_rules(dir: &Path, file: &RuleFile) -> Result<(), AlertError> {
    let text = serde_yaml_ng::to_string(file).map_err(|e| AlertError::Parse(e.to_string()))?;
    write_atomic(&api_rules_path(dir), text.as_bytes())
}

/// tmp + fsync + rename + fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AlertError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    // The rename is durable once the directory is.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::state::Labels;

    #[test]
    fn state_round_trips_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_state(dir.path()).unwrap().is_empty());
        let mut s = RuleState::default();
        s.step(
            vec![(Labels::from([("h".into(), "a".into())]), 1.0)],
            5,
            0,
            0,
        );
        let rules = BTreeMap::from([("g/A".to_string(), s)]);
        save_state(dir.path(), rules.clone()).unwrap();
        assert_eq!(load_state(dir.path()).unwrap(), rules);
        std::fs::write(state_path(dir.path()), "{\"version\": 9, \"rules\": {}}").unwrap();
        assert!(
            load_state(dir.path())
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
        std::fs::write(state_path(dir.path()), "{").unwrap();
        assert!(load_state(dir.path()).is_err());
    }
}
