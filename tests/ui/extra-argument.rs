// Arguments beyond a layer's signature are errors on the first extra one.
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<10, 5>, relu<2>, dense<10> }
}

fn main() {}
