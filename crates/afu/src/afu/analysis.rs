//! What a learned AFU is like, as numbers: the closest known activation (best fit of
//! `a·f(b·z + c) + d` for each Table 1 function, weighted by the inputs the AFU actually saw) and
//! shape measures (monotone or not, V / inverted V, slopes far out, dead zones, distance from
//! linear). The paper judges these by eye; this module measures them.

use serde::{Deserialize, Serialize};

use crate::afu::{AfuParams, BaseActivation};

/// Where an AFU's inputs fell: sample points `z` with weights (a histogram's bin centres and
/// counts, or a uniform grid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputDistribution {
    /// Sample points (bin centres), increasing.
    pub z: Vec<f64>,
    /// Non-negative weights (counts), same length.
    pub weight: Vec<f64>,
}

impl InputDistribution {
    /// `points` evenly spaced points over `[lo, hi]`, equal weights.
    pub fn uniform(lo: f64, hi: f64, points: usize) -> Self {
        let points = points.max(2);
        InputDistribution {
            z: (0..points)
                .map(|i| lo + (hi - lo) * i as f64 / (points - 1) as f64)
                .collect(),
            weight: vec![1.0; points],
        }
    }

    /// A histogram of `values` with `bins` bins between their 0.1 % and 99.9 % quantiles
    /// (outliers are clamped into the end bins).
    pub fn from_values(values: &[f32], bins: usize) -> Option<Self> {
        let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f32::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize] as f64;
        let (lo, hi) = (q(0.001), q(0.999));
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, lo + 1.0)
        };
        let bins = bins.max(2);
        let width = (hi - lo) / bins as f64;
        let mut weight = vec![0.0; bins];
        for &x in &v {
            let b = (((x as f64 - lo) / width).floor().max(0.0) as usize).min(bins - 1);
            weight[b] += 1.0;
        }
        Some(InputDistribution {
            z: (0..bins).map(|b| lo + width * (b as f64 + 0.5)).collect(),
            weight,
        })
    }

    fn total(&self) -> f64 {
        self.weight.iter().sum()
    }
}

/// The best fit of one known function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionFit {
    /// The function `f`.
    pub function: BaseActivation,
    /// `a` in `a·f(b·z + c) + d`.
    pub a: f64,
    /// `b`.
    pub b: f64,
    /// `c`.
    pub c: f64,
    /// `d`.
    pub d: f64,
    /// Weighted RMS error of the fit divided by the weighted standard deviation of `G`
    /// (0 = exact; 1 = no better than a constant).
    pub relative_error: f64,
}

/// Shape measures of an AFU over its input distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// `G` is monotone over the inputs (its slope never changes sign beyond noise).
    pub monotone: bool,
    /// Where `G` is lowest over the inputs.
    pub argmin: f64,
    /// Where `G` is highest.
    pub argmax: f64,
    /// `V` (interior minimum with falling then rising flanks), `inverted-V` (interior maximum),
    /// `increasing`, `decreasing` or `other`.
    pub kind: String,
    /// Slope of `G` far to the left (z = −50): 0 means it saturates there.
    pub slope_left: f64,
    /// Slope far to the right (z = +50).
    pub slope_right: f64,
    /// Share of the inputs where `|G'|` is below 1 % of its largest value (dead zones).
    pub dead_fraction: f64,
    /// Relative error of the best straight line (0 = linear).
    pub distance_from_linear: f64,
}

/// Everything `afu inspect` says about one AFU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// Fits of every Table 1 function, best first.
    pub fits: Vec<FunctionFit>,
    /// Shape measures.
    pub shape: Shape,
}

impl Inspection {
    /// The closest known function.
    pub fn nearest(&self) -> &FunctionFit {
        &self.fits[0]
    }
}

/// Inspects AFU number `channel` of `p` over `dist`.
pub fn inspect(p: &AfuParams, channel: usize, dist: &InputDistribution) -> Inspection {
    let g: Vec<f64> = dist.z.iter().map(|&z| p.eval(channel, z)).collect();
    let slopes: Vec<f64> = dist.z.iter().map(|&z| p.derivative(channel, z)).collect();
    let far = (p.derivative(channel, -50.0), p.derivative(channel, 50.0));
    inspect_values(&g, &slopes, far, dist)
}

