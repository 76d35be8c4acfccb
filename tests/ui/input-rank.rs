// The input is an image <C, H, W> or a vector <N>; two dimensions are an error with the fix.
use netdsl_runtime::network;

network! {
    Cnn<28, 28> { conv<8, 3>, flatten, dense<10> }
}

fn main() {}
