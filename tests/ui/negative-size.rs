// A negative size is an error covering the sign and the number.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<-32, 3>, flatten, dense<10> }
}

fn main() {}
