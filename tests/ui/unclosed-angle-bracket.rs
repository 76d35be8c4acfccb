// An unclosed `<` is reported at the `<`, not over the whole call.
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, flatten }
}

fn main() {}
