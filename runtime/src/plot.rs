//! Figures as PNG of any run: learning curves, a comparison of several runs,
//! a confusion matrix sized by the network's outputs (with class names when
//! the data has them).
//!
//! ```no_run
//! # use netdsl_runtime::prelude::*;
//! # use std::path::Path;
//! # fn f(history: &History, eval: &Evaluation, test: &Dataset) -> netdsl_runtime::Result<()> {
//! use netdsl_runtime::plot;
//! plot::learning_curves(Path::new("curves.png"), "my net", &history.epochs, None)?;
//! plot::confusion(Path::new("confusion.png"), "my net: test", &eval.confusion, test.class_names())?;
//! # Ok(()) }
//! ```
//!
//! Drawn with plotters' bitmap backend into a buffer and encoded with the `png` crate. Text uses
//! DejaVu Sans embedded in the binary (`runtime/assets/`, Bitstream Vera license beside it),
//! registered with plotters' `ab_glyph` renderer and drawn by `text::TextBackend`, so no
//! system font library or font file is needed: the figures come out the same on a bare machine.

use std::error::Error as StdError;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordi32;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::metrics::EpochMetrics;

mod text;
use text::TextBackend;

/// Size in pixels of [`learning_curves`] (two panels side by side).
pub const CURVES_SIZE: (u32, u32) = (1200, 480);
/// Size in pixels of [`compare`] (curves, legend, bars).
pub const COMPARE_SIZE: (u32, u32) = (1500, 640);
/// Size in pixels of [`confusion`].
pub const CONFUSION_SIZE: (u32, u32) = (760, 700);

/// DejaVu Sans 2.37 (Debian fonts-dejavu-core); see assets/DejaVuSans-LICENSE.txt.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family plotters asks for by default; we register our font under it.
const FAMILY: &str = "sans-serif";

/// Tableau 10 colours: train/validation and one per architecture.
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const PALETTE: [RGBColor; 8] = [
    BLUE,
    ORANGE,
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const GRID_LIGHT: RGBColor = RGBColor(238, 238, 238);
const GRID_BOLD: RGBColor = RGBColor(210, 210, 210);
const TEXT: RGBColor = RGBColor(40, 40, 40);
const GREY: RGBColor = RGBColor(120, 120, 120);

type Area<'a> = DrawingArea<TextBackend<'a>, Shift>;
type DrawResult = std::result::Result<(), Box<dyn StdError>>;

/// Register the embedded font with plotters once; false if it could not be parsed.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok())
}

/// Draw into a white `size` canvas with `draw`, then write it to `path` as an RGB PNG.
fn render(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<()> {
    let plot_error = |message: String| Error::Plot {
        path: path.to_path_buf(),
        message,
    };
    if !font_ready() {
        return Err(plot_error(
            "the embedded font could not be loaded".to_string(),
        ));
    }
    let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let backend = BitMapBackend::with_buffer(&mut rgb, size);
        let root = TextBackend::new(backend, FONT).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Box::from)
            .and_then(|()| draw(&root));
        drawn.map_err(|e| plot_error(e.to_string()))?;
        root.present().map_err(|e| plot_error(e.to_string()))?;
    }
    write_png(path, size, &rgb)
}

