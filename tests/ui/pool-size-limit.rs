// A pool larger than 16 is rejected on its size, whether or not it follows `conv, relu`.
use netdsl_runtime::network;

network! {
    Fused<1, 40, 40> { conv<2, 3>, relu, maxpool<17>, flatten, dense<10> }
    Unfused<1, 40, 40> { maxpool<20>, flatten, dense<10> }
}

fn main() {}
