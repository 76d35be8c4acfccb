// A parameter count beyond usize is blamed on the layer where the running total overflows.
use netdsl_runtime::network;

network! {
    Big<4294967295> { dense<4294967295>, relu, dense<4294967295>, dense<10> }
}

fn main() {}
