//! Tiny hand-built ONNX models for tests, written with the prost types of
//! [`crate::model::onnx_pb`] (IR version 8, opset 17), so the backend is
//! tested against the real ONNX Runtime without a trained model.

use prost::Message;

use crate::model::onnx_pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// A dimension of a declared shape.
#[derive(Debug, Clone)]
pub enum Dim {
    /// Fixed size.
    Fixed(i64),
    /// Free, named (e.g. `batch`).
    Free(&'static str),
}

/// A graph input or output: name, element type, shape.
pub fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n),
                Dim::Free(s) => dimension::Value::DimParam((*s).to_owned()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}

/// `[batch, t, f]` f32.
pub fn window_info(name: &str, t: i64, f: i64) -> ValueInfoProto {
    value_info(
        name,
        DataType::Float,
        &[Dim::Free("batch"), Dim::Fixed(t), Dim::Fixed(f)],
    )
}

/// An f32 tensor initializer stored as little-endian `raw_data`.
pub fn f32_initializer(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        name: Some(name.to_owned()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..TensorProto::default()
    }
}

/// An `INTS` attribute.
pub fn ints_attr(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Ints as i32),
        ints: ints.to_vec(),
        ..AttributeProto::default()
    }
}

/// An `INT` attribute.
pub fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..AttributeProto::default()
    }
}

/// A node of the default ONNX domain.
pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        name: Some(format!("{op}_{}", outputs.first().copied().unwrap_or(""))),
        op_type: Some(op.to_owned()),
        attribute: attrs,
        ..NodeProto::default()
    }
}

/// `ReduceMean` at opset 17: axes as an attribute.
pub fn reduce_mean(input: &str, output: &str, axes: &[i64]) -> NodeProto {
    node(
        "ReduceMean",
        &[input],
        &[output],
        vec![ints_attr("axes", axes), int_attr("keepdims", 0)],
    )
}

/// Serializes a graph as an IR 8 / opset 17 model.
pub fn model_bytes(graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        producer_name: Some("lstm-ae tests".to_owned()),
        graph: Some(graph),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

/// `window [batch, t, f]` → `reconstruction = window · 2`,
/// `score = mean over (T, F)`.
pub fn double_and_mean(t: i64, f: i64) -> Vec<u8> {
    model_bytes(GraphProto {
        name: Some("double_and_mean".to_owned()),
        node: vec![
            node("Mul", &["window", "two"], &["reconstruction"], vec![]),
            reduce_mean("window", "score", &[1, 2]),
        ],
        initializer: vec![f32_initializer("two", &[], &[2.0])],
        input: vec![window_info("window", t, f)],
        output: vec![
            window_info("reconstruction", t, f),
            value_info("score", DataType::Float, &[Dim::Free("batch")]),
        ],
        ..GraphProto::default()
    })
}

/// All five contract outputs:
/// `reconstruction = window + 1`, `prediction = window`,
/// `embedding = mean over F` (`[batch, t]`), `score = max over (T, F)`,
/// `squared_error = window²`.
pub fn all_outputs(t: i64, f: i64) -> Vec<u8> {
    model_bytes(GraphProto {
        name: Some("all_outputs".to_owned()),
        node: vec![
            node("Add", &["window", "one"], &["reconstruction"], vec![]),
            node("Identity", &["window"], &["prediction"], vec![]),
            reduce_mean("window", "embedding", &[2]),
            node(
                "ReduceMax",
                &["window"],
                &["score"],
                vec![ints_attr("axes", &[1, 2]), int_attr("keepdims", 0)],
            ),
            node("Mul", &["window", "window"], &["squared_error"], vec![]),
        ],
        initializer: vec![f32_initializer("one", &[1], &[1.0])],
        input: vec![window_info("window", t, f)],
        output: vec![
            window_info("reconstruction", t, f),
            window_info("prediction", t, f),
            value_info(
                "embedding",
                DataType::Float,
                &[Dim::Free("batch"), Dim::Fixed(t)],
            ),
            value_info("score", DataType::Float, &[Dim::Free("batch")]),
            window_info("squared_error", t, f),
        ],
        ..GraphProto::default()
    })
}

/// Identity from an input called `input_name` to an output called
/// `output_name`, both `[batch, t, f]` f32: for contract violations.
pub fn identity(input_name: &str, output_name: &str, t: i64, f: i64) -> Vec<u8> {
    model_bytes(GraphProto {
        name: Some("identity".to_owned()),
        node: vec![node("Identity", &[input_name], &[output_name], vec![])],
        input: vec![window_info(input_name, t, f)],
        output: vec![window_info(output_name, t, f)],
        ..GraphProto::default()
    })
}
