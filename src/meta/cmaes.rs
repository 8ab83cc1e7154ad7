//! A compact, deterministic (μ/μ_w, λ)-CMA-ES (Hansen, "The CMA Evolution Strategy: A
//! Tutorial", arXiv 1604.00772, with its default constants), for the 3N+1 parameters of an AFU.
//!
//! Written here rather than taken from the `cmaes` crate: that crate needs `nalgebra` (and
//! `plotters` with default features), which this workspace keeps out; an AFU has 25 parameters
//! at N = 8, where a dense covariance and a cyclic Jacobi eigen solver cost microseconds.
//!
//! The state is plain data (serde), so a run can checkpoint it every generation and continue
//! bit-identically: [`CmaEs::ask`] draws from an RNG the caller seeds per generation, and every
//! loop runs in a fixed order.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The strategy's state after some generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmaEs {
    /// Dimension `n`.
    pub n: usize,
    /// Population size λ.
    pub lambda: usize,
    /// Parents μ = ⌊λ/2⌋.
    pub mu: usize,
    /// Recombination weights (positive, sum 1), best first.
    pub weights: Vec<f64>,
    /// Variance-effective selection mass μ_eff.
    pub mueff: f64,
    /// Learning rate of the rank-one evolution path.
    pub cc: f64,
    /// Learning rate of the step-size path.
    pub cs: f64,
    /// Rank-one learning rate.
    pub c1: f64,
    /// Rank-μ learning rate.
    pub cmu: f64,
    /// Step-size damping.
    pub damps: f64,
    /// E‖N(0, I)‖.
    pub chi_n: f64,
    /// Distribution mean.
    pub mean: Vec<f64>,
    /// Step size σ.
    pub sigma: f64,
    /// Covariance C, row-major n × n.
    pub cov: Vec<f64>,
    /// Eigenvectors of C (columns), row-major n × n.
    pub b: Vec<f64>,
    /// Square roots of C's eigenvalues.
    pub d: Vec<f64>,
    /// Evolution path of C.
    pub pc: Vec<f64>,
    /// Evolution path of σ.
    pub ps: Vec<f64>,
    /// Generations told so far.
    pub generation: usize,
}

/// λ = 4 + ⌊3 ln n⌋, Hansen's default population size.
pub fn default_population(n: usize) -> usize {
    4 + (3.0 * (n.max(1) as f64).ln()).floor() as usize
}

