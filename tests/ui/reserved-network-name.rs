// Names starting with `__` are the expansion's own, so a network may not take one.
use netdsl_runtime::network;

network! {
    __E<784> { dense<10> }
}

fn main() {}
