// A convolution or pool after `flatten` gets a vector; the fix is to move it before `flatten`.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3>, relu, flatten, maxpool<2>, dense<10> }
}

fn main() {}
