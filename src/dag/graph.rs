//! Graph checks over task dependencies: cycles (with the whole chain) and a
//! topological order. Iterative, so a 10,000-task chain cannot overflow the
//! stack.

/// Every cycle found, each as task indices with the first repeated at the
/// end (`a -> b -> c -> a`), in execution direction (upstream first).
/// `downstream[i]` lists the tasks that depend on task `i`.
pub fn find_cycles(downstream: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const WHITE: u8 = 0;
    const GRAY: u8 = 1;
    const BLACK: u8 = 2;
    let n = downstream.len();
    let mut color = vec![WHITE; n];
    let mut cycles = Vec::new();
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut path: Vec<usize> = Vec::new();
    for root in 0..n {
        if color[root] != WHITE {
            continue;
        }
        stack.push((root, 0));
        color[root] = GRAY;
        path.push(root);
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&child) = downstream[node].get(*next) {
                *next += 1;
                match color[child] {
                    WHITE => {
                        color[child] = GRAY;
                        path.push(child);
                        stack.push((child, 0));
                    }
                    GRAY => {
                        let start = path.iter().rposition(|&p| p == child).unwrap_or(0);
                        let mut cycle = path[start..].to_vec();
                        cycle.push(child);
                        cycles.push(cycle);
                    }
                    _ => {}
                }
            } else {
                color[node] = BLACK;
                path.pop();
                stack.pop();
            }
        }
    }
    cycles
}

/// Kahn's order; `None` when the graph has a cycle.
pub fn topo_order(upstream: &[Vec<usize>], downstream: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut indeg: Vec<usize> = upstream.iter().map(Vec::len).collect();
    let mut ready: std::collections::VecDeque<usize> =
        (0..indeg.len()).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::with_capacity(indeg.len());
    while let Some(i) = ready.pop_front() {
        out.push(i);
        for &d in &downstream[i] {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    (out.len() == indeg.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_whole_chain() {
        // 0 -> 1 -> 2 -> 0, and 3 alone.
        let down = vec![vec![1], vec![2], vec![0], vec![]];
        assert_eq!(find_cycles(&down), vec![vec![0, 1, 2, 0]]);
        let up = vec![vec![2], vec![0], vec![1], vec![]];
        assert_eq!(topo_order(&up, &down), None);
    }

    #[test]
    fn long_chain_is_fine() {
        let n = 100_000;
        let down: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        let up: Vec<Vec<usize>> = (0..n)
            .map(|i| if i > 0 { vec![i - 1] } else { vec![] })
            .collect();
        assert!(find_cycles(&down).is_empty());
        assert_eq!(topo_order(&up, &down).map(|o| o.len()), Some(n));
    }
}
