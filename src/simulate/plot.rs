//! The replay as a chart, with plotters: the first metric against its
//! target (upper panel) and the desired and Ready replicas over time
//! (lower panel), every replay on the same axes when comparing. SVG, or
//! PNG with text drawn from an embedded font.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::render::Shown;

pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 640;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct PlotError(String);

/// A style per replay: the original, then the comparison.
const COLOURS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

static FONT: Once = Once::new();

/// Text is laid out (and, in a PNG, drawn) with ab_glyph from registered
/// fonts only.
fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans_mono::regular(),
        );
    });
}

fn minutes(seconds: f64) -> f64 {
    seconds / 60.0
}

/// Chart margins and the x-label band, in pixels.
const MARGIN: i32 = 10;
/// Room at the right for the last minute label, centred on the edge.
const MARGIN_RIGHT: i32 = 30;

/// The legend's height for `rows` entries, in pixels (plotters' series
/// labels in a 13 px font: 17 px a row and 12 of padding), with the 5 px
/// it keeps from the top of the plot and a few of air below.
fn legend_height(rows: usize) -> f64 {
    5.0 + 17.0 * rows as f64 + 12.0 + 6.0
}

/// The top of a value axis whose data reach `highest`, raised so that no
/// curve runs under the legend drawn in the upper part of a plot
/// `plot_height` pixels high.
fn axis_top(highest: f64, plot_height: f64, rows: usize) -> f64 {
    let free = (plot_height - legend_height(rows)).max(plot_height * 0.25);
    highest * plot_height / free
}

/// A minute label: whole minutes only (plotters may place its ticks on
/// half minutes; those stay unlabelled).
fn minute_label(minute: &f64) -> String {
    if (minute - minute.round()).abs() < 1e-6 {
        format!("{minute:.0}")
    } else {
        String::new()
    }
}

/// The plot's height in pixels inside an area of `area_height`.
fn plot_height(area_height: u32, x_label_area: i32) -> f64 {
    f64::from(area_height) - f64::from(2 * MARGIN + x_label_area)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    shown: &[Shown<'_>],
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let failed = |error: &dyn std::fmt::Display| PlotError(error.to_string());
    root.fill(&WHITE).map_err(|error| failed(&error))?;
    let Some(first) = shown.first() else {
        return Ok(());
    };
    let title = match &first.hpa.namespace {
        Some(namespace) => format!("{namespace}/{}", first.hpa.name),
        None => first.hpa.name.clone(),
    };
    let root = root
        .titled(&format!("infergate simulate: {title}"), ("sans-serif", 22))
        .map_err(|error| failed(&error))?;
    let (upper, lower) = root.split_vertically(HEIGHT as i32 * 2 / 5);
    let span = shown
        .iter()
        .filter_map(|item| item.replay.points.last().map(|point| point.t))
        .fold(1.0, f64::max);
    let metric = &first.hpa.metrics[0];
    let peak = shown
        .iter()
        .flat_map(|item| item.replay.points.iter())
        .filter_map(|point| point.metrics.first().copied().flatten())
        .fold(metric.target, f64::max)
        * 1.1;
    let metric_rows = shown.len() + 1;
    let metric_top = axis_top(peak, plot_height(upper.dim_in_pixel().1, 30), metric_rows);
    let mut metric_chart = ChartBuilder::on(&upper)
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes(span), 0.0..metric_top)
        .map_err(|error| failed(&error))?;
    metric_chart
        .configure_mesh()
        .x_desc("minutes")
        .x_labels(12)
        .x_label_formatter(&minute_label)
        .y_desc(format!("{} per pod", metric.name))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|error| failed(&error))?;
    for (index, item) in shown.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<(f64, f64)> = item
            .replay
            .points
            .iter()
            .filter_map(|point| Some((minutes(point.t), point.metrics.first().copied().flatten()?)))
            .collect();
        metric_chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|error| failed(&error))?
            .label(format!("{}: {}", item.label, metric.name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    metric_chart
        .draw_series(LineSeries::new(
            vec![(0.0, metric.target), (minutes(span), metric.target)],
            BLACK.stroke_width(1),
        ))
        .map_err(|error| failed(&error))?
        .label(format!("target {}", metric.target))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    metric_chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|error| failed(&error))?;
    let highest = shown
        .iter()
        .flat_map(|item| item.replay.points.iter())
        .map(|point| point.desired.max(point.ready).max(point.needed))
        .max()
        .unwrap_or(1)
        + 1;
    let replica_rows = 1 + 2 * shown.len();
    // Replica counts are far below 2^53: exact as f64.
    let top = axis_top(
        highest as f64,
        plot_height(lower.dim_in_pixel().1, 35),
        replica_rows,
    )
    .ceil() as i64;
    let mut replica_chart = ChartBuilder::on(&lower)
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes(span), 0i64..top)
        .map_err(|error| failed(&error))?;
    replica_chart
        .configure_mesh()
        .x_desc("minutes")
        .x_labels(12)
        .x_label_formatter(&minute_label)
        .y_desc("replicas")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|error| failed(&error))?;
    let needed: Vec<(f64, i64)> = first
        .replay
        .points
        .iter()
        .map(|point| (minutes(point.t), point.needed))
        .collect();
    let grey = RGBColor(150, 150, 150);
    replica_chart
        .draw_series(LineSeries::new(needed, grey.stroke_width(1)))
        .map_err(|error| failed(&error))?
        .label("needed (every pod Ready)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    for (index, item) in shown.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let desired: Vec<(f64, i64)> = item
            .replay
            .points
            .iter()
            .map(|point| (minutes(point.t), point.desired))
            .collect();
        let ready: Vec<(f64, i64)> = item
            .replay
            .points
            .iter()
            .map(|point| (minutes(point.t), point.ready))
            .collect();
        replica_chart
            .draw_series(LineSeries::new(desired, colour.stroke_width(2)))
            .map_err(|error| failed(&error))?
            .label(format!("{}: desired", item.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        let faint = colour.mix(0.5);
        replica_chart
            .draw_series(LineSeries::new(ready, faint.stroke_width(4)))
            .map_err(|error| failed(&error))?
            .label(format!("{}: Ready", item.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], faint.stroke_width(4))
            });
    }
    replica_chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|error| failed(&error))?;
    root.present().map_err(|error| failed(&error))?;
    Ok(())
}

/// The chart as SVG text.
pub fn svg(shown: &[Shown<'_>]) -> Result<String, PlotError> {
    register_font();
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, shown)?;
    }
    Ok(text)
}

/// The chart as a PNG file.
pub fn png(shown: &[Shown<'_>], path: &Path) -> Result<(), PlotError> {
    register_font();
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    draw(&root, shown)
}
