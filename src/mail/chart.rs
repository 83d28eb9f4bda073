//! The report's chart: recent history and forecast band (p10–p90 with the
//! median) of the worst SKUs, one panel each, drawn to a PNG.
//!
//! Draws on a plain RGB canvas with text from the bundled DejaVu Sans font
//! (`assets/fonts`, Bitstream Vera licence), so rendering needs no system
//! fonts. CPU-bound: call [`render_png`] from `spawn_blocking`.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use super::report::{ReportError, SkuSeries};

/// Panels drawn at most (the worst SKUs first).
pub const MAX_PANELS: usize = 3;
pub const WIDTH: u32 = 720;
const PANEL_H: u32 = 200;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

type Rgb = [u8; 3];
const WHITE: Rgb = [255, 255, 255];
const AXIS: Rgb = [150, 158, 168];
const GRID: Rgb = [232, 235, 239];
const TEXT: Rgb = [31, 41, 51];
const MUTED: Rgb = [107, 119, 133];
const HISTORY: Rgb = [44, 62, 80];
const MEDIAN: Rgb = [41, 128, 185];
const BAND: Rgb = [174, 214, 241];
const TODAY: Rgb = [192, 57, 43];

struct Canvas {
    font: FontRef<'static>,
    w: u32,
    h: u32,
    px: Vec<u8>,
}

impl Canvas {
    fn new(font: FontRef<'static>, w: u32, h: u32) -> Self {
        Self {
            font,
            w,
            h,
            px: vec![255; (w * h * 3) as usize],
        }
    }

    /// Blend `c` over the pixel at (x, y) with coverage `a` in 0..=1.
    fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f32) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 || a <= 0.0 {
            return;
        }
        let a = a.min(1.0);
        let i = ((y as u32 * self.w + x as u32) * 3) as usize;
        for (k, target) in c.iter().enumerate() {
            let old = self.px[i + k] as f32;
            self.px[i + k] = (old + (*target as f32 - old) * a).round() as u8;
        }
    }

    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.blend(x, y, c, 1.0);
            }
        }
    }

    /// An anti-aliased line of about `width` pixels (sampled discs).
    fn line(&mut self, (x0, y0): (f32, f32), (x1, y1): (f32, f32), c: Rgb, width: f32) {
        let len = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
        let steps = (len * 2.0).ceil().max(1.0) as usize;
        let r = width / 2.0;
        for s in 0..=steps {
            let t = s as f32 / steps as f32;
            let (cx, cy) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            let (lo_x, hi_x) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
            let (lo_y, hi_y) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
            for y in lo_y..=hi_y {
                for x in lo_x..=hi_x {
                    let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                    let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                    if cover > 0.0 {
                        let i = ((y.clamp(0, self.h as i64 - 1) as u32 * self.w
                            + x.clamp(0, self.w as i64 - 1) as u32)
                            * 3) as usize;
                        // Avoid darkening overlapping samples: only blend
                        // towards the colour, never past it.
                        let already = (0..3).all(|k| self.px[i + k] == c[k]);
                        if !already {
                            self.blend(x, y, c, cover);
                        }
                    }
                }
            }
        }
    }

    fn text(&mut self, size: f32, x: f32, y: f32, s: &str, c: Rgb, align: Align) {
        let font = self.font.clone();
        let scaled = font.as_scaled(PxScale::from(size));
        let width: f32 = s
            .chars()
            .map(|ch| scaled.h_advance(scaled.glyph_id(ch)))
            .sum();
        let mut pen = match align {
            Align::Left => x,
            Align::Right => x - width,
            Align::Center => x - width / 2.0,
        };
        let baseline = y + scaled.ascent();
        for ch in s.chars() {
            let id = scaled.glyph_id(ch);
            let glyph = id.with_scale_and_position(size, ab_glyph::point(pen, baseline));
            pen += scaled.h_advance(id);
            if let Some(outlined) = font.outline_glyph(glyph) {
                let b = outlined.px_bounds();
                outlined.draw(|gx, gy, cov| {
                    self.blend(
                        b.min.x as i64 + gx as i64,
                        b.min.y as i64 + gy as i64,
                        c,
                        cov,
                    );
                });
            }
        }
    }

    fn png(&self) -> Result<Vec<u8>, ReportError> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.w, self.h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| ReportError::Chart(e.to_string()))?;
        w.write_image_data(&self.px)
            .map_err(|e| ReportError::Chart(e.to_string()))?;
        w.finish().map_err(|e| ReportError::Chart(e.to_string()))?;
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
    Center,
}

/// About five round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-6 && out.len() < 12 {
        out.push(t);
        t += step;
    }
    out
}

