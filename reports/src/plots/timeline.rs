//! One iteration over time: memory pressure above, swap below, failures marked.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{font, no_data, PlotResult};
use crate::events::Timeline;

const SOME: RGBColor = RGBColor(31, 119, 180);
const FULL: RGBColor = RGBColor(148, 103, 189);
const SWAP: RGBColor = RGBColor(44, 160, 44);
const FAILURE: RGBColor = RGBColor(214, 39, 40);
const OTHER: RGBColor = RGBColor(120, 120, 120);

pub(super) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, t: &Timeline) -> Result<()> {
    let title = format!(
        "{} iteration {}: {}",
        t.label,
        t.iteration,
        t.outcome.as_str()
    );
    if t.points.is_empty() {
        return no_data(root, &title, "no interval records in events.jsonl");
    }
    let t_end = t
        .points
        .iter()
        .map(|p| p.t_s)
        .chain(t.marks.iter().map(|m| m.t_s))
        .fold(1.0f64, f64::max)
        * 1.03;
    let swap_max = t
        .points
        .iter()
        .map(|p| p.swap_used_mib)
        .fold(1.0f64, f64::max)
        * 1.15;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 * 55 / 100);

    let mut psi = ChartBuilder::on(&top)
        .caption(title, font(21))
        .margin(14)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..t_end, 0.0..100.0)
        .plot()?;
    let fmt_pct = |y: &f64| format!("{y:.0}%");
    psi.configure_mesh()
        .y_label_formatter(&fmt_pct)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("memory PSI avg10")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    psi.draw_series(LineSeries::new(
        t.points.iter().map(|p| (p.t_s, p.psi_some_avg10)),
        SOME.stroke_width(2),
    ))
    .plot()?
    .label("some (a task stalled on memory)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], SOME.stroke_width(3)));
    psi.draw_series(LineSeries::new(
        t.points.iter().map(|p| (p.t_s, p.psi_full_avg10)),
        FULL.stroke_width(2),
    ))
    .plot()?
    .label("full (all tasks stalled)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], FULL.stroke_width(3)));
    marks(&mut psi, t, 100.0, true)?;
    psi.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(13))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .plot()?;

    let mut swap = ChartBuilder::on(&bottom)
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..t_end, 0.0..swap_max)
        .plot()?;
    swap.configure_mesh()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("time since power-on (s)")
        .y_desc("swap used (MiB)")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(RGBColor(244, 244, 244))
        .max_light_lines(4)
        .draw()
        .plot()?;
    swap.draw_series(
        AreaSeries::new(
            t.points.iter().map(|p| (p.t_s, p.swap_used_mib)),
            0.0,
            SWAP.mix(0.25),
        )
        .border_style(SWAP.stroke_width(2)),
    )
    .plot()?;
    marks(&mut swap, t, swap_max, false)?;
    Ok(())
}

fn marks<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    t: &Timeline,
    y_max: f64,
    labelled: bool,
) -> Result<()> {
    // Failure marks are labelled; other kernel events only get a thin line
    // (a long run can have many).
    let mut row = 0;
    for m in &t.marks {
        let c = if m.failure { FAILURE } else { OTHER };
        let width = if m.failure { 2 } else { 1 };
        chart
            .draw_series(DashedLineSeries::new(
                [(m.t_s, 0.0), (m.t_s, y_max)],
                6,
                4,
                c.stroke_width(width),
            ))
            .plot()?;
        if labelled && m.failure {
            let mut label = m.label.clone();
            if label.chars().count() > 60 {
                label = label.chars().take(57).collect::<String>() + "…";
            }
            let y = y_max * (0.93 - 0.09 * row as f64);
            chart
                .draw_series([Text::new(
                    label,
                    (m.t_s, y),
                    font(13)
                        .color(&c)
                        .pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Right,
                            plotters::style::text_anchor::VPos::Center,
                        )),
                )])
                .plot()?;
            row += 1;
        }
    }
    Ok(())
}
