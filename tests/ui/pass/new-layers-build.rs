// The layers beyond the study build and run, evaluating and training: leaky_relu,
// bias = false, avgpool, globalavgpool, batchnorm after a convolution and a dense layer.
use dfdx::prelude::*;
use netdsl_runtime::network;
use netdsl_runtime::network::Network;

network! {
    Images<1, 12, 12> {
        conv<4, 3, bias = false>, batchnorm, leaky_relu, avgpool<2>,
        conv<6, 3, pad = same>, leaky_relu<alpha = 0.1>, avgpool<2, stride = 1>,
        globalavgpool, dense<8, bias = false>, batchnorm<momentum = 0.9, epsilon = 1e-5>, relu,
        dense<3>,
    }
}

fn main() {
    assert_eq!(Images::PARAMS, 36 + 8 + 222 + 48 + 16 + 27);
    assert_eq!(Images::NON_TRAINABLE_PARAMS, 8 + 16);
    assert_eq!(<Images as Network>::NON_TRAINABLE_PARAMS, 24);
    let dev = Cpu::default();
    let mut model = dev.build_module::<Images, f32>();
    assert_eq!(model.num_trainable_params(), Images::PARAMS);
    let x = dev.sample_uniform_like(&Images::batched_input(2));
    let y = model.forward(x.clone());
    assert_eq!(y.shape().concrete(), Images::batched_output(2).concrete());
    let grads = model.alloc_grads();
    let _ = model.forward_mut(x.traced(grads));
}
