//! ffmpeg and ffprobe for `video_processing`: the codec table, probing an input, the encoders
//! this machine has, the argument lists of a transcode (whole, or one time segment) and of the
//! final concat, the segment plan, and reading `-progress pipe:1` output. Pure where it can
//! be, so most of it is tested without a video.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

/// A codec users may name, and the ffmpeg encoders that produce it, best first.
pub struct CodecInfo {
    pub names: &'static [&'static str],
    pub encoders: &'static [&'static str],
}

/// What `codec` may say. `copy` keeps the input's streams as they are (a remux).
pub const CODECS: &[CodecInfo] = &[
    CodecInfo {
        names: &["h264", "avc", "x264", "libx264"],
        encoders: &["libx264"],
    },
    CodecInfo {
        names: &["h265", "hevc", "x265", "libx265"],
        encoders: &["libx265"],
    },
    CodecInfo {
        names: &["vp8", "libvpx"],
        encoders: &["libvpx"],
    },
    CodecInfo {
        names: &["vp9", "libvpx-vp9"],
        encoders: &["libvpx-vp9"],
    },
    CodecInfo {
        names: &["av1", "libsvtav1", "libaom-av1"],
        encoders: &["libsvtav1", "libaom-av1"],
    },
    CodecInfo {
        names: &["mpeg4", "libxvid"],
        encoders: &["mpeg4", "libxvid"],
    },
    CodecInfo {
        names: &["copy"],
        encoders: &["copy"],
    },
];

/// The codec entry for a name (case-insensitive).
pub fn codec(name: &str) -> Option<&'static CodecInfo> {
    CODECS
        .iter()
        .find(|c| c.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// Every name `codec` accepts.
pub fn codec_names() -> Vec<&'static str> {
    CODECS
        .iter()
        .flat_map(|c| c.names.iter().copied())
        .collect()
}

/// Encoder names from `ffmpeg -encoders` output (lines like ` V....D libx264  …`).
pub fn parse_encoders(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let flags = parts.next()?;
            let name = parts.next()?;
            (flags.len() == 6 && flags.chars().all(|c| c.is_ascii_uppercase() || c == '.'))
                .then(|| name.to_string())
        })
        .filter(|n| n != "=")
        .collect()
}

/// What ffprobe says about an input.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// Seconds, when the container knows.
    pub duration: Option<f64>,
    pub has_video: bool,
}

/// `ffprobe -show_entries format=duration:stream=codec_type -of json` output, read.
pub fn parse_probe(json: &str) -> Option<Probe> {
    let v: Value = serde_json::from_str(json).ok()?;
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0);
    let has_video = v["streams"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["codec_type"] == "video"));
    Some(Probe {
        duration,
        has_video,
    })
}

/// The ffprobe arguments for [`parse_probe`].
pub fn probe_args(input: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-v",
        "error",
        "-show_entries",
        "format=duration:stream=codec_type",
        "-of",
        "json",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(input.into());
    args
}

/// How the video is to be encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoding {
    /// An ffmpeg encoder name, or `copy`.
    pub encoder: String,
    pub bitrate: Option<String>,
    pub resolution: Option<(u32, u32)>,
    /// `-readrate`: read the input at most this many times faster than real time.
    pub read_rate: Option<f64>,
}