/// Encode 8-bit RGB pixels as a PNG file.
fn write_png(path: &Path, (width, height): (u32, u32), rgb: &[u8]) -> Result<()> {
    let file = File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let encoded = encoder.write_header().and_then(|mut writer| {
        writer.write_image_data(rgb)?;
        writer.finish()
    });
    encoded.map_err(|e| match e {
        png::EncodingError::IoError(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        other => Error::Plot {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&TEXT)
}

/// The x range for `n` epochs: 1..n, widened so that a single epoch still has an axis.
fn epoch_range(n: usize) -> std::ops::Range<i32> {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    if n <= 1 {
        0..2
    } else {
        1..n
    }
}

/// A y range around the finite `values` with some headroom; `0..1` when there are none.
fn value_range(values: impl IntoIterator<Item = f64>, clamp_unit: bool) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.08).max(0.01);
    let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
    if clamp_unit {
        lo..hi.min(1.0)
    } else {
        lo..hi
    }
}

/// One metric of an epoch, `None` where the epoch has none (no validation).
type Metric = fn(&EpochMetrics) -> Option<f64>;

/// `(epoch, value)` points of one metric, missing and non-finite values left out.
fn points(epochs: &[EpochMetrics], metric: Metric) -> Vec<(i32, f64)> {
    epochs
        .iter()
        .filter_map(|e| Some((i32::try_from(e.epoch).unwrap_or(i32::MAX), metric(e)?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// The corner of a chart where the legend covers the fewest points of `lines`, each point
/// given as a fraction (0..=1) of the x and y ranges; segments are sampled in between so that
/// a line crossing a corner counts too.
fn legend_corner(lines: &[Vec<(f64, f64)>]) -> SeriesLabelPosition {
    // The legend box: up to half the width (the study's label is long) and a quarter of
    // the height, plus a margin.
    let covers = |(x, y): (f64, f64), right: bool, top: bool| {
        let in_x = if right { x > 0.45 } else { x < 0.55 };
        let in_y = if top { y > 0.7 } else { y < 0.3 };
        in_x && in_y
    };
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
        (SeriesLabelPosition::UpperLeft, false, true),
    ];
    let mut best = (SeriesLabelPosition::UpperRight, usize::MAX);
    for (corner, right, top) in corners {
        let mut hits = 0;
        for line in lines {
            for pair in line.windows(2) {
                let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                hits += (0..=8)
                    .map(|k| f64::from(k) / 8.0)
                    .filter(|t| covers((x0 + t * (x1 - x0), y0 + t * (y1 - y0)), right, top))
                    .count();
            }
            hits += line.iter().filter(|&&p| covers(p, right, top)).count();
        }
        if hits < best.1 {
            best = (corner, hits);
        }
    }
    best.0
}

/// A reference to draw into learning curves: final validation values of another
/// run (e.g. a published result), as dashed grey lines labelled
/// "`label`: final val_loss 0.3426".
#[derive(Debug, Clone, PartialEq)]
pub struct Reference<'a> {
    /// Names the reference in the legend, e.g. `"study"`.
    pub label: &'a str,
    /// Final validation loss.
    pub val_loss: f64,
    /// Final validation accuracy.
    pub val_accuracy: f64,
}

/// One learning-curve panel: a metric, train vs validation, by epoch, with a
/// reference value (if any) as a dashed grey line.
fn curve_panel(
    area: &Area<'_>,
    name: &str,
    epochs: &[EpochMetrics],
    [train, val]: [Metric; 2],
    reference: Option<(&str, f64)>,
) -> DrawResult {
    let is_accuracy = name == "accuracy";
    let values = epochs
        .iter()
        .flat_map(|e| [train(e), val(e)])
        .flatten()
        .chain(reference.map(|r| r.1));
    let (x_range, y_range) = (epoch_range(epochs.len()), value_range(values, is_accuracy));
    let mut chart = ChartBuilder::on(area)
        .caption(name, font(20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.clone(), y_range.clone())?;
    chart
        .configure_mesh()
        .max_light_lines(1)
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .x_labels(epochs.len().clamp(2, 20))
        .y_labels(8)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .x_desc("epoch")
        .y_desc(name)
        .label_style(font(14))
        .axis_desc_style(font(15))
        .draw()?;
    let mut drawn = Vec::new();
    for (label, color, metric) in [("train", BLUE, train), ("validation", ORANGE, val)] {
        let line = points(epochs, metric);
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(2)));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        drawn.push(line);
    }
    if let Some((label, value)) = reference.filter(|r| r.1.is_finite()) {
        let ends = [(x_range.start, value), (x_range.end, value)];
        let style = GREY.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(ends, 8, 5, style))?
            .label(format!("{label}: final val_{name} {value:.4}"))
            .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 24, y)], 8, 5, style));
        drawn.push(ends.to_vec());
    }
    // Where the legend goes: the corner with the fewest points under it.
    let span = |r: &std::ops::Range<f64>| (r.end - r.start).max(f64::MIN_POSITIVE);
    let x_span = f64::from(x_range.end - x_range.start);
    let unit = |(x, y): (i32, f64)| {
        (
            f64::from(x - x_range.start) / x_span,
            (y - y_range.start) / span(&y_range),
        )
    };
    let normalised: Vec<Vec<(f64, f64)>> = drawn
        .iter()
        .map(|line| line.iter().map(|&p| unit(p)).collect())
        .collect();
    chart
        .configure_series_labels()
        .position(legend_corner(&normalised))
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(GRID_BOLD)
        .draw()?;
    Ok(())
}

