// A third number on `conv` or a second on `maxpool` looks like a stride: the fix shows `stride =`.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<32, 3, 2>, relu, maxpool<2, 2>, flatten, dense<10> }
}

fn main() {}
