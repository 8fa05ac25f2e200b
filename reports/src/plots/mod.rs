//! Figures, drawn with plotters to SVG (inlined in the HTML) and PNG.
//!
//! Text is laid out and rasterised with DejaVu Sans compiled into the
//! binary and registered with plotters' `ab_glyph` backend, so rendering
//! never looks for system fonts (no fontconfig, no freetype).

mod latency;
mod rate;
pub mod signatures;
mod survival;
mod timeline;
mod trend;

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::history::db::Trends;
use crate::report::Report;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

pub(crate) const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            if plotters::style::register_font(FAMILY, style, FONT).is_err() {
                panic!("the bundled DejaVu Sans does not parse");
            }
        }
    });
}

/// Colours by variant position: the Tableau 10 palette, readable on white
/// and distinguishable in print.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

pub(crate) fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Which data a report-level latency figure shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    Read,
    Decompress,
}

/// Every figure hilt draws.
#[derive(Clone, Copy)]
pub enum Figure<'a> {
    HangRate(&'a Report),
    /// Deadlock rate of each of the plan's named signatures per variant.
    Signatures(&'a Report),
    Latency(&'a Report, LatencyKind),
    Survival(&'a Report),
    /// Index into `Report::timelines`.
    Timeline(&'a Report, usize),
    HangRateTrend(&'a Trends),
    P99Trend(&'a Trends),
}

impl Figure<'_> {
    /// File name without extension, unique within a report.
    pub fn stem(&self) -> String {
        match self {
            Figure::HangRate(_) => "hang_rate".into(),
            Figure::Signatures(_) => "signature_deadlocks".into(),
            Figure::Latency(_, LatencyKind::Read) => "read_latency".into(),
            Figure::Latency(_, LatencyKind::Decompress) => "decompress_latency".into(),
            Figure::Survival(_) => "time_to_hang".into(),
            Figure::Timeline(r, i) => {
                let t = &r.timelines[*i];
                let safe: String = t
                    .label
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("timeline_{safe}_{:03}", t.iteration)
            }
            Figure::HangRateTrend(_) => "hang_rate_trend".into(),
            Figure::P99Trend(_) => "p99_trend".into(),
        }
    }

    pub fn size(&self) -> (u32, u32) {
        match self {
            Figure::HangRate(r) => (
                ((r.variants.len() as u32) * 150 + 260).clamp(560, 1100),
                440,
            ),
            Figure::Signatures(r) => {
                let groups = signatures::signature_counts(r).len().max(1) as u32;
                let per = (r.variants.len() as u32).clamp(1, 6) * 110 + 160;
                ((groups * per + 120).clamp(640, 1100), 460)
            }
            Figure::Latency(..) => (960, 720),
            Figure::Timeline(..) => (960, 560),
            _ => (960, 500),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).plot()?;
        match *self {
            Figure::HangRate(r) => rate::draw(root, r),
            Figure::Signatures(r) => signatures::draw(root, r),
            Figure::Latency(r, k) => latency::draw(root, r, k),
            Figure::Survival(r) => survival::draw(root, r),
            Figure::Timeline(r, i) => timeline::draw(root, &r.timelines[i]),
            Figure::HangRateTrend(t) => trend::draw_hang_rate(root, t),
            Figure::P99Trend(t) => trend::draw_p99(root, t),
        }?;
        root.present().plot()
    }

    pub fn svg(&self) -> Result<String> {
        register_font();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            self.draw(&root)?;
        }
        Ok(out)
    }

    /// Drawn into memory and encoded with the png crate: plotters' own file
    /// output pulls in the whole `image` crate (every codec) for one format.
    pub fn png(&self, path: &Path) -> Result<()> {
        register_font();
        let (w, h) = self.size();
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw(&root)?;
        }
        let file =
            std::fs::File::create(path).map_err(|e| anyhow!("creating {}: {e}", path.display()))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let out = enc
            .write_header()
            .and_then(|mut wr| wr.write_image_data(&rgb).map(|()| wr))
            .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
        out.finish()
            .map_err(|e| anyhow!("writing {}: {e}", path.display()))
    }
}

/// The figures a report has data for, in the order the HTML shows them.
pub fn report_figures(r: &Report) -> Vec<Figure<'_>> {
    let mut out = vec![Figure::HangRate(r)];
    if !r.signature_verdicts.is_empty() {
        out.push(Figure::Signatures(r));
    }
    if r.variants.iter().any(|v| v.read_latency.is_some()) {
        out.push(Figure::Latency(r, LatencyKind::Read));
    }
    if r.variants.iter().any(|v| v.decompress_latency.is_some()) {
        out.push(Figure::Latency(r, LatencyKind::Decompress));
    }
    if r.variants.iter().any(|v| v.time_to_hang.is_some()) {
        out.push(Figure::Survival(r));
    }
    out.extend((0..r.timelines.len()).map(|i| Figure::Timeline(r, i)));
    out
}

/// plotters' errors are generic over the backend; carry their message.
pub(crate) trait PlotResult<T> {
    fn plot(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> PlotResult<T> for std::result::Result<T, E> {
    fn plot(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing: {e}"))
    }
}

/// The charts hilt draws: numbers on both axes (categories are numbered).
pub(crate) type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Tick labels of a percentage axis; none above 100%, where the axis only
/// leaves room for the notes over the bars.
pub(crate) fn percent_label(y: &f64) -> String {
    if *y <= 100.0 {
        format!("{y:.0}%")
    } else {
        String::new()
    }
}

/// Names under the x axis at data positions `x` (with y at the axis).
pub(crate) fn category_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    labels: &[(f64, String)],
    size: u32,
) -> Result<()> {
    category_labels_at(root, chart, labels, size, 8, BLACK)
}

/// Lines under the category names (`dy` pixels below the axis), in `colour`.
pub(crate) fn category_labels_at<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    labels: &[(f64, String)],
    size: u32,
    dy: i32,
    colour: RGBColor,
) -> Result<()> {
    let y0 = chart.y_range().start;
    let (bx, by) = root.get_base_pixel();
    let style = font(size)
        .color(&colour)
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ));
    for (x, label) in labels {
        let (px, py) = chart.backend_coord(&(*x, y0));
        root.draw(&Text::new(
            label.clone(),
            (px - bx, py - by + dy),
            style.clone(),
        ))
        .plot()?;
    }
    Ok(())
}

/// A message in the middle of an empty figure, instead of empty axes.
pub(crate) fn no_data<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    msg: &str,
) -> Result<()> {
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(title.to_string(), (20, 14), font(22)))
        .plot()?;
    let style = font(18)
        .color(&RGBColor(90, 90, 90))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ));
    root.draw(&Text::new(
        msg.to_string(),
        (w as i32 / 2, h as i32 / 2),
        style,
    ))
    .plot()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_font_draws_text_into_a_bitmap() {
        register_font();
        let (w, h) = (200u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.draw(&Text::new("hang rate", (5, 10), font(24)))
                .unwrap();
            root.present().unwrap();
        }
        let dark = buf.chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
        assert!(dark > 100, "text should leave dark pixels, got {dark}");
    }
}
