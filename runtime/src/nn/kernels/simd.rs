//! The instruction set the Cpu kernels' own loops run with, chosen at run
//! time, so that a crate depending on this one gets the fast path without
//! build flags.
//!
//! The matrix products (`gemm`) and the first layer's AVX-512 forward
//! (`kernels/conv2d/direct.rs`) detect the CPU themselves. The rest — Winograd
//! transforms, pooling, transposes, the first layer's backward, dropout's
//! masks — is plain Rust that the compiler vectorises, and a build for
//! baseline x86-64 allows only SSE2 there. So each kernel's loops run inside
//! [`Isa::run`]: on a CPU with AVX2 and FMA in a copy compiled for them (what
//! `-C target-cpu=x86-64-v3` gave the whole build before), elsewhere in the
//! portable copy. Both copies compute the same bits except where a kernel
//! asks for [`Isa::fmadd`], which fuses the multiply-add on the AVX2 + FMA
//! path (as the x86-64-v3 build did) and rounds twice on the portable one.
//!
//! Only code compiled into a copy gets its instructions; a function it
//! calls that is not inlined runs the baseline code. Two ways in:
//! - [`run!`]`(isa, |isa| ..)`: the closure (made `#[inline(always)]`) and
//!   what is inlined into it, for a rayon task's body; its helper functions
//!   are `#[inline(always)]`.
//! - [`kernel!`]: a function compiled twice, the AVX2 copy never inlined,
//!   for the large loops over several slices. As a function of its own it
//!   keeps what its parameters tell the compiler (`&mut` slices alias
//!   nothing); inlined into a task's closure, the Winograd input
//!   transform's adjoint lost that and was left scalar (1.8x slower).
//!
//! So a closure handed to a kernel is `#[inline(always)]` too, and the hot
//! loops avoid `for_each`, `fold` and `array::map`, generic functions of
//! `std` that the compiler kept out of line (compiled for the baseline).
//!
//! ```ignore
//! let isa = Isa::detect(); // on the calling thread, once per op
//! tasks.par_iter_mut().for_each(|task| {
//!     simd::run!(isa, |isa| {
//!         for x in task.iter_mut() {
//!             *x = isa.fmadd(*x, 2.0, 1.0);
//!         }
//!     })
//! });
//! ```
//!
//! Tests force the portable copy with [`portable`] and compare it with the
//! fast one. Run them: `cargo test -p netdsl-runtime --lib nn::`.

use crate::nn::kernels::gemm::GemmFloat;

/// The instructions a kernel may use, detected at run time ([`Isa::detect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The target's baseline (SSE2 on x86-64): every CPU.
    Portable,
    /// AVX2 and FMA (x86-64-v3: Intel Haswell, AMD Zen 1 and later), with
    /// the proof that this CPU has them (never made on other targets).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2Fma(Avx2Fma),
}

/// Proof that this CPU has AVX2 and FMA: only [`Isa::detect`] makes one
/// (the field is private), after asking the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct Avx2Fma(());

impl Isa {
    /// The best this CPU offers, or [`Isa::Portable`] inside [`portable`]
    /// (tests). `std` caches the CPUID answers, so this costs a few loads;
    /// call it on the thread that starts an op and hand the value to its
    /// rayon tasks, so that a test's choice reaches them.
    pub fn detect() -> Isa {
        #[cfg(test)]
        if FORCE_PORTABLE.with(std::cell::Cell::get) {
            return Isa::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2Fma(Avx2Fma(()));
        }
        Isa::Portable
    }

    /// Runs `f` compiled for this instruction set: inside a function with
    /// AVX2 and FMA enabled for [`Isa::Avx2Fma`], as is for
    /// [`Isa::Portable`]. `f` receives the same `Isa` to pass on (to
    /// [`Isa::fmadd`], to the transposes). Only code inlined into `f` gets
    /// the wider instructions: mark the closure and the kernel functions it
    /// calls `#[inline(always)]`; calls that stay calls run portable code.
    #[inline(always)]
    pub fn run<R>(self, f: impl FnOnce(Isa) -> R) -> R {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma(proof) => {
                // SAFETY: `avx2_fma` needs nothing but the AVX2 and FMA
                // instructions, and `proof` exists only because
                // `Isa::detect` found both on this CPU.
                unsafe { avx2_fma(proof, f) }
            }
            _ => f(Isa::Portable),
        }
    }

    /// `a·b + c`, fused (one rounding) on [`Isa::Avx2Fma`], where the
    /// x86-64-v3 build fused it too (`vfmadd`); a product and a sum on
    /// [`Isa::Portable`], because the software `fma` of libm would be far
    /// slower than both. The two differ in the last bit now and then.
    #[inline(always)]
    pub fn fmadd<E: GemmFloat>(self, a: E, b: E, c: E) -> E {
        match self {
            Isa::Avx2Fma(_) => a.fused_mul_add(b, c),
            Isa::Portable => a * b + c,
        }
    }
}

