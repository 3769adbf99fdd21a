//! `video_processing` with the real ffmpeg: a transcode paused and resumed mid-run, cancel,
//! a corrupt input and refused configs. Runs across server restarts are in `media_recovery`.
//! Without ffmpeg these tests are skipped with a note, unless CI is set, when they fail.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    video_transcode_paused_midway_resumes_into_a_valid_video,
    video_cancel_removes_the_partial_output,
    video_corrupt_input_fails_clearly_and_bad_configs_are_refused,
);

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether ffmpeg and ffprobe can run here; says why not (or fails under CI).
pub(crate) fn have_ffmpeg() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| {
        Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(
            !in_ci(),
            "ffmpeg/ffprobe are missing and CI is set, so the video tests cannot be skipped"
        );
        eprintln!("note: skipping a video_processing test: ffmpeg/ffprobe are not installed");
    }
    ok
}

/// A test pattern with a tone: `secs` seconds of 160x120 at 25 fps, MPEG-4 video and AAC.
pub(crate) fn make_input(path: &Path, secs: u32) {
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size=160x120:rate=25:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={secs}"))
        .args(["-c:v", "mpeg4", "-c:a", "aac", "-shortest"])
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "could not make the test input");
}

/// ffprobe's view of a file's video stream and duration.
pub(crate) fn probe(path: &Path) -> (Value, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe cannot read {}",
        path.display()
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (v["streams"][0].clone(), duration)
}

/// The names in a directory.
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn video_transcode_paused_midway_resumes_into_a_valid_video(db: Db) {
    if !have_ffmpeg() {
        return;
    }
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: six seconds of video, transcoded at real-time speed so the run can be caught
    make_input(&app.dir.path().join("clip.mp4"), 6);
    let t = app
        .create(json!({"taskType": "VIDEO_PROCESSING", "config": {
            "inputFile": "clip.mp4", "outputFile": "out/clip_small.mp4", "codec": "h264",
            "bitrate": "200k", "resolution": "320x240", "readRate": 1.0}}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 30.0, |t| {
        t["status"] == "running" && t["progress"].as_f64().unwrap_or(0.0) > 5.0
    })
    .await;

    // Act: pause, watch the progress stand still, resume
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    assert_eq!(status, 200, "{body}");
    app.wait_status(&id, "paused", 10.0).await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let held = app.task(&id).await["progress"].as_f64().unwrap();
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    let still = app.task(&id).await;
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    assert_eq!(status, 200, "{body}");
    let done = app.wait_status(&id, "success", 60.0).await;

    // Assert
    assert_eq!(still["status"], "paused");
    assert_eq!(
        still["progress"].as_f64(),
        Some(held),
        "progress moved while paused"
    );
    assert!(held < 95.0, "paused too late: {held}");
    let out = app.dir.path().join("out/clip_small.mp4");
    let (video, duration) = probe(&out);
    assert_eq!(video["codec_name"], "h264", "{video}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(video["nb_read_frames"], "150", "{video}");
    assert!((duration - 6.0).abs() < 0.3, "duration {duration}");
    assert_eq!(done["result"]["encoder"], "libx264", "{done}");
    assert_eq!(done["result"]["duration_secs"], 6.0, "{done}");
    assert_eq!(done["progress"], 100.0);
    assert_eq!(
        entries(&app.dir.path().join("out")),
        vec!["clip_small.mp4"],
        "temporaries left behind"
    );
}

async fn video_cancel_removes_the_partial_output(db: Db) {
    if !have_ffmpeg() {
        return;
    }
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a segmented run with a finished segment on disk
    make_input(&app.dir.path().join("clip.mp4"), 6);
    std::fs::create_dir_all(app.dir.path().join("out")).unwrap();
    let t = app
        .create(json!({"type": "video_processing", "config": {
            "inputFile": "clip.mp4", "outputFile": "out/clip.webm", "codec": "vp9",
            "enableCheckpoint": true, "segmentSecs": 1, "readRate": 1.0}}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 30.0, |t| {
        t["checkpoint"]["segments_done"].as_u64() >= Some(1)
    })
    .await;
    assert!(
        !entries(&app.dir.path().join("out")).is_empty(),
        "no partial output to remove"
    );

    // Act
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    app.wait_status(&id, "cancelled", 10.0).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !entries(&app.dir.path().join("out")).is_empty() && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries(&app.dir.path().join("out")), Vec::<String>::new());
}

async fn video_corrupt_input_fails_clearly_and_bad_configs_are_refused(db: Db) {
    if !have_ffmpeg() {
        return;
    }
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a video cut short, as an interrupted upload leaves it (MP4's index is at the end)
    let broken = app.dir.path().join("broken.mp4");
    make_input(&broken, 2);
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();

    // Act
    let t = app
        .create(
            json!({"type": "video_processing", "max_retries": 0, "config": {
            "inputFile": "broken.mp4", "outputFile": "fixed.mp4"}}),
        )
        .await;
    let failed = app.wait_status(&id_of(&t), "failed", 30.0).await;
    let bad = [
        (
            json!({"inputFile": "a.mp4", "outputFile": "b.mp4", "codec": "realvideo"}),
            "config.codec",
        ),
        (
            json!({"inputFile": "a.mp4", "outputFile": "b.mp4", "resolution": "641x480"}),
            "config.resolution",
        ),
        (
            json!({"inputFile": "a.mp4", "outputFile": "b.mp4", "bitrate": "fast"}),
            "config.bitrate",
        ),
        (
            json!({"inputFile": "../../etc/passwd", "outputFile": "b.mp4"}),
            "config.inputFile",
        ),
        (
            json!({"inputFile": "a.mp4", "outputFile": "/tmp/b.mp4"}),
            "config.outputFile",
        ),
        (json!({"outputFile": "b.mp4"}), "config.inputFile"),
    ];
    let (_, types) = app.get("/api/v1/task-types").await;

    // Assert
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("cannot read the input video") && error.contains("corrupt"),
        "{error}"
    );
    assert!(!app.dir.path().join("fixed.mp4").exists());
    for (config, field) in bad {
        let (status, e) = app
            .post(
                "/api/v1/tasks",
                json!({"type": "video_processing", "config": config}),
            )
            .await;
        assert_eq!(status, 400, "{config} -> {e}");
        assert_eq!(e["error"]["field"], field, "{config} -> {e}");
    }
    let video = types
        .as_array()
        .and_then(|t| t.iter().find(|t| t["type"] == "video_processing"))
        .expect("video_processing listed");
    assert_eq!(video["available"], true, "{video}");
    assert!(video["config_schema"]["properties"]["enableCheckpoint"].is_object());
}
