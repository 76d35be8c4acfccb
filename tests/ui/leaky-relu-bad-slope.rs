// A leaky ReLU's slope is an option `alpha`, at least 0.
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<64>, leaky_relu<0.1>, dense<32>, leaky_relu<alpha = -0.2>, dense<10> }
}

fn main() {}