/// `isa.run(|isa| body)` with the closure `#[inline(always)]`, so that the
/// body is compiled into the copy [`Isa::run`] selects (written out, rustfmt
/// puts the attribute and the closure on lines of their own).
macro_rules! run {
    ($isa:expr, |$arg:ident| $body:expr) => {
        $isa.run(
            #[inline(always)]
            |$arg| $body,
        )
    };
}
pub(crate) use run;

/// Defines a kernel function twice, as a function of its own compiled with
/// AVX2 and FMA and as a portable one, plus the function of the given name
/// that takes the [`Isa`] first and calls the copy it names:
///
/// ```ignore
/// simd::kernel! {
///     /// `dst += src`.
///     fn add<E: GemmFloat>(isa: Isa, dst: &mut [E], src: &[E]) {
///         for (d, &s) in dst.iter_mut().zip(src) {
///             *d += s;
///         }
///     }
/// }
/// ```
///
/// The AVX2 copy is never inlined, so that it keeps its parameters' `&mut`
/// guarantees (see the module docs). Inside the body the `Isa` parameter
/// names the copy's instruction set, to pass on to [`Isa::fmadd`] or the
/// transposes. Parameters are plain names (rebind `let mut x = x;`).
macro_rules! kernel {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident<$($g:ident: $bound:path),+>(
            $isa:ident: Isa, $($arg:ident: $ty:ty),* $(,)?
        ) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$($g: $bound),+>($isa: $crate::nn::kernels::simd::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            fn avx2_fma<$($g: $bound),+>(
                proof: $crate::nn::kernels::simd::Avx2Fma,
                $($arg: $ty),*
            ) $(-> $ret)? {
                #[allow(unused_variables)]
                let $isa = $crate::nn::kernels::simd::Isa::Avx2Fma(proof);
                $body
            }
            #[allow(clippy::too_many_arguments)]
            fn portable<$($g: $bound),+>($($arg: $ty),*) $(-> $ret)? {
                #[allow(unused_variables)]
                let $isa = $crate::nn::kernels::simd::Isa::Portable;
                $body
            }
            match $isa {
                #[cfg(target_arch = "x86_64")]
                $crate::nn::kernels::simd::Isa::Avx2Fma(proof) => {
                    // SAFETY: `avx2_fma` needs nothing but the AVX2 and FMA
                    // instructions, and `proof` exists only because
                    // `Isa::detect` found both on this CPU.
                    unsafe { avx2_fma::<$($g),+>(proof, $($arg),*) }
                }
                _ => portable::<$($g),+>($($arg),*),
            }
        }
    };
}
pub(crate) use kernel;

/// `f`, compiled with AVX2 and FMA (what `Isa::run` dispatches to).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2_fma<R>(proof: Avx2Fma, f: impl FnOnce(Isa) -> R) -> R {
    f(Isa::Avx2Fma(proof))
}

#[cfg(test)]
thread_local! {
    static FORCE_PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`Isa::detect`] answering [`Isa::Portable`] on this
/// thread, as on a CPU without AVX2: the ops `f` starts here take their
/// portable path (their rayon tasks included, which get the `Isa` from
/// this thread).
#[cfg(test)]
pub(crate) fn portable<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCE_PORTABLE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCE_PORTABLE.with(|c| c.replace(true)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_is_forced_on_this_thread_only() {
        let outside = Isa::detect();
        portable(|| {
            assert_eq!(Isa::detect(), Isa::Portable);
            let other = std::thread::spawn(Isa::detect).join().unwrap();
            assert_eq!(other, outside);
        });
        assert_eq!(Isa::detect(), outside);
    }

    /// A product whose exact value needs more than 24 bits: fused, it rounds
    /// once (to the exact result here), unfused twice (to 0).
    #[test]
    fn fmadd_fuses_only_on_the_avx2_fma_path() {
        let (a, c) = (1.0 + f32::EPSILON, -(1.0 + 2.0 * f32::EPSILON));
        let fused = a.mul_add(a, c);
        assert_eq!(fused, f32::EPSILON * f32::EPSILON);
        assert_eq!(Isa::Portable.fmadd(a, a, c), 0.0);
        for isa in [Isa::detect(), portable(Isa::detect)] {
            let got = run!(isa, |isa| isa.fmadd(a, a, c));
            let want = if matches!(isa, Isa::Avx2Fma(_)) {
                fused
            } else {
                0.0
            };
            assert_eq!(got, want, "{isa:?}");
        }
    }
}
