//! What a `network!` declaration implements: the [`Network`] trait and its [`Summary`].
//!
//! Everything here is known at compile time, so `Cnn3a::PARAMS` and
//! `Cnn3a::summary()` work without building the model or touching a device.
//!
//! ```text
//! Model: "Cnn3a"    input (None, 1, 28, 28)
//! _________________________________________________________________
//!  Layer                   Output Shape          Param #
//! =================================================================
//!  conv<32, 3>             (None, 32, 26, 26)    320
//!  ...
//! =================================================================
//! Total params: 225,034
//! ```

use dfdx::shapes::Shape;
use serde::Serialize;
use std::fmt;

/// A network declared with `network!`: its name, parameter count and shapes as types.
///
/// The same type is also a dfdx builder (`dev.build_module::<Net, f32>()`).
/// Shapes are channels first; the batch dimension is a runtime `usize`.
pub trait Network {
    /// The declared name, e.g. `"Cnn3a"`.
    const NAME: &'static str;
    /// Trainable parameters (kernels and biases), computed by the macro.
    const PARAMS: usize;
    /// Non-trainable parameters (batchnorm's moving statistics), computed by the macro.
    const NON_TRAINABLE_PARAMS: usize = 0;
    /// One sample: `Rank3<C, H, W>` or `Rank1<N>`.
    type Input: Shape;
    /// One sample's output, e.g. `Rank1<10>`.
    type Output: Shape;
    /// A batch: `(usize, Const<C>, Const<H>, Const<W>)` or `(usize, Const<N>)`.
    type BatchedInput: Shape;
    /// A batch of outputs, e.g. `(usize, Const<10>)`.
    type BatchedOutput: Shape;
    /// The input shape for `batch` samples, for `dev.zeros_like(&Net::batched_input(b))`
    /// or `dev.tensor_from_vec(data, Net::batched_input(b))`.
    fn batched_input(batch: usize) -> Self::BatchedInput;
    /// The output shape for `batch` samples.
    fn batched_output(batch: usize) -> Self::BatchedOutput;
    /// Keras-like table of layers, output shapes and parameters.
    fn summary() -> Summary;
}

/// A network's layers with their output shapes and parameter counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The declared name, e.g. `"Cnn3a"`.
    pub name: String,
    /// Keras notation with the batch as `None`: `"(None, 1, 28, 28)"`.
    pub input_shape: String,
    /// One row per layer, in order.
    pub layers: Vec<LayerSummary>,
    /// Total trainable parameters.
    pub params: usize,
    /// Total non-trainable parameters (batchnorm's moving statistics);
    /// left out of the JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub non_trainable_params: usize,
}

/// One row of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSummary {
    /// The layer as written in the DSL, canonical form: `"conv<64, 3, pad = same>"`.
    pub layer: String,
    /// `"(None, 64, 14, 14)"`.
    pub output_shape: String,
    /// Trainable parameters of the layer.
    pub params: usize,
    /// Non-trainable parameters of the layer; left out of the JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub non_trainable: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// A summary from `(layer, output_shape, params)` rows; `params` is their sum.
    /// (This is what `network!` expands to.)
    pub fn new(name: &str, input_shape: &str, layers: &[(&str, &str, usize)]) -> Self {
        let layers: Vec<LayerSummary> = layers
            .iter()
            .map(|&(layer, output_shape, params)| LayerSummary {
                layer: layer.to_string(),
                output_shape: output_shape.to_string(),
                params,
                non_trainable: 0,
            })
            .collect();
        Summary {
            name: name.to_string(),
            input_shape: input_shape.to_string(),
            params: layers.iter().map(|l| l.params).sum(),
            non_trainable_params: 0,
            layers,
        }
    }

    /// A summary from `(layer, output_shape, trainable, non_trainable)` rows
    /// (what `network!` expands to for a network with batchnorm).
    pub fn with_non_trainable(
        name: &str,
        input_shape: &str,
        layers: &[(&str, &str, usize, usize)],
    ) -> Self {
        let rows: Vec<(&str, &str, usize)> = layers.iter().map(|&(l, s, p, _)| (l, s, p)).collect();
        let mut summary = Summary::new(name, input_shape, &rows);
        for (row, &(.., frozen)) in summary.layers.iter_mut().zip(layers) {
            row.non_trainable = frozen;
        }
        summary.non_trainable_params = layers.iter().map(|l| l.3).sum();
        summary
    }
}

