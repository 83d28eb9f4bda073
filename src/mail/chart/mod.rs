//! The planners' chart: recent history and forecast band (p10–p90 with the
//! median) of SKUs, one panel each. Shared by the email (a PNG) and the web
//! UI's SKU page (an SVG).
//!
//! Layout is done once, here, into a [`Scene`] of marks in pixel
//! coordinates (rectangles, lines, a band, text); `raster.rs` paints a
//! scene onto an RGB canvas with the bundled DejaVu Sans font
//! (`assets/fonts`, Bitstream Vera licence), so rendering needs no system
//! fonts, and `svg.rs` writes the same scene as SVG elements. CPU-bound:
//! call the renderers from `spawn_blocking`.

mod raster;
mod svg;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use super::report::{ReportError, SkuSeries};

/// Panels drawn at most (the worst SKUs first).
pub const MAX_PANELS: usize = 3;
pub const WIDTH: u32 = 720;
const PANEL_H: u32 = 200;
const LEGEND_H: u32 = 26;

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

pub type Rgb = [u8; 3];
const WHITE: Rgb = [255, 255, 255];
const AXIS: Rgb = [150, 158, 168];
const GRID: Rgb = [232, 235, 239];
const TEXT: Rgb = [31, 41, 51];
const MUTED: Rgb = [107, 119, 133];
const HISTORY: Rgb = [44, 62, 80];
const MEDIAN: Rgb = [41, 128, 185];
const BAND: Rgb = [174, 214, 241];
const TODAY: Rgb = [192, 57, 43];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Align {
    Left,
    Right,
    Center,
}

/// One thing drawn, in pixels from the top left.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// A filled rectangle, corners included.
    Rect {
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        colour: Rgb,
    },
    Line {
        from: (f32, f32),
        to: (f32, f32),
        colour: Rgb,
        width: f32,
    },
    /// The area between two lines over the same x: `(x, y_top, y_bottom)`
    /// in increasing x.
    Band {
        points: Vec<(f32, f32, f32)>,
        colour: Rgb,
    },
    /// Text whose top edge is at `y`.
    Text {
        size: f32,
        x: f32,
        y: f32,
        text: String,
        colour: Rgb,
        align: Align,
    },
}

/// A laid-out chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub marks: Vec<Mark>,
}

fn font() -> Result<FontRef<'static>, ReportError> {
    FontRef::try_from_slice(FONT).map_err(|e| ReportError::Chart(e.to_string()))
}

/// The distance from a line's top to its baseline at `size` pixels.
fn ascent(font: &FontRef<'static>, size: f32) -> f32 {
    font.as_scaled(PxScale::from(size)).ascent()
}

/// Draw up to [`MAX_PANELS`] series as a PNG; `None` when there is
/// nothing to draw.
pub fn render_png(series: &[SkuSeries]) -> Result<Option<Vec<u8>>, ReportError> {
    match layout(series) {
        Some(scene) => raster::paint(&scene, font()?).map(Some),
        None => Ok(None),
    }
}

/// Draw up to [`MAX_PANELS`] series as an SVG document; `None` when there
/// is nothing to draw. Every text is escaped.
pub fn render_svg(series: &[SkuSeries]) -> Result<Option<String>, ReportError> {
    match layout(series) {
        Some(scene) => Ok(Some(svg::write(&scene, &font()?))),
        None => Ok(None),
    }
}

/// The scene of up to [`MAX_PANELS`] panels under one legend.
pub fn layout(series: &[SkuSeries]) -> Option<Scene> {
    let panels: Vec<&SkuSeries> = series.iter().take(MAX_PANELS).collect();
    if panels.is_empty() {
        return None;
    }
    let height = LEGEND_H + PANEL_H * panels.len() as u32;
    let mut marks = vec![rect(
        0.0,
        0.0,
        WIDTH as f32 - 1.0,
        height as f32 - 1.0,
        WHITE,
    )];
    legend(&mut marks);
    for (i, s) in panels.iter().enumerate() {
        panel(&mut marks, (LEGEND_H + PANEL_H * i as u32) as f32, s);
    }
    Some(Scene {
        width: WIDTH,
        height,
        marks,
    })
}

