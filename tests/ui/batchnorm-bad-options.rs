// Batchnorm's momentum lies in [0, 1] (Keras' convention), its epsilon above 0.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> {
        conv<8, 3, bias = false>, batchnorm<momentum = 1.5>, relu,
        conv<8, 3>, batchnorm<epsilon = 0>, relu, flatten, dense<10>,
    }
}

fn main() {}