/// Learning curves of one run: loss (left) and accuracy (right), train vs
/// validation by epoch (validation where the epochs have it), under `title`;
/// a `reference`'s final validation loss and accuracy as dashed grey lines.
pub fn learning_curves(
    path: &Path,
    title: &str,
    epochs: &[EpochMetrics],
    reference: Option<&Reference<'_>>,
) -> Result<()> {
    render(path, CURVES_SIZE, |root| {
        let root = root.titled(title, font(22))?;
        let (left, right) = root.split_horizontally(CURVES_SIZE.0 / 2);
        let loss: [Metric; 2] = [|e| Some(e.loss), |e| e.val_loss];
        let accuracy: [Metric; 2] = [|e| Some(e.accuracy), |e| e.val_accuracy];
        let at = |value: fn(&Reference) -> f64| reference.map(|r| (r.label, value(r)));
        curve_panel(&left, "loss", epochs, loss, at(|r| r.val_loss))?;
        curve_panel(&right, "accuracy", epochs, accuracy, at(|r| r.val_accuracy))
    })
}

/// One run in a [`compare`] figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Run<'a> {
    /// The run's name in the legend and on its bar.
    pub name: &'a str,
    /// Its epochs (the validation accuracy is drawn).
    pub epochs: &'a [EpochMetrics],
    /// Drawn as a bar when finite.
    pub test_accuracy: f64,
    /// Index into a 8-colour palette (runs of one family share a colour).
    pub color: usize,
    /// Dashed line and lighter bar (e.g. a variant of the family's plain run).
    pub dashed: bool,
}

/// A run's colour and dash.
fn style(run: &Run<'_>) -> (RGBColor, bool) {
    (PALETTE[run.color % PALETTE.len()], run.dashed)
}

/// A short horizontal line in a variant's style, `(x, y)` its left end in pixels.
fn legend_line(area: &Area<'_>, (x, y): (i32, i32), color: RGBColor, dashed: bool) -> DrawResult {
    let style = color.stroke_width(2);
    if dashed {
        area.draw(&DashedPathElement::new([(x, y), (x + 30, y)], 6, 4, style))?;
    } else {
        area.draw(&PathElement::new([(x, y), (x + 30, y)], style))?;
    }
    Ok(())
}

/// Validation accuracy by epoch, one line per run.
fn compare_curves(area: &Area<'_>, runs: &[Run<'_>]) -> DrawResult {
    let epochs = runs.iter().map(|r| r.epochs.len()).max().unwrap_or(0);
    let values = runs
        .iter()
        .flat_map(|r| r.epochs.iter().filter_map(|e| e.val_accuracy));
    let mut chart = ChartBuilder::on(area)
        .caption("validation accuracy by epoch", font(20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(epoch_range(epochs), value_range(values, true))?;
    chart
        .configure_mesh()
        .max_light_lines(1)
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .x_labels(epochs.clamp(2, 20))
        .y_labels(10)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .x_desc("epoch")
        .y_desc("val_accuracy")
        .label_style(font(14))
        .axis_desc_style(font(15))
        .draw()?;
    for r in runs {
        let (color, dashed) = style(r);
        let line = points(r.epochs, |e| e.val_accuracy);
        let style = color.stroke_width(2);
        if dashed {
            chart.draw_series(DashedLineSeries::new(line.iter().copied(), 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(line.iter().copied(), style))?;
        }
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 2, color.filled())))?;
    }
    Ok(())
}

