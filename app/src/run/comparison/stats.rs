//! Summaries over seeds and the t-tests the compare table reports: paired by
//! seed (same seed, same initial weights and data order), and Welch's where
//! the seeds do not pair up.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, sample standard deviation and 95 % confidence interval of the mean
/// (Student's t with n − 1 degrees of freedom) of one strategy's runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// NaN with fewer than two values.
    pub sd: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample variance (n − 1 in the denominator); NaN below two values.
pub fn variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
}

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom.
pub fn t975(df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(0.975),
        Err(_) => f64::NAN,
    }
}

/// `None` for no values.
pub fn summarize(xs: &[f64]) -> Option<Summary> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len();
    let m = mean(xs);
    let sd = variance(xs).sqrt();
    let half = if n >= 2 {
        t975((n - 1) as f64) * sd / (n as f64).sqrt()
    } else {
        f64::NAN
    };
    Some(Summary {
        n,
        mean: m,
        sd,
        ci_low: m - half,
        ci_high: m + half,
    })
}

/// A two-sided t-test of a difference of means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TTest {
    pub t: f64,
    /// Degrees of freedom (Welch–Satterthwaite for Welch's test).
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Standard error of the difference of the means.
    pub se: f64,
}

/// Welch's unequal-variance t-test of mean(a) − mean(b). `None` when either
/// side has fewer than two values or both have no spread (the test is
/// undefined there, and saying "p = 0" would mislead).
pub fn welch(a: &[f64], b: &[f64]) -> Option<TTest> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (va, vb) = (variance(a) / a.len() as f64, variance(b) / b.len() as f64);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return None;
    }
    let df = se2 * se2 / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64);
    two_sided(mean(a) - mean(b), se2.sqrt(), df)
}

/// The paired t-test of the per-pair differences `d` (mean(d) against 0,
/// n − 1 degrees of freedom), as scipy's `ttest_rel`. `None` below two pairs
/// or when the differences do not vary.
pub fn paired(d: &[f64]) -> Option<TTest> {
    if d.len() < 2 {
        return None;
    }
    let se = (variance(d) / d.len() as f64).sqrt();
    if se.is_nan() || se <= 0.0 {
        return None;
    }
    two_sided(mean(d), se, (d.len() - 1) as f64)
}

fn two_sided(difference: f64, se: f64, df: f64) -> Option<TTest> {
    let t = difference / se;
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let p = (2.0 * (1.0 - dist.cdf(t.abs()))).clamp(0.0, 1.0);
    Some(TTest { t, df, p, se })
}

