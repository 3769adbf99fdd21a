//! The run of one `database_backup` job, whatever the database: make the copy in a hidden
//! temporary (SQLite or PostgreSQL, see their modules), gzip or hash it, verify it when
//! asked, then move it into place with its `.sha256` file. A cancelled or failed run removes
//! every temporary and leaves any earlier backup at the output path untouched. A backup cannot
//! continue a copy an earlier (crashed) run left, so a recovered run starts over.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::artifact::{
    checksum_path, describe_io, gunzip_file, gzip_file, hash_file, kill_leftover, publish_blocking,
    remove_files, temp_beside,
};
use super::db_backup::{DbKind, Spec};
use super::stepper::{drive, Halt, Step};
use super::{db_postgres, db_sqlite, JobContext, Outcome};
use crate::domain::LogLevel;

/// The hidden temporaries of one backup, beside the output.
pub(crate) struct Temps {
    /// What every temporary's path starts with (to recognise a leftover tool's command line).
    pub marker: PathBuf,
    /// The copy as the database tool wrote it.
    pub raw: PathBuf,
    /// The gzipped copy.
    pub part: PathBuf,
    /// A decompressed copy to verify.
    pub verify: PathBuf,
    /// PostgreSQL: the schema-only archive listing the tables.
    pub listing: PathBuf,
}

impl Temps {
    fn new(output: &Path, ctx: &JobContext) -> Self {
        let t = |s: &str| temp_beside(output, ctx.task_id, s);
        Temps {
            marker: t(""),
            raw: t("steward-raw"),
            part: t("steward-part"),
            verify: t("steward-verify"),
            listing: t("steward-listing"),
        }
    }

    fn all(&self) -> Vec<PathBuf> {
        vec![
            self.raw.clone(),
            self.part.clone(),
            self.verify.clone(),
            self.listing.clone(),
        ]
    }
}

/// `lo..hi` percent of the job, `done` of `total` of the way.
pub(crate) fn scaled(lo: f64, hi: f64, done: u64, total: u64) -> f64 {
    if total == 0 {
        lo
    } else {
        lo + (hi - lo) * (done.min(total) as f64 / total as f64)
    }
}

fn stopped() -> String {
    "stopped".into()
}

/// Gzips or hashes the raw copy; returns the file to publish, its SHA-256 and length.
async fn seal(
    ctx: &mut JobContext,
    spec: &Spec,
    temps: &Temps,
) -> Result<(PathBuf, String, u64), Halt> {
    let (raw, part, compress) = (temps.raw.clone(), temps.part.clone(), spec.compression);
    let work = move |s: &super::stepper::Stepper| {
        let stage = if compress {
            "compressing"
        } else {
            "checksumming"
        };
        let step = |done, total| s.step(Step { stage, done, total }).is_ok();
        let what = |p: &Path, e: std::io::Error| format!("{}: {}", p.display(), describe_io(&e));
        if compress {
            let (hex, len) = gzip_file(&raw, &part, step)
                .map_err(|e| what(&part, e))?
                .ok_or_else(stopped)?;
            let _ = std::fs::remove_file(&raw);
            Ok((part, hex, len))
        } else {
            let (hex, len) = hash_file(&raw, step)
                .map_err(|e| what(&raw, e))?
                .ok_or_else(stopped)?;
            Ok((raw, hex, len))
        }
    };
    drive(ctx, "steward-backup-seal", work, |st| {
        scaled(80.0, 90.0, st.done, st.total)
    })
    .await
}

