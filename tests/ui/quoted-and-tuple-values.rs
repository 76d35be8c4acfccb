// Quoted words and numbers, and tuples where one size belongs, get a targeted fix
// (a convolution's kernel takes a pair, but not a triple; a pool takes no pair).
use netdsl_runtime::network;

network! {
    Cnn<1, 28, 28> { conv<8, 3, pad = "same">, conv<8, (3, 3, 3)>, maxpool<(2, 2)>, flatten, dense<"10"> }
}

fn main() {}
