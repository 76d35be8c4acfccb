// A pool larger than its input points at the pool size and gives the shape.
use netdsl_runtime::network;

network! {
    Cnn<1, 8, 8> { conv<8, 3>, maxpool<2>, conv<8, 3>, maxpool<2>, flatten, dense<10> }
}

fn main() {}
