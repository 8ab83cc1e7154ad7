//! Work items: how a tensor's elements are cut into units of parallel work, and the contiguous
//! runs of memory each one covers.
//!
//! Items depend only on the tensor's shape, never on the number of threads, so per-item
//! partial sums added in item order give the same bits run after run and on every machine.

use super::layout::Layout;

/// Target number of elements per work item of a one-channel tensor (see [`items`]).
const ITEM_ELEMENTS: usize = 1 << 15;

/// One unit of parallel work: elements `[start, end)` of channel `channel`, counted along that
/// channel's own sequence (`outer × inner` elements).
#[derive(Debug, Clone, Copy)]
pub(super) struct Item {
    pub(super) channel: usize,
    start: usize,
    end: usize,
}

/// Most elements per work item of a tensor with several channels (see [`items`]).
const CHANNEL_ITEM_ELEMENTS: usize = 1 << 16;
/// Fewest work items of a tensor with several channels, where it has the elements (a few
/// channels are then cut into several pieces each, to keep every thread busy).
const MIN_CHANNEL_ITEMS: usize = 16;
/// Fewest channels whose items are ordered by halves (see [`items`]): with halves of at least
/// three channels, consecutive items are never neighbouring channels (with four, channel 2
/// would be followed by channel 1).
const HALVES_MIN_CHANNELS: usize = 5;

/// The work items of `layout` (a function of the shape only, so that the per-item partial sums
/// are added up the same way run after run).
///
/// One channel: pieces of about [`ITEM_ELEMENTS`], in order.
///
/// Several channels: each channel's elements cut into `P` pieces (at most
/// [`CHANNEL_ITEM_ELEMENTS`] each, and at least [`MIN_CHANNEL_ITEMS`] items in all); piece by
/// piece, channel `k` of the first half is followed by channel `k + ⌈C/2⌉` of the second.
/// Threads take consecutive items, so they work at the same time on the same piece of channels
/// half the tensor's channels apart: never on neighbouring channels' planes, which share a cache
/// line at each end, and both go through the same stretch of the tensor. With fewer than
/// [`HALVES_MIN_CHANNELS`] channels, `P` rounds of one item per channel, channel `c` taking
/// piece `(c + round) mod P`, keep neighbours apart instead. (The orders' measurements:
/// `docs/kernels.md`.)
pub(super) fn items(layout: Layout) -> Vec<Item> {
    let per_channel = layout.outer * layout.inner;
    let channels = layout.channels;
    let pieces = if channels == 1 {
        per_channel.div_ceil(ITEM_ELEMENTS)
    } else {
        per_channel
            .div_ceil(CHANNEL_ITEM_ELEMENTS)
            .max(MIN_CHANNEL_ITEMS.div_ceil(channels))
            .min(per_channel)
    }
    .max(1);
    let step = per_channel.div_ceil(pieces).max(1);
    let item = |channel: usize, piece: usize| {
        let start = piece * step;
        (start < per_channel).then(|| Item {
            channel,
            start,
            end: (start + step).min(per_channel),
        })
    };
    let mut out = Vec::with_capacity(channels * pieces);
    if channels >= HALVES_MIN_CHANNELS {
        let half = channels.div_ceil(2);
        for piece in 0..pieces {
            for k in 0..half {
                out.extend(item(k, piece));
                if k + half < channels {
                    out.extend(item(k + half, piece));
                }
            }
        }
    } else {
        for round in 0..pieces {
            for channel in 0..channels {
                out.extend(item(channel, (channel + round) % pieces));
            }
        }
    }
    out
}

/// Visits the contiguous runs of an item: `(flat offset, length)`.
#[inline(always)]
pub(super) fn for_each_run(layout: Layout, item: Item, mut f: impl FnMut(usize, usize)) {
    if item.start >= item.end {
        return;
    }
    let inner = layout.inner;
    // One division for the first run; the others start their planes (no division per run:
    // an item of 26×26 planes has 64 runs).
    let (mut o, mut i) = (item.start / inner, item.start % inner);
    let mut k = item.start;
    while k < item.end {
        let len = (inner - i).min(item.end - k);
        f((o * layout.channels + item.channel) * inner + i, len);
        k += len;
        o += 1;
        i = 0;
    }
}

/// Calls `f` with the contiguous runs of an item, `(flat offset, length)`, collected (for
/// kernels that set up per item rather than per run) into a buffer this thread reuses from
/// one item to the next.
pub(super) fn with_item_runs<R>(
    layout: Layout,
    item: Item,
    f: impl FnOnce(&[(usize, usize)]) -> R,
) -> R {
    thread_local! {
        static RUNS: std::cell::Cell<Vec<(usize, usize)>> =
            const { std::cell::Cell::new(Vec::new()) };
    }
    let mut runs = RUNS.take();
    runs.clear();
    for_each_run(layout, item, |off, len| runs.push((off, len)));
    let r = f(&runs);
    RUNS.set(runs);
    r
}

/// The contiguous runs of an item, `(flat offset, length)`, in a vector of their own.
pub(super) fn item_runs(layout: Layout, item: Item) -> Vec<(usize, usize)> {
    // At most one partial run at each end, whole planes between.
    let mut runs = Vec::with_capacity((item.end - item.start) / layout.inner.max(1) + 2);
    for_each_run(layout, item, |off, len| runs.push((off, len)));
    runs
}

#[cfg(test)]
mod tests {
    use super::{Layout, for_each_run, items};

    #[test]
    fn items_cover_every_element_once_with_neighbours_on_different_channels() {
        for (dims, channels) in [
            (vec![64, 32, 26, 26], 32),
            (vec![3, 5, 7], 5),
            (vec![200_000], 1),
            (vec![0, 4, 3], 4),
            (vec![100, 7, 2000], 7),
            (vec![200, 3, 1000], 3),
            (vec![9, 2, 5], 2),
            (vec![6, 4, 30], 4),
            (vec![6, 6, 30], 6),
        ] {
            let layout = Layout::of(&dims, channels);
            let work = items(layout);
            let mut seen = vec![0u8; layout.len()];
            for &item in &work {
                for_each_run(layout, item, |off, len| {
                    seen[off..off + len].iter_mut().for_each(|s| *s += 1);
                });
            }
            assert!(seen.iter().all(|&s| s == 1), "{dims:?}");
            if channels > 1 {
                assert!(
                    work.windows(2).all(|w| w[0].channel != w[1].channel),
                    "{dims:?}"
                );
            }
            if channels >= super::HALVES_MIN_CHANNELS {
                // Items taken at the same time: never the same piece of neighbouring channels.
                assert!(
                    work.windows(2)
                        .all(|w| w[0].start != w[1].start
                            || w[0].channel.abs_diff(w[1].channel) >= 2),
                    "{dims:?}"
                );
            }
        }
    }
}
