//! [`OnnxBackend`]: an exported lstm-ae model in an ONNX Runtime session.
//!
//! The graph contract, shared with the exporter in [`crate::model`]: one
//! input [`INPUT_NAME`] (`window`, f32 `[batch, T, F]`, raw units) and some of
//! the outputs in [`OUTPUT_NAMES`]:
//!
//! | output          | shape          |
//! |-----------------|----------------|
//! | `reconstruction`| `[batch, T, F]`|
//! | `prediction`    | `[batch, P, F]`|
//! | `embedding`     | `[batch, H]`   |
//! | `score`         | `[batch]`      |
//! | `squared_error` | `[batch, T, F]`|
//!
//! The contract is checked when the model loads (names, element types) and on
//! every run (shapes), so a wrong model fails with a message naming the
//! problem instead of as a panic or a silently wrong score.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3, ArrayView3, ArrayViewD, Dimension, Ix1, Ix2, Ix3};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{runtime, Backend, InferError};

/// The model's one input.
pub const INPUT_NAME: &str = "window";

/// Every output name the contract allows; a model has one or more of them.
pub const OUTPUT_NAMES: [&str; 5] = [
    "reconstruction",
    "prediction",
    "embedding",
    "score",
    "squared_error",
];

/// How to set up the ONNX Runtime session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// Threads inside one operator; 0 leaves ONNX Runtime's default (one per
    /// physical core). The daemon sets it so inference does not starve the
    /// consumer thread.
    pub intra_threads: usize,
    /// The ONNX Runtime library from configuration; `None` searches the usual
    /// places (see [`runtime`]).
    pub library: Option<PathBuf>,
}

/// Everything one run produced, by contract name; `None` where the model has
/// no such output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// `[batch, T, F]`: the input as the reconstruction decoder rebuilt it.
    pub reconstruction: Option<Array3<f32>>,
    /// `[batch, P, F]`: the next `P` steps as the prediction decoder sees them.
    pub prediction: Option<Array3<f32>>,
    /// `[batch, H]`: the encoder's final state.
    pub embedding: Option<Array2<f32>>,
    /// `[batch]`: one anomaly score per window.
    pub score: Option<Array1<f32>>,
    /// `[batch, T, F]`: per-element squared reconstruction error.
    pub squared_error: Option<Array3<f32>>,
}

/// An ONNX model loaded into an ONNX Runtime session, checked against the
/// lstm-ae graph contract.
#[derive(Debug)]
pub struct OnnxBackend {
    session: Session,
    /// Run options that shrink the arena at the end of the run.
    release: ReleaseOptions,
    /// `[batch, T, F]` as the model declares it; `None` where free.
    input_dims: [Option<usize>; 3],
    /// The model's outputs, in the model's order (all in [`OUTPUT_NAMES`]).
    outputs: Vec<String>,
}

impl OnnxBackend {
    /// Loads a model file.
    pub fn load(model_path: &Path, opts: &BackendOptions) -> Result<Self, InferError> {
        if !model_path.is_file() {
            return Err(InferError::ModelNotFound(model_path.to_path_buf()));
        }
        let origin = model_path.display().to_string();
        let mut builder = Self::builder(opts, &origin)?;
        let session = builder
            .commit_from_file(model_path)
            .map_err(|source| InferError::ModelLoad { origin, source })?;
        Self::from_session(session)
    }

