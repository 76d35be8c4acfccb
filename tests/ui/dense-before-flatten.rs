// `dense` directly after an image is an error (no implicit flatten); the fix is to insert `flatten`.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3>, relu, maxpool<2>, dense<10> }
}

fn main() {}