impl fmt::Display for Summary {
    /// Keras' `model.summary()` layout, columns widened to fit.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        const LAYER: &str = "Layer";
        const SHAPE: &str = "Output Shape";
        const PARAMS: &str = "Param #";
        let col1 = self
            .layers
            .iter()
            .map(|l| l.layer.len())
            .chain([LAYER.len()])
            .max();
        let col2 = (self.layers.iter().map(|l| l.output_shape.len()))
            .chain([SHAPE.len()])
            .max();
        let (col1, col2) = (col1.unwrap_or(0) + 4, col2.unwrap_or(0) + 4);
        let width = (1 + col1 + col2 + PARAMS.len()).max(65);
        let thin = "_".repeat(width);
        let thick = "=".repeat(width);

        writeln!(f, "Model: \"{}\"    input {}", self.name, self.input_shape)?;
        writeln!(f, "{thin}")?;
        writeln!(f, " {LAYER:<col1$}{SHAPE:<col2$}{PARAMS}")?;
        writeln!(f, "{thick}")?;
        for l in &self.layers {
            // Keras' column counts every weight of the layer, trainable or not.
            let params = thousands(l.params + l.non_trainable);
            writeln!(f, " {:<col1$}{:<col2$}{params}", l.layer, l.output_shape)?;
        }
        writeln!(f, "{thick}")?;
        if self.non_trainable_params == 0 {
            writeln!(f, "Total params: {}", thousands(self.params))?;
        } else {
            // Keras' three lines (printed only where some parameter is not trainable)
            let total = self.params + self.non_trainable_params;
            writeln!(f, "Total params: {}", thousands(total))?;
            writeln!(f, "Trainable params: {}", thousands(self.params))?;
            let frozen = thousands(self.non_trainable_params);
            writeln!(f, "Non-trainable params: {frozen}")?;
        }
        write!(f, "{thin}")
    }
}

/// 225034 -> "225,034" (Keras prints parameter counts this way).
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dnn1() -> Summary {
        Summary::new(
            "Dnn1",
            "(None, 784)",
            &[
                ("dense<5>", "(None, 5)", 3925),
                ("relu", "(None, 5)", 0),
                ("dense<10>", "(None, 10)", 60),
            ],
        )
    }

    #[test]
    fn new_sums_params() {
        assert_eq!(dnn1().params, 3985);
        assert_eq!(dnn1().layers[2].output_shape, "(None, 10)");
    }

    #[test]
    fn display_is_keras_like() {
        let expected = "\
Model: \"Dnn1\"    input (None, 784)
_________________________________________________________________
 Layer        Output Shape    Param #
=================================================================
 dense<5>     (None, 5)       3,925
 relu         (None, 5)       0
 dense<10>    (None, 10)      60
=================================================================
Total params: 3,985
_________________________________________________________________";
        assert_eq!(dnn1().to_string(), expected);
    }

    #[test]
    fn serializes_with_the_agreed_field_names() {
        let json = serde_json::to_value(dnn1()).unwrap();
        assert_eq!(json["name"], "Dnn1");
        assert_eq!(json["params"], 3985);
        assert_eq!(json["layers"][0]["layer"], "dense<5>");
        assert_eq!(json["layers"][0]["output_shape"], "(None, 5)");
        assert_eq!(json["layers"][0]["params"], 3925);
    }

    #[test]
    fn non_trainable_counts_as_keras_shows_them() {
        let s = Summary::with_non_trainable(
            "Bn",
            "(None, 4)",
            &[
                ("dense<8>", "(None, 8)", 40, 0),
                ("batchnorm", "(None, 8)", 16, 16),
            ],
        );
        assert_eq!((s.params, s.non_trainable_params), (56, 16));
        let text = s.to_string();
        assert!(
            text.contains(" batchnorm    (None, 8)       32\n"),
            "{text}"
        );
        assert!(
            text.contains("Total params: 72\nTrainable params: 56\nNon-trainable params: 16\n"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["non_trainable_params"], 16);
        assert_eq!(json["layers"][1]["non_trainable"], 16);
        assert!(serde_json::to_value(dnn1())
            .unwrap()
            .get("non_trainable_params")
            .is_none());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(93_322), "93,322");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
