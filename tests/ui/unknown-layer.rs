// An unknown layer word is an error on that word, suggesting the nearest layer.
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<5>, rleu, dense<10> }
}

fn main() {}
