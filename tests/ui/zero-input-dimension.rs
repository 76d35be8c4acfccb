// Every input dimension must be at least 1.
use netdsl_runtime::network;

network! {
    Cnn<1, 0, 28> { conv<8, 3>, flatten, dense<10> }
}

fn main() {}
