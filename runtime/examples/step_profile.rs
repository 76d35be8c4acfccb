//! Where a CNN3a training step spends its time, layer by layer, forward and
//! backward (batch 100, real data, median over the timed steps), with the
//! layers `network!` emits (conv -> relu -> maxpool fused into `ConvBlock`s).
//! The Adam update and gradient zeroing are not included.
//!
//! Backward times come from marker ops pushed onto the tape between layers:
//! dfdx runs the tape in reverse, so the time between two markers is the
//! backward pass of the layer between them. It uses the system allocator,
//! as a crate depending on `netdsl-runtime` would.
//!
//! Run: `cargo run --release -p netdsl-runtime --example step_profile [STEPS]`

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use netdsl_runtime::__private::dfdx::prelude::*;
use netdsl_runtime::data::FashionMnist;
use netdsl_runtime::nn::builders::{ConvBlock, Dense, Flatten, ReLU};

type Log = Rc<RefCell<Vec<(&'static str, Instant)>>>;

/// Records the time now (forward) and when the backward pass reaches this point.
fn mark<S: Shape>(
    t: Tensor<S, f32, Cpu, OwnedTape<f32, Cpu>>,
    fwd: &mut Vec<(&'static str, Instant)>,
    bwd: &Log,
    label: &'static str,
) -> Tensor<S, f32, Cpu, OwnedTape<f32, Cpu>> {
    fwd.push((label, Instant::now()));
    let (t, mut tape) = t.split_tape();
    let log = bwd.clone();
    tape.add_backward_op(move |_| {
        log.borrow_mut().push((label, Instant::now()));
        Ok(())
    });
    t.put_tape(tape)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).map_or(Ok(40), |s| s.parse())?;
    let data = FashionMnist::load(None)?;
    let dev = Cpu::seed_from_u64(0);
    // What `network!` emits for CNN3a: conv -> relu -> maxpool fused, the first without input gradient.
    let mut block1 = dev
        .build_module::<ConvBlock<1, 32, 3, 3, 1, 1, 0, 0, 28, 28, 26, 26, 2, 2, 13, 13, 0, false>, f32>(
        );
    let mut block2 = dev
        .build_module::<ConvBlock<32, 64, 3, 3, 1, 1, 0, 0, 13, 13, 11, 11, 2, 2, 5, 5, 0, true>, f32>();
    let mut flat = dev.build_module::<Flatten<64, 5, 5, 1600>, f32>();
    let mut dense1 = dev.build_module::<Dense<1600, 128>, f32>();
    let mut dense2 = dev.build_module::<Dense<128, 10>, f32>();
    let mut relu = dev.build_module::<ReLU, f32>();

    let mut rows: Vec<Vec<(String, f64)>> = Vec::new();
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for step in 0..steps + 3 {
        let idx: Vec<usize> = (step * 100..step * 100 + 100).collect();
        let t0 = Instant::now();
        data.train.batch_into(&idx, &mut x);
        data.train.labels_into(&idx, &mut labels);
        let input = dev.tensor_from_vec(
            std::mem::take(&mut x),
            (100usize, Const::<1>, Const::<28>, Const::<28>),
        );
        let mut oh = vec![0f32; 1000];
        for (i, &y) in labels.iter().enumerate() {
            oh[i * 10 + y as usize] = 1.0;
        }
        let targets = dev.tensor_from_vec(oh, (100usize, Const::<10>));
        let bwd: Log = Rc::new(RefCell::new(Vec::new()));
        let mut fwd = vec![("batch", t0)];
        let grads = block1.alloc_grads();
        let h = mark(input.traced(grads), &mut fwd, &bwd, "input");
        let h = mark(block1.forward_mut(h), &mut fwd, &bwd, "block1");
        let h = mark(block2.forward_mut(h), &mut fwd, &bwd, "block2");
        let h = mark(flat.forward_mut(h), &mut fwd, &bwd, "flatten");
        let h = mark(dense1.forward_mut(h), &mut fwd, &bwd, "dense1");
        let h = mark(relu.forward_mut(h), &mut fwd, &bwd, "relu3");
        let h = mark(dense2.forward_mut(h), &mut fwd, &bwd, "dense2");
        let loss = cross_entropy_with_logits_loss(h, targets.clone());
        let _ = loss.array();
        fwd.push(("loss", Instant::now()));
        let t_b = Instant::now();
        let g = loss.backward();
        let t_e = Instant::now();
        drop(g);
        let t_drop = Instant::now();
        let mut row = Vec::new();
        for w in fwd.windows(2) {
            row.push((format!("fwd {}", w[1].0), (w[1].1 - w[0].1).as_secs_f64()));
        }
        let b = bwd.borrow();
        row.push(("bwd loss".to_string(), (b[0].1 - t_b).as_secs_f64()));
        for w in b.windows(2) {
            row.push((format!("bwd {}", w[0].0), (w[1].1 - w[0].1).as_secs_f64()));
        }
        row.push((
            "bwd tail".to_string(),
            (t_e - b[b.len() - 1].1).as_secs_f64(),
        ));
        row.push(("drop grads".to_string(), (t_drop - t_e).as_secs_f64()));
        if step >= 3 {
            rows.push(row);
        }
    }
    let mut total = 0.0;
    for i in 0..rows[0].len() {
        let mut v: Vec<f64> = rows.iter().map(|r| r[i].1).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let med = v[v.len() / 2];
        total += med;
        println!("{:<14} {:>8.3} ms", rows[0][i].0, med * 1e3);
    }
    println!("{:<14} {:>8.3} ms (sum of medians)", "total", total * 1e3);
    Ok(())
}
