//! `video_processing` (seed 004 §2.3.2): transcodes `inputFile` into `outputFile` with ffmpeg
//! (`codec`, `bitrate`, `resolution`). Progress comes from ffmpeg's `-progress` output against
//! the duration ffprobe reports; pause stops the ffmpeg process (SIGSTOP) and resume continues
//! it (SIGCONT); cancel stops it and removes every partial file. With `enableCheckpoint` the
//! video is encoded in time segments, each checkpointed when finished, so a recovered run
//! starts at the first unfinished segment; the parts are joined without re-encoding at the
//! end. The type is unavailable where ffmpeg or ffprobe is missing. The run is in
//! [`super::video_run`].

use std::path::Path;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::artifact::require_tools;
use super::ffmpeg::{codec, codec_names, CodecInfo};
use super::fields::{self, bool_or, opt_num, opt_str, req_str};
use super::{opt_field, ConfigError, Job, JobContext, Outcome, TaskHandler, UnitEnv};

pub struct VideoProcessing;

/// Seconds per segment when `enableCheckpoint` is on and `segmentSecs` is not given.
const DEFAULT_SEGMENT_SECS: f64 = 30.0;
const MAX_DIMENSION: u32 = 16_384;
const TOOLS: &[&str] = &["ffmpeg", "ffprobe"];
const INSTALL_HINT: &str =
    "install ffmpeg (for example `apt-get install ffmpeg`) to run video_processing tasks";

/// A checked config.
pub(crate) struct Spec {
    pub input: String,
    pub output: String,
    /// The name the task gave (`h264`, …).
    pub codec_name: String,
    pub codec: &'static CodecInfo,
    pub bitrate: Option<String>,
    pub resolution: Option<(u32, u32)>,
    pub checkpoint: bool,
    pub segment_secs: f64,
    pub read_rate: Option<f64>,
}

/// `2000k`, `2.5M`, `800000` (bits per second).
fn bitrate_of(config: &Value) -> Result<Option<String>, ConfigError> {
    let bad = |v: &Value| {
        ConfigError::new(
            "bitrate",
            format!("must be bits per second like \"2000k\", \"2.5M\" or 800000, not {v}"),
        )
    };
    match opt_field(config, "bitrate") {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(b) if b > 0 => Ok(Some(b.to_string())),
            _ => Err(bad(&Value::Number(n.clone()))),
        },
        Some(v @ Value::String(s)) => {
            let s = s.trim();
            let digits = s.trim_end_matches(['k', 'K', 'm', 'M']);
            let suffixes = s.len() - digits.len();
            let number_ok = digits
                .parse::<f64>()
                .is_ok_and(|n| n > 0.0 && n.is_finite())
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
            if number_ok && suffixes <= 1 {
                Ok(Some(s.to_string()))
            } else {
                Err(bad(v))
            }
        }
        Some(v) => Err(bad(v)),
    }
}

/// `1920x1080`: even width and height, as most encoders need for 4:2:0 video.
fn resolution_of(config: &Value) -> Result<Option<(u32, u32)>, ConfigError> {
    let Some(raw) = opt_str(config, "resolution")? else {
        return Ok(None);
    };
    let parsed = raw
        .trim()
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h))
            if (2..=MAX_DIMENSION).contains(&w)
                && (2..=MAX_DIMENSION).contains(&h)
                && w % 2 == 0
                && h % 2 == 0 =>
        {
            Ok(Some((w, h)))
        }
        _ => Err(ConfigError::new(
            "resolution",
            format!("must be WIDTHxHEIGHT with even numbers up to {MAX_DIMENSION}, like \"1920x1080\", not \"{raw}\""),
        )),
    }
}

pub(crate) fn spec_of(config: &Value) -> Result<Spec, ConfigError> {
    fields::object(config)?;
    let input = req_str(config, "inputFile")?;
    let output = req_str(config, "outputFile")?;
    if Path::new(&output).extension().is_none() {
        return Err(ConfigError::new(
            "outputFile",
            "needs an extension naming the container (.mp4, .mkv, .webm, .mov …)",
        ));
    }
    let codec_name = opt_str(config, "codec")?.unwrap_or_else(|| "h264".into());
    let Some(info) = codec(&codec_name) else {
        return Err(ConfigError::new(
            "codec",
            format!(
                "unknown codec '{codec_name}' (known: {})",
                codec_names().join(", ")
            ),
        ));
    };
    let bitrate = bitrate_of(config)?;
    let resolution = resolution_of(config)?;
    if info.encoders == ["copy"] && (bitrate.is_some() || resolution.is_some()) {
        return Err(ConfigError::new(
            "codec",
            "'copy' keeps the streams as they are, so bitrate and resolution cannot apply",
        ));
    }
    Ok(Spec {
        input,
        output,
        codec_name,
        codec: info,
        bitrate,
        resolution,
        checkpoint: bool_or(config, "enableCheckpoint", false)?,
        segment_secs: opt_num(config, "segmentSecs", 1.0, 3600.0)?.unwrap_or(DEFAULT_SEGMENT_SECS),
        read_rate: opt_num(config, "readRate", 0.1, 100.0)?,
    })
}

