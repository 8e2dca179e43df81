//! ONNX export of a trained model: one file, standard opset 17, `LSTM`
//! operators for the recurrences, dynamic batch.
//!
//! Graph contract (what the daemon and `lstm-ae score` rely on):
//! - input `window` `[batch, T, F]`, raw units (the scaler is in the graph);
//! - `embedding` `[batch, H]`: the encoder's final hidden state;
//! - `reconstruction` `[batch, T, F]`, natural order, raw units;
//! - `squared_error` `[batch, T, F]`: per step and feature, scaled units;
//! - `score` `[batch]`: mean of `squared_error` over the window;
//! - `prediction` `[batch, P, F]`, raw units.
//!
//! A mode without a decoder has no outputs of that decoder.
//!
//! ONNX Runtime's CPU LSTM kernel only takes time-major input (`layout = 0`),
//! so the window is transposed before the encoder and decoder outputs are
//! transposed back. The conditional decoder (fed its own previous output) has
//! no direct ONNX form; because its input at step t is the affine function
//! `h_{t-1}·w_out + b_out` of its own state, it is folded exactly into the
//! recurrent weights: an LSTM with no input whose recurrence is
//! `w_h + w_out·w_x` and bias `b + b_out·w_x`, after a first step that runs
//! with the plain weights (its input is zero).

use ndarray::{Array1, Array2};
use prost::Message;

use super::onnx_pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use super::params::{DecoderParams, LstmParams, Params};
use super::spec::{Activation, DecoderInput, ModelSpec};

/// The opset the exported graph declares.
pub const OPSET: i64 = 17;
/// ONNX IR version matching opset 17.
pub const IR_VERSION: i64 = 8;

/// Names of the graph's input and outputs.
pub mod names {
    pub const WINDOW: &str = "window";
    pub const EMBEDDING: &str = "embedding";
    pub const RECONSTRUCTION: &str = "reconstruction";
    pub const SQUARED_ERROR: &str = "squared_error";
    pub const SCORE: &str = "score";
    pub const PREDICTION: &str = "prediction";
}

/// What goes into the model file besides the weights.
pub struct ExportInfo<'a> {
    pub spec: &'a ModelSpec,
    /// Per feature: `scaled = (raw - offset) * scale`.
    pub scaler_offset: &'a [f32],
    pub scaler_scale: &'a [f32],
    pub model_id: &'a str,
    pub model_version: i64,
    /// Free-form key/value pairs stored as ONNX metadata.
    pub metadata: Vec<(String, String)>,
}

struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Strings as i32),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    debug_assert_eq!(dims.iter().product::<usize>(), data.len());
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![data.len() as i64],
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// Adds a node; returns its outputs' names. An output named `""` is an
    /// omitted optional output.
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> Vec<String> {
        let name = self.fresh(op);
        let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            name: Some(name),
            op_type: Some(op.into()),
            attribute: attrs,
            ..Default::default()
        });
        outputs
    }

    /// A node with one output, given a fresh name.
    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node(op, inputs, &[&out], attrs);
        out
    }

    fn const_f32(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(f32_tensor(&name, dims, data));
        name
    }

    fn const_i64(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(i64_tensor(&name, data));
        name
    }

    /// ONNX `LSTM` weights from ours: `W = w_xᵀ` `[1, 4H, I]`,
    /// `R = w_hᵀ` `[1, 4H, H]`, `B = [b, 0]` `[1, 8H]`.
    fn lstm_weights(
        &mut self,
        hint: &str,
        w_x: &Array2<f32>,
        w_h: &Array2<f32>,
        b: &Array1<f32>,
    ) -> [String; 3] {
        let h = w_h.nrows();
        let i = w_x.nrows();
        let wt: Vec<f32> = w_x.t().iter().copied().collect();
        let rt: Vec<f32> = w_h.t().iter().copied().collect();
        let bb: Vec<f32> = b
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0.0, 4 * h))
            .collect();
        [
            self.const_f32(&format!("{hint}_W"), &[1, 4 * h, i], &wt),
            self.const_f32(&format!("{hint}_R"), &[1, 4 * h, h], &rt),
            self.const_f32(&format!("{hint}_B"), &[1, 8 * h], &bb),
        ]
    }

    /// An `LSTM` node; returns `(Y [S,1,B,H], Y_h [1,B,H], Y_c [1,B,H])`.
    #[allow(clippy::too_many_arguments)]
    fn lstm(
        &mut self,
        hint: &str,
        x: &str,
        weights: &[String; 3],
        hidden: usize,
        activation: Activation,
        init: Option<(&str, &str)>,
    ) -> (String, String, String) {
        let (y, yh, yc) = (
            self.fresh(&format!("{hint}_Y")),
            self.fresh(&format!("{hint}_Yh")),
            self.fresh(&format!("{hint}_Yc")),
        );
        let mut inputs: Vec<&str> = vec![x, &weights[0], &weights[1], &weights[2]];
        if let Some((h0, c0)) = init {
            // Inputs 4 and 5 are sequence_lens (omitted) and initial_h.
            inputs.extend_from_slice(&["", h0, c0]);
        }
        let act = match activation {
            Activation::Tanh => "Tanh",
            Activation::Relu => "Relu",
        };
        let attrs = vec![
            attr_int("hidden_size", hidden as i64),
            attr_strings("activations", &["Sigmoid", act, act]),
            attr_int("layout", 0),
        ];
        self.node("LSTM", &inputs, &[&y, &yh, &yc], attrs);
        (y, yh, yc)
    }

    /// A zero input `[steps, batch, 1]` for an LSTM that reads nothing:
    /// ONNX's LSTM always has an input, so it gets one column of zeros with
    /// zero weights.
    fn zero_input(&mut self, steps: usize, window: &str) -> String {
        let shape = self.op("Shape", &[window], vec![]);
        let (s0, s1) = (self.const_i64("zero", &[0]), self.const_i64("one", &[1]));
        let batch = self.op("Slice", &[&shape, &s0, &s1], vec![]);
        let st = self.const_i64("steps", &[steps as i64]);
        let shape_out = self.op("Concat", &[&st, &batch, &s1], vec![attr_int("axis", 0)]);
        let value = AttributeProto {
            name: Some("value".into()),
            r#type: Some(AttributeType::Tensor as i32),
            t: Some(f32_tensor("", &[1], &[0.0])),
            ..Default::default()
        };
        self.op("ConstantOfShape", &[&shape_out], vec![value])
    }

    /// One decoder, `steps` steps; returns its outputs in decoder order,
    /// scaled units, time-major `[S, B, F]`.
    #[allow(clippy::too_many_arguments)]
    fn decoder(
        &mut self,
        hint: &str,
        d: &DecoderParams<f32>,
        spec: &ModelSpec,
        steps: usize,
        window: &str,
        embedding: &str,
        enc_h: &str,
        enc_c: &str,
    ) -> String {
        let h = spec.hidden;
        let act = spec.activation;
        let no_input_w = Array2::<f32>::zeros((1, 4 * h));
        let y = match spec.decoder_input {
            DecoderInput::Repeat => {
                let axes0 = self.const_i64("axes0", &[0]);
                let e = self.op("Unsqueeze", &[embedding, &axes0], vec![]);
                let reps = self.const_i64("repeats", &[steps as i64, 1, 1]);
                let x = self.op("Tile", &[&e, &reps], vec![]);
                let w = self.lstm_weights(hint, &d.lstm.w_x, &d.lstm.w_h, &d.lstm.b);
                self.lstm(hint, &x, &w, h, act, None).0
            }
            DecoderInput::State => {
                let x = self.zero_input(steps, window);
                let w = self.lstm_weights(hint, &no_input_w, &d.lstm.w_h, &d.lstm.b);
                self.lstm(hint, &x, &w, h, act, Some((enc_h, enc_c))).0
            }
            DecoderInput::Conditional => {
                let x0 = self.zero_input(1, window);
                let w0 = self.lstm_weights(
                    &format!("{hint}_first"),
                    &no_input_w,
                    &d.lstm.w_h,
                    &d.lstm.b,
                );
                let (y0, h0, c0) = self.lstm(
                    &format!("{hint}_first"),
                    &x0,
                    &w0,
                    h,
                    act,
                    Some((enc_h, enc_c)),
                );
                if steps == 1 {
                    y0
                } else {
                    let folded_r = &d.lstm.w_h + &d.w_out.dot(&d.lstm.w_x);
                    let folded_b = &d.lstm.b + &d.b_out.dot(&d.lstm.w_x);
                    let x = self.zero_input(steps - 1, window);
                    let w = self.lstm_weights(
                        &format!("{hint}_rest"),
                        &no_input_w,
                        &folded_r,
                        &folded_b,
                    );
                    let (y1, _, _) =
                        self.lstm(&format!("{hint}_rest"), &x, &w, h, act, Some((&h0, &c0)));
                    self.op("Concat", &[&y0, &y1], vec![attr_int("axis", 0)])
                }
            }
        };
        // [S, 1, B, H] → [S, B, H] → dense → [S, B, F]
        let axes1 = self.const_i64("axes1", &[1]);
        let hs = self.op("Squeeze", &[&y, &axes1], vec![]);
        let w_out: Vec<f32> = d.w_out.iter().copied().collect();
        let w_out = self.const_f32(&format!("{hint}_w_out"), &[h, spec.features], &w_out);
        let b_out = self.const_f32(
            &format!("{hint}_b_out"),
            &[spec.features],
            &d.b_out.to_vec(),
        );
        let mm = self.op("MatMul", &[&hs, &w_out], vec![]);
        self.op("Add", &[&mm, &b_out], vec![])
    }
}