/// Inspects any scalar function (a learnable family's, say) from its values `g` and its
/// derivatives `slopes` at the points of `dist`; `far_slopes` are its slopes at −50 and 50
/// (the slopes towards ±∞ of [`Shape`]).
///
/// # Panics
/// If `g` or `slopes` is not as long as `dist.z`.
pub fn inspect_values(
    g: &[f64],
    slopes: &[f64],
    far_slopes: (f64, f64),
    dist: &InputDistribution,
) -> Inspection {
    assert!(g.len() == dist.z.len() && slopes.len() == dist.z.len());
    let mut fits: Vec<FunctionFit> = BaseActivation::ALL
        .iter()
        .map(|&f| fit_function(f, &dist.z, g, &dist.weight))
        .collect();
    fits.sort_by(|x, y| x.relative_error.total_cmp(&y.relative_error));
    Inspection {
        shape: shape(slopes, far_slopes, dist, g),
        fits,
    }
}

fn weighted_std(g: &[f64], w: &[f64]) -> f64 {
    let tw: f64 = w.iter().sum();
    let mean = g.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() / tw;
    (g.iter()
        .zip(w)
        .map(|(x, w)| w * (x - mean).powi(2))
        .sum::<f64>()
        / tw)
        .sqrt()
}

/// Weighted least squares of `g ≈ a·h + d`; returns (a, d, weighted mean squared error).
fn affine_fit(h: &[f64], g: &[f64], w: &[f64]) -> (f64, f64, f64) {
    let (mut sw, mut sh, mut sg, mut shh, mut shg) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..h.len() {
        sw += w[i];
        sh += w[i] * h[i];
        sg += w[i] * g[i];
        shh += w[i] * h[i] * h[i];
        shg += w[i] * h[i] * g[i];
    }
    let var = shh * sw - sh * sh;
    let (a, d) = if var.abs() < 1e-12 * (shh * sw).max(1e-300) {
        (0.0, sg / sw)
    } else {
        let a = (shg * sw - sh * sg) / var;
        (a, (sg - a * sh) / sw)
    };
    let mse = (0..h.len())
        .map(|i| w[i] * (a * h[i] + d - g[i]).powi(2))
        .sum::<f64>()
        / sw;
    (a, d, mse)
}

/// Best `a·f(b·z + c) + d` for one `f`: a grid over (b, c), then a shrinking pattern search.
pub fn fit_function(f: BaseActivation, z: &[f64], g: &[f64], w: &[f64]) -> FunctionFit {
    let sd = weighted_std(g, w).max(1e-12);
    let span = z.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
    let eval = |b: f64, c: f64| {
        let h: Vec<f64> = z.iter().map(|&zi| f.value(b * zi + c)).collect();
        let (a, d, mse) = affine_fit(&h, g, w);
        (a, d, mse)
    };
    if f == BaseActivation::Linear {
        let (a, d, mse) = eval(1.0, 0.0);
        return FunctionFit {
            function: f,
            a,
            b: 1.0,
            c: 0.0,
            d,
            relative_error: mse.sqrt() / sd,
        };
    }
    let mut best = (f64::INFINITY, 1.0, 0.0);
    for &sign in &[1.0, -1.0] {
        for k in -8..=8 {
            let b = sign * 2f64.powf(k as f64 / 2.0) / span * 3.0;
            for ci in -12..=12 {
                let c = ci as f64 * 0.5;
                let (_, _, mse) = eval(b, c);
                if mse < best.0 {
                    best = (mse, b, c);
                }
            }
        }
    }
    let (mut mse, mut b, mut c) = best;
    let (mut db, mut dc) = (b.abs() * 0.25, 0.25);
    for _ in 0..200 {
        let mut improved = false;
        for (nb, nc) in [(b + db, c), (b - db, c), (b, c + dc), (b, c - dc)] {
            let (_, _, m) = eval(nb, nc);
            if m < mse {
                (mse, b, c) = (m, nb, nc);
                improved = true;
            }
        }
        if !improved {
            db *= 0.5;
            dc *= 0.5;
            if dc < 1e-6 {
                break;
            }
        }
    }
    let (a, d, mse) = eval(b, c);
    FunctionFit {
        function: f,
        a,
        b,
        c,
        d,
        relative_error: mse.sqrt() / sd,
    }
}

