// Unknown option names are errors on the name, with a suggestion when one is near.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, strides = 2>, relu<alpha = 0.1>, flatten, dense<10, stride = 2> }
}

fn main() {}