/// Holm's step-down adjustment of p-values for testing them together (the
/// family-wise error rate stays at the level): the `i`-th smallest of `m`
/// becomes `max over j <= i of min(1, (m - j + 1) p_(j))`. `None`s are not
/// tests and stay `None`.
pub fn holm(ps: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut order: Vec<usize> = (0..ps.len()).filter(|&i| ps[i].is_some()).collect();
    order.sort_by(|&a, &b| {
        ps[a]
            .partial_cmp(&ps[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let m = order.len();
    let mut adjusted = vec![None; ps.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * ps[i].unwrap_or(1.0)).min(1.0);
        running = running.max(scaled);
        adjusted[i] = Some(running);
    }
    adjusted
}

/// The smallest true difference a two-sided test at 5 % would detect with
/// 80 % power, given the standard error and degrees of freedom a t-test
/// measured: `(t_0.975 + t_0.80) · se`.
pub fn detectable(se: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => (t.inverse_cdf(0.975) + t.inverse_cdf(0.80)) * se,
        Err(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fifteen pairs of values: a reference case of both tests.
    const FIFTEEN_A: [f64; 15] = [
        27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4,
    ];
    const FIFTEEN_B: [f64; 15] = [
        27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4,
    ];

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-12)
    }

    // Reference values: scipy.stats 1.16 (t.ppf, ttest_ind(equal_var=False)).
    #[test]
    fn t_quantiles_match_the_tables() {
        for (df, want) in [
            (1.0, 12.706204736174694),
            (2.0, 4.302652729749462),
            (4.0, 2.7764451051977934),
            (9.0, 2.262157162798205),
            (30.0, 2.0422724563012378),
        ] {
            assert!(close(t975(df), want, 1e-9), "df {df}: {}", t975(df));
        }
    }

    #[test]
    fn summary_of_three_seeds() {
        let s = summarize(&[0.912, 0.905, 0.918]).unwrap();
        assert_eq!(s.n, 3);
        assert!(close(s.mean, 0.9116666666666667, 1e-12));
        assert!(close(s.sd, 0.006506407098647717, 1e-9));
        assert!(close(s.ci_low, 0.8955038554249158, 1e-9));
        assert!(close(s.ci_high, 0.9278294779084176, 1e-9));
        let one = summarize(&[0.5]).unwrap();
        assert_eq!(one.mean, 0.5);
        assert!(one.sd.is_nan() && one.ci_low.is_nan());
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn welch_matches_scipy() {
        for (a, b, t, p, df) in [
            (
                vec![0.912, 0.905, 0.918],
                vec![0.899, 0.903, 0.894],
                2.8443673342089437,
                0.05346799758480383,
                3.56110831234257,
            ),
            (
                FIFTEEN_A.to_vec(),
                FIFTEEN_B.to_vec(),
                -2.455356398286006,
                0.021378001462866992,
                24.988529290231416,
            ),
            (
                vec![1.0, 2.0, 3.0, 4.0],
                vec![2.5, 3.5],
                -0.6123724356957945,
                0.5759813143995588,
                3.6923076923076925,
            ),
        ] {
            let w = welch(&a, &b).unwrap();
            assert!(close(w.t, t, 1e-9), "t {} vs {t}", w.t);
            assert!(close(w.df, df, 1e-9), "df {} vs {df}", w.df);
            assert!(close(w.p, p, 1e-6), "p {} vs {p}", w.p);
        }
    }

    /// Issue 33: the paired test on per-seed differences, against scipy
    /// 1.17.1's `ttest_rel(a, b)` on the same numbers.
    #[test]
    fn the_paired_test_matches_scipy_ttest_rel() {
        for (a, b, t, p) in [
            (
                vec![0.912, 0.905, 0.918, 0.909, 0.915],
                vec![0.899, 0.903, 0.894, 0.901, 0.907],
                2.9827937950065224,
                0.04062644586107228,
            ),
            (
                FIFTEEN_A.to_vec(),
                FIFTEEN_B.to_vec(),
                -2.685714574824638,
                0.017746021669480767,
            ),
            (
                vec![0.84, 0.85],
                vec![0.80, 0.82],
                7.000000000000067,
                0.09033447060173226,
            ),
        ] {
            let d: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a - b).collect();
            let got = paired(&d).unwrap();
            assert!(close(got.t, t, 1e-9), "t {} vs {t}", got.t);
            assert_eq!(got.df, (a.len() - 1) as f64);
            assert!(close(got.p, p, 1e-6), "p {} vs {p}", got.p);
        }
        assert!(paired(&[0.01]).is_none(), "one pair is no test");
        assert!(paired(&[0.01, 0.01]).is_none(), "no spread, no test");
    }

    #[test]
    fn holm_adjusts_in_steps_and_keeps_the_order() {
        // statsmodels multipletests(method="holm"): [0.03, 0.06, 0.06, 0.02].
        let got = holm(&[Some(0.01), Some(0.04), None, Some(0.03), Some(0.005)]);
        let want = [Some(0.03), Some(0.06), None, Some(0.06), Some(0.02)];
        for (g, w) in got.iter().zip(want) {
            assert!(
                g.zip(w).is_none_or(|(g, w)| close(g, w, 1e-12)) && g.is_some() == w.is_some(),
                "{got:?}"
            );
        }
        assert_eq!(holm(&[Some(0.9), Some(0.8)]), [Some(1.0), Some(1.0)]);
    }

    #[test]
    fn the_detectable_difference_adds_the_two_t_quantiles() {
        // scipy: t.ppf(0.975, df) + t.ppf(0.80, df), at df = 4 and 30.
        assert!(close(detectable(1.0, 30.0), 2.042272 + 0.853767, 1e-5));
        assert!(close(
            detectable(0.5, 4.0),
            0.5 * (2.776445 + 0.940965),
            1e-5
        ));
    }

    #[test]
    fn welch_is_undefined_without_spread_or_seeds() {
        assert!(welch(&[0.9], &[0.8, 0.7]).is_none());
        assert!(welch(&[0.9, 0.9], &[0.8, 0.8]).is_none());
    }
}
