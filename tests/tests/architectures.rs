//! The study's architectures, as `netdsl-experiments` declares them with
//! `network!`: parameter counts (the study's table), summaries (insta
//! snapshots), and a forward pass on `Cpu` whose output shape and dfdx
//! parameter count match what the macro computed.
//!
//! Run: `cargo test -p netdsl-tests --test architectures`
//! (update snapshots: `INSTA_UPDATE=always`, then review `tests/snapshots/`).

use dfdx::prelude::*;
use netdsl_experiments::variants::{
    Cnn3a, Cnn3aDo, Cnn3b, Cnn3bDo, Cnn4a, Cnn4aDo, Cnn4b, Cnn4bDo, Dnn1, Dnn1Do, Dnn2, Dnn2Do,
};
use netdsl_runtime::dfdx;
use netdsl_runtime::network::Network;

// The study's table, checked while compiling.
const _: () = assert!(Dnn1::PARAMS == 3_985);
const _: () = assert!(Dnn2::PARAMS == 7_965);
const _: () = assert!(Cnn3a::PARAMS == 225_034);
const _: () = assert!(Cnn3b::PARAMS == 225_034);
const _: () = assert!(Cnn4a::PARAMS == 93_322);
const _: () = assert!(Cnn4b::PARAMS == 93_322);
const _: () = assert!(Cnn4bDo::PARAMS == 93_322);

#[test]
fn params_match_the_study() {
    assert_eq!(<Dnn1 as Network>::PARAMS, 3_985);
    assert_eq!(<Dnn2 as Network>::PARAMS, 7_965);
    assert_eq!(<Cnn3a as Network>::PARAMS, 225_034);
    assert_eq!(<Cnn4a as Network>::PARAMS, 93_322);
    assert_eq!(Cnn3a::summary().params, 225_034);
    assert_eq!(<Cnn4b as Network>::NAME, "Cnn4b");
}

#[test]
fn summaries() {
    insta::assert_snapshot!("dnn1", Dnn1::summary().to_string());
    insta::assert_snapshot!("dnn2", Dnn2::summary().to_string());
    insta::assert_snapshot!("cnn3a", Cnn3a::summary().to_string());
    insta::assert_snapshot!("cnn3b", Cnn3b::summary().to_string());
    insta::assert_snapshot!("cnn4a", Cnn4a::summary().to_string());
    insta::assert_snapshot!("cnn4b", Cnn4b::summary().to_string());
}

#[test]
fn summary_json() {
    insta::assert_json_snapshot!("dnn2_json", Dnn2::summary());
}

/// Build `N` on `Cpu`, count its parameters with dfdx, run a batch of `batch`
/// (a runtime size) through it in eval and train mode, check the output shape.
fn build_and_forward<N>(batch: usize)
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: NumParams<f32, Cpu>
        + Module<Tensor<N::BatchedInput, f32, Cpu>, Output = Tensor<N::BatchedOutput, f32, Cpu>>
        + ModuleMut<
            Tensor<N::BatchedInput, f32, Cpu, OwnedTape<f32, Cpu>>,
            Output = Tensor<N::BatchedOutput, f32, Cpu, OwnedTape<f32, Cpu>>,
        >,
{
    let dev = Cpu::seed_from_u64(0);
    let mut model = dev.build_module::<N, f32>();
    assert_eq!(model.num_trainable_params(), N::PARAMS, "{}", N::NAME);

    let x: Tensor<N::BatchedInput, f32, Cpu> = dev.sample_uniform_like(&N::batched_input(batch));
    let y = model.forward(x.clone());
    assert_eq!(y.shape().concrete(), N::batched_output(batch).concrete());
    assert!(y.as_vec().iter().all(|v| v.is_finite()), "{}", N::NAME);

    let grads = model.alloc_grads();
    let y = model.forward_mut(x.traced(grads));
    assert_eq!(y.shape().concrete(), N::batched_output(batch).concrete());
}

#[test]
fn build_and_forward_every_architecture() {
    build_and_forward::<Dnn1>(3);
    build_and_forward::<Dnn2>(3);
    build_and_forward::<Cnn3a>(3);
    build_and_forward::<Cnn3b>(1);
    build_and_forward::<Cnn4a>(3);
    build_and_forward::<Cnn4b>(2);
    build_and_forward::<Dnn1Do>(3);
    build_and_forward::<Dnn2Do>(3);
    build_and_forward::<Cnn3aDo>(2);
    build_and_forward::<Cnn3bDo>(2);
    build_and_forward::<Cnn4aDo>(2);
    build_and_forward::<Cnn4bDo>(2);
}

/// The expansion names only `::netdsl_runtime` and `::core` paths: it works
/// without the prelude and next to user items that shadow dfdx names.
mod hygiene {
    #![no_implicit_prelude]
    #![allow(dead_code)]

    struct Summary;
    struct Const;
    mod dfdx {}
    mod netdsl_runtime {}

    ::netdsl_runtime::network! {
        /// Every layer kind and option once.
        pub Tiny<2, 9, 7> {
            conv<4, 3, stride = 2, pad = 1>, relu, conv<4, 2, pad = same>, maxpool<2, stride = 1>,
            flatten, dense<6, l2 = 0.01>, tanh, dropout<0.1>, dense<3>, sigmoid,
        }
    }
}

#[test]
fn every_layer_kind_builds() {
    use hygiene::Tiny;
    assert_eq!(Tiny::PARAMS, 76 + 68 + 294 + 21);
    insta::assert_snapshot!("tiny", Tiny::summary().to_string());
    build_and_forward::<Tiny>(4);
}

#[test]
fn const_batch_and_typed_shapes() {
    let dev = Cpu::default();
    let model = dev.build_module::<Cnn4a, f32>();
    let x: Tensor<Rank4<2, 1, 28, 28>, f32, Cpu> = dev.zeros();
    let y: Tensor<Rank2<2, 10>, f32, Cpu> = model.forward(x);
    assert_eq!(y.shape().concrete(), [2, 10]);
    // the input shape is a type: `<Dnn1 as Network>::Input` is Rank1<784>
    let _: <Dnn1 as Network>::Input = Rank1::<784>::default();
    let _: <Cnn3a as Network>::Output = Rank1::<10>::default();
}
