// On a vector input, spatial layers and `flatten` get a fix that fits where the vector came from.
use netdsl_runtime::network;

network! {
    FlattenVector<784> { relu, flatten, dense<10> }
    PoolAfterDense<784> { dense<10>, maxpool<2> }
    FlattenTwice<1, 28, 28> { flatten, relu, flatten, dense<10> }
}

fn main() {}
