// A failed network still defines its name, so using it adds no second error.
use netdsl_runtime::network;
use netdsl_runtime::network::Network;

network! {
    pub Broken<1, 28, 28> { conv<8, 3>, dense<10> }
}

fn main() {
    let _params: usize = Broken::PARAMS;
    let _name: &str = <Broken as Network>::NAME;
    let _summary = Broken::summary();
}
