// Numbers with a suffix are rejected: `5x3` is not a 5x3 kernel (the fix says to
// write `(5, 3)`), `3units` is not a unit count.
use netdsl_runtime::network;

network! {
    Cnn<1u8, 28, 28> {
        conv<32, 5x3>, relu, conv<8, 3, stride = 2x1>, flatten, dense<3units>, dropout<0.5f32>, dense<10, l2 = 1e-3f64>,
    }
}

fn main() {}
