// A user `#[derive]` of what the expansion derives (`Clone, Copy, Debug, Default`) is dropped and
// the rest kept; `#[deprecated]` warns where the user names the network, not in the expansion.
#![deny(deprecated)]
use netdsl_runtime::network;

network! {
    #[derive(Clone, Default, PartialEq, Eq, Hash)]
    #[deprecated = "use `Dnn2`"]
    pub Dnn1<784> { dense<5>, relu, dense<10> }

    #[derive(Debug, core::marker::Copy)]
    pub Dnn2<784> { dense<10> }
}

#[allow(deprecated)]
fn main() {
    assert_eq!(Dnn1::default(), Dnn1);
    let _ = format!("{:?}", Dnn2);
}