impl CmaEs {
    /// A new strategy around `mean` with step size `sigma` and population `lambda` (≥ 2).
    pub fn new(mean: Vec<f64>, sigma: f64, lambda: usize) -> Self {
        let n = mean.len();
        let nf = n as f64;
        let lambda = lambda.max(2);
        let mu = (lambda / 2).max(1);
        let raw: Vec<f64> = (0..mu)
            .map(|i| (mu as f64 + 0.5).ln() - ((i + 1) as f64).ln())
            .collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let mueff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);
        let cs = (mueff + 2.0) / (nf + mueff + 5.0);
        let c1 = 2.0 / ((nf + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((nf + 2.0).powi(2) + mueff));
        let damps = 1.0 + 2.0 * (((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let mut eye = vec![0.0; n * n];
        for i in 0..n {
            eye[i * n + i] = 1.0;
        }
        CmaEs {
            n,
            lambda,
            mu,
            weights,
            mueff,
            cc,
            cs,
            c1,
            cmu,
            damps,
            chi_n,
            mean,
            sigma,
            cov: eye.clone(),
            b: eye,
            d: vec![1.0; n],
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            generation: 0,
        }
    }

    /// Draws λ candidates `m + σ·B·D·z`, z ~ N(0, I), in order from `rng`.
    pub fn ask(&self, rng: &mut impl Rng) -> Vec<Vec<f64>> {
        let n = self.n;
        (0..self.lambda)
            .map(|_| {
                let z: Vec<f64> = (0..n)
                    .map(|_| <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng))
                    .collect();
                (0..n)
                    .map(|i| {
                        let y: f64 = (0..n).map(|j| self.b[i * n + j] * self.d[j] * z[j]).sum();
                        self.mean[i] + self.sigma * y
                    })
                    .collect()
            })
            .collect()
    }

    /// Updates the distribution from the candidates `xs` and their fitness (lower is better;
    /// a non-finite value ranks last). Ties keep the candidates' order.
    pub fn tell(&mut self, xs: &[Vec<f64>], fitness: &[f64]) {
        let n = self.n;
        let mut order: Vec<usize> = (0..xs.len()).collect();
        let key = |i: usize| {
            if fitness[i].is_finite() {
                fitness[i]
            } else {
                f64::INFINITY
            }
        };
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        let old = self.mean.clone();
        let ys: Vec<Vec<f64>> = order[..self.mu]
            .iter()
            .map(|&k| (0..n).map(|i| (xs[k][i] - old[i]) / self.sigma).collect())
            .collect();
        let yw: Vec<f64> = (0..n)
            .map(|i| (0..self.mu).map(|k| self.weights[k] * ys[k][i]).sum())
            .collect();
        for i in 0..n {
            self.mean[i] = old[i] + self.sigma * yw[i];
        }
        // C^{-1/2}·y_w = B·D⁻¹·Bᵀ·y_w.
        let bt_y: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| self.b[i * n + j] * yw[i]).sum::<f64>() / self.d[j])
            .collect();
        let inv_sqrt_y: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| self.b[i * n + j] * bt_y[j]).sum())
            .collect();
        let cs_norm = (self.cs * (2.0 - self.cs) * self.mueff).sqrt();
        for (p, y) in self.ps.iter_mut().zip(&inv_sqrt_y) {
            *p = (1.0 - self.cs) * *p + cs_norm * y;
        }
        let ps_norm = self.ps.iter().map(|v| v * v).sum::<f64>().sqrt();
        let g = (self.generation + 1) as f64;
        let hsig = ps_norm / (1.0 - (1.0 - self.cs).powf(2.0 * g)).sqrt() / self.chi_n
            < 1.4 + 2.0 / (n as f64 + 1.0);
        let hsig = if hsig { 1.0 } else { 0.0 };
        let cc_norm = (self.cc * (2.0 - self.cc) * self.mueff).sqrt();
        for (p, y) in self.pc.iter_mut().zip(&yw) {
            *p = (1.0 - self.cc) * *p + hsig * cc_norm * y;
        }
        let keep = 1.0 - self.c1 - self.cmu;
        let lost = (1.0 - hsig) * self.cc * (2.0 - self.cc);
        for i in 0..n {
            for j in 0..n {
                let rank_mu: f64 = (0..self.mu)
                    .map(|k| self.weights[k] * ys[k][i] * ys[k][j])
                    .sum();
                let c = self.cov[i * n + j];
                self.cov[i * n + j] =
                    keep * c + self.c1 * (self.pc[i] * self.pc[j] + lost * c) + self.cmu * rank_mu;
            }
        }
        self.sigma *= ((self.cs / self.damps) * (ps_norm / self.chi_n - 1.0)).exp();
        self.generation += 1;
        self.decompose();
    }

    /// Recomputes B and D from C (symmetrised; eigenvalues floored at 1e-20).
    fn decompose(&mut self) {
        let n = self.n;
        for i in 0..n {
            for j in 0..i {
                let v = 0.5 * (self.cov[i * n + j] + self.cov[j * n + i]);
                self.cov[i * n + j] = v;
                self.cov[j * n + i] = v;
            }
        }
        let (values, vectors) = jacobi_eigen(&self.cov, n);
        self.d = values.iter().map(|v| v.max(1e-20).sqrt()).collect();
        self.b = vectors;
    }
}

/// Eigenvalues and eigenvectors (columns of a row-major n × n matrix) of the symmetric matrix
/// `a`, by cyclic Jacobi rotations until the off-diagonal mass is below 1e-15 of the total (at
/// most 100 sweeps).
pub fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        if off <= 1e-30 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let n = 5;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x: f64 = rng.random_range(-1.0..1.0);
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        let (w, v) = jacobi_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| v[i * n + k] * w[k] * v[j * n + k]).sum();
                assert!((r - a[i * n + j]).abs() < 1e-10, "{r} vs {}", a[i * n + j]);
            }
        }
    }

    #[test]
    fn minimises_a_rotated_ellipsoid_and_is_deterministic() {
        let f = |x: &[f64]| -> f64 {
            x.iter()
                .enumerate()
                .map(|(i, v)| {
                    let u = v + 0.5 * x[(i + 1) % x.len()] - 1.0;
                    10f64.powf(i as f64 / 2.0) * u * u
                })
                .sum()
        };
        let run = || {
            let mut es = CmaEs::new(vec![0.0; 6], 0.5, default_population(6));
            for g in 0..300 {
                let mut rng = ChaCha8Rng::seed_from_u64(g);
                let xs = es.ask(&mut rng);
                let fit: Vec<f64> = xs.iter().map(|x| f(x)).collect();
                es.tell(&xs, &fit);
            }
            es
        };
        let es = run();
        assert!(f(&es.mean) < 1e-8, "f(mean) = {}", f(&es.mean));
        assert_eq!(es, run());
    }
}
