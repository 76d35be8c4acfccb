// A convolution's kernel and stride take one size or a pair (height, width);
// anything else is reported on the value at fault, all of them together.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> {
        conv<8, (3, 5, 7)>, conv<8, (0, 3)>, conv<8, 3, stride = (2, 2.5)>,
        conv<8, (3,)>, maxpool<2, stride = (2, 1)>, flatten, dense<10>,
    }
}

fn main() {}
