//! Writes a [`Scene`] as one SVG document, mark for mark, for pages that
//! show the chart inline. Text is escaped; the font is named with generic
//! fallbacks, and baselines come from the bundled font's metrics so text
//! sits where the PNG puts it.

use std::fmt::Write as _;

use ab_glyph::FontRef;

use super::{Align, Mark, Rgb, Scene, ascent};

/// Text as XML character data or an attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

pub(super) fn write(scene: &Scene, font: &FontRef<'static>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" font-family=\"DejaVu Sans, Verdana, sans-serif\">",
        w = scene.width,
        h = scene.height
    );
    for m in &scene.marks {
        mark(&mut out, m, font);
    }
    out.push_str("</svg>");
    out
}

fn mark(out: &mut String, m: &Mark, font: &FontRef<'static>) {
    match m {
        Mark::Rect {
            x0,
            y0,
            x1,
            y1,
            colour,
        } => {
            // Raster rectangles include both corners: one pixel more.
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>",
                x0.min(*x1),
                y0.min(*y1),
                (x1 - x0).abs() + 1.0,
                (y1 - y0).abs() + 1.0,
                hex(*colour)
            );
        }
        Mark::Line {
            from,
            to,
            colour,
            width,
        } => {
            let _ = write!(
                out,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"{width}\" stroke-linecap=\"round\"/>",
                from.0,
                from.1,
                to.0,
                to.1,
                hex(*colour)
            );
        }
        Mark::Band { points, colour } => {
            let top = points.iter().map(|(x, t, _)| format!("{x:.1},{t:.1}"));
            let bottom = points
                .iter()
                .rev()
                .map(|(x, _, b)| format!("{x:.1},{b:.1}"));
            let all: Vec<String> = top.chain(bottom).collect();
            let _ = write!(
                out,
                "<polygon points=\"{}\" fill=\"{}\"/>",
                all.join(" "),
                hex(*colour)
            );
        }
        Mark::Text {
            size,
            x,
            y,
            text,
            colour,
            align,
        } => {
            let anchor = match align {
                Align::Left => "start",
                Align::Right => "end",
                Align::Center => "middle",
            };
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"{size}\" fill=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                y + ascent(font, *size),
                hex(*colour),
                escape(text)
            );
        }
    }
}
