//! The model the daemon serves: its manifest, how each inference thread
//! builds a backend for it, and where new versions come from.

use std::path::Path;
use std::sync::Arc;

use super::backend::BackendFactory;
use super::error::ServeError;
use super::reload::{Loader, Reload};
use crate::config::{RuntimeSettings, ServeSettings};
use crate::infer::{Backend, OnnxBackend};
use crate::model::store::ModelSource;
use crate::model::{Bundle, Manifest};

/// The model to serve: its manifest, how to build a backend for it, and
/// where new versions come from (none: the model is fixed for the run).
pub struct Model {
    pub manifest: Manifest,
    pub factory: BackendFactory,
    pub reload: Option<Reload>,
}

impl Model {
    /// The bundle of `serve.model` (a store: its `current` version, followed
    /// for new ones; a folder: that bundle), run by ONNX Runtime.
    pub fn open(serve: &ServeSettings, runtime: &RuntimeSettings) -> Result<Model, ServeError> {
        let source = ModelSource::of(Path::new(&serve.model))?;
        let dir = source.resolve()?;
        let bundle = Bundle::open(&dir)?;
        let threads = crate::threads_or_cores(serve.inference_threads);
        let mut opts = runtime.backend_options();
        // Sessions side by side that each used every core would fight over
        // them: one thread each, unless the settings say otherwise.
        if threads > 1 && opts.intra_threads == 0 {
            opts.intra_threads = 1;
        }
        tracing::info!(
            threads,
            intra_threads = opts.intra_threads,
            "inference sessions"
        );
        let loader: Loader = Arc::new(move |onnx: Arc<Vec<u8>>| {
            let opts = opts.clone();
            Arc::new(move || {
                OnnxBackend::load_from_memory(&onnx, &opts).map(|b| Box::new(b) as Box<dyn Backend>)
            })
        });
        Ok(Model {
            manifest: bundle.manifest,
            factory: loader(Arc::new(bundle.onnx)),
            reload: Some(Reload {
                source,
                live_dir: dir,
                loader,
            }),
        })
    }
}
