// Dropout rates must lie in [0, 1).
use netdsl_runtime::network;

network! {
    Dnn<784> { dense<64>, dropout<1.5>, dense<32>, dropout<1>, dense<16>, dropout<-0.1>, dense<10> }
}

fn main() {}
