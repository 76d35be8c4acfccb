// A name declared twice in one `network!` is one error, on the second name.
use netdsl_runtime::network;

network! {
    Net<784> { dense<10> }
    Net<784> { dense<5>, relu, dense<10> }
}

fn main() {
    let _params: usize = Net::PARAMS;
}