/// Options every ffmpeg run gets: quiet but for errors, progress as `key=value` on stdout.
fn common_args() -> Vec<OsString> {
    [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-y",
        "-progress",
        "pipe:1",
        "-stats_period",
        "0.5",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// A transcode of `input` (from `start` for `len` seconds, when given) into `output`.
pub fn transcode_args(
    input: &Path,
    output: &Path,
    enc: &Encoding,
    start: Option<f64>,
    len: Option<f64>,
) -> Vec<OsString> {
    let mut a = common_args();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    if let Some(r) = enc.read_rate {
        push(&["-readrate", &r.to_string()]);
    }
    if let Some(s) = start {
        push(&["-ss", &format!("{s:.6}")]);
    }
    push(&["-i"]);
    a.push(input.into());
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    if let Some(l) = len {
        push(&["-t", &format!("{l:.6}")]);
    }
    if enc.encoder == "copy" {
        push(&["-c", "copy"]);
    } else {
        push(&["-c:v", &enc.encoder, "-pix_fmt", "yuv420p"]);
        if let Some(b) = &enc.bitrate {
            push(&["-b:v", b]);
        }
        if let Some((w, h)) = enc.resolution {
            push(&["-vf", &format!("scale={w}:{h}")]);
        }
    }
    a.push(output.into());
    a
}

/// Joins the parts listed in `list` (a concat-demuxer file) into `output` without re-encoding.
pub fn concat_args(list: &Path, output: &Path) -> Vec<OsString> {
    let mut a = common_args();
    a.extend(["-f", "concat", "-safe", "0", "-i"].map(OsString::from));
    a.push(list.into());
    a.extend(["-c", "copy"].map(OsString::from));
    a.push(output.into());
    a
}

/// The concat-demuxer list for part files in the list's own directory.
pub fn concat_list(part_names: &[String]) -> String {
    part_names
        .iter()
        .map(|n| format!("file '{}'\n", n.replace('\'', "'\\''")))
        .collect()
}

/// Time segments of `segment_secs` covering `duration`: `(start, Some(len))`, with the last
/// one running to the end (`None`) so no tiny tail segment is made.
pub fn plan_segments(duration: f64, segment_secs: f64) -> Vec<(f64, Option<f64>)> {
    let n = ((duration / segment_secs).floor() as usize).max(1);
    (0..n)
        .map(|i| {
            let start = i as f64 * segment_secs;
            (start, (i + 1 < n).then_some(segment_secs))
        })
        .collect()
}

/// The output time (seconds) in one `-progress` line, when it carries it.
pub fn progress_secs(line: &str) -> Option<f64> {
    let us = line
        .strip_prefix("out_time_us=")?
        .trim()
        .parse::<i64>()
        .ok()?;
    (us >= 0).then(|| us as f64 / 1_000_000.0)
}

/// What ffprobe says about `input`, or why it cannot read it.
pub async fn probe(input: &Path) -> Result<Probe, String> {
    let out = tokio::process::Command::new("ffprobe")
        .args(probe_args(input))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ffprobe: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !out.status.success() {
        return Err(format!(
            "cannot read the input video {} (unsupported format or corrupt file): {}",
            input.display(),
            said.join("; ")
        ));
    }
    parse_probe(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("ffprobe gave no readable answer about {}", input.display()))
}

/// The first encoder for the codec that this machine's ffmpeg has.
pub async fn pick_encoder(codec: &CodecInfo, name: &str) -> Result<String, String> {
    if codec.encoders == ["copy"] {
        return Ok("copy".into());
    }
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let have = parse_encoders(&String::from_utf8_lossy(&out.stdout));
    codec
        .encoders
        .iter()
        .find(|e| have.iter().any(|h| h == *e))
        .map(|e| e.to_string())
        .ok_or_else(|| {
            format!(
                "this server's ffmpeg has no encoder for codec '{}' (looked for {})",
                name,
                codec.encoders.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_resolve_by_any_name_and_unknown_ones_do_not() {
        assert_eq!(codec("H264").unwrap().encoders, &["libx264"]);
        assert_eq!(codec("hevc").unwrap().encoders, &["libx265"]);
        assert!(codec("realvideo").is_none());
    }

    #[test]
    fn segments_cover_the_duration_without_a_tiny_tail() {
        assert_eq!(
            plan_segments(6.024, 2.0),
            vec![(0.0, Some(2.0)), (2.0, Some(2.0)), (4.0, None)]
        );
        assert_eq!(plan_segments(0.5, 10.0), vec![(0.0, None)]);
    }

    #[test]
    fn progress_and_probe_output_parse() {
        assert_eq!(progress_secs("out_time_us=1500000"), Some(1.5));
        assert_eq!(progress_secs("out_time_us=N/A"), None);
        assert_eq!(progress_secs("frame=12"), None);
        let p = parse_probe(
            r#"{"streams":[{"codec_type":"video"},{"codec_type":"audio"}],"format":{"duration":"6.000000"}}"#,
        )
        .unwrap();
        assert_eq!((p.duration, p.has_video), (Some(6.0), true));
        let enc = parse_encoders(
            " V....D libx264              libx264 H.264\n A..... aac   AAC\n ------\n",
        );
        assert_eq!(enc, vec!["libx264", "aac"]);
    }

    #[test]
    fn a_segment_seeks_before_the_input_and_limits_its_length() {
        let enc = Encoding {
            encoder: "libx264".into(),
            bitrate: Some("200k".into()),
            resolution: Some((320, 240)),
            read_rate: None,
        };
        let args: Vec<String> = transcode_args(
            Path::new("in.mp4"),
            Path::new("p.mp4"),
            &enc,
            Some(2.0),
            Some(1.0),
        )
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        let at = |s: &str| args.iter().position(|a| a == s).unwrap();
        assert!(at("-ss") < at("-i") && at("-i") < at("-t"));
        assert_eq!(args[at("-vf") + 1], "scale=320:240");
        assert_eq!(args.last().unwrap(), "p.mp4");
        assert_eq!(concat_list(&["a'b.mp4".into()]), "file 'a'\\''b.mp4'\n");
    }
}