impl TaskHandler for VideoProcessing {
    fn task_type(&self) -> &str {
        "video_processing"
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["inputFile", "outputFile"],
            "properties": {
                "inputFile": {"type": "string", "description": "a video under the data roots"},
                "outputFile": {"type": "string", "description": "under the data roots; its extension picks the container"},
                "codec": {"enum": codec_names(), "default": "h264", "description": "video codec; audio gets the container's default codec; copy remuxes"},
                "bitrate": {"type": ["string", "integer"], "description": "video bitrate, like \"2000k\" or \"2.5M\""},
                "resolution": {"type": "string", "pattern": "^[0-9]+x[0-9]+$", "description": "WIDTHxHEIGHT, even numbers; default: the input's"},
                "enableCheckpoint": {"type": "boolean", "default": false, "description": "encode in time segments, each checkpointed, so a recovered run resumes at the first unfinished one"},
                "segmentSecs": {"type": "number", "minimum": 1, "maximum": 3600, "default": DEFAULT_SEGMENT_SECS, "description": "segment length with enableCheckpoint"},
                "readRate": {"type": "number", "minimum": 0.1, "maximum": 100, "description": "ffmpeg -readrate: read the input at most this many times real time (throttles CPU and disk use)"}
            }
        })
    }

    fn validate(&self, config: &Value, env: &UnitEnv) -> Result<(), ConfigError> {
        let spec = spec_of(config)?;
        let input = env
            .path(&spec.input)
            .map_err(|m| ConfigError::new("inputFile", m))?;
        let output = env
            .path(&spec.output)
            .map_err(|m| ConfigError::new("outputFile", m))?;
        if input == output {
            return Err(ConfigError::new("outputFile", "must differ from inputFile"));
        }
        Ok(())
    }

    fn availability(&self) -> Result<(), String> {
        require_tools(TOOLS, INSTALL_HINT)
    }

    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        async move {
            let spec = match spec_of(&job.config) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("{}: {}", e.field, e.message)),
            };
            if let Err(e) = require_tools(TOOLS, INSTALL_HINT) {
                return Outcome::Failed(e);
            }
            let paths = (ctx.env.path(&spec.input), ctx.env.path(&spec.output));
            let (input, output) = match paths {
                (Ok(i), Ok(o)) => (i, o),
                (Err(e), _) => return Outcome::Failed(format!("inputFile: {e}")),
                (_, Err(e)) => return Outcome::Failed(format!("outputFile: {e}")),
            };
            super::video_run::run_job(spec, input, output, job.checkpoint, ctx).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked_field_by_field() {
        let ok = json!({"inputFile": "a.mp4", "outputFile": "b.mp4", "codec": "h264",
            "bitrate": "2000k", "resolution": "1920x1080", "enableCheckpoint": true});
        let spec = spec_of(&ok).unwrap();
        assert_eq!(spec.resolution, Some((1920, 1080)));
        assert_eq!(spec.bitrate.as_deref(), Some("2000k"));
        let field_of = |mut v: Value, k: &str, bad: Value| {
            v[k] = bad;
            spec_of(&v).err().map(|e| e.field)
        };
        let f = |k: &str, bad: Value| field_of(ok.clone(), k, bad);
        assert_eq!(
            f("codec", json!("realvideo")).as_deref(),
            Some("config.codec")
        );
        assert_eq!(
            f("bitrate", json!("fast")).as_deref(),
            Some("config.bitrate")
        );
        assert_eq!(
            f("bitrate", json!("20kk")).as_deref(),
            Some("config.bitrate")
        );
        assert_eq!(
            f("resolution", json!("1921x1080")).as_deref(),
            Some("config.resolution")
        );
        assert_eq!(
            f("resolution", json!("big")).as_deref(),
            Some("config.resolution")
        );
        assert_eq!(
            f("outputFile", json!("noext")).as_deref(),
            Some("config.outputFile")
        );
        assert_eq!(
            f("enableCheckpoint", json!("yes")).as_deref(),
            Some("config.enableCheckpoint")
        );
        assert_eq!(f("codec", json!("copy")).as_deref(), Some("config.codec"));
        assert!(
            spec_of(&json!({"inputFile": "a.mp4", "outputFile": "b.mkv", "bitrate": 800000}))
                .is_ok()
        );
    }
}