fn rect(x0: f32, y0: f32, x1: f32, y1: f32, colour: Rgb) -> Mark {
    Mark::Rect {
        x0,
        y0,
        x1,
        y1,
        colour,
    }
}

fn line(from: (f32, f32), to: (f32, f32), colour: Rgb) -> Mark {
    Mark::Line {
        from,
        to,
        colour,
        width: 2.0,
    }
}

fn text(size: f32, x: f32, y: f32, s: &str, colour: Rgb, align: Align) -> Mark {
    Mark::Text {
        size,
        x,
        y,
        text: s.to_string(),
        colour,
        align,
    }
}

fn legend(marks: &mut Vec<Mark>) {
    let mut x = 56.0;
    for (label, colour, band) in [
        ("history", HISTORY, false),
        ("forecast median", MEDIAN, false),
        ("p10–p90", BAND, true),
        ("forecast start", TODAY, false),
    ] {
        if band {
            marks.push(rect(x, 9.0, x + 18.0, 17.0, colour));
        } else {
            marks.push(line((x, 13.0), (x + 18.0, 13.0), colour));
        }
        marks.push(text(11.0, x + 24.0, 5.0, label, MUTED, Align::Left));
        x += 130.0;
    }
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

/// The value range a panel's y axis covers.
fn value_range(s: &SkuSeries) -> (f64, f64) {
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
    (lo, hi + (hi - lo) * 0.05)
}

/// Pixel positions of one panel: x of a point index, y of a value.
struct Axes {
    left: f32,
    right: f32,
    y_top: f32,
    y_bottom: f32,
    n: usize,
    lo: f64,
    hi: f64,
}

impl Axes {
    fn x(&self, i: usize) -> f32 {
        if self.n <= 1 {
            self.left
        } else {
            self.left + (self.right - self.left) * i as f32 / (self.n - 1) as f32
        }
    }

    fn y(&self, v: f64) -> f32 {
        self.y_bottom - (self.y_bottom - self.y_top) * ((v - self.lo) / (self.hi - self.lo)) as f32
    }
}

fn panel(marks: &mut Vec<Mark>, top: f32, s: &SkuSeries) {
    let (left, right) = (56.0_f32, WIDTH as f32 - 16.0);
    let title = format!("{} @ {}", s.sku, s.store);
    marks.push(text(14.0, left, top + 6.0, &title, TEXT, Align::Left));
    let n_hist = s.history.len();
    let n = n_hist + s.forecast.len();
    let (y_top, y_bottom) = (top + 30.0, top + PANEL_H as f32 - 28.0);
    if n == 0 {
        marks.push(text(
            12.0,
            left,
            y_top + 20.0,
            "no data",
            MUTED,
            Align::Left,
        ));
        return;
    }
    let (lo, hi) = value_range(s);
    let ax = Axes {
        left,
        right,
        y_top,
        y_bottom,
        n,
        lo,
        hi,
    };
    for t in ticks(lo, hi) {
        let y = ax.y(t).round();
        marks.push(rect(left, y, right, y, GRID));
        marks.push(text(
            10.0,
            left - 6.0,
            y - 6.0,
            &tick_label(t),
            MUTED,
            Align::Right,
        ));
    }
    marks.push(rect(left, y_bottom.trunc(), right, y_bottom.trunc(), AXIS));
    series_marks(marks, &ax, s);
    date_labels(marks, &ax, s);
}

/// The band, the forecast start, the median and the history.
fn series_marks(marks: &mut Vec<Mark>, ax: &Axes, s: &SkuSeries) {
    let n_hist = s.history.len();
    if s.forecast.len() > 1 {
        let points = s
            .forecast
            .iter()
            .enumerate()
            .map(|(k, f)| (ax.x(n_hist + k), ax.y(f.p90), ax.y(f.p10)))
            .collect();
        marks.push(Mark::Band {
            points,
            colour: BAND,
        });
    }
    if n_hist > 0 && !s.forecast.is_empty() {
        let x = ax.x(n_hist).round();
        let mut y = ax.y_top.trunc();
        while y < ax.y_bottom.trunc() {
            marks.push(rect(x, y, x, y + 3.0, TODAY));
            y += 6.0;
        }
    }
    for (k, pair) in s.forecast.windows(2).enumerate() {
        let (a, b) = (n_hist + k, n_hist + k + 1);
        marks.push(line(
            (ax.x(a), ax.y(pair[0].p50)),
            (ax.x(b), ax.y(pair[1].p50)),
            MEDIAN,
        ));
    }
    for (k, pair) in s.history.windows(2).enumerate() {
        marks.push(line(
            (ax.x(k), ax.y(pair[0].value)),
            (ax.x(k + 1), ax.y(pair[1].value)),
            HISTORY,
        ));
    }
    if let (Some(h), Some(f)) = (s.history.last(), s.forecast.first()) {
        marks.push(line(
            (ax.x(n_hist - 1), ax.y(h.value)),
            (ax.x(n_hist), ax.y(f.p50)),
            MEDIAN,
        ));
    }
}

/// Date labels: first, forecast start, last.
fn date_labels(marks: &mut Vec<Mark>, ax: &Axes, s: &SkuSeries) {
    let n_hist = s.history.len();
    let date_at = |i: usize| -> Option<&str> {
        if i < n_hist {
            s.history.get(i).map(|p| p.date.as_str())
        } else {
            s.forecast.get(i - n_hist).map(|p| p.date.as_str())
        }
    };
    let label_y = ax.y_bottom + 6.0;
    if let Some(d) = date_at(0) {
        marks.push(text(10.0, ax.left, label_y, d, MUTED, Align::Left));
    }
    if n_hist > 0 && !s.forecast.is_empty() {
        if let Some(d) = date_at(n_hist) {
            marks.push(text(10.0, ax.x(n_hist), label_y, d, TODAY, Align::Center));
        }
    }
    if let Some(d) = date_at(ax.n - 1).filter(|_| ax.n > 1) {
        marks.push(text(10.0, ax.right, label_y, d, MUTED, Align::Right));
    }
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
        assert_eq!(info.height, LEGEND_H + PANEL_H * 3);
    }

    #[test]
    fn nothing_to_draw_gives_no_chart() {
        assert!(render_png(&[]).expect("ok").is_none());
        assert!(render_svg(&[]).expect("ok").is_none());
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 100.0), vec![0.0, 25.0, 50.0, 75.0, 100.0]);
    }

    #[test]
    fn the_svg_draws_the_same_scene_as_the_png() {
        let r = sample_report();
        let scene = layout(&r.series[..1]).expect("scene");
        let svg = render_svg(&r.series[..1]).expect("render").expect("some");
        assert!(svg.starts_with("<svg "), "{svg}");
        let lines = scene
            .marks
            .iter()
            .filter(|m| matches!(m, Mark::Line { .. }))
            .count();
        assert_eq!(svg.matches("<line ").count(), lines);
        assert_eq!(svg.matches("<polygon ").count(), 1);
        let title = format!("{} @ {}", r.series[0].sku, r.series[0].store);
        assert!(svg.contains(&svg::escape(&title)), "{svg}");
    }

    #[test]
    fn svg_text_is_escaped() {
        let mut s = sample_report().series.remove(0);
        s.sku = "<script>alert(1)</script>&".into();
        let svg = render_svg(&[s]).expect("render").expect("some");
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;"),
            "{svg}"
        );
    }
}