fn value_info(name: &str, dims: &[Result<usize, &str>]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Ok(n) => dimension::Value::DimValue(*n as i64),
                                Err(p) => dimension::Value::DimParam(p.to_string()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Builds the ONNX model of `params` (see the module docs for its contract).
pub fn export(params: &Params<f32>, info: &ExportInfo<'_>) -> ModelProto {
    let spec = info.spec;
    let (t, f, h, p) = (spec.window, spec.features, spec.hidden, spec.horizon);
    let mut g = Graph {
        nodes: vec![],
        initializers: vec![],
        next: 0,
    };
    let batch = Err("batch");
    let offset = g.const_f32("scaler_offset", &[f], info.scaler_offset);
    let scale = g.const_f32("scaler_scale", &[f], info.scaler_scale);
    let centred = g.op("Sub", &[names::WINDOW, &offset], vec![]);
    let scaled = g.op("Mul", &[&centred, &scale], vec![]);
    let x = g.op("Transpose", &[&scaled], vec![attr_ints("perm", &[1, 0, 2])]);
    let enc = &params.encoder;
    let w = g.lstm_weights("encoder", &enc.w_x, &enc.w_h, &enc.b);
    let (_, enc_h, enc_c) = g.lstm("encoder", &x, &w, h, spec.activation, None);
    let axes0 = g.const_i64("axes0", &[0]);
    g.node("Squeeze", &[&enc_h, &axes0], &[names::EMBEDDING], vec![]);
    let mut outputs = vec![value_info(names::EMBEDDING, &[batch, Ok(h)])];
    let to_raw = |g: &mut Graph, y_tm: &str, out: &str| {
        let y = g.op("Transpose", &[y_tm], vec![attr_ints("perm", &[1, 0, 2])]);
        let unscaled = g.op("Div", &[&y, &scale], vec![]);
        g.node("Add", &[&unscaled, &offset], &[out], vec![]);
        y
    };
    if let Some(d) = &params.reconstruction {
        let mut y = g.decoder(
            "reconstruction",
            d,
            spec,
            t,
            names::WINDOW,
            names::EMBEDDING,
            &enc_h,
            &enc_c,
        );
        if spec.reverse_reconstruction {
            let (start, end) = (g.const_i64("start", &[-1]), g.const_i64("end", &[i64::MIN]));
            let (axes, steps) = (g.const_i64("axes0", &[0]), g.const_i64("step", &[-1]));
            y = g.op("Slice", &[&y, &start, &end, &axes, &steps], vec![]);
        }
        let rec_scaled = to_raw(&mut g, &y, names::RECONSTRUCTION);
        let diff = g.op("Sub", &[&scaled, &rec_scaled], vec![]);
        g.node("Mul", &[&diff, &diff], &[names::SQUARED_ERROR], vec![]);
        g.node(
            "ReduceMean",
            &[names::SQUARED_ERROR],
            &[names::SCORE],
            vec![attr_ints("axes", &[1, 2]), attr_int("keepdims", 0)],
        );
        outputs.push(value_info(names::RECONSTRUCTION, &[batch, Ok(t), Ok(f)]));
        outputs.push(value_info(names::SQUARED_ERROR, &[batch, Ok(t), Ok(f)]));
        outputs.push(value_info(names::SCORE, &[batch]));
    }
    if let Some(d) = &params.prediction {
        let y = g.decoder(
            "prediction",
            d,
            spec,
            p,
            names::WINDOW,
            names::EMBEDDING,
            &enc_h,
            &enc_c,
        );
        to_raw(&mut g, &y, names::PREDICTION);
        outputs.push(value_info(names::PREDICTION, &[batch, Ok(p), Ok(f)]));
    }
    let mut metadata_props: Vec<StringStringEntryProto> = info
        .metadata
        .iter()
        .map(|(k, v)| StringStringEntryProto {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect();
    metadata_props.push(StringStringEntryProto {
        key: Some("lstm_ae.spec".into()),
        value: Some(serde_json::to_string(spec).unwrap_or_default()),
    });
    ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("lstm-ae".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: Some("lstm-ae".into()),
        model_version: Some(info.model_version),
        doc_string: Some(format!("composite LSTM autoencoder {}", info.model_id)),
        graph: Some(GraphProto {
            node: g.nodes,
            name: Some(info.model_id.to_string()),
            initializer: g.initializers,
            input: vec![value_info(names::WINDOW, &[batch, Ok(t), Ok(f)])],
            output: outputs,
            ..Default::default()
        }),
        metadata_props,
    }
}

/// The model file's bytes.
pub fn export_bytes(params: &Params<f32>, info: &ExportInfo<'_>) -> Vec<u8> {
    export(params, info).encode_to_vec()
}

/// Why weights could not be read back from a model file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a valid ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the model has no initializer `{0}` (not exported by lstm-ae, or a different spec)")]
    Missing(String),
    #[error("initializer `{name}` has {found} values, the spec needs {expected}")]
    Shape {
        name: String,
        found: usize,
        expected: usize,
    },
    #[error("reading weights back is not supported for decoder_input = conditional (its export folds the feedback into the recurrence)")]
    Conditional,
}

/// Reads the trainer's parameters back from a model [`export`] wrote, so a
/// retrain can start from the live version's weights (the inverse of
/// `lstm_weights` and the dense layers; initializer names are the export's
/// hints plus a numeric suffix).
pub fn import_params(bytes: &[u8], spec: &ModelSpec) -> Result<Params<f32>, ImportError> {
    if spec.decoder_input == DecoderInput::Conditional {
        return Err(ImportError::Conditional);
    }
    let model = ModelProto::decode(bytes)?;
    let graph = model.graph.unwrap_or_default();
    let find = |hint: &str, expected: usize| -> Result<Vec<f32>, ImportError> {
        let t = graph
            .initializer
            .iter()
            .find(|t| {
                t.name.as_deref().is_some_and(|n| {
                    n.strip_prefix(hint)
                        .and_then(|rest| rest.strip_prefix('_'))
                        .is_some_and(|num| {
                            !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())
                        })
                })
            })
            .ok_or_else(|| ImportError::Missing(hint.to_string()))?;
        let values: Vec<f32> = match &t.raw_data {
            Some(raw) => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            None => t.float_data.clone(),
        };
        if values.len() != expected {
            return Err(ImportError::Shape {
                name: hint.to_string(),
                found: values.len(),
                expected,
            });
        }
        Ok(values)
    };
    let (f, h) = (spec.features, spec.hidden);
    // W = w_xᵀ [4H, I], R = w_hᵀ [4H, H], B = [b, 0] [8H].
    let lstm =
        |hint: &str, input: usize, stored_input: usize| -> Result<LstmParams<f32>, ImportError> {
            let w = find(&format!("{hint}_W"), 4 * h * stored_input)?;
            let r = find(&format!("{hint}_R"), 4 * h * h)?;
            let b = find(&format!("{hint}_B"), 8 * h)?;
            let w_x = if input == 0 {
                Array2::zeros((0, 4 * h))
            } else {
                Array2::from_shape_vec((4 * h, input), w)
                    .map_err(|_| ImportError::Missing(format!("{hint}_W")))?
                    .reversed_axes()
                    .as_standard_layout()
                    .to_owned()
            };
            let w_h = Array2::from_shape_vec((4 * h, h), r)
                .map_err(|_| ImportError::Missing(format!("{hint}_R")))?
                .reversed_axes()
                .as_standard_layout()
                .to_owned();
            Ok(LstmParams {
                w_x,
                w_h,
                b: Array1::from_vec(b[..4 * h].to_vec()),
            })
        };
    let input = super::params::decoder_input_width(spec);
    // A decoder without input is exported with one zero input column.
    let stored = input.max(1);
    let decoder = |hint: &str| -> Result<DecoderParams<f32>, ImportError> {
        let w_out = find(&format!("{hint}_w_out"), h * f)?;
        Ok(DecoderParams {
            lstm: lstm(hint, input, stored)?,
            w_out: Array2::from_shape_vec((h, f), w_out)
                .map_err(|_| ImportError::Missing(format!("{hint}_w_out")))?,
            b_out: Array1::from_vec(find(&format!("{hint}_b_out"), f)?),
        })
    };
    Ok(Params {
        encoder: lstm("encoder", f, f)?,
        reconstruction: spec
            .mode
            .has_reconstruction()
            .then(|| decoder("reconstruction"))
            .transpose()?,
        prediction: spec
            .mode
            .has_prediction()
            .then(|| decoder("prediction"))
            .transpose()?,
    })
}

/// The same network under a new version number and threshold (what
/// `lstm-ae recalibrate` writes): the weights stay byte for byte.
pub fn restamp(bytes: &[u8], model_version: i64, threshold: f32) -> Result<Vec<u8>, ImportError> {
    let mut model = ModelProto::decode(bytes)?;
    model.model_version = Some(model_version);
    let value = threshold.to_string();
    match model
        .metadata_props
        .iter_mut()
        .find(|p| p.key.as_deref() == Some("lstm_ae.threshold"))
    {
        Some(p) => p.value = Some(value),
        None => model.metadata_props.push(StringStringEntryProto {
            key: Some("lstm_ae.threshold".into()),
            value: Some(value),
        }),
    }
    Ok(model.encode_to_vec())
}

#[cfg(test)]
mod import_tests {
    use super::*;
    use crate::model::Mode;

    fn roundtrip(spec: ModelSpec) {
        let params = Params::<f32>::init(&spec, 7);
        let info = ExportInfo {
            spec: &spec,
            scaler_offset: &vec![0.0; spec.features],
            scaler_scale: &vec![1.0; spec.features],
            model_id: "m",
            model_version: 1,
            metadata: vec![],
        };
        let back = import_params(&export_bytes(&params, &info), &spec).unwrap();
        assert_eq!(back, params, "{spec:?}");
    }

    #[test]
    fn exported_weights_read_back_exactly() {
        for (decoder_input, mode) in [
            (DecoderInput::Repeat, Mode::Composite),
            (DecoderInput::State, Mode::Composite),
            (DecoderInput::Repeat, Mode::Reconstruct),
        ] {
            roundtrip(ModelSpec {
                window: 5,
                features: 2,
                hidden: 3,
                horizon: if mode.has_prediction() { 2 } else { 0 },
                decoder_input,
                mode,
                ..ModelSpec::default()
            });
        }
    }

    #[test]
    fn a_conditional_decoder_or_another_spec_is_refused() {
        let spec = ModelSpec {
            window: 5,
            hidden: 3,
            ..ModelSpec::default()
        };
        let params = Params::<f32>::init(&spec, 7);
        let info = ExportInfo {
            spec: &spec,
            scaler_offset: &[0.0],
            scaler_scale: &[1.0],
            model_id: "m",
            model_version: 1,
            metadata: vec![],
        };
        let bytes = export_bytes(&params, &info);
        let bigger = ModelSpec {
            hidden: 4,
            ..spec.clone()
        };
        assert!(matches!(
            import_params(&bytes, &bigger),
            Err(ImportError::Shape { .. })
        ));
        let cond = ModelSpec {
            decoder_input: DecoderInput::Conditional,
            ..spec
        };
        assert!(matches!(
            import_params(&bytes, &cond),
            Err(ImportError::Conditional)
        ));
    }
}
