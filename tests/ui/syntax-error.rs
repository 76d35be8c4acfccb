// A syntax error inside the layer list is reported where it happens.
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<5 relu, dense<10> }
}

fn main() {}
