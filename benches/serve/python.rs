//! The Python reference service (benches/python_service.py: confluent-kafka
//! and onnxruntime doing the same work) over the same backlog.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::broker::Broker;
use super::load::{distinct, load, read_outputs, windows_per_s};
use super::opts::{Mode, Opts};
use super::{Proc, Res, ANOM_TOPIC, EMB_TOPIC, POINTS_TOPIC};

pub(crate) struct PyResult {
    pub(crate) windows: usize,
    pub(crate) unique: usize,
    pub(crate) per_s: f64,
}

/// `benches/python_service.py` over the same `points` backlog as the
/// daemon's run, on a fresh broker; windows/s measured the same way (the
/// embeddings' producer timestamps, first to last).
pub(crate) fn run_python(o: &Opts, python: &str, threads: usize, t: usize) -> Res<PyResult> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::start(dir.path(), false);
    let parts = o.partitions;
    for (name, n) in [(POINTS_TOPIC, parts), (EMB_TOPIC, parts), (ANOM_TOPIC, 1)] {
        broker.create_topic(name, n);
    }
    let expect = o.keys * (o.points + 1).saturating_sub(t);
    let brokers = broker.brokers();
    let (_, load_s) = load(&brokers, Mode::Points, o, t)?;
    println!("   input loaded in {load_s:.1} s before the Python service started");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_service.py");
    let mut child = Proc(
        Command::new(python)
            .arg(&script)
            .args(["--brokers", &brokers, "--topic", POINTS_TOPIC])
            .args([
                "--embeddings-topic",
                EMB_TOPIC,
                "--anomalies-topic",
                ANOM_TOPIC,
            ])
            .arg("--model")
            .arg(&o.model)
            .args(["--threads", &threads.to_string()])
            .args(["--max-batch", &o.max_batch.to_string()])
            .args(["--max-windows", &expect.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{python} does not start: {e}"))?,
    );
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        match child.0.try_wait().map_err(|e| e.to_string())? {
            Some(st) if st.success() => break,
            Some(st) => return Err(format!("the Python service failed: {st}")),
            None if Instant::now() > deadline => {
                return Err("the Python service did not finish in 15 minutes".into())
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let outputs = read_outputs(&brokers)?;
    Ok(PyResult {
        windows: outputs.len(),
        unique: distinct(&outputs),
        per_s: windows_per_s(&outputs),
    })
}
