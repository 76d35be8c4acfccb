// Network names the expansion once used for itself (`D`, `E`, `Layers`, `batch`, `usize`) build.
#![allow(non_camel_case_types)]
use dfdx::prelude::*;

mod nets {
    netdsl_runtime::network! {
        pub D<784> { dense<10> }
        pub E<784> { dense<10> }
        pub Layers<784> { dense<10> }
        pub batch<784> { dense<10> }
        pub usize<784> { dense<10> }
        pub str<784> { dense<10> }
        pub Network<784> { dense<10> }
    }
}

fn main() {
    use netdsl_runtime::network::Network;
    let dev = Cpu::default();
    let _ = dev.build_module::<nets::D, f32>();
    let _ = dev.build_module::<nets::E, f32>();
    let _ = dev.build_module::<nets::Layers, f32>();
    let _ = dev.build_module::<nets::batch, f32>();
    let _ = dev.build_module::<nets::usize, f32>();
    let _ = dev.build_module::<nets::str, f32>();
    let _ = dev.build_module::<nets::Network, f32>();
    assert_eq!(<nets::batch as Network>::NAME, "batch");
    assert_eq!(nets::usize::PARAMS, 7850);
}
