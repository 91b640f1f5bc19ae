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
    let mut metric_chart = ChartBuilder::on(&upper)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes(span), 0.0..peak)
        .map_err(|error| failed(&error))?;
    metric_chart
        .configure_mesh()
        .x_desc("minutes")
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
    let top = shown
        .iter()
        .flat_map(|item| item.replay.points.iter())
        .map(|point| point.desired.max(point.ready).max(point.needed))
        .max()
        .unwrap_or(1)
        + 1;
    let mut replica_chart = ChartBuilder::on(&lower)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes(span), 0i64..top)
        .map_err(|error| failed(&error))?;
    replica_chart
        .configure_mesh()
        .x_desc("minutes")
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
