// `pad` takes `same`, `valid` or a number of pixels; a near miss gets a suggestion.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, pad = sme>, conv<8, 3, pad = -1>, flatten, dense<10> }
}

fn main() {}