fn shape(slopes: &[f64], far: (f64, f64), dist: &InputDistribution, g: &[f64]) -> Shape {
    let z = &dist.z;
    let w = &dist.weight;
    let max_slope = slopes.iter().fold(0.0f64, |m, s| m.max(s.abs())).max(1e-12);
    let tol = 0.01 * max_slope;
    let any_up = slopes.iter().any(|&s| s > tol);
    let any_down = slopes.iter().any(|&s| s < -tol);
    let (imin, imax) = (0..g.len()).fold((0, 0), |(lo, hi), i| {
        (
            if g[i] < g[lo] { i } else { lo },
            if g[i] > g[hi] { i } else { hi },
        )
    });
    let interior = |i: usize| i > 0 && i + 1 < g.len();
    let kind = if !(any_up && any_down) {
        if any_down { "decreasing" } else { "increasing" }
    } else if interior(imin)
        && slopes[..imin].iter().all(|&s| s <= tol)
        && slopes[imin + 1..].iter().all(|&s| s >= -tol)
    {
        "V"
    } else if interior(imax)
        && slopes[..imax].iter().all(|&s| s >= -tol)
        && slopes[imax + 1..].iter().all(|&s| s <= tol)
    {
        "inverted-V"
    } else {
        "other"
    };
    let total = dist.total().max(1e-300);
    let dead = (slopes
        .iter()
        .zip(w)
        .filter(|(s, _)| s.abs() < tol)
        .map(|(_, w)| w)
        .sum::<f64>()
        / total)
        .max(0.0);
    let (_, _, mse) = affine_fit(z, g, w);
    Shape {
        monotone: !(any_up && any_down),
        argmin: z[imin],
        argmax: z[imax],
        kind: kind.to_string(),
        slope_left: far.0,
        slope_right: far.1,
        dead_fraction: dead,
        distance_from_linear: mse.sqrt() / weighted_std(g, w).max(1e-12),
    }
}

/// Parameters of an AFU (`hidden` units, base `base`) that approximate `target` over
/// `[lo, hi]`: units spread over the range, the output layer by least squares, then every
/// parameter refined by Adam on the squared error (in f64, a few thousand steps), and the output
/// layer solved once more. Deterministic for a given `rng`.
pub fn fit_afu_to(
    target: BaseActivation,
    hidden: usize,
    base: BaseActivation,
    lo: f64,
    hi: f64,
    rng: &mut impl rand::Rng,
) -> AfuParams {
    let hidden = hidden.max(1);
    let z = InputDistribution::uniform(lo, hi, 201).z;
    let y: Vec<f64> = z.iter().map(|&zi| target.value(zi)).collect();
    let mut w0 = Vec::with_capacity(hidden);
    let mut b0 = Vec::with_capacity(hidden);
    for i in 0..hidden {
        // Unit i centred in its share of the range, alternating orientation, random scale.
        let centre = lo + (hi - lo) * (i as f64 + rng.random_range(0.25..0.75)) / hidden as f64;
        let scale = rng.random_range(0.5..2.0) * if i % 2 == 0 { 1.0 } else { -1.0 };
        w0.push(scale);
        b0.push(-scale * centre);
    }
    let (mut w1, mut b1) = output_layer(base, &w0, &b0, &z, &y);
    // Adam on all parameters: θ = [w0, b0, w1, b1].
    let n = hidden;
    let m = z.len() as f64;
    let mut theta: Vec<f64> = w0
        .iter()
        .chain(&b0)
        .chain(&w1)
        .copied()
        .chain([b1])
        .collect();
    let (mut m1, mut m2) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
    let (lr, beta1, beta2, eps) = (0.01f64, 0.9f64, 0.999f64, 1e-12f64);
    for step in 1..=3000 {
        let mut grad = vec![0.0; theta.len()];
        for (&zi, &yi) in z.iter().zip(&y) {
            let mut g = theta[3 * n];
            for k in 0..n {
                g += theta[2 * n + k] * base.value(theta[k] * zi + theta[n + k]);
            }
            let r = 2.0 * (g - yi) / m;
            for k in 0..n {
                let u = theta[k] * zi + theta[n + k];
                let d = r * theta[2 * n + k] * base.derivative(u);
                grad[k] += d * zi;
                grad[n + k] += d;
                grad[2 * n + k] += r * base.value(u);
            }
            grad[3 * n] += r;
        }
        let (c1, c2) = (1.0 - beta1.powi(step), 1.0 - beta2.powi(step));
        for i in 0..theta.len() {
            m1[i] = beta1 * m1[i] + (1.0 - beta1) * grad[i];
            m2[i] = beta2 * m2[i] + (1.0 - beta2) * grad[i] * grad[i];
            theta[i] -= lr * (m1[i] / c1) / ((m2[i] / c2).sqrt() + eps);
        }
    }
    w0.copy_from_slice(&theta[..n]);
    b0.copy_from_slice(&theta[n..2 * n]);
    (w1, b1) = output_layer(base, &w0, &b0, &z, &y);
    AfuParams {
        base,
        channels: 1,
        hidden,
        w0,
        b0,
        w1,
        b1: vec![b1],
    }
}

