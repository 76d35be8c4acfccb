// Layers that take no arguments reject empty brackets too.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3>, relu<>, flatten<>, dense<10> }
}

fn main() {}