/// Checks the sealed file against its checksum, then that the database tool can read it.
async fn verify(
    ctx: &mut JobContext,
    spec: &Spec,
    temps: &Temps,
    sealed: &Path,
    sha256: &str,
) -> Result<Map<String, Value>, Halt> {
    let (file, verify_copy, expected) = (
        sealed.to_path_buf(),
        temps.verify.clone(),
        sha256.to_string(),
    );
    let compressed = spec.compression;
    let work = move |s: &super::stepper::Stepper| {
        let step = |done, total| {
            s.step(Step {
                stage: "verifying",
                done,
                total,
            })
            .is_ok()
        };
        let (hex, _) = hash_file(&file, step)
            .map_err(|e| format!("{}: {}", file.display(), describe_io(&e)))?
            .ok_or_else(stopped)?;
        if hex != expected {
            return Err(format!("verification failed: {} changed on disk while it was written (SHA-256 {hex}, expected {expected})", file.display()));
        }
        if compressed {
            gunzip_file(&file, &verify_copy).map_err(|e| {
                format!(
                    "verification failed: cannot decompress {}: {}",
                    file.display(),
                    describe_io(&e)
                )
            })?;
            Ok(verify_copy)
        } else {
            Ok(file)
        }
    };
    let plain = drive(ctx, "steward-backup-verify", work, |st| {
        scaled(90.0, 97.0, st.done, st.total)
    })
    .await?;
    let facts = match spec.kind {
        DbKind::Sqlite => tokio::task::spawn_blocking(move || db_sqlite::integrity_check(&plain))
            .await
            .map_err(|e| Halt::Failed(format!("the verification worker failed: {e}")))?
            .map_err(Halt::Failed)?,
        DbKind::Postgres => db_postgres::restore_list(ctx, &plain).await?,
    };
    remove_files(std::slice::from_ref(&temps.verify));
    Ok(facts)
}

pub(crate) async fn run_job(
    spec: Spec,
    database: Option<PathBuf>,
    output: PathBuf,
    checkpoint: Option<Value>,
    mut ctx: JobContext,
) -> Outcome {
    let started = Instant::now();
    let temps = Temps::new(&output, &ctx);
    if let Some(pid) = checkpoint.as_ref().and_then(|c| c["pid"].as_u64()) {
        if kill_leftover(pid, &temps.marker) {
            ctx.log(
                LogLevel::Warning,
                format!("stopped the backup tool (pid {pid}) left running by the previous run"),
            );
        }
    }
    remove_files(&temps.all());
    if checkpoint.is_some() {
        ctx.log(
            LogLevel::Info,
            "starting the backup over: a backup cannot continue a copy an earlier run left",
        );
    }
    let result = async {
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Halt::Failed(format!("{}: {}", dir.display(), describe_io(&e))))?;
        }
        let mut facts = match (spec.kind, &database) {
            (DbKind::Sqlite, Some(db)) => {
                db_sqlite::backup(&mut ctx, &spec, db, &temps.raw).await?
            }
            (DbKind::Sqlite, None) => return Err(Halt::Failed("database: is required".into())),
            (DbKind::Postgres, _) => db_postgres::dump(&mut ctx, &spec, &temps).await?,
        };
        ctx.safe_point().await.map_err(|_| Halt::Cancelled)?;
        let (sealed, sha256, bytes) = seal(&mut ctx, &spec, &temps).await?;
        if spec.verify {
            facts.extend(verify(&mut ctx, &spec, &temps, &sealed, &sha256).await?);
        }
        ctx.safe_point().await.map_err(|_| Halt::Cancelled)?;
        publish_blocking(&sealed, &output, Some(&sha256))
            .await
            .map_err(|e| Halt::Failed(format!("{}: {}", output.display(), describe_io(&e))))?;
        Ok((facts, sha256, bytes))
    }
    .await;
    remove_files(&temps.all());
    match result {
        Ok((facts, sha256, bytes)) => {
            let mut r = json!({
                "dbType": spec.kind.as_str(),
                "database": database.map(|d| d.display().to_string()).or(spec.pg.database.clone()),
                "backupType": "full",
                "output": output.display().to_string(),
                "checksum_file": checksum_path(&output).display().to_string(),
                "bytes": bytes,
                "sha256": sha256,
                "compressed": spec.compression,
                "verified": spec.verify,
                "elapsed_secs": started.elapsed().as_secs_f64(),
            });
            if let Some(obj) = r.as_object_mut() {
                obj.extend(facts);
            }
            Outcome::Success(Some(r))
        }
        Err(Halt::Cancelled) => Outcome::Cancelled,
        Err(Halt::Failed(e)) => Outcome::Failed(e),
    }
}