/// The least-squares output layer `(w1, b1)` for fixed first-layer units.
fn output_layer(
    base: BaseActivation,
    w0: &[f64],
    b0: &[f64],
    z: &[f64],
    y: &[f64],
) -> (Vec<f64>, f64) {
    let hidden = w0.len();
    let m = hidden + 1;
    let mut xtx = vec![0.0; m * m];
    let mut xty = vec![0.0; m];
    for (&zi, &yi) in z.iter().zip(y) {
        let mut row: Vec<f64> = (0..hidden)
            .map(|i| base.value(w0[i] * zi + b0[i]))
            .collect();
        row.push(1.0);
        for r in 0..m {
            xty[r] += row[r] * yi;
            for c in 0..m {
                xtx[r * m + c] += row[r] * row[c];
            }
        }
    }
    for r in 0..m {
        xtx[r * m + r] += 1e-9 * (1.0 + xtx[r * m + r]);
    }
    let theta = solve(xtx, xty, m);
    (theta[..hidden].to_vec(), theta[hidden])
}

/// Solves a small symmetric positive-definite system by Gaussian elimination with partial
/// pivoting (hand-written: a few dozen unknowns do not justify a linear-algebra dependency).
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if piv != col {
            for k in 0..n {
                a.swap(col * n + k, piv * n + k);
            }
            b.swap(col, piv);
        }
        let d = a[col * n + col];
        if d.abs() < 1e-300 {
            continue;
        }
        for r in col + 1..n {
            let f = a[r * n + col] / d;
            for k in col..n {
                a[r * n + k] -= f * a[col * n + k];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        let d = a[r * n + r];
        x[r] = if d.abs() < 1e-300 {
            0.0
        } else {
            (b[r] - s) / d
        };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fitting_recovers_known_functions() {
        let dist = InputDistribution::uniform(-4.0, 4.0, 161);
        for (target, base) in [
            (BaseActivation::LeakyRelu, BaseActivation::Relu),
            (BaseActivation::Mish, BaseActivation::Sigmoid),
            (BaseActivation::Tanh, BaseActivation::Sigmoid),
            (BaseActivation::Relu, BaseActivation::Relu),
            (BaseActivation::Sigmoid, BaseActivation::Tanh),
        ] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let p = fit_afu_to(target, 16, base, -4.0, 4.0, &mut rng);
            let ins = inspect(&p, 0, &dist);
            let best = ins.nearest();
            assert!(
                best.relative_error < 0.05,
                "{target} via {base}: {:?}",
                ins.fits
            );
            // The target itself fits about as well as the winner (near-ties: relu vs leaky-relu).
            let own = ins.fits.iter().find(|f| f.function == target).unwrap();
            assert!(
                own.relative_error <= best.relative_error + 0.02,
                "{target}: {:?}",
                ins.fits
            );
        }
    }

    #[test]
    fn shapes_are_classified() {
        // |z| as a relu AFU: relu(z) + relu(−z).
        let v = AfuParams {
            base: BaseActivation::Relu,
            channels: 1,
            hidden: 2,
            w0: vec![1.0, -1.0],
            b0: vec![0.0, 0.0],
            w1: vec![1.0, 1.0],
            b1: vec![0.0],
        };
        let dist = InputDistribution::uniform(-3.0, 3.0, 121);
        let s = inspect(&v, 0, &dist).shape;
        assert_eq!(s.kind, "V");
        assert!(!s.monotone && s.argmin.abs() < 0.06);
        assert_eq!((s.slope_left, s.slope_right), (-1.0, 1.0));
        let mut inv = v.clone();
        inv.w1 = vec![-1.0, -1.0];
        assert_eq!(inspect(&inv, 0, &dist).shape.kind, "inverted-V");
        // A relu AFU that is a plain relu: half the inputs in a dead zone, saturating left.
        let r = AfuParams {
            w0: vec![1.0],
            b0: vec![0.0],
            w1: vec![1.0],
            hidden: 1,
            ..v.clone()
        };
        let s = inspect(&r, 0, &dist).shape;
        assert_eq!(s.kind, "increasing");
        assert!((s.dead_fraction - 0.5).abs() < 0.02, "{s:?}");
        assert_eq!(s.slope_left, 0.0);
        assert!(s.distance_from_linear > 0.1);
    }

    #[test]
    fn histogram_of_values() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32 / 100.0).collect();
        let d = InputDistribution::from_values(&v, 10).unwrap();
        assert_eq!(d.z.len(), 10);
        assert!((d.weight.iter().sum::<f64>() - 1000.0).abs() < 1e-9);
        assert!(InputDistribution::from_values(&[1.0], 10).is_none());
    }
}
