// `bias` is `true` or `false`.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, bias = maybe>, relu, flatten, dense<10, bias = "false"> }
}

fn main() {}
