//! The standard normal distribution: CDF and its inverse (quantile
//! function), the two pieces of statistics the inventory formulas need.
//!
//! The inverse is Wichura's algorithm AS 241 (PPND16, relative accuracy
//! about 1e-16); the CDF uses the Chebyshev fit of `erfc` from Numerical
//! Recipes (`erfcc`, relative error below 1.2e-7).

// The coefficients are kept digit for digit as published so they can be
// checked against the papers.
#![allow(
    clippy::inconsistent_digit_grouping,
    clippy::excessive_precision,
    clippy::unreadable_literal
)]

/// Φ⁻¹(p): the z with P(Z ≤ z) = p. Returns ±∞ at 0 and 1, NaN outside.
pub fn inv_cdf(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((2509.080_928_730_122_7 * r + 33430.575_583_588_128) * r
                + 67265.770_927_008_7)
                * r
                + 45921.953_931_549_87)
                * r
                + 13731.693_765_509_461)
                * r
                + 1971.590_950_306_551_3)
                * r
                + 133.141_667_891_784_38)
                * r
                + 3.387_132_872_796_366_5)
            / (((((((5226.495_278_852_545 * r + 28729.085_735_721_943) * r
                + 39307.895_800_092_71)
                * r
                + 21213.794_301_586_597)
                * r
                + 5394.196_021_424_751)
                * r
                + 687.187_007_492_057_9)
                * r
                + 42.313_330_701_600_91)
                * r
                + 1.0);
    }
    let mut r = if q < 0.0 { p } else { 1.0 - p };
    r = (-r.ln()).sqrt();
    let val = if r <= 5.0 {
        let r = r - 1.6;
        (((((((7.745_450_142_783_414e-4 * r + 0.022_723_844_989_269_184) * r
            + 0.241_780_725_177_450_6)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_5)
            * r
            + 5.769_497_221_460_691)
            * r
            + 4.630_337_846_156_546)
            * r
            + 1.423_437_110_749_683_5)
            / (((((((1.050_750_071_644_416_9e-9 * r + 5.475_938_084_995_345e-4) * r
                + 0.015_198_666_563_616_457)
                * r
                + 0.148_103_976_427_480_08)
                * r
                + 0.689_767_334_985_1)
                * r
                + 1.676_384_830_183_803_8)
                * r
                + 2.053_191_626_637_759)
                * r
                + 1.0)
    } else {
        let r = r - 5.0;
        (((((((2.010_334_399_292_288_1e-7 * r + 2.711_555_568_743_487_6e-5) * r
            + 0.001_242_660_947_388_078_4)
            * r
            + 0.026_532_189_526_576_124)
            * r
            + 0.296_560_571_828_504_9)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114)
            * r
            + 6.657_904_643_501_103)
            / (((((((2.044_263_103_389_939_7e-15 * r + 1.421_511_758_316_446e-7) * r
                + 1.846_318_317_510_054_8e-5)
                * r
                + 7.868_691_311_456_133e-4)
                * r
                + 0.014_875_361_290_850_615)
                * r
                + 0.136_929_880_922_735_8)
                * r
                + 0.599_832_206_555_888)
                * r
                + 1.0)
    };
    if q < 0.0 { -val } else { val }
}

/// Φ(z) = P(Z ≤ z).
pub fn cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function, relative error below 1.2e-7 everywhere
/// (Chebyshev fit from Numerical Recipes, `erfcc`): ample for service
/// levels.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let ans = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_tables() {
        // Values from standard normal tables.
        let cases = [
            (0.5, 0.0),
            (0.8413447460685429, 1.0),
            (0.95, 1.6448536269514722),
            (0.975, 1.959963984540054),
            (0.99, 2.3263478740408408),
            (0.999, 3.090232306167813),
            (0.1, -1.2815515655446004),
            (1e-10, -6.361340902404056),
        ];
        for (p, z) in cases {
            assert!(
                (inv_cdf(p) - z).abs() < 1e-9,
                "inv_cdf({p}) = {} want {z}",
                inv_cdf(p)
            );
        }
        assert!(inv_cdf(1.5).is_nan());
        assert_eq!(inv_cdf(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn cdf_round_trips() {
        for z in [-3.0, -1.5, -0.3, 0.0, 0.7, 1.2816, 2.5] {
            assert!((inv_cdf(cdf(z)) - z).abs() < 1e-5, "{z}");
        }
        assert!((cdf(1.959963984540054) - 0.975).abs() < 1e-7);
    }
}
