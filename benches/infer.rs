//! Inference speed through ONNX Runtime: windows/s of the tutorial-size
//! composite model (T = 64, H = 64, P = 8, one feature) at batch 1, 32 and
//! 256, with one and two intra-op threads.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lstm_ae::infer::{BackendOptions, OnnxBackend};
use lstm_ae::model::onnx::{export_bytes, ExportInfo};
use lstm_ae::model::{ModelSpec, Params};
use ndarray::Array3;

fn onnx_runtime(c: &mut Criterion) {
    let spec = ModelSpec::default();
    let params: Params<f32> = Params::init(&spec, 1);
    let info = ExportInfo {
        spec: &spec,
        scaler_offset: &[0.0],
        scaler_scale: &[1.0],
        model_id: "bench",
        model_version: 1,
        metadata: vec![],
    };
    let bytes = export_bytes(&params, &info);
    let mut g = c.benchmark_group("onnx_runtime_windows");
    for threads in [1, 2] {
        let opts = BackendOptions {
            intra_threads: threads,
            ..BackendOptions::default()
        };
        let mut backend =
            OnnxBackend::load_from_memory(&bytes, &opts).expect("run scripts/setup.sh first");
        for b in [1usize, 32, 256] {
            let x = Array3::from_shape_fn((b, spec.window, 1), |(i, t, _)| {
                ((t + 3 * i) as f32 * 0.1).sin()
            });
            g.throughput(Throughput::Elements(b as u64));
            g.bench_function(format!("batch{b}/threads{threads}"), |bench| {
                bench.iter(|| backend.run(x.view()).expect("inference runs"))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = onnx_runtime
}
criterion_main!(benches);
