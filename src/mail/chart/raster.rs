//! Paints a [`Scene`] onto a plain RGB canvas and encodes it as a PNG.
//! Text is drawn with `ab_glyph` from the bundled font; lines are
//! anti-aliased by sampling discs.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use super::{Align, Mark, Rgb, Scene};
use crate::mail::report::ReportError;

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

    /// Fill each pixel column between the interpolated top and bottom (the
    /// band is a function of x, so this is exact).
    fn band(&mut self, points: &[(f32, f32, f32)], c: Rgb) {
        for pair in points.windows(2) {
            let ((xa, ta, ba), (xb, tb, bb)) = (pair[0], pair[1]);
            let mut x = xa.floor() as i64;
            while (x as f32) <= xb {
                let t = ((x as f32 - xa) / (xb - xa).max(1e-6)).clamp(0.0, 1.0);
                let top = ta + (tb - ta) * t;
                let bottom = ba + (bb - ba) * t;
                self.fill_rect(x, top.round() as i64, x, bottom.round() as i64, c);
                x += 1;
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

/// Paint every mark in order and encode the canvas.
pub(super) fn paint(scene: &Scene, font: FontRef<'static>) -> Result<Vec<u8>, ReportError> {
    let mut cv = Canvas::new(font, scene.width, scene.height);
    for m in &scene.marks {
        match m {
            Mark::Rect {
                x0,
                y0,
                x1,
                y1,
                colour,
            } => cv.fill_rect(*x0 as i64, *y0 as i64, *x1 as i64, *y1 as i64, *colour),
            Mark::Line {
                from,
                to,
                colour,
                width,
            } => cv.line(*from, *to, *colour, *width),
            Mark::Band { points, colour } => cv.band(points, *colour),
            Mark::Text {
                size,
                x,
                y,
                text,
                colour,
                align,
            } => cv.text(*size, *x, *y, text, *colour, *align),
        }
    }
    cv.png()
}