fn tick_label(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn draw_panel(cv: &mut Canvas, top: u32, s: &SkuSeries) {
    let (left, right) = (56.0_f32, WIDTH as f32 - 16.0);
    let (y_top, y_bottom) = (top as f32 + 30.0, top as f32 + PANEL_H as f32 - 28.0);
    cv.text(
        14.0,
        left,
        top as f32 + 6.0,
        &format!("{} @ {}", s.sku, s.store),
        TEXT,
        Align::Left,
    );

    let n_hist = s.history.len();
    let n = n_hist + s.forecast.len();
    if n == 0 {
        cv.text(12.0, left, y_top + 20.0, "no data", MUTED, Align::Left);
        return;
    }
    let values = s
        .history
        .iter()
        .map(|p| p.value)
        .chain(s.forecast.iter().flat_map(|f| [f.p10, f.p50, f.p90]))
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    if lo >= 0.0 && lo < (hi - lo) {
        lo = 0.0; // Stock and demand read best from zero.
    }
    if (hi - lo).abs() < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo, hi + pad);
    let xs = |i: usize| -> f32 {
        if n <= 1 {
            left
        } else {
            left + (right - left) * i as f32 / (n - 1) as f32
        }
    };
    let ys = |v: f64| -> f32 { y_bottom - (y_bottom - y_top) * ((v - lo) / (hi - lo)) as f32 };

    for t in ticks(lo, hi) {
        let y = ys(t).round() as i64;
        cv.fill_rect(left as i64, y, right as i64, y, GRID);
        cv.text(
            10.0,
            left - 6.0,
            y as f32 - 6.0,
            &tick_label(t),
            MUTED,
            Align::Right,
        );
    }
    cv.fill_rect(
        left as i64,
        y_bottom as i64,
        right as i64,
        y_bottom as i64,
        AXIS,
    );

    // Forecast band: fill each pixel column between the interpolated p10
    // and p90 (the band is a function of x, so this is exact).
    let f0 = n_hist;
    for (k, pair) in s.forecast.windows(2).enumerate() {
        let (xa, xb) = (xs(f0 + k), xs(f0 + k + 1));
        let mut x = xa.floor() as i64;
        while (x as f32) <= xb {
            let t = ((x as f32 - xa) / (xb - xa).max(1e-6)).clamp(0.0, 1.0) as f64;
            let lo_v = pair[0].p10 + (pair[1].p10 - pair[0].p10) * t;
            let hi_v = pair[0].p90 + (pair[1].p90 - pair[0].p90) * t;
            cv.fill_rect(x, ys(hi_v).round() as i64, x, ys(lo_v).round() as i64, BAND);
            x += 1;
        }
    }
    if n_hist > 0 && !s.forecast.is_empty() {
        let x = xs(n_hist).round() as i64;
        let mut y = y_top as i64;
        while y < y_bottom as i64 {
            cv.fill_rect(x, y, x, y + 3, TODAY);
            y += 6;
        }
    }
    for (k, pair) in s.forecast.windows(2).enumerate() {
        cv.line(
            (xs(f0 + k), ys(pair[0].p50)),
            (xs(f0 + k + 1), ys(pair[1].p50)),
            MEDIAN,
            2.0,
        );
    }
    for (k, pair) in s.history.windows(2).enumerate() {
        cv.line(
            (xs(k), ys(pair[0].value)),
            (xs(k + 1), ys(pair[1].value)),
            HISTORY,
            2.0,
        );
    }
    if let (Some(h), Some(f)) = (s.history.last(), s.forecast.first()) {
        cv.line(
            (xs(n_hist - 1), ys(h.value)),
            (xs(n_hist), ys(f.p50)),
            MEDIAN,
            2.0,
        );
    }

    // Date labels: first, forecast start, last.
    let date_at = |i: usize| -> Option<&str> {
        if i < n_hist {
            s.history.get(i).map(|p| p.date.as_str())
        } else {
            s.forecast.get(i - n_hist).map(|p| p.date.as_str())
        }
    };
    let label_y = y_bottom + 6.0;
    if let Some(d) = date_at(0) {
        cv.text(10.0, left, label_y, d, MUTED, Align::Left);
    }
    if n_hist > 0 && !s.forecast.is_empty() {
        if let Some(d) = date_at(n_hist) {
            cv.text(10.0, xs(n_hist), label_y, d, TODAY, Align::Center);
        }
    }
    if let Some(d) = date_at(n - 1).filter(|_| n > 1) {
        cv.text(10.0, right, label_y, d, MUTED, Align::Right);
    }
}

/// Draw up to [`MAX_PANELS`] series; `None` when there is nothing to draw.
pub fn render_png(series: &[SkuSeries]) -> Result<Option<Vec<u8>>, ReportError> {
    let panels: Vec<&SkuSeries> = series.iter().take(MAX_PANELS).collect();
    if panels.is_empty() {
        return Ok(None);
    }
    let font = FontRef::try_from_slice(FONT).map_err(|e| ReportError::Chart(e.to_string()))?;
    let legend_h = 26;
    let h = legend_h + PANEL_H * panels.len() as u32;
    let mut cv = Canvas::new(font, WIDTH, h);
    cv.fill_rect(0, 0, WIDTH as i64 - 1, h as i64 - 1, WHITE);
    // Legend.
    let mut x = 56.0;
    for (label, colour, band) in [
        ("history", HISTORY, false),
        ("forecast median", MEDIAN, false),
        ("p10–p90", BAND, true),
        ("forecast start", TODAY, false),
    ] {
        if band {
            cv.fill_rect(x as i64, 9, x as i64 + 18, 17, colour);
        } else {
            cv.line((x, 13.0), (x + 18.0, 13.0), colour, 2.0);
        }
        cv.text(11.0, x + 24.0, 5.0, label, MUTED, Align::Left);
        x += 130.0;
    }
    for (i, s) in panels.iter().enumerate() {
        draw_panel(&mut cv, legend_h + PANEL_H * i as u32, s);
    }
    cv.png().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::report::sample_report;

    #[test]
    fn draws_a_png_with_one_panel_per_worst_sku() {
        let r = sample_report();
        let png_bytes = render_png(&r.series).expect("render").expect("some");
        assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let reader = dec.read_info().expect("decodes");
        let info = reader.info();
        assert_eq!(info.width, WIDTH);
        assert_eq!(info.height, 26 + PANEL_H * 3);
    }

    #[test]
    fn nothing_to_draw_gives_no_chart() {
        assert!(render_png(&[]).expect("ok").is_none());
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 100.0), vec![0.0, 25.0, 50.0, 75.0, 100.0]);
    }
}
