// A non-square kernel that fits one axis but not the other: the message names
// the kernel as written and the input it saw.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3>, maxpool<2>, conv<8, (3, 15)>, flatten, dense<10> }
}

fn main() {}
