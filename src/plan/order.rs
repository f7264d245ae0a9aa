//! Task order: depth-first post-order from the targets, and the peak it implies.
//!
//! Visiting each target's dependencies before the target, in the order they are listed, runs a
//! reduction tree group by group (partials, then their combine, then the next group) and each
//! output chunk's inputs just before it, so a chunk is released soon after it is produced —
//! the same goal as dask.order's critical-path heuristic, and optimal for reduction trees of
//! equal-sized partials (Liu's minimum-memory traversal degenerates to it there). Ties are
//! broken by task index, so the order is reproducible.

use super::{TaskId, TaskSpec};

/// Priority (position in the schedule) of every task.
pub(crate) fn depth_first(tasks: &[TaskSpec], roots: &[TaskId]) -> Vec<usize> {
    let mut prio = vec![usize::MAX; tasks.len()];
    let mut next = 0;
    // Readers of chunks that no task of this plan produces (persisted arrays): a task that
    // reads one pulls its siblings right behind it, so the chunk is fetched from the lower
    // tiers once for all of them (W2's two reductions over one persisted chunk).
    let produced: std::collections::HashSet<_> = tasks
        .iter()
        .flat_map(|t| t.outputs.iter().map(|o| o.0))
        .collect();
    let mut stored_readers: std::collections::HashMap<crate::store::ChunkKey, Vec<TaskId>> =
        Default::default();
    for (i, t) in tasks.iter().enumerate() {
        for (k, _) in &t.reads {
            if !produced.contains(k) {
                stored_readers.entry(*k).or_default().push(i);
            }
        }
    }
    let assign = |t: TaskId, prio: &mut [usize], next: &mut usize| {
        prio[t] = *next;
        *next += 1;
        for (k, bytes) in &tasks[t].reads {
            for &s in stored_readers.get(k).into_iter().flatten() {
                let small = tasks[s].output_bytes <= bytes / 4;
                if prio[s] == usize::MAX
                    && small
                    && tasks[s].deps.iter().all(|&d| prio[d] != usize::MAX)
                {
                    prio[s] = *next;
                    *next += 1;
                }
            }
        }
    };
    for &r in roots {
        // Iterative post-order.
        let mut stack: Vec<(TaskId, usize)> = vec![(r, 0)];
        while let Some(&mut (t, ref mut i)) = stack.last_mut() {
            if prio[t] != usize::MAX {
                stack.pop();
                continue;
            }
            if *i < tasks[t].deps.len() {
                let d = tasks[t].deps[*i];
                *i += 1;
                if prio[d] == usize::MAX {
                    stack.push((d, 0));
                }
            } else {
                assign(t, &mut prio, &mut next);
                stack.pop();
            }
        }
    }
    // Tasks unreachable from the roots (none are built today) still get a place.
    for p in prio.iter_mut() {
        if *p == usize::MAX {
            *p = next;
            next += 1;
        }
    }
    prio
}

/// Peak bytes of running the tasks in priority order one at a time (outputs alive from their
/// producer until their last consumer), plus the largest tasks that other threads may run at
/// the same time.
pub(crate) fn projected_peak(tasks: &[TaskSpec], prio: &[usize], threads: usize) -> u64 {
    let mut order: Vec<TaskId> = (0..tasks.len()).collect();
    order.sort_by_key(|&t| prio[t]);
    let mut last_use = std::collections::HashMap::new();
    for &t in &order {
        for (k, _) in &tasks[t].reads {
            last_use.insert(*k, prio[t]);
        }
    }
    let mut live: u64 = 0;
    let mut peak: u64 = 0;
    let mut release_at: std::collections::BTreeMap<usize, u64> = Default::default();
    for &t in &order {
        let spec = &tasks[t];
        let running = spec.output_bytes + spec.working_bytes;
        peak = peak.max(live + running);
        for &(k, bytes) in &spec.outputs {
            live += bytes;
            match last_use.get(&k) {
                Some(&p) if !spec.keep_output => *release_at.entry(p).or_default() += bytes,
                _ if spec.keep_output => {}
                _ => *release_at.entry(prio[t]).or_default() += bytes,
            }
        }
        if let Some(b) = release_at.remove(&prio[t]) {
            live -= b.min(live);
        }
    }
    let mut sizes: Vec<u64> = tasks
        .iter()
        .map(|t| t.output_bytes + t.working_bytes)
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    peak + sizes
        .iter()
        .skip(1)
        .take(threads.saturating_sub(1))
        .sum::<u64>()
}
