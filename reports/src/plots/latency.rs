//! Latency distributions: the CDF on a log axis, and below it the tail as
//! the fraction of operations slower than x, where p99 and p99.9 differences show.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{color, font, no_data, LatencyKind, PlotResult};
use crate::report::Report;
use crate::stats::latency::LatencyStats;
use crate::text;

fn pick(v: &crate::report::VariantReport, kind: LatencyKind) -> Option<&LatencyStats> {
    match kind {
        LatencyKind::Read => v.read_latency.as_ref(),
        LatencyKind::Decompress => v.decompress_latency.as_ref(),
    }
}

pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Report,
    kind: LatencyKind,
) -> Result<()> {
    let (what, unit) = match kind {
        LatencyKind::Read => ("Read latency", "reads"),
        LatencyKind::Decompress => ("Decompression-path latency", "decompressions"),
    };
    let series: Vec<(usize, &str, &LatencyStats)> = r
        .variants
        .iter()
        .enumerate()
        .filter_map(|(i, v)| pick(v, kind).map(|s| (i, v.label.as_str(), s)))
        .collect();
    if series.is_empty() {
        return no_data(root, what, "not measured");
    }
    let lo = series
        .iter()
        .filter_map(|s| s.2.histogram.buckets.first().map(|b| b[0]))
        .min()
        .unwrap_or(1)
        .max(1) as f64;
    let hi = series
        .iter()
        .map(|s| s.2.max_us)
        .max()
        .unwrap_or(10)
        .max(10) as f64;
    let (lo, hi) = (lo / 1.5, hi * 1.5);
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 * 58 / 100);
    let fmt_x = |x: &f64| text::micros(*x);

    let mut cdf = ChartBuilder::on(&top)
        .caption(
            format!("{what}: cumulative distribution (log scale)"),
            font(22),
        )
        .margin(14)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .plot()?;
    let fmt_frac = |y: &f64| format!("{:.0}%", y * 100.0);
    cdf.configure_mesh()
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_frac)
        .y_desc(format!("{unit} ≤ x"))
        .label_style(font(14))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    for &(i, label, s) in &series {
        let c = color(i);
        let pts: Vec<(f64, f64)> = step_points(&s.grouped().cdf(), lo);
        let p99 = s.quantile("p99").map_or(0, |q| q.value_us) as f64;
        cdf.draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .plot()?
            .label(format!(
                "{label}: p50 {}, p99 {} ({} {unit})",
                text::micros(s.quantiles[0].value_us as f64),
                text::micros(p99),
                s.samples
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    cdf.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .plot()?;
    // Variants without figures are named, not left out silently: on the
    // decompression path, that the probe failed is itself a finding.
    if kind == LatencyKind::Decompress {
        let missing: Vec<String> = r
            .variants
            .iter()
            .filter(|v| pick(v, kind).is_none())
            .filter_map(crate::report::decompress_line)
            .map(|l| shorten(&l, 96))
            .collect();
        // Under the legend, in the upper left, where a CDF has no curve.
        let (bx, by) = top.get_base_pixel();
        let (px, py) = cdf.backend_coord(&(lo, 1.0));
        let (x0, y0) = (px - bx + 12, py - by + 24 * series.len() as i32 + 22);
        let style = font(14)
            .color(&RGBColor(190, 30, 30))
            .pos(Pos::new(HPos::Left, VPos::Top));
        for (k, line) in missing.iter().enumerate() {
            top.draw(&Text::new(
                line.clone(),
                (x0, y0 + 20 * k as i32),
                style.clone(),
            ))
            .plot()?;
        }
    }

    // The tail on a log y axis: 1 − F(x), down to one operation in the largest sample.
    let floor = 1.0
        / series
            .iter()
            .map(|s| s.2.samples)
            .max()
            .unwrap_or(1)
            .max(10) as f64;
    let mut tail = ChartBuilder::on(&bottom)
        .caption("tail: fraction slower than x", font(17))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (floor / 2.0..1.0).log_scale())
        .plot()?;
    let fmt_tail = |y: &f64| {
        let pct = y * 100.0;
        if pct >= 1.0 {
            format!("{pct:.0}%")
        } else {
            format!("{pct}%")
        }
    };
    tail.configure_mesh()
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_tail)
        .x_desc("latency (log scale)")
        .y_desc(format!("{unit} > x"))
        .label_style(font(14))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    for level in [0.01, 0.001] {
        if level > floor {
            tail.draw_series(LineSeries::new(
                [(lo, level), (hi, level)],
                RGBColor(150, 150, 150).stroke_width(1),
            ))
            .plot()?;
            let name = if level == 0.01 { "p99" } else { "p99.9" };
            tail.draw_series([Text::new(
                name,
                (lo * 1.1, level * 1.15),
                font(13).color(&RGBColor(110, 110, 110)),
            )])
            .plot()?;
        }
    }
    for &(i, _, s) in &series {
        let pts: Vec<(f64, f64)> = step_points(&s.grouped().cdf(), lo)
            .into_iter()
            .map(|(x, y)| (x, 1.0 - y))
            .filter(|p| p.1 >= floor / 2.0)
            .collect();
        tail.draw_series(LineSeries::new(pts, color(i).stroke_width(2)))
            .plot()?;
    }
    Ok(())
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// A CDF drawn as steps from x = `start`, so flat stretches stay flat.
fn step_points(cdf: &[(u64, f64)], start: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(cdf.len() * 2 + 1);
    let mut prev = 0.0;
    out.push((start, 0.0));
    for &(v, f) in cdf {
        out.push((v as f64, prev));
        out.push((v as f64, f));
        prev = f;
    }
    out
}
