// `globalavgpool` pools an image; after `flatten` there is none.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3>, relu, flatten, globalavgpool, dense<10> }
}

fn main() {}
