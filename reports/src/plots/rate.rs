//! Hang rate per variant, with its Wilson interval.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{color, font, no_data, PlotResult};
use crate::report::Report;

pub(super) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<()> {
    let title = "Hang rate per variant (95% Wilson interval)";
    if r.variants.iter().all(|v| v.counts.valid == 0) {
        return no_data(root, title, "no iteration has a kernel verdict yet");
    }
    let n = r.variants.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(22))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..110.0)
        .plot()?;
    let fmt_y = |y: &f64| {
        if *y <= 100.0 {
            format!("{y:.0}%")
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&fmt_y)
        .y_desc("hang rate (hangs + silent hangs) / valid iterations")
        .label_style(font(15))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    // Category names under the axis, drawn on the root area: plotters
    // places numeric ticks only where its own algorithm puts them.
    let labels: Vec<(f64, String)> = r
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64, v.label.clone()))
        .collect();
    super::category_labels(root, &chart, &labels, 15)?;
    let half = 0.28;
    for (i, v) in r.variants.iter().enumerate() {
        let x = i as f64;
        let c = color(i);
        let Some(rate) = v.hang_rate else {
            chart
                .draw_series([Text::new(
                    "no valid iterations",
                    (x, 4.0),
                    font(14).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )])
                .plot()?;
            continue;
        };
        chart
            .draw_series([Rectangle::new(
                [(x - half, 0.0), (x + half, rate * 100.0)],
                c.filled(),
            )])
            .plot()?;
        let (lo, hi) = v.hang_ci.unwrap_or((rate, rate));
        chart
            .draw_series([ErrorBar::new_vertical(
                x,
                lo * 100.0,
                rate * 100.0,
                hi * 100.0,
                BLACK.stroke_width(2),
                18,
            )])
            .plot()?;
        let note = format!(
            "{}/{} ({})",
            v.counts.all_hangs(),
            v.counts.valid,
            crate::text::percent(rate)
        );
        chart
            .draw_series([Text::new(
                note,
                (x, hi * 100.0 + 3.5),
                font(15).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )])
            .plot()?;
    }
    Ok(())
}
