// A convolution kernel larger than its input points at the kernel size and gives the shape.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> {
        conv<32, 3>, relu, maxpool<2>,
        conv<64, 3>, relu, maxpool<2>,
        conv<64, 7>, relu,
        flatten, dense<10>,
    }
}

fn main() {}
