//! Hang rate (and, dashed, stall rate) and p99 read latency over a plan's
//! recorded runs.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{color, font, no_data, percent_label, Chart, PlotResult};
use crate::history::db::Trends;

fn x_labels(t: &Trends) -> Vec<String> {
    // "11-21 02:00" from an RFC 3339 time; the run name when there is none.
    t.runs
        .iter()
        .map(
            |r| match (r.started_at.get(5..10), r.started_at.get(11..16)) {
                (Some(d), Some(h)) => format!("{d} {h}"),
                _ => r.name.clone(),
            },
        )
        .collect()
}

/// At most ~10 labels, so they stay readable.
fn sparse_labels(t: &Trends) -> Vec<(f64, String)> {
    let labels = x_labels(t);
    let step = labels.len().div_ceil(10).max(1);
    labels
        .into_iter()
        .enumerate()
        .step_by(step)
        .map(|(i, l)| (i as f64, l))
        .collect()
}

/// The interval bar of each point (x, rate in %, interval as fractions).
fn intervals<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    pts: &[(f64, f64, (f64, f64))],
    c: RGBColor,
    cap: u32,
) -> Result<()> {
    chart
        .draw_series(pts.iter().map(|p| {
            ErrorBar::new_vertical(
                p.0,
                p.2 .0 * 100.0,
                p.1,
                p.2 .1 * 100.0,
                c.stroke_width(1),
                cap,
            )
        }))
        .plot()?;
    Ok(())
}

pub(super) fn draw_hang_rate<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    t: &Trends,
) -> Result<()> {
    let title = format!(
        "{}: hang rate (solid) and stall rate (dashed) per run, 95% Wilson interval",
        t.plan
    );
    if t.runs.is_empty() {
        return no_data(root, &title, "no recorded runs");
    }
    let n = t.runs.len() as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..105.0)
        .plot()?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&percent_label)
        .x_desc("run start (UTC)")
        .y_desc("share of valid iterations")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    super::category_labels(root, &chart, &sparse_labels(t), 13)?;
    let k = t.series.len().max(1) as f64;
    for (i, s) in t.series.iter().enumerate() {
        let c = color(i);
        // Spread variants sideways so their interval bars do not overlap.
        let dx = (i as f64 - (k - 1.0) / 2.0) * 0.12;
        let pts: Vec<(f64, f64, (f64, f64))> = s
            .points
            .iter()
            .filter_map(|p| Some((p.run_index as f64 + dx, p.hang_rate? * 100.0, p.hang_ci?)))
            .collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))
            .plot()?
            .label(s.variant.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        intervals(&mut chart, &pts, c, 8)?;
        chart
            .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))
            .plot()?;
        // Stalls recovered: their own dashed line with hollow markers,
        // drawn only for a variant that ever stalled.
        if s.points.iter().all(|p| p.stalls == 0) {
            continue;
        }
        let sp: Vec<(f64, f64, (f64, f64))> = s
            .points
            .iter()
            .filter_map(|p| {
                Some((
                    p.run_index as f64 + dx + 0.04,
                    p.stall_rate? * 100.0,
                    p.stall_ci?,
                ))
            })
            .collect();
        chart
            .draw_series(DashedLineSeries::new(
                sp.iter().map(|p| (p.0, p.1)),
                8,
                5,
                c.stroke_width(2),
            ))
            .plot()?
            .label(format!("{} stalls", s.variant))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 10, y)], c.stroke_width(3)));
        intervals(&mut chart, &sp, c, 6)?;
        chart
            .draw_series(
                sp.iter()
                    .map(|p| Circle::new((p.0, p.1), 4, ShapeStyle::from(&WHITE).filled())),
            )
            .plot()?;
        chart
            .draw_series(
                sp.iter()
                    .map(|p| Circle::new((p.0, p.1), 4, c.stroke_width(2))),
            )
            .plot()?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .plot()?;
    Ok(())
}

pub(super) fn draw_p99<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    t: &Trends,
) -> Result<()> {
    let title = format!("{}: p99 read latency per run", t.plan);
    let max = t
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.p99_us))
        .max();
    let Some(max) = max.filter(|_| !t.runs.is_empty()) else {
        return no_data(root, &title, "no latency recorded");
    };
    let n = t.runs.len() as f64;
    let y_max = max as f64 / 1000.0 * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..y_max)
        .plot()?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc("run start (UTC)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("p99 read latency (ms)")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    super::category_labels(root, &chart, &sparse_labels(t), 13)?;
    for (i, s) in t.series.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| Some((p.run_index as f64, p.p99_us? as f64 / 1000.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .plot()?
            .label(s.variant.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .plot()?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .plot()?;
    Ok(())
}
