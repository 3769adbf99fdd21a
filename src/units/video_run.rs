//! The run of one `video_processing` job: probe the input, pick the encoder, encode the whole
//! video or segment by segment (a checkpoint after each finished segment), join the parts
//! and move the result into place. Every temporary lives in one hidden directory beside the
//! output, named after the task; it is removed when the run ends, however it ends.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::artifact::{
    describe_io, describe_tool_failure, kill_leftover, publish_blocking, remove_dir, temp_beside,
};
use super::command::{exit_message, run_process, Ended, Output};
use super::ffmpeg::{self, Encoding};
use super::stepper::Halt;
use super::video::Spec;
use super::{Control, JobContext, Outcome, Report};
use crate::domain::LogLevel;

/// Where a segmented run stands: the plan it follows and the parts finished (with their
/// sizes, so a resumed run can tell its parts are intact).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(default)]
    pub segment_secs: f64,
    #[serde(default)]
    pub segments: usize,
    #[serde(default)]
    pub segments_done: usize,
    #[serde(default)]
    pub part_bytes: Vec<u64>,
    /// The ffmpeg running when this was written, so the successor of a crashed server can
    /// stop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
}

/// ffmpeg error lines logged per run (a damaged input can produce thousands).
const MAX_LOGGED_LINES: usize = 50;

/// What the encoding needs to know about its files.
struct Files {
    input: PathBuf,
    output: PathBuf,
    /// The directory of temporaries.
    dir: PathBuf,
    ext: String,
    /// Makes this run's temporary names its own (a leftover ffmpeg may still write to
    /// those of a crashed run).
    nonce: String,
}

impl Files {
    fn part(&self, i: usize) -> PathBuf {
        self.dir.join(format!("part_{i:05}.{}", self.ext))
    }
    fn temp(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{name}.tmp-{}.{}", self.nonce, self.ext))
    }
}

fn halt_io(what: &Path, e: std::io::Error) -> Halt {
    Halt::Failed(format!("{}: {}", what.display(), describe_io(&e)))
}

/// A fresh, empty directory of temporaries.
fn reset_dir(dir: &Path) -> Result<(), Halt> {
    remove_dir(dir);
    std::fs::create_dir_all(dir).map_err(|e| halt_io(dir, e))
}

/// What one ffmpeg run is doing, for its progress reports.
struct Span<'a> {
    /// Where the run's output starts in the whole video, in seconds.
    offset: f64,
    /// The whole video's length, when known.
    duration: Option<f64>,
    stage: &'static str,
    message: String,
    /// The checkpoint to store (with the pid) once ffmpeg has started.
    checkpoint: &'a Checkpoint,
}

/// Runs one ffmpeg under the job's control (pause = SIGSTOP, cancel = SIGTERM/SIGKILL).
async fn run_ffmpeg(ctx: &mut JobContext, args: Vec<OsString>, span: Span<'_>) -> Result<(), Halt> {
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(args);
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut logged = 0usize;
    let ended = run_process(cmd, "ffmpeg", ctx, |ctx, out| match out {
        Output::Spawned(pid) => {
            let mut cp = span.checkpoint.clone();
            cp.pid = Some(u64::from(pid));
            ctx.checkpoint(serde_json::to_value(cp).unwrap_or(Value::Null));
        }
        Output::Out(line) => {
            if let (Some(t), Some(d)) = (ffmpeg::progress_secs(&line), span.duration) {
                ctx.report(Report::Progress {
                    progress: Some(((span.offset + t) / d * 100.0).clamp(0.0, 99.5)),
                    stage: Some(span.stage.into()),
                    message: Some(span.message.clone()),
                    checkpoint: None,
                });
            }
        }
        Output::Err(line) => {
            logged += 1;
            if logged <= MAX_LOGGED_LINES {
                ctx.log(LogLevel::Warning, line.clone());
            } else if logged == MAX_LOGGED_LINES + 1 {
                ctx.log(
                    LogLevel::Warning,
                    "ffmpeg keeps complaining; further lines are not logged",
                );
            }
            tail.push_back(line);
            if tail.len() > 4 {
                tail.pop_front();
            }
        }
    })
    .await;
    match ended {
        Ended::Exited(s) if s.success() => Ok(()),
        Ended::Exited(s) => Err(Halt::Failed(describe_tool_failure(
            "ffmpeg",
            &exit_message(s),
            &Vec::from(tail).join("; "),
        ))),
        Ended::Cancelled => Err(Halt::Cancelled),
        Ended::Failed(e) => Err(Halt::Failed(e)),
    }
}

