//! A run's dropout rates and L2 factors, as its [`Overrides`] set them on a
//! built model: [`new_values`] computes them from the network's declared
//! ones, [`apply`] sets them (after `Model::new`, and again after a
//! checkpoint is loaded: the weights file does not hold them).
//!
//! ```text
//! dropout rate k     dropout.k, else dropout, else declared; then times dropout_scale
//!                    (dropout.k is not scaled)
//! L2 factor λ        l2, else the largest declared factor (cnn3b: 0.01)
//! conv kernel        λ when l2_on includes conv, 0 when l2_on is given without it,
//!                    else λ where the kernel declares l2, 0 where it does not
//! dense kernel       the same with dense
//! ```
//!
//! The runtime's `Model::regularizers` and `Model::set_regularizers` read and
//! set them; a model built without overrides keeps the declared values, the
//! same bits.

use anyhow::{bail, ensure, Result};
use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::model::{Model, Trainable};
use netdsl_runtime::network::Network;

use crate::overrides::{Key, Overrides};

pub use netdsl_runtime::nn::Regularizer;

/// The values `overrides` give a network whose declared regularisers are
/// `declared` (in layer order), or an error naming what does not fit
/// (`dropout.2` in a network with two dropout layers, `dropout` in one
/// with none, `l2` with nothing to carry it).
pub fn new_values(
    declared: &[(Regularizer, f32)],
    overrides: &Overrides,
    variant: &str,
) -> Result<Vec<f32>> {
    let count = |kind| declared.iter().filter(|(k, _)| *k == kind).count();
    let dropouts = count(Regularizer::Dropout);
    for key in overrides.keys() {
        let layers = |n: usize| if n == 1 { "layer" } else { "layers" };
        match key {
            Key::Dropout | Key::DropoutScale => ensure!(
                dropouts > 0,
                "{key}: {variant} has no dropout layer (the `-do` variants have)"
            ),
            Key::DropoutAt(k) => ensure!(
                k < dropouts,
                "{key}: {variant} has {dropouts} dropout {}, numbered from 0",
                layers(dropouts)
            ),
            _ => {}
        }
    }
    let largest = declared
        .iter()
        .filter(|(k, _)| *k != Regularizer::Dropout)
        .map(|(_, v)| *v)
        .fold(0.0f32, f32::max);
    let lambda = overrides.number(Key::L2).unwrap_or(largest);
    let on = overrides.l2_on();
    if overrides.get(Key::L2).is_some() && on.is_none() && largest == 0.0 {
        bail!("l2: {variant} declares no L2; say where with l2_on=conv, dense or conv+dense");
    }
    if on.is_some_and(|on| on.conv() || on.dense()) && lambda == 0.0 {
        bail!("l2_on: {variant} declares no L2 factor; give one with l2=");
    }
    let on_conv = count(Regularizer::ConvL2) > 0;
    if let Some(on) = on {
        ensure!(
            !on.conv() || on_conv,
            "l2_on={}: {variant} has no convolution",
            overrides.get(Key::L2On).unwrap_or_default()
        );
    }
    let mut index = 0;
    let mut values = Vec::with_capacity(declared.len());
    for &(kind, value) in declared {
        let new = match kind {
            Regularizer::Dropout => {
                let k = index;
                index += 1;
                match overrides.number(Key::DropoutAt(k)) {
                    Some(rate) => rate,
                    None => {
                        let rate = overrides.number(Key::Dropout).unwrap_or(value);
                        rate * overrides.number(Key::DropoutScale).unwrap_or(1.0)
                    }
                }
            }
            Regularizer::ConvL2 | Regularizer::DenseL2 => {
                let carries = match on {
                    Some(on) if kind == Regularizer::ConvL2 => on.conv(),
                    Some(on) => on.dense(),
                    None => value > 0.0,
                };
                if carries {
                    lambda
                } else {
                    0.0
                }
            }
        };
        if kind == Regularizer::Dropout {
            ensure!(
                (0.0..1.0).contains(&new),
                "{variant}: dropout rate {new} (layer {}) is outside [0, 1)",
                index - 1
            );
        }
        values.push(new);
    }
    Ok(values)
}

