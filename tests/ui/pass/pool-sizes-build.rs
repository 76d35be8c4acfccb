// Sizes at the runtime's limits build and run: a pool of 16 after `conv, relu` (one more than a
// fused block takes, so it stays its own layer), an unfused pool of 16, the largest f32 rate below 1.
use dfdx::prelude::*;
use netdsl_runtime::network;
use netdsl_runtime::network::Network;

network! {
    Fused<1, 18, 18> { conv<2, 3>, relu, maxpool<16>, flatten, dense<3> }
    Unfused<1, 16, 16> { maxpool<16>, flatten, dropout<0.99999994>, dense<3> }
}

/// Build the network and run a batch through it, evaluating and training.
macro_rules! build_and_run {
    ($net:ty) => {{
        let dev = Cpu::default();
        let mut model = dev.build_module::<$net, f32>();
        let x = dev.sample_uniform_like(&<$net>::batched_input(2));
        let y = model.forward(x.clone());
        assert_eq!(y.shape().concrete(), <$net>::batched_output(2).concrete());
        let grads = model.alloc_grads();
        let _ = model.forward_mut(x.traced(grads));
    }};
}

fn main() {
    build_and_run!(Fused);
    build_and_run!(Unfused);
}
