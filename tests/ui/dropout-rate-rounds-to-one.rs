// A dropout rate below 1 that rounds to 1 as f32 (how the layer stores it) is rejected.
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<64>, dropout<0.99999999>, dense<10> }
}

fn main() {}
