// `#[cfg]` on a network applies to everything it expands to, so a configured-out network builds.
use netdsl_runtime::network;

network! {
    /// Configured out: no struct, no impls.
    #[cfg(any())]
    pub Gone<784> { dense<10> }

    #[cfg(all())]
    pub Kept<784> { dense<10> }
}

fn main() {
    assert_eq!(Kept::PARAMS, 7850);
}
