// An option given twice is an error on the second one.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, pad = same, pad = valid>, flatten, dense<10> }
}

fn main() {}
