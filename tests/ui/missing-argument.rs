// A layer without its sizes names what is missing and shows the full form.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<32>, relu, flatten, dense }
}

fn main() {}
