// Argument errors in several layers and networks are all reported in one pass.
use netdsl_runtime::network;

network! {
    First<1, 28, 28> { conv<32>, maxpool<2, stride = 0>, flatten, dense<12.5> }
    Second<784> { dense<0>, dropout<2>, dense<10, l2 = -1> }
}

fn main() {}
