//! Fashion-MNIST from start to finish: declare a network, train it for two
//! epochs, evaluate it on the test set, save it, load it into a fresh model,
//! and predict one test image with the loaded model.
//!
//! Needs the data set: `apt-get install dataset-fashion-mnist` (or point
//! `FASHION_MNIST_DIR` at a folder with the four IDX files).
//! Run: `cargo run --release -p netdsl-runtime --example fashion_mnist`

use netdsl_runtime::prelude::*;

network! {
    /// One convolution block and a hidden dense layer.
    pub Net<1, 28, 28> {
        conv<16, 3>, relu, maxpool<2>,    // [B, 16, 13, 13]
        flatten, dense<64>, relu,         // [B, 64]
        dropout<0.25>, dense<10>,         // [B, 10]
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 55,000 training, 5,000 validation and 10,000 test images, 1x28x28 u8.
    let data = FashionMnist::load(None)?;
    println!("{}", Net::summary());

    let dev = Cpu::seed_from_u64(0);
    let mut model = Model::<Net>::new(&dev)?;
    let fit = Fit {
        epochs: 2,
        batch: 64,
        ..Fit::default() // Adam(1e-3) as Keras computes it
    };
    let history = model.fit_with(&data.train, &data.val, &fit, &mut PrintEpochs)?;
    println!("trained in {:.1} s", history.train_seconds());

    let eval = model.evaluate(&data.test)?;
    println!("test loss {:.4}, accuracy {:.4}", eval.loss, eval.accuracy);
    print!(
        "{}",
        confusion_table(&eval.confusion, data.test.class_names())
    );

    let dir = std::env::temp_dir().join(format!("netdsl-fashion-mnist-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("net.safetensors");
    model.save(&path)?;
    let mut loaded = Model::<Net>::new(&Cpu::seed_from_u64(1))?;
    loaded.load(&path)?;
    std::fs::remove_dir_all(&dir)?;

    // One test image as a tensor of the network's input type, [1, 28, 28].
    let image: Tensor<Rank3<1, 28, 28>, f32, Cpu> = loaded.input(data.test.sample(0))?;
    let p = loaded.predict(&image)?;
    let names = data.test.class_names().unwrap_or_default();
    let name = |c: usize| names.get(c).map_or("?", String::as_str);
    println!(
        "test image 0 is a {}; the loaded model says {} ({:.1} %)",
        name(data.test.label(0) as usize),
        name(p.class),
        100.0 * p.probabilities[p.class]
    );
    assert_eq!(p, model.predict_sample(&data.test, 0)?);
    Ok(())
}