/// The previous run's parts, when they are all on disk as the checkpoint describes them.
fn intact(cp: &Checkpoint, files: &Files, segment_secs: f64, segments: usize) -> bool {
    cp.segment_secs == segment_secs
        && cp.segments == segments
        && cp.segments_done <= segments
        && cp.part_bytes.len() >= cp.segments_done
        && (0..cp.segments_done)
            .all(|i| std::fs::metadata(files.part(i)).is_ok_and(|m| m.len() == cp.part_bytes[i]))
}

/// Encodes segment by segment from where `previous` stopped, then joins the parts.
async fn segmented(
    ctx: &mut JobContext,
    files: &Files,
    enc: &Encoding,
    duration: f64,
    segment_secs: f64,
    previous: Option<Checkpoint>,
) -> Result<(usize, usize), Halt> {
    let plan = ffmpeg::plan_segments(duration, segment_secs);
    let n = plan.len();
    let mut cp = match previous {
        Some(cp) if cp.segments_done > 0 && intact(&cp, files, segment_secs, n) => {
            ctx.log(
                LogLevel::Info,
                format!(
                    "resuming at segment {} of {n} from the checkpoint ({} finished segments kept)",
                    cp.segments_done + 1,
                    cp.segments_done
                ),
            );
            cp
        }
        other => {
            if other.is_some_and(|c| c.segments_done > 0) {
                ctx.log(
                    LogLevel::Warning,
                    "the checkpoint does not match the part files on disk; starting over",
                );
            }
            reset_dir(&files.dir)?;
            Checkpoint {
                segment_secs,
                segments: n,
                ..Checkpoint::default()
            }
        }
    };
    cp.pid = None;
    cp.part_bytes.truncate(cp.segments_done);
    let resumed_at = cp.segments_done;
    for (i, &(start, len)) in plan.iter().enumerate().skip(resumed_at) {
        if ctx.control() == Control::Pause {
            ctx.log(LogLevel::Info, format!("paused after segment {i} of {n}"));
        }
        ctx.safe_point().await.map_err(|_| Halt::Cancelled)?;
        let tmp = files.temp(&format!("part_{i:05}"));
        let args = ffmpeg::transcode_args(&files.input, &tmp, enc, (i > 0).then_some(start), len);
        let span = Span {
            offset: start,
            duration: Some(duration),
            stage: "transcoding",
            message: format!("segment {} of {n}", i + 1),
            checkpoint: &cp,
        };
        run_ffmpeg(ctx, args, span).await?;
        let part = files.part(i);
        std::fs::rename(&tmp, &part).map_err(|e| halt_io(&part, e))?;
        let bytes = std::fs::metadata(&part)
            .map_err(|e| halt_io(&part, e))?
            .len();
        cp.part_bytes.push(bytes);
        cp.segments_done = i + 1;
        let done_secs = len.map_or(duration, |l| (start + l).min(duration));
        let cp_json = serde_json::to_value(&cp).unwrap_or(Value::Null);
        ctx.progress_with_checkpoint((done_secs / duration * 100.0).clamp(0.0, 99.5), cp_json);
        ctx.log(LogLevel::Info, format!("segment {} of {n} finished", i + 1));
    }
    ctx.safe_point().await.map_err(|_| Halt::Cancelled)?;
    let names: Vec<String> = (0..n)
        .filter_map(|i| {
            files
                .part(i)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .collect();
    let list = files.dir.join("concat.txt");
    std::fs::write(&list, ffmpeg::concat_list(&names)).map_err(|e| halt_io(&list, e))?;
    let joined = files.temp("joined");
    ctx.report(Report::Progress {
        progress: None,
        stage: Some("joining".into()),
        message: Some(format!("joining {n} segments")),
        checkpoint: None,
    });
    let span = Span {
        offset: 0.0,
        duration: None,
        stage: "joining",
        message: format!("joining {n} segments"),
        checkpoint: &cp,
    };
    run_ffmpeg(ctx, ffmpeg::concat_args(&list, &joined), span).await?;
    publish_blocking(&joined, &files.output, None)
        .await
        .map_err(|e| halt_io(&files.output, e))?;
    Ok((n, resumed_at))
}

/// Encodes the whole video in one ffmpeg run.
async fn whole(
    ctx: &mut JobContext,
    files: &Files,
    enc: &Encoding,
    duration: Option<f64>,
) -> Result<(), Halt> {
    reset_dir(&files.dir)?;
    let tmp = files.temp("whole");
    let span = Span {
        offset: 0.0,
        duration,
        stage: "transcoding",
        message: "one pass".into(),
        checkpoint: &Checkpoint::default(),
    };
    run_ffmpeg(
        ctx,
        ffmpeg::transcode_args(&files.input, &tmp, enc, None, None),
        span,
    )
    .await?;
    publish_blocking(&tmp, &files.output, None)
        .await
        .map_err(|e| halt_io(&files.output, e))
}

pub(crate) async fn run_job(
    spec: Spec,
    input: PathBuf,
    output: PathBuf,
    checkpoint: Option<Value>,
    mut ctx: JobContext,
) -> Outcome {
    let started = Instant::now();
    let dir = temp_beside(&output, ctx.task_id, "steward-video");
    let previous: Option<Checkpoint> = checkpoint.and_then(|c| serde_json::from_value(c).ok());
    if let Some(pid) = previous.as_ref().and_then(|c| c.pid) {
        if kill_leftover(pid, &dir) {
            ctx.log(
                LogLevel::Warning,
                format!("stopped ffmpeg (pid {pid}) left running by the previous run"),
            );
        }
    }
    let result = async {
        let probe = ffmpeg::probe(&input).await.map_err(Halt::Failed)?;
        if !probe.has_video {
            return Err(Halt::Failed(format!("{} has no video stream", input.display())));
        }
        let encoder = ffmpeg::pick_encoder(spec.codec, &spec.codec_name)
            .await
            .map_err(Halt::Failed)?;
        let enc = Encoding {
            encoder: encoder.clone(),
            bitrate: spec.bitrate.clone(),
            resolution: spec.resolution,
            read_rate: spec.read_rate,
        };
        let files = Files {
            input: input.clone(),
            output: output.clone(),
            dir: dir.clone(),
            ext: output
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_else(|| "mp4".into()),
            nonce: format!("{:08x}", rand::random::<u32>()),
        };
        let segments = match (spec.checkpoint, probe.duration, encoder.as_str()) {
            (true, Some(d), e) if e != "copy" => {
                Some(segmented(&mut ctx, &files, &enc, d, spec.segment_secs, previous).await?)
            }
            (checkpoint, duration, _) => {
                if checkpoint {
                    ctx.log(
                        LogLevel::Warning,
                        if duration.is_none() {
                            "the input's duration is unknown, so it is encoded in one pass without checkpoints"
                        } else {
                            "codec copy runs in one pass without checkpoints"
                        },
                    );
                }
                whole(&mut ctx, &files, &enc, probe.duration).await?;
                None
            }
        };
        Ok((probe, encoder, segments))
    }
    .await;
    remove_dir(&dir);
    match result {
        Ok((probe, encoder, segments)) => {
            let bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
            Outcome::Success(Some(json!({
                "output": output.display().to_string(),
                "bytes": bytes,
                "codec": spec.codec_name,
                "encoder": encoder,
                "duration_secs": probe.duration,
                "segments": segments.map(|(n, _)| n),
                "resumed_from_segment": segments.map(|(_, r)| r),
                "elapsed_secs": started.elapsed().as_secs_f64(),
            })))
        }
        Err(Halt::Cancelled) => Outcome::Cancelled,
        Err(Halt::Failed(e)) => Outcome::Failed(e),
    }
}