    /// Loads a model from its serialized bytes (e.g. embedded or just
    /// exported).
    pub fn load_from_memory(bytes: &[u8], opts: &BackendOptions) -> Result<Self, InferError> {
        let origin = "memory".to_owned();
        let mut builder = Self::builder(opts, &origin)?;
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|source| InferError::ModelLoad { origin, source })?;
        Self::from_session(session)
    }

    fn builder(
        opts: &BackendOptions,
        origin: &str,
    ) -> Result<ort::session::builder::SessionBuilder, InferError> {
        let env = runtime::environment(opts.library.as_deref())?;
        let failed = |source: ort::Error| InferError::ModelLoad {
            origin: origin.to_owned(),
            source,
        };
        let mut builder = Session::builder(env).map_err(failed)?;
        if opts.intra_threads > 0 {
            builder = builder
                .with_intra_threads(opts.intra_threads)
                .map_err(|e| failed(e.into()))?;
        }
        Ok(builder)
    }

    fn from_session(session: Session) -> Result<Self, InferError> {
        let input_names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let [input] = session.inputs() else {
            return Err(InferError::Contract(format!(
                "expected one input `{INPUT_NAME}`, found {input_names:?}"
            )));
        };
        if input.name() != INPUT_NAME {
            return Err(InferError::Contract(format!(
                "expected one input `{INPUT_NAME}`, found {input_names:?}"
            )));
        }
        let dims = float_tensor_dims(input.dtype()).ok_or_else(|| {
            InferError::Contract(format!(
                "input `{INPUT_NAME}` must be an f32 tensor, is {}",
                input.dtype()
            ))
        })?;
        let input_dims: [Option<usize>; 3] = dims.try_into().map_err(|dims: Vec<_>| {
            InferError::Contract(format!(
                "input `{INPUT_NAME}` must have rank 3 [batch, T, F], has rank {}",
                dims.len()
            ))
        })?;

        let mut outputs = Vec::new();
        for outlet in session.outputs() {
            let name = outlet.name();
            if !OUTPUT_NAMES.contains(&name) {
                return Err(InferError::Contract(format!(
                    "unknown output `{name}` (expected some of {})",
                    OUTPUT_NAMES.join(", ")
                )));
            }
            if float_tensor_dims(outlet.dtype()).is_none() {
                return Err(InferError::Contract(format!(
                    "output `{name}` must be an f32 tensor, is {}",
                    outlet.dtype()
                )));
            }
            outputs.push(name.to_owned());
        }
        if outputs.is_empty() {
            return Err(InferError::Contract("the model has no outputs".to_owned()));
        }
        Ok(Self {
            session,
            release: ReleaseOptions::new()?,
            input_dims,
            outputs,
        })
    }

    /// The input shape `[batch, T, F]` the model was exported with; `None`
    /// marks a free dimension (normally the batch).
    pub fn input_shape(&self) -> [Option<usize>; 3] {
        self.input_dims
    }

    /// The model's output names, in the model's order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.clone()
    }

    /// Runs one batch `[B, T, F]` f32 (raw units) and returns every output the
    /// model has, by name.
    ///
    /// `&mut self` because an ONNX Runtime session must not run on two threads
    /// at once. Any memory layout is accepted (a non-contiguous view is copied).
    pub fn run(&mut self, window: ArrayView3<'_, f32>) -> Result<Outputs, InferError> {
        self.run_inner(window, false)
    }

    /// [`OnnxBackend::run`], then ONNX Runtime frees the chunks of its
    /// memory arena that hold nothing (`memory.enable_memory_arena_shrinkage`).
    /// The arena otherwise keeps every chunk it grew to, doubling each time
    /// (docs/performance.md has what that costs); the next run takes what
    /// it needs again from the allocator.
    pub fn run_and_release(&mut self, window: ArrayView3<'_, f32>) -> Result<Outputs, InferError> {
        self.run_inner(window, true)
    }

    fn run_inner(
        &mut self,
        window: ArrayView3<'_, f32>,
        release: bool,
    ) -> Result<Outputs, InferError> {
        self.check_input(window.shape())?;
        let (batch, steps, features) = window.dim();
        let contiguous = window.as_standard_layout();
        let tensor = TensorRef::from_array_view(&contiguous).map_err(InferError::Run)?;
        let inputs = ort::inputs![INPUT_NAME => tensor];
        let results = if release {
            self.session.run_with_options(inputs, &self.release.0)
        } else {
            self.session.run(inputs)
        }
        .map_err(InferError::Run)?;

        let mut out = Outputs::default();
        for name in &self.outputs {
            let value = results.get(name).ok_or_else(|| InferError::Output {
                name: name.clone(),
                message: "missing from ONNX Runtime's results".to_owned(),
            })?;
            let view = value
                .try_extract_array::<f32>()
                .map_err(|e| InferError::Output {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            // Expected dims per contract; `None` = any size.
            match name.as_str() {
                "reconstruction" => {
                    out.reconstruction = Some(owned::<Ix3>(
                        name,
                        view,
                        &[Some(batch), Some(steps), Some(features)],
                    )?)
                }
                "squared_error" => {
                    out.squared_error = Some(owned::<Ix3>(
                        name,
                        view,
                        &[Some(batch), Some(steps), Some(features)],
                    )?)
                }
                "prediction" => {
                    out.prediction = Some(owned::<Ix3>(
                        name,
                        view,
                        &[Some(batch), None, Some(features)],
                    )?)
                }
                "embedding" => {
                    out.embedding = Some(owned::<Ix2>(name, view, &[Some(batch), None])?)
                }
                "score" => out.score = Some(owned::<Ix1>(name, view, &[Some(batch)])?),
                // `from_session` admits only contract names.
                other => {
                    return Err(InferError::Contract(format!("unknown output `{other}`")));
                }
            }
        }
        Ok(out)
    }

    /// Checks `[B, T, F]` against the model before ONNX Runtime sees it, so a
    /// mismatch is reported in the contract's terms.
    fn check_input(&self, got: &[usize]) -> Result<(), InferError> {
        let fits = self
            .input_dims
            .iter()
            .zip(got)
            .all(|(want, got)| want.is_none_or(|w| w == *got));
        if fits {
            return Ok(());
        }
        let expected = self
            .input_dims
            .iter()
            .zip(["batch", "T", "F"])
            .map(|(dim, label)| dim.map_or_else(|| label.to_owned(), |d| d.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        Err(InferError::InputShape {
            expected,
            got: dims_to_string(got),
        })
    }
}

impl Backend for OnnxBackend {
    fn infer(&mut self, window: ArrayView3<'_, f32>) -> Result<Outputs, InferError> {
        self.run(window)
    }

    fn infer_and_release(&mut self, window: ArrayView3<'_, f32>) -> Result<Outputs, InferError> {
        self.run_and_release(window)
    }
}

/// The run options of [`OnnxBackend::run_and_release`] (a type of its own
/// for `Debug`, which `ort` does not give them).
struct ReleaseOptions(ort::session::RunOptions);

impl ReleaseOptions {
    fn new() -> Result<Self, InferError> {
        let mut options = ort::session::RunOptions::new().map_err(InferError::Run)?;
        // "cpu:0": the CPU device's arena, the only one this backend uses.
        options
            .set("memory.enable_memory_arena_shrinkage", "cpu:0")
            .map_err(InferError::Run)?;
        Ok(ReleaseOptions(options))
    }
}

impl std::fmt::Debug for ReleaseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReleaseOptions")
    }
}

/// The dims of an f32 tensor type (`None` for a free dim), or `None` if the
/// type is something else.
fn float_tensor_dims(dtype: &ValueType) -> Option<Vec<Option<usize>>> {
    match dtype {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => Some(shape.iter().map(|&d| usize::try_from(d).ok()).collect()),
        _ => None,
    }
}

/// Copies an output out of ONNX Runtime's buffer, checking its rank and
/// the dims the contract fixes.
fn owned<D: Dimension>(
    name: &str,
    view: ArrayViewD<'_, f32>,
    expected: &[Option<usize>],
) -> Result<ndarray::Array<f32, D>, InferError> {
    let shape = view.shape().to_vec();
    let matches = shape.len() == expected.len()
        && expected
            .iter()
            .zip(&shape)
            .all(|(want, got)| want.is_none_or(|w| w == *got));
    let mismatch = || InferError::Output {
        name: name.to_owned(),
        message: format!(
            "expected shape [{}], got [{}]",
            expected
                .iter()
                .map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
            dims_to_string(&shape)
        ),
    };
    if !matches {
        return Err(mismatch());
    }
    view.into_dimensionality::<D>()
        .map(|v| v.to_owned())
        .map_err(|_| mismatch())
}

fn dims_to_string(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// These run the real ONNX Runtime: without it they fail (not skip), with the
/// message telling to run `scripts/setup.sh`.
#[cfg(test)]
mod tests {
    use ndarray::{array, Array, Array3, Axis, Slice};

    use super::*;
    use crate::infer::test_models;

    fn load(bytes: &[u8]) -> OnnxBackend {
        OnnxBackend::load_from_memory(bytes, &BackendOptions::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn load_err(bytes: &[u8]) -> InferError {
        match OnnxBackend::load_from_memory(bytes, &BackendOptions::default()) {
            Ok(_) => panic!("the model should have been rejected"),
            Err(e @ (InferError::LibraryNotFound { .. } | InferError::LibraryLoad { .. })) => {
                panic!("{e}")
            }
            Err(e) => e,
        }
    }

    /// `[b, t, f]` with distinct values 0, 1, 2, … (scaled), so mixing up
    /// axes shows.
    fn ramp(b: usize, t: usize, f: usize, scale: f32) -> Array3<f32> {
        Array::from_shape_fn((b, t, f), |(i, j, k)| {
            ((i * t * f + j * f + k) as f32) * scale
        })
    }

    fn assert_close<D: ndarray::Dimension>(got: &Array<f32, D>, want: &Array<f32, D>) {
        assert_eq!(got.shape(), want.shape());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "got {got}, want {want}"
            );
        }
    }

    #[test]
    fn runs_a_model_and_returns_its_outputs_numerically() {
        let mut backend = load(&test_models::double_and_mean(4, 3));
        assert_eq!(backend.input_shape(), [None, Some(4), Some(3)]);
        assert_eq!(backend.output_names(), ["reconstruction", "score"]);

        let window = ramp(2, 4, 3, 0.5);
        let out = backend.run(window.view()).unwrap();
        assert_close(out.reconstruction.as_ref().unwrap(), &(&window * 2.0));
        // mean of 0..12 · 0.5 = 2.75; of 12..24 · 0.5 = 8.75
        assert_close(out.score.as_ref().unwrap(), &array![2.75, 8.75]);
        assert_eq!(out.prediction, None);
        assert_eq!(out.embedding, None);
        assert_eq!(out.squared_error, None);

        // (ndarray's `s!` macro cannot be used: it allows unsafe code, and
        // the crate forbids it.)
        // The batch is free: one window works too, and repeated runs agree.
        let single = window.slice_axis(Axis(0), Slice::from(1..2));
        let out1 = backend.run(single).unwrap();
        assert_close(out1.score.as_ref().unwrap(), &array![8.75]);
    }

    #[test]
    fn a_run_that_gives_back_the_arena_scores_as_a_plain_run() {
        // The default model at the daemon's batch, so the arena grows
        // chunks that the release then frees and the next run grows again.
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/machine_temperature/model.onnx");
        let opts = BackendOptions {
            intra_threads: 1,
            ..BackendOptions::default()
        };
        let mut backend = OnnxBackend::load(&model, &opts).unwrap();
        let big = ramp(64, 64, 1, 0.01);
        let small = ramp(5, 64, 1, 0.02);
        let want_big = backend.run(big.view()).unwrap();
        let want_small = backend.run(small.view()).unwrap();
        for _ in 0..2 {
            for (x, want) in [(&big, &want_big), (&small, &want_small), (&big, &want_big)] {
                for got in [
                    backend.run_and_release(x.view()).unwrap(),
                    backend.run(x.view()).unwrap(),
                ] {
                    assert_close(got.score.as_ref().unwrap(), want.score.as_ref().unwrap());
                    assert_close(
                        got.embedding.as_ref().unwrap(),
                        want.embedding.as_ref().unwrap(),
                    );
                    assert_close(
                        got.squared_error.as_ref().unwrap(),
                        want.squared_error.as_ref().unwrap(),
                    );
                }
            }
        }
    }

    #[test]
    fn every_contract_output_is_extracted_with_its_shape() {
        let mut backend = load(&test_models::all_outputs(3, 2));
        assert_eq!(backend.output_names(), OUTPUT_NAMES);
        let window = array![
            [[1.0, -2.0], [3.0, 4.0], [0.5, 0.0]],
            [[-1.0, 2.0], [6.0, -3.0], [2.0, 2.0]]
        ];
        let out = backend.run(window.view()).unwrap();
        assert_close(out.reconstruction.as_ref().unwrap(), &(&window + 1.0));
        assert_close(out.prediction.as_ref().unwrap(), &window);
        assert_close(
            out.embedding.as_ref().unwrap(),
            &array![[-0.5, 3.5, 0.25], [0.5, 1.5, 2.0]],
        );
        assert_close(out.score.as_ref().unwrap(), &array![4.0, 6.0]);
        assert_close(out.squared_error.as_ref().unwrap(), &window.mapv(|v| v * v));
    }

    #[test]
    fn non_contiguous_windows_give_the_same_result() {
        let mut backend = load(&test_models::double_and_mean(4, 3));
        let wide = ramp(2, 4, 6, 1.0);
        let strided = wide.slice_axis(Axis(2), Slice::new(0, None, 2));
        assert!(!strided.is_standard_layout());
        let from_view = backend.run(strided).unwrap();
        let from_copy = backend.run(strided.to_owned().view()).unwrap();
        assert_eq!(from_view, from_copy);
        assert_close(
            from_view.reconstruction.as_ref().unwrap(),
            &(&strided.to_owned() * 2.0),
        );
    }

    #[test]
    fn wrong_input_shape_is_a_clear_error() {
        let mut backend = load(&test_models::double_and_mean(4, 3));
        for bad in [(2, 5, 3), (2, 4, 2)] {
            let err = backend.run(Array3::zeros(bad).view()).unwrap_err();
            assert!(matches!(err, InferError::InputShape { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("expects window [batch, 4, 3]"), "{msg}");
            assert!(
                msg.contains(&format!("got [{}, {}, {}]", bad.0, bad.1, bad.2)),
                "{msg}"
            );
        }
        // The backend is still usable afterwards.
        assert!(backend.run(Array3::zeros((1, 4, 3)).view()).is_ok());
    }

    #[test]
    fn loads_from_a_file_with_intra_threads_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, test_models::double_and_mean(2, 2)).unwrap();
        let opts = BackendOptions {
            intra_threads: 1,
            library: None,
        };
        let mut backend = OnnxBackend::load(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
        let out = backend.run(Array3::ones((3, 2, 2)).view()).unwrap();
        assert_close(out.score.as_ref().unwrap(), &array![1.0, 1.0, 1.0]);
    }

    #[test]
    fn missing_model_file_names_the_path() {
        let err = OnnxBackend::load(
            Path::new("/nonexistent/model.onnx"),
            &BackendOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, InferError::ModelNotFound(_)), "{err}");
        assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");
    }

    #[test]
    fn garbage_bytes_are_a_model_load_error() {
        let err = load_err(b"this is not an onnx model");
        assert!(matches!(err, InferError::ModelLoad { .. }), "{err}");
        assert!(err.to_string().contains("from memory"), "{err}");
    }

    #[test]
    fn wrong_input_name_breaks_the_contract() {
        let err = load_err(&test_models::identity("x", "reconstruction", 4, 3));
        assert!(matches!(err, InferError::Contract(_)), "{err}");
        assert!(
            err.to_string().contains("expected one input `window`"),
            "{err}"
        );
        assert!(err.to_string().contains("\"x\""), "{err}");
    }

    #[test]
    fn unknown_output_name_breaks_the_contract() {
        let err = load_err(&test_models::identity("window", "mystery", 4, 3));
        assert!(matches!(err, InferError::Contract(_)), "{err}");
        assert!(
            err.to_string().contains("unknown output `mystery`"),
            "{err}"
        );
    }

    #[test]
    fn output_of_the_wrong_shape_is_reported_by_name() {
        // `score` must be [batch]; this model returns [batch, 4, 3].
        let mut backend = load(&test_models::identity("window", "score", 4, 3));
        let err = backend.run(Array3::zeros((2, 4, 3)).view()).unwrap_err();
        assert!(matches!(err, InferError::Output { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "model output `score`: expected shape [2], got [2, 4, 3]"
        );
    }

    #[test]
    fn works_as_a_boxed_backend_on_another_thread() {
        let mut backend: Box<dyn Backend> = Box::new(load(&test_models::double_and_mean(2, 1)));
        let score = std::thread::spawn(move || {
            let out = backend.infer(array![[[1.0], [3.0]]].view()).unwrap();
            out.score.unwrap()
        })
        .join()
        .unwrap();
        assert_close(&score, &array![2.0]);
    }
}
