//! A box-bounded Nelder–Mead minimiser, the variant statsforecast uses to
//! fit its Theta and ETS models (`include/statsforecast/nelder_mead.h`):
//! every trial point is clamped into the bounds, the first simplex steps 5%
//! from the start along each axis, the coefficients are the adaptive ones
//! of Gao & Han (2012), and the search stops when the spread (population
//! standard deviation) of the simplex's values falls below a tolerance.
//! Owns the minimiser only; the objective is the caller's.

/// Settings of one minimisation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// Relative step from the start point that builds the first simplex.
    pub init_step: f64,
    /// The step used instead where a start coordinate is zero.
    pub zero_pert: f64,
    pub max_iter: usize,
    /// Stop when the standard deviation of the simplex's values is below this.
    pub tol_std: f64,
}

impl Default for Settings {
    /// statsforecast's settings for Theta.
    fn default() -> Self {
        Settings {
            init_step: 0.05,
            zero_pert: 1e-4,
            max_iter: 1_000,
            tol_std: 1e-4,
        }
    }
}

/// The best point found and its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
}

fn clamp(x: &mut [f64], lower: &[f64], upper: &[f64]) {
    for ((v, lo), hi) in x.iter_mut().zip(lower).zip(upper) {
        *v = v.max(*lo).min(*hi);
    }
}

/// Population standard deviation; NaN when a value is not finite, so the
/// search goes on.
fn spread(f: &[f64]) -> f64 {
    let n = f.len() as f64;
    let mean = f.iter().sum::<f64>() / n;
    (f.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// `a + c·(b − a)`, clamped into the bounds.
fn towards(a: &[f64], b: &[f64], c: f64, lower: &[f64], upper: &[f64]) -> Vec<f64> {
    let mut x: Vec<f64> = a.iter().zip(b).map(|(a, b)| a + c * (b - a)).collect();
    clamp(&mut x, lower, upper);
    x
}

/// Minimises `f` from `x0` within `[lower, upper]` (all the same length).
/// A value that is NaN counts as +∞.
pub(super) fn minimise(
    mut f: impl FnMut(&[f64]) -> f64,
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    s: Settings,
) -> Minimum {
    let mut eval = |x: &[f64]| {
        let v = f(x);
        if v.is_nan() { f64::INFINITY } else { v }
    };
    let n = x0.len();
    if n == 0 {
        return Minimum {
            x: Vec::new(),
            value: eval(&[]),
        };
    }
    let nf = n as f64;
    let (reflect, expand, contract, shrink) =
        (1.0, 1.0 + 2.0 / nf, 0.75 - 1.0 / (2.0 * nf), 1.0 - 1.0 / nf);
    let mut start = x0.to_vec();
    clamp(&mut start, lower, upper);
    let mut simplex: Vec<Vec<f64>> = vec![start; n + 1];
    for (i, row) in simplex.iter_mut().take(n).enumerate() {
        let v = if row[i] == 0.0 {
            s.zero_pert
        } else {
            row[i] * (1.0 + s.init_step)
        };
        row[i] = v.max(lower[i]).min(upper[i]);
    }
    let mut values: Vec<f64> = simplex.iter().map(|x| eval(x)).collect();
    let mut order: Vec<usize> = (0..=n).collect();
    let mut best = 0;
    for _ in 0..s.max_iter {
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        best = order[0];
        let (worst, second) = (order[n], order[n - 1]);
        if spread(&values) < s.tol_std {
            break;
        }
        // Centroid of every point but the worst.
        let centroid: Vec<f64> = (0..n)
            .map(|j| {
                let sum: f64 = simplex.iter().map(|x| x[j]).sum();
                (sum - simplex[worst][j]) / nf
            })
            .collect();
        let xr = towards(&centroid, &simplex[worst], -reflect, lower, upper);
        let fr = eval(&xr);
        if values[best] <= fr && fr < values[second] {
            simplex[worst] = xr;
            values[worst] = fr;
            continue;
        }
        if fr < values[best] {
            let xe = towards(&centroid, &xr, expand, lower, upper);
            let fe = eval(&xe);
            (simplex[worst], values[worst]) = if fe < fr { (xe, fe) } else { (xr, fr) };
            continue;
        }
        if values[second] <= fr && fr < values[worst] {
            // Outside contraction.
            let xc = towards(&centroid, &xr, contract, lower, upper);
            let fc = eval(&xc);
            if fc <= fr {
                simplex[worst] = xc;
                values[worst] = fc;
                continue;
            }
        } else {
            // Inside contraction.
            let xc = towards(&centroid, &xr, -contract, lower, upper);
            let fc = eval(&xc);
            if fc < values[worst] {
                simplex[worst] = xc;
                values[worst] = fc;
                continue;
            }
        }
        // Shrink towards the best point.
        let anchor = simplex[best].clone();
        for j in 0..=n {
            if j != best {
                simplex[j] = towards(&anchor, &simplex[j], shrink, lower, upper);
                values[j] = eval(&simplex[j]);
            }
        }
    }
    Minimum {
        x: simplex[best].clone(),
        value: values[best],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_bowl() {
        let f = |x: &[f64]| (x[0] - 1.5).powi(2) + 3.0 * (x[1] + 0.5).powi(2);
        let s = Settings {
            tol_std: 1e-12,
            ..Settings::default()
        };
        let m = minimise(f, &[0.0, 0.0], &[-10.0, -10.0], &[10.0, 10.0], s);
        assert!((m.x[0] - 1.5).abs() < 1e-4, "{:?}", m.x);
        assert!((m.x[1] + 0.5).abs() < 1e-4, "{:?}", m.x);
    }

    #[test]
    fn stays_within_the_bounds() {
        // The unconstrained minimum (x = −3) lies below the lower bound.
        let f = |x: &[f64]| (x[0] + 3.0).powi(2);
        let m = minimise(f, &[2.0], &[0.1], &[5.0], Settings::default());
        assert!((m.x[0] - 0.1).abs() < 1e-6, "{:?}", m.x);
    }

    #[test]
    fn nan_counts_as_worse_than_anything() {
        let f = |x: &[f64]| {
            if x[0] > 1.0 {
                f64::NAN
            } else {
                (x[0] - 1.0).powi(2)
            }
        };
        let m = minimise(f, &[0.5], &[0.0], &[2.0], Settings::default());
        assert!(m.value.is_finite());
        assert!(m.x[0] <= 1.0);
    }
}
