// An average pool larger than its input (valid padding, as Keras).
use netdsl_runtime::network;

network! {
    Cnn<1, 12, 12> { conv<8, 3>, relu, maxpool<2>, avgpool<6>, globalavgpool, dense<10> }
}

fn main() {}
