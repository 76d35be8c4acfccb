// An l2 factor beyond f32's range is rejected as too large (not as negative).
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<64, l2 = 1e39>, relu, dense<10, l2 = 1e400> }
}

fn main() {}
