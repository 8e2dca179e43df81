//! Training speed: one Adam step (forward, backpropagation through time,
//! update) on a batch of 64 windows of the tutorial-size composite model
//! (T = 64, H = 64, P = 8, one feature, tanh), on 1 and on 2 threads.
//! An epoch over 10,009 windows is 157 such steps plus a validation pass;
//! `scripts/bench.sh` also times real epochs end to end.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lstm_ae::model::{DecoderInput, ModelSpec, Params};
use lstm_ae::train::adam::Adam;
use lstm_ae::train::composite;
use ndarray::Array3;

fn batch(spec: &ModelSpec, b: usize) -> (Array3<f32>, Array3<f32>) {
    let x = Array3::from_shape_fn((spec.window, b, 1), |(t, i, _)| {
        ((t + 3 * i) as f32 * 0.1).sin()
    });
    let f = Array3::from_shape_fn((spec.horizon, b, 1), |(t, i, _)| {
        ((t + 3 * i) as f32 * 0.1).cos()
    });
    (x, f)
}

fn train_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step_batch64");
    g.throughput(Throughput::Elements(64));
    for (name, di) in [
        ("repeat", DecoderInput::Repeat),
        ("state", DecoderInput::State),
        ("conditional", DecoderInput::Conditional),
    ] {
        let spec = ModelSpec {
            decoder_input: di,
            ..ModelSpec::default()
        };
        let (x, f) = batch(&spec, 64);
        for threads in [1, 2] {
            let mut params: Params<f32> = Params::init(&spec, 1);
            let mut adam = Adam::new(&params, 1e-3);
            g.bench_function(format!("{name}/threads{threads}"), |bench| {
                bench.iter(|| {
                    let (_, grads) = composite::loss_and_grad_parallel(
                        &params,
                        &spec,
                        x.view(),
                        Some(f.view()),
                        threads,
                    );
                    adam.update(&mut params, &grads, 1.0);
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = train_step
}
criterion_main!(benches);
