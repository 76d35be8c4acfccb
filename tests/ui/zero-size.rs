// Sizes (units, filters, kernel) must be at least 1.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<0, 3>, flatten, dense<0> }
}

fn main() {}
