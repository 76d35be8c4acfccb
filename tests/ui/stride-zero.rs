// A stride of 0 is rejected on the value.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, stride = 0>, maxpool<2, stride = 0>, flatten, dense<10> }
}

fn main() {}
