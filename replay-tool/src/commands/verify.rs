//! `orderlog verify DIR`: every check the store makes on open, and more, reporting every
//! finding rather than the first. Read-only. Exit 1 if anything is corrupt.
//!
//! - the log: `orderlog_wal::verify_log` (segment headers, checkpoints, every frame's
//!   length, padding and chained CRC, LSN continuity, sealing, durable ends);
//! - the snapshots: the manifest's header, CRC and meaning, and every listed file's size
//!   and CRC-32;
//! - the store: the log continues the newest snapshot, and (unless `--no-fold`) every
//!   logged batch after it decodes and applies, as recovery would replay it.

use std::path::{Path, PathBuf};

use orderlog_snapshot::{SnapshotError, SnapshotStore};
use orderlog_store::{FoldTarget, OfflineStore, RecoveryMode, StoreError};
use orderlog_wal::{Severity, verify_log};
use serde_json::{Value, json};

use crate::DirArg;
use crate::error::{CliError, Result};
use crate::layout::{existing_store, live_writer, snapshot_dir, wal_dir};
use crate::output::{Out, thousands};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// One JSON object with the verdict and every finding, instead of text.
    #[arg(long)]
    pub json: bool,
    /// Skip decoding and applying the logged batches after the newest snapshot.
    #[arg(long)]
    pub no_fold: bool,
}

/// One finding, in the tool's terms.
struct Finding {
    severity: Severity,
    file: PathBuf,
    offset: u64,
    what: String,
}

