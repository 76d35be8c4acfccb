// A float where an integer belongs (units, kernel size) is an error.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<32, 3.0>, flatten, dense<12.5> }
}

fn main() {}
