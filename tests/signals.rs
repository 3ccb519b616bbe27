//! A real `medsegdiff train` child is signalled while it trains and writes a checkpoint every step: SIGTERM
//! (what Slurm sends before SIGKILL), two SIGTERMs in a row (the second lands while the first is being honoured)
//! and SIGKILL (a crash). Each time the run resumes from what is on disk, and its loss curve (loss.csv) equals
//! an uninterrupted run's, row for row.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

const STEPS: &str = "12";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msd-signals-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn train_args(cfg: &Path, run: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["train", "--config"].map(String::from).into();
    a.push(cfg.to_str().unwrap().into());
    for s in ["--steps", STEPS, "--batch-size", "2", "--synthetic-count", "8", "--checkpoint-every", "1"] {
        a.push(s.into());
    }
    a.extend(["--val-every".into(), "0".into(), "--out".into(), run.to_str().unwrap().into()]);
    a
}

/// Read `pipe` line by line on a thread: each line as it comes, and all of them when the pipe closes.
fn lines(pipe: impl std::io::Read + Send + 'static) -> (mpsc::Receiver<String>, std::thread::JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (rx, handle)
}

/// Start a training child, wait until it reports step `after`, send it `signals` (e.g. ["-TERM"]; a second one
/// only once the child has said it is stopping, while its save is held back by the test hook), and return its
/// exit code, stdout and stderr.
fn interrupt(cfg: &Path, run: &Path, after: u64, signals: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .args(train_args(cfg, run))
        .env("MEDSEGDIFF_INTERRUPT_SAVE_DELAY_MS", "3000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (erx, err_reader) = lines(child.stderr.take().unwrap());
    let (rx, reader) = lines(child.stdout.take().unwrap());
    let want = format!("step {after}/{STEPS}: loss");
    loop {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(line) if line.starts_with(&want) => break,
            Ok(_) => {}
            Err(e) => panic!("no `{want}` line from the training child: {e}"),
        }
    }
    for (i, s) in signals.iter().enumerate() {
        if i > 0 {
            // the second signal after the child has taken the first (and holds its save for 3 s)
            loop {
                match erx.recv_timeout(Duration::from_secs(300)) {
                    Ok(line) if line.contains("stopping after the step in flight") => break,
                    Ok(_) => {}
                    Err(e) => panic!("the child never said it was stopping: {e}"),
                }
            }
        }
        let ok = Command::new("kill").arg(s).arg(child.id().to_string()).status().unwrap().success();
        assert!(ok, "kill {s} failed");
    }
    let status = child.wait().unwrap();
    let (stdout, stderr) = (reader.join().unwrap(), err_reader.join().unwrap());
    (status.code(), stdout, stderr)
}

/// Resume the run in `run` to the full step count and return its loss.csv.
fn resume(run: &Path) -> String {
    let ckpt = run.join("last.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .args(["train", "--resume", ckpt.to_str().unwrap(), "--steps", STEPS, "--synthetic-count", "8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "resume of {} failed: {}", run.display(), String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(run.join("loss.csv")).unwrap()
}

#[test]
fn sigterm_twice_sigterm_and_sigkill_all_resume_to_the_uninterrupted_curve() {
    let dir = tmp("all");
    let cfg = dir.join("model.json");
    std::fs::write(&cfg, serde_json::to_string(&common::micro().0).unwrap()).unwrap();

    let straight = dir.join("straight");
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff")).args(train_args(&cfg, &straight)).output().unwrap();
    assert!(out.status.success(), "uninterrupted run failed: {}", String::from_utf8_lossy(&out.stderr));
    let reference = std::fs::read_to_string(straight.join("loss.csv")).unwrap();
    assert_eq!(reference.lines().count(), 13, "{reference}");

    // SIGTERM: the step in flight finishes, a checkpoint is saved, the exit status says "interrupted" and the
    // message gives the resume command
    let run = dir.join("term");
    let (code, stdout, stderr) = interrupt(&cfg, &run, 2, &["-TERM"]);
    assert_eq!(code, Some(130), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("interrupted at step") && stdout.contains("--resume"), "{stdout}");
    assert!(!stdout.contains("trained to step"), "the run finished before the signal landed: {stdout}");
    assert_eq!(resume(&run), reference, "SIGTERM'd run, resumed");

    // a second SIGTERM while the first is honoured exits at once, leaving the previous checkpoint whole
    let run = dir.join("twice");
    let (code, stdout, stderr) = interrupt(&cfg, &run, 2, &["-TERM", "-TERM"]);
    assert_eq!(code, Some(130), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("second signal: exiting now"), "{stderr}");
    assert_eq!(resume(&run), reference, "twice-SIGTERM'd run, resumed");

    // SIGKILL (a crash, the OOM killer, a scheduler's hard limit) while checkpoints are written every step
    let run = dir.join("kill");
    let (code, stdout, _) = interrupt(&cfg, &run, 3, &["-KILL"]);
    assert_eq!(code, None, "SIGKILL leaves no exit code: {stdout}");
    assert_eq!(resume(&run), reference, "SIGKILL'd run, resumed");
    let _ = std::fs::remove_dir_all(&dir);
}
