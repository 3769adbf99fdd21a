//! `video_processing` across restarts of the real server binary: a segmented run survives
//! kill -9 and resumes at the first unfinished segment; a paused run stays paused and resumes
//! from its checkpoint; a recovered run stops the ffmpeg its crashed server left running; a
//! server without ffmpeg lists the type as unavailable and says why.

use std::cell::Cell;

use serde_json::json;

use crate::helpers::*;
use crate::media::{entries, have_ffmpeg, make_input, probe};

/// kill -9 of the server during a segmented transcode: the restarted server resumes at the
/// first unfinished segment, and the joined video has every frame once.
#[actix_web::test]
async fn video_checkpointed_run_resumes_after_kill_9_from_the_last_finished_segment() {
    if !have_ffmpeg() {
        return;
    }
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    make_input(&dir.path().join("clip.mp4"), 6);
    let store_url = dir.path().join("steward.db").display().to_string();
    let mut s = crate::recovery::start(dir.path(), None).await;
    let t = s
        .app
        .create(json!({"type": "video_processing", "config": {
            "inputFile": "clip.mp4", "outputFile": "clip_h264.mp4", "codec": "h264",
            "resolution": "320x240", "enableCheckpoint": true, "segmentSecs": 1,
            "readRate": 1.0}}))
        .await;
    let id = id_of(&t);
    crate::recovery::wait_stored(&store_url, &id, |t| {
        t.checkpoint
            .as_ref()
            .is_some_and(|c| c["segments_done"].as_u64() >= Some(2))
    })
    .await;

    // Act: kill -9 mid-run, start again on the same data
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    let mut s = crate::recovery::start(dir.path(), None).await;
    let done = s.app.wait_status(&id, "success", 90.0).await;
    let logs: Vec<String> = s
        .app
        .logs(&id)
        .await
        .iter()
        .filter_map(|l| l["message"].as_str().map(String::from))
        .collect();
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Assert
    let resumed = done["result"]["resumed_from_segment"].as_u64().unwrap_or(0);
    assert!(resumed >= 2, "did not resume from the checkpoint: {done}");
    assert_eq!(done["result"]["segments"], 6, "{done}");
    assert!(
        logs.iter()
            .any(|l| l.starts_with(&format!("resuming at segment {} of 6", resumed + 1))),
        "{logs:?}"
    );
    assert_eq!(
        logs.iter()
            .filter(|l| *l == "segment 1 of 6 finished")
            .count(),
        1,
        "the first segment was encoded again: {logs:?}"
    );
    let (video, duration) = probe(&dir.path().join("clip_h264.mp4"));
    assert_eq!(video["nb_read_frames"], "150", "{video}");
    assert!((duration - 6.0).abs() < 0.3, "duration {duration}");
    let mut left = entries(dir.path());
    left.retain(|n| n.starts_with(".clip_h264"));
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
}

/// A server without ffmpeg (or pg_dump) on its PATH: the type is listed as unavailable with the
/// reason, its tasks are refused saying so, PostgreSQL backups are refused, SQLite backups still run.
#[actix_web::test]
async fn without_ffmpeg_video_is_unavailable_and_says_why() {
    // Arrange: a server whose PATH holds no tools at all
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let mut s =
        crate::recovery::start_with(dir.path(), None, &[], &[("PATH", path.as_str())]).await;
    crate::backups::make_db(&dir.path().join("app.db"), 500);

    // Act
    let (_, types) = s.app.get("/api/v1/task-types").await;
    let (video_status, video) = s
        .app
        .post(
            "/api/v1/tasks",
            json!({"type": "video_processing", "max_retries": 0, "config": {
            "inputFile": "in.mp4", "outputFile": "out.mp4"}}),
        )
        .await;
    let (_, stored) = s.app.get("/api/v1/tasks?type=video_processing").await;
    let (pg_status, pg) = s
        .app
        .post(
            "/api/v1/tasks",
            json!({"type": "database_backup", "config": {
            "dbType": "postgresql", "database": "app", "outputPath": "app.dump"}}),
        )
        .await;
    let sqlite = s
        .app
        .create(json!({"type": "database_backup", "config": {
            "dbType": "sqlite", "database": "app.db", "outputPath": "app.backup.db"}}))
        .await;
    let sqlite = s.app.wait_status(&id_of(&sqlite), "success", 20.0).await;
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Assert
    let listed = types
        .as_array()
        .and_then(|t| t.iter().find(|t| t["type"] == "video_processing"))
        .expect("video_processing listed")
        .clone();
    assert_eq!(listed["available"], false, "{listed}");
    let reason = listed["unavailable_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("ffmpeg") && reason.contains("not found"),
        "{reason}"
    );
    assert_eq!(video_status, 400, "{video}");
    assert_eq!(video["error"]["field"], "type", "{video}");
    let error = video["error"]["message"].as_str().unwrap();
    assert!(
        error.contains("unavailable") && error.contains("ffmpeg") && error.contains("not found"),
        "{error}"
    );
    assert_eq!(stored["total"], 0, "nothing stored: {stored}");
    assert_eq!(pg_status, 400, "{pg}");
    assert_eq!(pg["error"]["field"], "config.dbType");
    assert!(
        pg["error"]["message"].as_str().unwrap().contains("pg_dump"),
        "{pg}"
    );
    assert_eq!(sqlite["result"]["integrity_check"], "ok", "{sqlite}");
}

