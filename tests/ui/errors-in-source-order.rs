// Errors within one layer come out in the order they are written, options included.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<0, 3, stride = 0, pad = full>, flatten, dense<-1, l2 = -1> }
}

fn main() {}
