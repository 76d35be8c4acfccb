//! How the Cpu kernels cut a batch into rayon tasks: a fixed number of
//! contiguous tasks that never depends on the thread count, so that partial
//! sums (a kernel's gradient, batchnorm's moments) are added in the same
//! order on any machine and results are bit-identical for any number of
//! threads.

/// The batch is split into at most this many rayon tasks.
const MAX_TASKS: usize = 16;

/// `v` cut into `n`-element chunks as options, or `count` `None`s when `v` is
/// empty (an absent optional output), for zipping with other chunked buffers.
pub(crate) fn chunks_or_none<T>(v: &mut [T], n: usize, count: usize) -> Vec<Option<&mut [T]>> {
    if v.is_empty() {
        (0..count).map(|_| None).collect()
    } else {
        v.chunks_mut(n).map(Some).collect()
    }
}

/// Per-task views of the input gradient and the pooling offsets.
pub(crate) type TaskViews<'a, E> = (Vec<Option<&'a mut [E]>>, Vec<&'a [u8]>);

/// A backward pass's optional buffers cut per task (shared by the im2col and
/// Winograd paths): the input gradient (`None`s for a first layer) in
/// `in_task` elements, the pooling offsets (empty slices without pooling or
/// ReLU) in `out_task` bytes.
pub(crate) fn backward_tasks<'a, E>(
    gx: Option<&'a mut [E]>,
    arg: &'a [u8],
    in_task: usize,
    out_task: usize,
    tasks: usize,
) -> TaskViews<'a, E> {
    let gx_tasks = chunks_or_none(gx.unwrap_or_default(), in_task, tasks);
    let arg_tasks = if arg.is_empty() {
        vec![&[][..]; tasks]
    } else {
        arg.chunks(out_task).collect()
    };
    (gx_tasks, arg_tasks)
}

/// Images per task for a fixed split of the batch (never depends on threads).
pub(crate) fn images_per_task(batch: usize) -> usize {
    batch.div_ceil(MAX_TASKS).max(1)
}
