//! Your own data, in memory: a seeded synthetic problem of 4 classes of
//! 3x16x16 images (stripes across, stripes down, a square, a cross, faint
//! and in a random colour under strong noise), a small CNN with 3 input channels, SGD with
//! Nesterov momentum and early stopping on a validation split, a 4x4
//! confusion matrix, a prediction, and a save/load round trip.
//!
//! Run: `cargo run --release -p netdsl-runtime --example custom_data`
//! (no data set needed; it writes only into a temporary folder it removes).
//! The last line is `test_accuracy=X`.

use netdsl_runtime::prelude::*;

network! {
    /// Two convolution blocks for 3-channel 16x16 images, 4 classes.
    pub Shapes<3, 16, 16> {
        conv<8, 3, pad = same>, relu, maxpool<2>,    // [B, 8, 8, 8]
        conv<16, 3, pad = same>, relu, maxpool<2>,   // [B, 16, 4, 4]
        flatten, dense<32>, relu, dense<4>,          // [B, 4]
    }
}

const CLASS_NAMES: [&str; 4] = ["stripes across", "stripes down", "square", "cross"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", Shapes::summary());
    let train = synthetic(2_000, 1)?;
    let test = synthetic(400, 2)?;

    let dev = Cpu::seed_from_u64(0);
    let mut model = Model::<Shapes>::new(&dev)?;
    let fit = Fit {
        epochs: 30,
        batch: 32,
        optimizer: Optimizer::nesterov(0.01, 0.9),
        early_stopping: Some(EarlyStopping::patience(4)),
        ..Fit::default()
    };
    // The last 10 % of the training samples validate each epoch.
    let history = model.fit_with(&train, Validation::Split(0.1), &fit, &mut PrintEpochs)?;
    println!(
        "trained {} epochs (stopped: {:?}, best epoch {:?})",
        history.epochs.len(),
        history.stopped,
        history.best_epoch
    );

    let eval = model.evaluate(&test)?;
    println!("test loss {:.4}", eval.loss);
    print!("{}", confusion_table(&eval.confusion, test.class_names()));

    let p = model.predict_sample(&test, 0)?;
    println!(
        "sample 0 (a {}): predicted {} with probability {:.3}",
        CLASS_NAMES[test.label(0) as usize],
        CLASS_NAMES[p.class],
        p.probabilities[p.class]
    );

    let dir = std::env::temp_dir().join(format!("netdsl-custom-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("shapes.safetensors");
    model.save(&path)?;
    let mut reloaded = Model::<Shapes>::new(&Cpu::seed_from_u64(99))?;
    reloaded.load(&path)?;
    std::fs::remove_dir_all(&dir)?;
    for i in 0..test.len() {
        assert_eq!(
            reloaded.predict_sample(&test, i)?,
            model.predict_sample(&test, i)?
        );
    }
    println!(
        "the reloaded model predicts all {} test samples identically",
        test.len()
    );
    println!("test_accuracy={:.4}", eval.accuracy);
    Ok(())
}

/// `n` images of 3x16x16 values in [0, 1], classes in turn, drawn with `seed`.
fn synthetic(n: usize, seed: u64) -> Result<Dataset, Error> {
    const S: usize = 16;
    let mut rng = SplitMix64(seed);
    let mut values = Vec::with_capacity(n * 3 * S * S);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 4;
        // The pattern shows faintly, in a random colour, over strong noise.
        let strength = [rng.unit(), rng.unit(), rng.unit()].map(|v| 0.1 + 0.3 * v);
        let (a, b) = (rng.below(S - 6), rng.below(S - 6));
        let phase = rng.below(4);
        let on = |y: usize, x: usize| match class {
            0 => (y + phase) % 4 < 2,
            1 => (x + phase) % 4 < 2,
            2 => (a..a + 6).contains(&y) && (b..b + 6).contains(&x),
            _ => (y == a + 3 && (b..b + 7).contains(&x)) || (x == b + 3 && (a..a + 7).contains(&y)),
        };
        for channel_strength in strength {
            for y in 0..S {
                for x in 0..S {
                    let signal = if on(y, x) { channel_strength } else { 0.0 };
                    values.push(0.7 * rng.unit() + signal);
                }
            }
        }
        labels.push(class as u32);
    }
    Dataset::new(values, labels, (3, S, S), 4)?.with_class_names(CLASS_NAMES)
}

/// A small seeded generator (SplitMix64), so the example needs no other crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
