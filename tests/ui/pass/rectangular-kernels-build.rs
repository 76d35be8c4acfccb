// Non-square kernels and per-axis strides build and run: `conv<F, (KH, KW)>`,
// `stride = (SH, SW)`, TensorFlow's `same` padding per axis, fused with relu
// and maxpool (the first) or not (bias = false; no relu).
use dfdx::prelude::*;
use netdsl_runtime::network;
use netdsl_runtime::network::Network;

network! {
    Rect<2, 9, 10> {
        conv<4, (3, 5), stride = (2, 1), pad = same>, relu, maxpool<2>, // 4x5x10 -> 4x2x5
        conv<6, (1, 3), bias = false>, relu,                             // 6x2x3
        conv<5, (2, 1), stride = (1, 2)>,                                // 5x1x2
        flatten, dense<3>,
    }
}

fn main() {
    assert_eq!(Rect::PARAMS, (2 * 15 * 4 + 4) + 4 * 3 * 6 + (6 * 2 * 5 + 5) + (10 * 3 + 3));
    let dev = Cpu::default();
    let mut model = dev.build_module::<Rect, f32>();
    assert_eq!(model.num_trainable_params(), Rect::PARAMS);
    let x = dev.sample_uniform_like(&Rect::batched_input(2));
    let y = model.forward(x.clone());
    assert_eq!(y.shape().concrete(), [2, 3]);
    let grads = model.alloc_grads();
    let _ = model.forward_mut(x.traced(grads));
}