/// The legend column of the comparison: one line per run, top to bottom.
fn compare_legend(area: &Area<'_>, runs: &[Run<'_>]) -> DrawResult {
    let mut y = 70;
    for r in runs {
        let (color, dashed) = style(r);
        legend_line(area, (4, y), color, dashed)?;
        area.draw(&Text::new(
            r.name.to_string(),
            (42, y),
            font(15).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += 26;
    }
    Ok(())
}

/// Test accuracy as horizontal bars, the first run at the top.
fn compare_bars(area: &Area<'_>, runs: &[Run<'_>]) -> DrawResult {
    let n = i32::try_from(runs.len().max(1)).unwrap_or(i32::MAX);
    // Row i (from the bottom) shows runs[n - 1 - i].
    let at = |i: i32| runs.get(usize::try_from(n - 1 - i).ok()?);
    let mut chart = ChartBuilder::on(area)
        .caption("test accuracy", font(20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..1.0, (0..n - 1).into_segmented())?;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => at(*i).map_or_else(String::new, |r| r.name.to_string()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(1)
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .x_labels(11)
        .y_labels(runs.len().max(1))
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&label)
        .x_desc("test accuracy")
        .label_style(font(14))
        .axis_desc_style(font(15))
        .draw()?;
    for i in 0..n {
        let Some(r) = at(i) else { continue };
        if !r.test_accuracy.is_finite() {
            continue;
        }
        let (color, dashed) = style(r);
        let fill = if dashed {
            color.mix(0.55)
        } else {
            color.mix(1.0)
        };
        let accuracy = r.test_accuracy.clamp(0.0, 1.0);
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (accuracy, SegmentValue::Exact(i + 1)),
            ],
            fill.filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        chart.draw_series([bar])?;
        let ink = if dashed { TEXT } else { WHITE };
        let text = font(14)
            .color(&ink)
            .pos(Pos::new(HPos::Right, VPos::Center));
        let value = format!("{accuracy:.4}");
        chart.draw_series([Text::new(
            value,
            (accuracy - 0.01, SegmentValue::CenterOf(i)),
            text,
        )])?;
    }
    Ok(())
}

/// Several runs at a glance, under `title`: validation accuracy by epoch
/// (one line per run, in its colour and dash), a legend, and test accuracy as bars.
pub fn compare(path: &Path, title: &str, runs: &[Run<'_>]) -> Result<()> {
    render(path, COMPARE_SIZE, |root| {
        let root = root.titled(title, font(24))?;
        let (curves, rest) = root.split_horizontally(820);
        let (legend, bars) = rest.split_horizontally(120);
        compare_curves(&curves, runs)?;
        compare_legend(&legend, runs)?;
        compare_bars(&bars, runs)
    })
}

/// Whether `confusion` is a square, non-empty matrix that can be drawn.
pub fn is_square(confusion: &[Vec<u64>]) -> bool {
    let n = confusion.len();
    n > 0 && confusion.iter().all(|row| row.len() == n)
}

/// Colour of a cell holding `share` (0..=1) of its row: white to dark blue, on a square-root
/// scale so that a 5% confusion still shows next to a 90% diagonal.
fn heat(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0).sqrt();
    let mix = |to: u8| (255.0 + t * (f64::from(to) - 255.0)).round() as u8;
    RGBColor(mix(8), mix(48), mix(107))
}

/// A confusion matrix under `title`: rows are true classes, columns predicted
/// ones; each cell shows its count, coloured by its share of the row (the
/// class's recall on the diagonal). Rows are labelled "name (c)" when
/// `class_names` are given, numbered otherwise.
///
/// # Errors
/// [`Error::Plot`] when the matrix is not square and non-empty.
pub fn confusion(
    path: &Path,
    title: &str,
    confusion: &[Vec<u64>],
    class_names: Option<&[String]>,
) -> Result<()> {
    if !is_square(confusion) {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            message: "the confusion matrix is not square".into(),
        });
    }
    render(path, CONFUSION_SIZE, |root| {
        let root = root.titled(title, font(22))?;
        let m = confusion;
        let n = i32::try_from(m.len().max(1)).unwrap_or(i32::MAX);
        // Class c is drawn in row n - 1 - c so that class 0 is at the top.
        let class_of = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => usize::try_from(n - 1 - i).ok(),
            _ => None,
        };
        let name = |c: usize| match class_names.and_then(|n| n.get(c)) {
            Some(name) => format!("{name} ({c})"),
            None => c.to_string(),
        };
        let y_label = |v: &SegmentValue<i32>| class_of(v).map_or_else(String::new, name);
        let x_label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => i.to_string(),
            _ => String::new(),
        };
        let axis = || -> RangedCoordi32 { (0..n - 1).into() };
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(130)
            .build_cartesian_2d(axis().into_segmented(), axis().into_segmented())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(m.len())
            .y_labels(m.len())
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("predicted class")
            .y_desc("true class")
            .label_style(font(14))
            .axis_desc_style(font(15))
            .draw()?;
        for (c, row) in m.iter().enumerate() {
            let total = row.iter().sum::<u64>().max(1) as f64;
            let y = n - 1 - i32::try_from(c).unwrap_or(0);
            for (p, &count) in row.iter().enumerate() {
                let x = i32::try_from(p).unwrap_or(0);
                let share = count as f64 / total;
                let cell = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                chart.draw_series([Rectangle::new(cell, heat(share).filled())])?;
                let ink = if share > 0.3 { WHITE } else { TEXT };
                let style = font(13)
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                let centre = (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y));
                chart.draw_series([Text::new(count.to_string(), centre, style)])?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_registers() {
        assert!(font_ready());
    }

    #[test]
    fn ranges_have_room() {
        assert_eq!(epoch_range(1), 0..2);
        assert_eq!(epoch_range(20), 1..20);
        assert_eq!(value_range([], false), 0.0..1.0);
        let r = value_range([0.5, f64::NAN, 0.9], true);
        assert!(r.start < 0.5 && r.end > 0.9 && r.end <= 1.0, "{r:?}");
    }

    #[test]
    fn confusion_must_be_square() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        assert!(confusion(&path, "t", &[vec![1, 2]], None).is_err());
        confusion(
            &path,
            "t",
            &[vec![3, 1, 0], vec![0, 2, 2], vec![1, 0, 5]],
            None,
        )
        .unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }

    #[test]
    fn legend_avoids_the_lines() {
        // A falling loss curve fills the upper left and lower right.
        let falling = vec![(0.0, 1.0), (0.3, 0.4), (1.0, 0.0)];
        assert_eq!(legend_corner(&[falling]), SeriesLabelPosition::UpperRight);
        // A rising accuracy curve and a flat line at the top.
        let rising = vec![(0.0, 0.0), (0.3, 0.6), (1.0, 0.8)];
        let top = vec![(0.0, 0.95), (1.0, 0.95)];
        assert_eq!(
            legend_corner(&[rising, top]),
            SeriesLabelPosition::LowerRight
        );
    }

    #[test]
    fn heat_runs_white_to_blue() {
        assert_eq!(heat(0.0), WHITE);
        assert_eq!(heat(1.0), RGBColor(8, 48, 107));
    }
}
