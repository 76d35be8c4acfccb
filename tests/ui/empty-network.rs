// A network needs at least one layer.
use netdsl_runtime::network;

network! {
    Empty<784> {}
}

fn main() {}