/// Sets `overrides`' dropout rates and L2 factors on a model; nothing to do
/// when they change none.
pub fn apply<N, D>(model: &mut Model<N, D>, overrides: &Overrides, variant: &str) -> Result<()>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    if !overrides.touches_regularizers() {
        return Ok(());
    }
    let values = new_values(&model.regularizers(), overrides, variant)?;
    let mut next = values.into_iter();
    model.set_regularizers(|_, _, current| next.next().unwrap_or(current))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Regularizer::{ConvL2, DenseL2, Dropout};
    use super::*;

    fn point(pairs: &[(&str, &str)]) -> Overrides {
        let mut o = Overrides::default();
        for (k, v) in pairs {
            o.set(Key::parse(k).unwrap(), v).unwrap();
        }
        o
    }

    /// cnn3b-do: two conv kernels with λ = 0.01, two dense without, three dropouts.
    const CNN3B_DO: [(Regularizer, f32); 7] = [
        (ConvL2, 0.01),
        (Dropout, 0.25),
        (ConvL2, 0.01),
        (Dropout, 0.25),
        (DenseL2, 0.0),
        (Dropout, 0.5),
        (DenseL2, 0.0),
    ];

    #[test]
    fn apply_sets_them_on_a_built_model() {
        use crate::variants::{Cnn3b, Dnn2Do};
        let mut dnn = Model::<Dnn2Do>::new(&Cpu::seed_from_u64(0)).unwrap();
        apply(&mut dnn, &point(&[("dropout.1", "0.1")]), "dnn2-do").unwrap();
        let rates: Vec<f32> = dnn
            .regularizers()
            .iter()
            .filter(|(k, _)| *k == Dropout)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(rates, [0.5, 0.1]);
        let mut cnn = Model::<Cnn3b>::new(&Cpu::seed_from_u64(0)).unwrap();
        let declared = cnn.regularizers();
        apply(&mut cnn, &Overrides::default(), "cnn3b").unwrap();
        assert_eq!(cnn.regularizers(), declared);
        let both = point(&[("l2", "0.03"), ("l2_on", "conv+dense")]);
        apply(&mut cnn, &both, "cnn3b").unwrap();
        assert_eq!(
            cnn.regularizers(),
            [
                (ConvL2, 0.03),
                (ConvL2, 0.03),
                (DenseL2, 0.03),
                (DenseL2, 0.03)
            ]
        );
    }

    #[test]
    fn no_overrides_keep_the_declared_values() {
        let declared: Vec<f32> = CNN3B_DO.iter().map(|(_, v)| *v).collect();
        let values = new_values(&CNN3B_DO, &Overrides::default(), "cnn3b-do").unwrap();
        assert_eq!(values, declared);
    }

    #[test]
    fn dropout_rates_all_scaled_or_one() {
        let all = new_values(&CNN3B_DO, &point(&[("dropout", "0.2")]), "x").unwrap();
        assert_eq!(all, [0.01, 0.2, 0.01, 0.2, 0.0, 0.2, 0.0]);
        let scaled = point(&[("dropout_scale", "0.5"), ("dropout.2", "0.3")]);
        let values = new_values(&CNN3B_DO, &scaled, "x").unwrap();
        assert_eq!(values, [0.01, 0.125, 0.01, 0.125, 0.0, 0.3, 0.0]);
        let e = new_values(&CNN3B_DO, &point(&[("dropout.3", "0.1")]), "cnn3b-do");
        assert_eq!(
            e.unwrap_err().to_string(),
            "dropout.3: cnn3b-do has 3 dropout layers, numbered from 0"
        );
        let e = new_values(&CNN3B_DO, &point(&[("dropout_scale", "3")]), "cnn3b-do");
        assert!(e.unwrap_err().to_string().contains("outside [0, 1)"));
        let plain = [(ConvL2, 0.01), (DenseL2, 0.0)];
        let e = new_values(&plain, &point(&[("dropout", "0.1")]), "cnn3b");
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("cnn3b has no dropout layer"));
    }

    #[test]
    fn l2_factor_and_where() {
        let more = new_values(&CNN3B_DO, &point(&[("l2", "0.05")]), "x").unwrap();
        assert_eq!(more, [0.05, 0.25, 0.05, 0.25, 0.0, 0.5, 0.0]);
        let dense = point(&[("l2_on", "conv+dense")]);
        let values = new_values(&CNN3B_DO, &dense, "x").unwrap();
        assert_eq!(values, [0.01, 0.25, 0.01, 0.25, 0.01, 0.5, 0.01]);
        let only_dense = point(&[("l2", "0.001"), ("l2_on", "dense")]);
        let values = new_values(&CNN3B_DO, &only_dense, "x").unwrap();
        assert_eq!(values, [0.0, 0.25, 0.0, 0.25, 0.001, 0.5, 0.001]);
        let none = new_values(&CNN3B_DO, &point(&[("l2_on", "none")]), "x").unwrap();
        assert_eq!(none, [0.0, 0.25, 0.0, 0.25, 0.0, 0.5, 0.0]);

        let cnn3a = [(ConvL2, 0.0), (ConvL2, 0.0), (DenseL2, 0.0)];
        let e = new_values(&cnn3a, &point(&[("l2", "0.01")]), "cnn3a").unwrap_err();
        assert!(
            e.to_string().contains("cnn3a declares no L2; say where"),
            "{e}"
        );
        let e = new_values(&cnn3a, &point(&[("l2_on", "conv")]), "cnn3a").unwrap_err();
        assert!(e.to_string().contains("give one with l2="), "{e}");
        let both = point(&[("l2", "0.01"), ("l2_on", "conv")]);
        assert_eq!(
            new_values(&cnn3a, &both, "cnn3a").unwrap(),
            [0.01, 0.01, 0.0]
        );
        let dnn = [(DenseL2, 0.0), (DenseL2, 0.0)];
        let e = new_values(&dnn, &both, "dnn1").unwrap_err();
        assert!(e.to_string().contains("dnn1 has no convolution"), "{e}");
    }
}