/// The state letter of a process in /proc (`T` stopped, `Z` zombie), if it exists.
fn process_state(pid: u64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// A transcode paused when the server dies stays paused across the restart and, resumed,
/// carries on from its checkpoint. (Its stopped ffmpeg does not linger: the kernel sends
/// SIGHUP and SIGCONT to a process group orphaned with a stopped member.)
#[actix_web::test]
async fn video_paused_across_a_crash_stays_paused_and_resumes_from_its_checkpoint() {
    if !have_ffmpeg() {
        return;
    }
    // Arrange: a run paused in its second segment, then kill -9 of the server
    let dir = tempfile::tempdir().unwrap();
    make_input(&dir.path().join("clip.mp4"), 6);
    let store_url = dir.path().join("steward.db").display().to_string();
    let mut s = crate::recovery::start(dir.path(), None).await;
    let t = s
        .app
        .create(json!({"type": "video_processing", "config": {
            "inputFile": "clip.mp4", "outputFile": "clip.mkv", "codec": "h264",
            "enableCheckpoint": true, "segmentSecs": 2, "readRate": 1.0}}))
        .await;
    let id = id_of(&t);
    s.app
        .wait_until(&id, 30.0, |t| {
            t["checkpoint"]["segments_done"].as_u64() >= Some(1)
        })
        .await;
    let (status, body) = s.app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    assert_eq!(status, 200, "{body}");
    crate::recovery::wait_stored(&store_url, &id, |t| t.status.as_str() == "paused").await;
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");

    // Act: restart, check it stayed paused, resume
    let mut s = crate::recovery::start(dir.path(), None).await;
    let paused = s.app.task(&id).await;
    let (status, body) = s
        .app
        .post_empty(&format!("/api/v1/tasks/{id}/resume"))
        .await;
    assert_eq!(status, 200, "{body}");
    let done = s.app.wait_status(&id, "success", 60.0).await;
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Assert
    assert_eq!(paused["status"], "paused", "{paused}");
    assert!(
        done["result"]["resumed_from_segment"].as_u64() >= Some(1),
        "{done}"
    );
    let (video, _) = probe(&dir.path().join("clip.mkv"));
    assert_eq!(video["nb_read_frames"], "150", "{video}");
    assert_eq!(
        entries(dir.path())
            .iter()
            .filter(|n| n.starts_with(".clip"))
            .count(),
        0
    );
}

/// An ffmpeg running when the server dies keeps running as an orphan. The recovered run finds
/// its pid in the checkpoint, kills it, and transcodes again (one pass: no segments to keep).
#[actix_web::test]
async fn video_recovered_run_stops_the_ffmpeg_its_crashed_server_left_running() {
    if !have_ffmpeg() {
        return;
    }
    // Arrange: an eight-second one-pass transcode at real-time speed, and kill -9 in its first
    // seconds
    let dir = tempfile::tempdir().unwrap();
    make_input(&dir.path().join("clip.mp4"), 8);
    let store_url = dir.path().join("steward.db").display().to_string();
    let mut s = crate::recovery::start(dir.path(), None).await;
    let t = s
        .app
        .create(json!({"type": "video_processing", "config": {
            "inputFile": "clip.mp4", "outputFile": "clip.webm", "codec": "vp8",
            "readRate": 1.0}}))
        .await;
    let id = id_of(&t);
    let pid = Cell::new(0u64);
    crate::recovery::wait_stored(&store_url, &id, |t| {
        pid.set(
            t.checkpoint
                .as_ref()
                .and_then(|c| c["pid"].as_u64())
                .unwrap_or(0),
        );
        pid.get() > 0
    })
    .await;
    let pid = pid.get();
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    assert!(
        matches!(process_state(pid), Some('R' | 'S' | 'D')),
        "ffmpeg {pid} is not running on: {:?}",
        process_state(pid)
    );

    // Act
    let mut s = crate::recovery::start(dir.path(), None).await;
    let done = s.app.wait_status(&id, "success", 60.0).await;
    let logs = s.app.logs(&id).await;
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Assert
    let stopped = format!("stopped ffmpeg (pid {pid}) left running by the previous run");
    assert!(
        logs.iter().any(|l| l["message"] == stopped.as_str()),
        "{logs:?}"
    );
    assert!(
        matches!(process_state(pid), None | Some('Z')),
        "ffmpeg {pid} still runs"
    );
    assert_eq!(
        done["result"]["segments"],
        serde_json::Value::Null,
        "{done}"
    );
    let (video, _) = probe(&dir.path().join("clip.webm"));
    assert_eq!(video["nb_read_frames"], "200", "{video}");
}
