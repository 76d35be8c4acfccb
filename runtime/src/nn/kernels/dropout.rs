//! Dropout's kernels: [`DropoutKernel`] for `Cpu` (dfdx's mask, drawn once
//! in parallel chunks and kept for the backward pass) and for `Cuda`
//! (dfdx's `try_dropout`).

use dfdx::prelude::{
    Cpu, CpuError, HasShape, PutTape, ReshapeTo, Shape, SplitTape, Tape, TensorFromVec,
};
use dfdx::tensor::RandomU64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;

use crate::nn::dropout::{DropoutKernel, Taped};
use crate::nn::kernels::recycle::Recycled;
use crate::nn::kernels::simd::{self, Isa};

/// Elements per parallel chunk of the mask (each chunk seeks its own ChaCha position).
const CHUNK: usize = 1 << 14;

/// Random draws taken from the stream at once (2 KB on the stack): the mask
/// loop then runs over plain slices and vectorises.
const DRAWS: usize = 256;

/// The `u64` below which a uniform draw means "true" for `Bernoulli::new(p)`
/// with `p < 1`, computed as `rand` 0.8 does (`bernoulli.rs`: `p_int = (p *
/// 2^64) as u64`, `sample = rng.gen::<u64>() < p_int`), so the mask is dfdx's
/// (`try_dropout` samples `Bernoulli::new(prob)` per element).
fn bernoulli_threshold(p: f64) -> u64 {
    const SCALE: f64 = 2.0 * (1u64 << 63) as f64;
    (p * SCALE) as u64
}

macro_rules! cpu_dropout {
    ($($E:ty),+) => {$(
        impl DropoutKernel<$E> for Cpu {
            fn try_dropout_train<S: Shape>(
                x: Taped<S, $E, Cpu>,
                prob: f64,
            ) -> Result<Taped<S, $E, Cpu>, CpuError> {
                // The seed first, as dfdx's `try_dropout` draws it.
                let seed = x.device().random_u64();
                let (x, mut tape) = x.try_contiguous()?.split_tape();
                let mut y = vec![0.0; x.shape().num_elements()];
                x.copy_into(&mut y);
                let threshold = bernoulli_threshold(prob);
                let keep = (1.0 - prob) as $E;
                // kept for the backward pass; the loop below writes every element
                let mut dropped = Recycled::<bool>::stale(y.len());
                let isa = Isa::detect();
                y.par_chunks_mut(CHUNK)
                    .zip(dropped.par_chunks_mut(CHUNK))
                    .enumerate()
                    .for_each(|(j, (ys, ds))| {
                        let mut rng = ChaCha12Rng::seed_from_u64(seed);
                        // Element i takes the i-th u64 of the stream: u32 words 2i, 2i + 1.
                        rng.set_word_pos(2 * (j * CHUNK) as u128);
                        let mut draws = [0u64; DRAWS];
                        for (ys, ds) in ys.chunks_mut(DRAWS).zip(ds.chunks_mut(DRAWS)) {
                            let draws = &mut draws[..ys.len()];
                            rng.fill(draws); // the same u64s, in order, as `next_u64` would give
                            // Branch-free (the mask is random: a branch mispredicts) and vectorised.
                            simd::run!(isa, |_isa| {
                                for ((y, d), &u) in ys.iter_mut().zip(ds.iter_mut()).zip(draws.iter()) {
                                    let drop = u < threshold; // Bernoulli(prob)
                                    let kept = *y / keep;
                                    *d = drop;
                                    *y = if drop { 0.0 } else { kept };
                                }
                            })
                        }
                    });
                let y = x.device().try_tensor_from_vec(y, *x.shape())?;
                let (x_ghost, y_ghost) = (x.ghost(), y.ghost());
                tape.add_backward_op(move |grads| {
                    let gy = std::mem::take::<Vec<$E>>(grads.get_or_alloc_mut(&y_ghost)?);
                    let gx: &mut Vec<$E> = grads.get_or_alloc_mut(&x_ghost)?;
                    let scale = (1.0 - prob).recip() as $E;
                    let isa = Isa::detect();
                    gx.par_chunks_mut(CHUNK)
                        .zip(gy.par_chunks(CHUNK))
                        .zip(dropped.par_chunks(CHUNK))
                        .for_each(|((gx, gy), ds)| simd::run!(isa, |_isa| {
                            for ((gx, &gy), &d) in gx.iter_mut().zip(gy).zip(ds) {
                                // 0 or `scale` without a branch (which LLVM kept for a select)
                                let factor = scale * <$E>::from(u8::from(!d));
                                *gx += factor * gy;
                            }
                        }));
                    **grads.get_or_alloc_mut(&y_ghost)? = gy;
                    Ok(())
                });
                Ok(y.put_tape(tape))
            }
        }
    )+};
}

cpu_dropout!(f32, f64);

#[cfg(feature = "cuda")]
impl<E: dfdx::shapes::Dtype> DropoutKernel<E> for dfdx::tensor::Cuda
where
    dfdx::tensor::Cuda: dfdx::tensor_ops::Device<E>,
{
    fn try_dropout_train<S: Shape>(
        x: Taped<S, E, Self>,
        prob: f64,
    ) -> Result<Taped<S, E, Self>, Self::Err> {
        x.try_dropout(prob)
    }
}