impl Finding {
    fn corruption(file: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Finding {
        Finding { severity: Severity::Corruption, file: file.into(), offset, what: what.into() }
    }

    fn json(&self) -> Value {
        json!({
            "severity": self.severity.as_str(),
            "file": self.file.display().to_string(),
            "offset": self.offset,
            "what": self.what,
        })
    }
}

/// What the snapshot checks found.
struct SnapshotCheck {
    listed: Vec<Value>,
    newest_valid: Option<u64>,
}

fn check_snapshots(dir: &Path, findings: &mut Vec<Finding>) -> Result<SnapshotCheck> {
    let store = SnapshotStore::open_read_only(snapshot_dir(dir));
    let mut check = SnapshotCheck { listed: Vec::new(), newest_valid: None };
    let listed = match store.list() {
        Ok(listed) => listed,
        Err(SnapshotError::ManifestCorrupt { path, offset, detail }) => {
            findings.push(Finding::corruption(path, offset, format!("manifest: {detail}")));
            return Ok(check);
        }
        Err(SnapshotError::UnsupportedVersion { .. }) => {
            let path = snapshot_dir(dir).join("MANIFEST");
            findings.push(Finding::corruption(path, 0, "manifest of an unsupported version"));
            return Ok(check);
        }
        Err(e) => return Err(e.into()),
    };
    for info in &listed {
        let problem = match store.verify(info) {
            Ok(()) => None,
            Err(SnapshotError::FileCorrupt { path, offset, detail }) => {
                Some((path, offset, detail))
            }
            Err(SnapshotError::Io { path, source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Some((path, 0, "file listed in the manifest is missing".to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let ok = problem.is_none();
        if let Some((path, offset, detail)) = problem {
            let what = format!("snapshot at LSN {}: {detail}", info.lsn);
            findings.push(Finding::corruption(path, offset, what));
        } else if check.newest_valid.is_none() {
            check.newest_valid = Some(info.lsn);
        }
        check.listed.push(json!({
            "lsn": info.lsn, "rows": info.rows, "files": info.files.len(),
            "bytes": info.total_bytes(), "ok": ok,
        }));
    }
    Ok(check)
}

/// The log continues the newest valid snapshot, and the batches after it replay.
fn check_store(
    dir: &Path,
    newest: Option<u64>,
    fold: bool,
    findings: &mut Vec<Finding>,
) -> Result<Option<u64>> {
    let offline = match OfflineStore::open(dir, RecoveryMode::TolerateTornTail) {
        Ok(o) => o,
        // The log's own findings already say why it does not open.
        Err(StoreError::Wal(e)) if e.is_corruption() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (first, last) = (offline.log().first_lsn(), offline.log().last_lsn());
    let snapshot_lsn = newest.unwrap_or(0);
    if first > snapshot_lsn + 1 || last < snapshot_lsn {
        let what = if newest.is_some() {
            format!(
                "the log (LSNs {first}..={last}) does not continue the newest valid snapshot at LSN {snapshot_lsn}: the store cannot open"
            )
        } else {
            format!(
                "the log starts at LSN {first} but no valid snapshot covers LSNs 1..{first}: the store cannot open"
            )
        };
        findings.push(Finding::corruption(wal_dir(dir), 0, what));
        return Ok(None);
    }
    if !fold {
        return Ok(None);
    }
    match offline.fold_until(FoldTarget::Lsn(last.max(snapshot_lsn))) {
        Ok((state, _)) => Ok(Some(state.len() as u64)),
        Err(e @ (StoreError::Decode { .. } | StoreError::Replay { .. })) => {
            findings.push(Finding::corruption(wal_dir(dir), 0, e.to_string()));
            Ok(None)
        }
        // Damaged snapshots are findings already.
        Err(StoreError::Snapshot(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Runs `verify`.
pub fn run(args: &Args) -> Result<()> {
    // A backup's URL: its objects, not a directory.
    let arg = args.dir.dir.to_string_lossy();
    if arg.starts_with("s3://") || arg.starts_with("file://") {
        return crate::commands::backup::run_verify(&arg, args.json);
    }
    let dir = existing_store(&args.dir.dir)?;
    let log = verify_log(wal_dir(&dir))?;
    let mut findings: Vec<Finding> = log
        .findings
        .iter()
        .map(|f| Finding {
            severity: f.severity,
            file: f.file.clone(),
            offset: f.offset,
            what: f.kind.to_string(),
        })
        .collect();
    let snapshots = check_snapshots(&dir, &mut findings)?;
    let log_clean = !log.is_corrupt();
    let orders = if log_clean {
        check_store(&dir, snapshots.newest_valid, !args.no_fold, &mut findings)?
    } else {
        None
    };
    let corrupt =
        findings.iter().any(|f| f.severity == Severity::Corruption) || log.findings_omitted > 0;
    let live = live_writer(&dir);
    let mut out = Out::new();
    if args.json {
        out.json(&json!({
            "ok": !corrupt,
            "dir": dir.display().to_string(),
            "live_writer_pid": live.flatten(),
            "log": { "segments": log.segments, "frames": log.frames },
            "snapshots": snapshots.listed,
            "orders": orders,
            "findings": findings.iter().map(Finding::json).collect::<Vec<_>>(),
            "findings_omitted": log.findings_omitted,
        }))?;
    } else {
        if let Some(pid) = live {
            let who = pid.map(|p| format!(" (process {p})")).unwrap_or_default();
            out.line(format!(
                "note: a live store holds {}{who}; its unfinished tail may show as torn",
                dir.display()
            ))?;
        }
        for f in &findings {
            out.line(format!(
                "{}: {} at offset {}: {}",
                f.severity.as_str(),
                f.file.display(),
                f.offset,
                f.what
            ))?;
        }
        if log.findings_omitted > 0 {
            out.line(format!("... and {} more findings", log.findings_omitted))?;
        }
        let summary = format!(
            "{} segments, {} frames, {} snapshots{}",
            log.segments,
            thousands(log.frames),
            snapshots.listed.len(),
            orders.map(|n| format!(", {} orders after replay", thousands(n))).unwrap_or_default()
        );
        let verdict = if corrupt { "DAMAGED" } else { "OK" };
        out.line(format!("verdict: {verdict} ({summary})"))?;
    }
    if corrupt {
        let n = findings.iter().filter(|f| f.severity == Severity::Corruption).count();
        return Err(CliError::Verdict(format!(
            "{} is damaged: {n} corruption findings",
            dir.display()
        )));
    }
    Ok(())
}
