// Keras/PyTorch layer names point to the DSL word; `softmax` explains that the loss applies it.
use netdsl_runtime::network;

network! {
    WithLinear<784> { Linear<5>, relu, dense<10> }
    WithSoftmax<784> { dense<10>, softmax }
}

fn main() {}
