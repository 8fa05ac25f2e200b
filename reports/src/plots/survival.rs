//! Kaplan–Meier time to hang, with pointwise 95% bands and censoring ticks.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{color, font, no_data, PlotResult};
use crate::report::Report;
use crate::text;

/// Above this many censored iterations per variant the ticks become a smear.
const MAX_TICKS: u64 = 150;

pub(super) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<()> {
    let title = "Time to hang (Kaplan–Meier, 95% band)";
    let curves: Vec<(usize, &str, &crate::stats::survival::KmCurve)> = r
        .variants
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.time_to_hang.as_ref().map(|k| (i, v.label.as_str(), k)))
        .filter(|c| c.2.n > 0)
        .collect();
    if curves.is_empty() {
        return no_data(root, title, "no iteration has a kernel verdict yet");
    }
    let t_max = curves
        .iter()
        .flat_map(|c| c.2.steps.iter().map(|s| s.t))
        .fold(1.0f64, f64::max);
    // Minutes once iterations run longer than ten minutes.
    let (scale, unit) = if t_max > 600.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    };
    let x_max = t_max / scale * 1.04;
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..1.05)
        .plot()?;
    let fmt_y = |y: &f64| {
        if *y <= 1.0 {
            format!("{:.0}%", y * 100.0)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .y_label_formatter(&fmt_y)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc(format!("time since power-on ({unit})"))
        .y_desc("iterations not yet hung")
        .label_style(font(14))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    for &(i, label, km) in &curves {
        let c = color(i);
        let mut line = vec![(0.0, 1.0)];
        let mut upper = vec![(0.0, 1.0)];
        let mut lower = vec![(0.0, 1.0)];
        let mut prev = (1.0, 1.0, 1.0);
        for s in &km.steps {
            let x = s.t / scale;
            line.extend([(x, prev.0), (x, s.survival)]);
            upper.extend([(x, prev.2), (x, s.upper)]);
            lower.extend([(x, prev.1), (x, s.lower)]);
            prev = (s.survival, s.lower, s.upper);
        }
        line.push((x_max, prev.0));
        upper.push((x_max, prev.2));
        lower.push((x_max, prev.1));
        let band: Vec<(f64, f64)> = upper
            .iter()
            .copied()
            .chain(lower.iter().rev().copied())
            .collect();
        chart
            .draw_series([Polygon::new(band, c.mix(0.15).filled())])
            .plot()?;
        let median = km.median.map_or("median not reached".to_string(), |m| {
            format!("median {}", text::duration_ms((m * 1000.0) as u64))
        });
        chart
            .draw_series(LineSeries::new(line, c.stroke_width(2)))
            .plot()?
            .label(format!("{label}: {}/{} hung, {median}", km.events, km.n))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        let censored: u64 = km.steps.iter().map(|s| s.censored).sum();
        if censored <= MAX_TICKS {
            let ticks = km.steps.iter().filter(|s| s.censored > 0).map(|s| {
                let (x, y) = (s.t / scale, s.survival);
                PathElement::new(vec![(x, y - 0.015), (x, y + 0.015)], c.stroke_width(2))
            });
            chart.draw_series(ticks).plot()?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .plot()?;
    Ok(())
}
