//! Statistics for long runs: least-squares trends (leaks, drift) and the Mann–Whitney U test that
//! decides baseline regressions over per-interval figures (never one number against one number).

use serde::{Deserialize, Serialize};

/// A least-squares line `y = intercept + slope * x`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub slope: f64,
    pub intercept: f64,
    /// Coefficient of determination (0..1): how well a straight line explains the samples.
    pub r2: f64,
    pub n: usize,
}

/// Fit a line through `(x, y)` points. `None` for fewer than 3 points or no spread in x.
pub fn fit(points: &[(f64, f64)]) -> Option<Trend> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy <= 0.0 { 1.0 } else { (sxy * sxy) / (sxx * syy) };
    Some(Trend { slope, intercept: my - slope * mx, r2, n })
}

/// Result of a two-sided Mann–Whitney U test of "a and b come from the same distribution".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    pub u: f64,
    /// Normal approximation with tie correction; valid for n ≥ 8 or so per side.
    pub z: f64,
    pub p_two_sided: f64,
    /// Probability that a random value of `b` exceeds one of `a` (0.5 = no shift).
    pub effect: f64,
}

/// Mann–Whitney U test (normal approximation, tie-corrected, continuity-corrected).
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (a.len(), b.len());
    if n1 < 2 || n2 < 2 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a.iter().map(|&v| (v, true)).chain(b.iter().map(|&v| (v, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in ranks.iter_mut().take(j + 1).skip(i) {
            *k = r;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all.iter().zip(&ranks).filter(|(x, _)| x.1).map(|(_, r)| r).sum();
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let mu = n1f * n2f / 2.0;
    let sigma = (n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)))).sqrt();
    let z = if sigma > 0.0 { (u1 - mu - 0.5 * (u1 - mu).signum()) / sigma } else { 0.0 };
    let p = (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0);
    Some(MannWhitney { u: u1, z, p_two_sided: p, effect: 1.0 - u1 / (n1f * n2f) })
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf approximation, |error| < 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line() {
        let pts: Vec<(f64, f64)> =
            (0..100).map(|i| (i as f64, 5.0 + 2.0 * i as f64 + if i % 2 == 0 { 0.5 } else { -0.5 })).collect();
        let t = fit(&pts).unwrap();
        assert!((t.slope - 2.0).abs() < 0.01, "{t:?}");
        assert!((t.intercept - 5.0).abs() < 0.5);
        assert!(t.r2 > 0.99);
        let flat: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 7.0)).collect();
        assert_eq!(fit(&flat).unwrap().slope, 0.0);
        assert!(fit(&[(1.0, 1.0), (2.0, 2.0)]).is_none());
    }

    #[test]
    fn mann_whitney_separates_shifted_samples_and_not_equal_ones() {
        let a: Vec<f64> = (0..30).map(|i| 100.0 + (i * 7 % 13) as f64).collect();
        let same: Vec<f64> = (0..30).map(|i| 100.0 + (i * 5 % 13) as f64).collect();
        let slower: Vec<f64> = a.iter().map(|v| v * 1.3).collect();
        let r = mann_whitney(&a, &same).unwrap();
        assert!(r.p_two_sided > 0.2, "{r:?}");
        let r = mann_whitney(&a, &slower).unwrap();
        assert!(r.p_two_sided < 0.001 && r.effect > 0.9, "{r:?}");
        assert!((normal_cdf(1.959964) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    }
}
