// A tensor of the wrong shape passed to a network is a type error (here an image for a dense net).
use dfdx::prelude::*;
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<10> }
}

fn main() {
    let dev: Cpu = Default::default();
    let model = dev.build_module::<Dnn, f32>();
    let x: Tensor<Rank4<2, 1, 28, 28>, f32, Cpu> = dev.zeros();
    let _ = model.forward(x);
}
