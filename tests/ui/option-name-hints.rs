// Option names that extend a real one (Keras' `padding`, `strides`) suggest it.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, padding = same>, maxpool<2, strides = 2>, flatten, dense<10, l2_reg = 0.1> }
}

fn main() {}
