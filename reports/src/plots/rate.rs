//! Hang rate and stall rate per variant, side by side, each with its
//! Wilson interval: a hang that never recovered (deadlock, silent or
//! unclassified hang) and a stall that did are different findings.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{color, font, no_data, percent_label, Chart, PlotResult};
use crate::report::{Counts, Report};
use crate::stats::rate::wilson;

/// The light shade stalls are drawn in: the variant's colour, washed out.
pub(crate) fn light(c: RGBColor) -> RGBColor {
    let w = |x: u8| (x as f64 * 0.35 + 255.0 * 0.65) as u8;
    RGBColor(w(c.0), w(c.1), w(c.2))
}

/// "6 deadlock · 2 silent · 1 stall": what the bars are made of.
pub(crate) fn breakdown(c: &Counts) -> String {
    let parts: Vec<String> = [
        (c.deadlocks, "deadlock"),
        (c.hangs, "unclassified hang"),
        (c.silent_hangs, "silent"),
        (c.stalls, "stall"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect();
    if parts.is_empty() {
        "no hang, no stall".into()
    } else {
        parts.join(" · ")
    }
}

/// A legend swatch and its text, at pixel (x, y) of `area`; returns the
/// x where the next one can start.
pub(crate) fn legend_item<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    fill: RGBColor,
    outline: RGBColor,
    text: &str,
) -> Result<i32> {
    area.draw(&Rectangle::new(
        [(x, y - 7), (x + 16, y + 7)],
        fill.filled(),
    ))
    .plot()?;
    area.draw(&Rectangle::new(
        [(x, y - 7), (x + 16, y + 7)],
        outline.stroke_width(2),
    ))
    .plot()?;
    let style = font(14).pos(Pos::new(HPos::Left, VPos::Center));
    area.draw(&Text::new(text.to_string(), (x + 22, y), style))
        .plot()?;
    let (w, _) = area.estimate_text_size(text, &font(14)).plot()?;
    Ok(x + 22 + w as i32 + 22)
}

pub(super) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<()> {
    let title = "Hang and stall rate per variant (95% Wilson interval)";
    if r.variants.iter().all(|v| v.counts.valid == 0) {
        return no_data(root, title, "no iteration has a kernel verdict yet");
    }
    let body = root.titled(title, font(22)).plot()?;
    let (legend, plot) = body.split_vertically(26);
    let grey = RGBColor(110, 110, 110);
    let next = legend_item(&legend, (70, 12), grey, grey, "hang: no recovery")?;
    legend_item(
        &legend,
        (next, 12),
        light(grey),
        grey,
        "stall: recovered within the window",
    )?;

    // Hangs with no deadlock window (older records, window 0) were never
    // told apart: a stall among them would be counted as a hang.
    let told_apart = r
        .variants
        .iter()
        .any(|v| v.counts.deadlocks + v.counts.stalls > 0)
        || r.variants.iter().all(|v| v.counts.hangs == 0);
    let mut chart = share_axes(&plot, r.variants.len(), "share of valid iterations")?;
    // Category names under the axis, drawn on the plot area: plotters
    // places numeric ticks only where its own algorithm puts them. Under
    // each name, what its bars are made of.
    let labels: Vec<(f64, String)> = r
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64, v.label.clone()))
        .collect();
    super::category_labels(&plot, &chart, &labels, 15)?;
    let parts: Vec<(f64, String)> = r
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64, breakdown(&v.counts)))
        .collect();
    super::category_labels_at(&plot, &chart, &parts, 13, 28, RGBColor(90, 90, 90))?;

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
        let valid = v.counts.valid;
        // The hang bar: every hang that never recovered.
        let (h0, h1) = (x - 0.38, x + 0.02);
        bar(
            &mut chart,
            (h0, h1),
            rate,
            v.hang_ci,
            c,
            c,
            format!("{}/{valid} hung", v.counts.all_hangs()),
            0.0,
        )?;
        // The stall bar beside it, lighter: the same variant, a lesser finding.
        if !told_apart {
            for (k, line) in ["stalls not", "told apart", "(no window)"]
                .iter()
                .enumerate()
            {
                chart
                    .draw_series([Text::new(
                        *line,
                        (x + 0.22, 11.0 - 4.5 * k as f64),
                        font(12).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )])
                    .plot()?;
            }
            continue;
        }
        let stalls = v.counts.stalls;
        let srate = v.stall_rate.unwrap_or(stalls as f64 / valid as f64);
        let sci = v
            .stall_ci
            .or_else(|| wilson(stalls as u64, valid as u64, 0.95));
        bar(
            &mut chart,
            (x + 0.06, x + 0.38),
            srate,
            sci,
            light(c),
            c,
            format!("{stalls}/{valid} stalled"),
            0.0,
        )?;
    }
    Ok(())
}

/// Axes for bars of shares of iterations over `n` categories (named under
/// the axis by the caller), with room above 100% for the notes on the bars.
pub(crate) fn share_axes<'a, DB: DrawingBackend>(
    plot: &'a DrawingArea<DB, Shift>,
    n: usize,
    y_desc: &str,
) -> Result<Chart<'a, DB>> {
    let mut chart = ChartBuilder::on(plot)
        .margin(16)
        .margin_top(6)
        .x_label_area_size(58)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..112.0)
        .plot()?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&percent_label)
        .y_desc(y_desc)
        .label_style(font(15))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    Ok(chart)
}

/// One bar from 0 to `rate` (a fraction) over `span`, its interval and a
/// note above both (and above `clear`, a fraction something else reaches).
/// A zero rate still gets a visible baseline stroke.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bar<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    (x0, x1): (f64, f64),
    rate: f64,
    ci: Option<(f64, f64)>,
    fill: RGBColor,
    outline: RGBColor,
    note: String,
    clear: f64,
) -> Result<()> {
    let top = (rate * 100.0).max(0.4);
    chart
        .draw_series([Rectangle::new([(x0, 0.0), (x1, top)], fill.filled())])
        .plot()?;
    if fill != outline {
        chart
            .draw_series([Rectangle::new(
                [(x0, 0.0), (x1, top)],
                outline.stroke_width(2),
            )])
            .plot()?;
    }
    let xm = (x0 + x1) / 2.0;
    let (lo, hi) = ci.unwrap_or((rate, rate));
    chart
        .draw_series([ErrorBar::new_vertical(
            xm,
            lo * 100.0,
            rate * 100.0,
            hi * 100.0,
            BLACK.stroke_width(2),
            14,
        )])
        .plot()?;
    chart
        .draw_series([Text::new(
            note,
            (xm, hi.max(clear) * 100.0 + 2.5),
            font(14).pos(Pos::new(HPos::Center, VPos::Bottom)),
        )])
        .plot()?;
    Ok(())
}
