//! The report's figures over seeds and sweep points, as SVG: learning
//! curves drawn as a mean line inside its 95% band ([`band_curves`]), and
//! the calibration's points against the study's values ([`calibration`]).
//!
//! SVG because it needs nothing but text: the runtime's PNG figures
//! (`netdsl_runtime::plot`) draw single runs, and a band needs a filled
//! polygon with transparency, which plain SVG has. Viewers render the text
//! in their own sans-serif font. Same colours as the runtime's figures:
//! training blue, validation orange, the study grey and dashed.

use std::fmt::Write as _;

use crate::stats::Summary;

/// Tableau blue and orange (train, validation), as in `netdsl_runtime::plot`.
pub const BLUE: &str = "#1f77b4";
pub const ORANGE: &str = "#ff7f0e";
const GREY: &str = "#787878";
const GRID: &str = "#e6e6e6";
const TEXT: &str = "#282828";
const GREEN: &str = "#2ca02c";

/// Size of [`band_curves`]: two panels side by side.
pub const BANDS_SIZE: (f64, f64) = (1200.0, 480.0);

/// An SVG document being written.
struct Svg {
    out: String,
}

/// `&`, `<`, `>` and `"` as entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Svg {
    fn new((w, h): (f64, f64)) -> Svg {
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n\
             <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
        );
        Svg { out }
    }

    fn line(
        &mut self,
        (x1, y1): (f64, f64),
        (x2, y2): (f64, f64),
        color: &str,
        width: f64,
        dashed: bool,
    ) {
        let dash = if dashed {
            " stroke-dasharray=\"8 5\""
        } else {
            ""
        };
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{color}\" stroke-width=\"{width}\"{dash}/>"
        );
    }

    fn polyline(&mut self, points: &[(f64, f64)], color: &str, width: f64) {
        let _ = writeln!(
            self.out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\"/>",
            coords(points)
        );
    }

    fn polygon(&mut self, points: &[(f64, f64)], color: &str, opacity: f64) {
        let _ = writeln!(
            self.out,
            "<polygon points=\"{}\" fill=\"{color}\" fill-opacity=\"{opacity}\" stroke=\"none\"/>",
            coords(points)
        );
    }

    fn circle(&mut self, (x, y): (f64, f64), r: f64, color: &str) {
        let _ = writeln!(
            self.out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"{color}\"/>"
        );
    }

    /// Text at `(x, y)` (the baseline), anchored `start`, `middle` or `end`.
    fn text(&mut self, (x, y): (f64, f64), text: &str, size: f64, anchor: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\" fill=\"{TEXT}\">{}</text>",
            escape(text)
        );
    }

    /// Text turned 90° counter-clockwise about `(x, y)`.
    fn text_up(&mut self, (x, y): (f64, f64), text: &str, size: f64) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"middle\" fill=\"{TEXT}\" \
             transform=\"rotate(-90 {x:.1} {y:.1})\">{}</text>",
            escape(text)
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn coords(points: &[(f64, f64)]) -> String {
    let pairs: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    pairs.join(" ")
}

/// Tick values for `[lo, hi]`: about `n` round numbers (1, 2 or 5 times a power of ten).
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A chart's plotting area and its value ranges.
struct Panel {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Panel {
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0).max(1e-12) * self.width
    }

    fn py(&self, y: f64) -> f64 {
        self.top + self.height - (y - self.y.0) / (self.y.1 - self.y.0).max(1e-12) * self.height
    }

    fn at(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.px(x), self.py(y))
    }

    /// Grid lines, y tick labels, axis titles; x ticks as `x_labels` gives them.
    fn axes(&self, svg: &mut Svg, title: &str, y_name: &str, x_labels: &[(f64, String)]) {
        let bottom = self.top + self.height;
        for y in ticks(self.y.0, self.y.1, 6) {
            let py = self.py(y);
            svg.line(
                (self.left, py),
                (self.left + self.width, py),
                GRID,
                1.0,
                false,
            );
            svg.text((self.left - 6.0, py + 4.0), &format!("{y:.2}"), 12.0, "end");
        }
        for (x, label) in x_labels {
            let px = self.px(*x);
            svg.line((px, self.top), (px, bottom), GRID, 1.0, false);
            svg.text((px, bottom + 16.0), label, 12.0, "middle");
        }
        svg.line(
            (self.left, bottom),
            (self.left + self.width, bottom),
            TEXT,
            1.0,
            false,
        );
        svg.line((self.left, self.top), (self.left, bottom), TEXT, 1.0, false);
        svg.text(
            (self.left + self.width / 2.0, self.top - 10.0),
            title,
            16.0,
            "middle",
        );
        svg.text_up(
            (self.left - 48.0, self.top + self.height / 2.0),
            y_name,
            13.0,
        );
    }
}

/// A y range around `values` with some headroom; accuracies stay within `[0, 1]`.
fn value_range(values: impl IntoIterator<Item = f64>, unit: bool) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(0.01);
    let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
    if unit {
        (lo, hi.min(1.0))
    } else {
        (lo, hi)
    }
}

/// One series of a band chart: per epoch (1-based, in order), the summary
/// over seeds; `None` where no run has the epoch's value.
pub type Series = Vec<Option<Summary>>;

/// One learning-curve panel: `[train, validation]` of one metric.
pub struct BandPanel<'a> {
    /// `loss` or `accuracy`.
    pub metric: &'a str,
    pub train: &'a Series,
    pub val: &'a Series,
    /// The study's final validation value, drawn dashed.
    pub study: Option<f64>,
}

/// Learning curves over seeds: loss (left) and accuracy (right), training
/// and validation as mean lines inside their 95% bands, the study's final
/// validation values dashed; `n` in the title. Returns the SVG text.
pub fn band_curves(title: &str, panels: [BandPanel<'_>; 2]) -> String {
    let mut svg = Svg::new(BANDS_SIZE);
    svg.text((BANDS_SIZE.0 / 2.0, 28.0), title, 20.0, "middle");
    for (i, panel) in panels.iter().enumerate() {
        let epochs = panel.train.len().max(panel.val.len()).max(1);
        let values = [panel.train, panel.val]
            .into_iter()
            .flat_map(|s| s.iter().flatten())
            .flat_map(|s| {
                let (lo, hi) = s.interval.unwrap_or((s.mean, s.mean));
                [lo, hi, s.mean]
            })
            .chain(panel.study);
        let area = Panel {
            left: i as f64 * BANDS_SIZE.0 / 2.0 + 80.0,
            top: 80.0,
            width: BANDS_SIZE.0 / 2.0 - 110.0,
            height: BANDS_SIZE.1 - 150.0,
            x: if epochs == 1 {
                (0.0, 2.0)
            } else {
                (1.0, epochs as f64)
            },
            y: value_range(values, panel.metric == "accuracy"),
        };
        let step = epochs.div_ceil(10);
        let x_labels: Vec<(f64, String)> = (1..=epochs)
            .filter(|e| (e - 1) % step == 0 || *e == epochs)
            .map(|e| (e as f64, e.to_string()))
            .collect();
        area.axes(&mut svg, panel.metric, panel.metric, &x_labels);
        svg.text(
            (area.left + area.width / 2.0, area.top + area.height + 36.0),
            "epoch",
            13.0,
            "middle",
        );
        for (series, color) in [(panel.train, BLUE), (panel.val, ORANGE)] {
            let points: Vec<(f64, Summary)> = series
                .iter()
                .enumerate()
                .filter_map(|(e, s)| Some(((e + 1) as f64, (*s)?)))
                .collect();
            let upper = points
                .iter()
                .map(|(e, s)| (*e, s.interval.map_or(s.mean, |i| i.1)));
            let lower = points
                .iter()
                .rev()
                .map(|(e, s)| (*e, s.interval.map_or(s.mean, |i| i.0)));
            let band: Vec<(f64, f64)> = upper.chain(lower).map(|p| area.at(p)).collect();
            if points.len() > 1 {
                svg.polygon(&band, color, 0.2);
            }
            let line: Vec<(f64, f64)> = points.iter().map(|(e, s)| area.at((*e, s.mean))).collect();
            svg.polyline(&line, color, 2.0);
            for p in &line {
                svg.circle(*p, 3.0, color);
            }
        }
        if let Some(study) = panel.study.filter(|v| v.is_finite()) {
            let y = area.py(study);
            svg.line((area.left, y), (area.left + area.width, y), GREY, 2.0, true);
        }
        let n = panel.val.iter().flatten().map(|s| s.n).max().unwrap_or(0);
        let mut entries = vec![
            (BLUE, false, "train: mean, 95% band".to_string()),
            (
                ORANGE,
                false,
                format!("validation: mean, 95% band (n = {n})"),
            ),
        ];
        if let Some(study) = panel.study {
            entries.push((
                GREY,
                true,
                format!("study: final val_{} {study:.4}", panel.metric),
            ));
        }
        // The legend goes in the corner that covers the fewest drawn values.
        let legend_h = 18.0 * entries.len() as f64 + 6.0;
        let drawn: Vec<(f64, f64)> = [panel.train, panel.val]
            .into_iter()
            .flat_map(|series| series.iter().enumerate())
            .filter_map(|(e, s)| Some(((e + 1) as f64, (*s)?)))
            .flat_map(|(e, s)| {
                let (lo, hi) = s.interval.unwrap_or((s.mean, s.mean));
                [(e, lo), (e, s.mean), (e, hi)]
            })
            .chain(panel.study.map(|v| (epochs as f64, v)))
            .map(|p| area.at(p))
            .collect();
        let bottom = area.top + area.height - legend_h + 6.0;
        let corners = [
            (area.left + area.width - 250.0, area.top + 14.0),
            (area.left + area.width - 250.0, bottom),
            (area.left + 18.0, bottom),
            (area.left + 18.0, area.top + 14.0),
        ];
        let covered = |&(x, y): &(f64, f64)| {
            drawn
                .iter()
                .filter(|(px, py)| {
                    (x - 12.0..x + 256.0).contains(px) && (y - 16.0..y + legend_h).contains(py)
                })
                .count()
        };
        let (lx, ly) = corners
            .iter()
            .copied()
            .min_by_key(covered)
            .unwrap_or(corners[0]);
        svg.polygon(
            &[
                (lx - 8.0, ly - 12.0),
                (lx + 252.0, ly - 12.0),
                (lx + 252.0, ly + 18.0 * entries.len() as f64 - 6.0),
                (lx - 8.0, ly + 18.0 * entries.len() as f64 - 6.0),
            ],
            "white",
            0.85,
        );
        for (k, (color, dashed, label)) in entries.iter().enumerate() {
            let y = ly + 18.0 * k as f64;
            svg.line((lx, y - 4.0), (lx + 24.0, y - 4.0), color, 2.0, *dashed);
            svg.text((lx + 30.0, y), label, 12.0, "start");
        }
    }
    svg.finish()
}

/// One point of a calibration row: its name, its accuracy and validation
/// accuracy over seeds, and its distance to the study.
pub struct CalibrationPoint<'a> {
    pub name: &'a str,
    pub accuracy: Option<Summary>,
    pub val_accuracy: Option<Summary>,
    pub distance: Option<f64>,
    /// Whether the point counts (20 epochs, all the training images, enough seeds).
    pub eligible: bool,
    pub nearest: bool,
}

/// One row of the calibration figure.
pub struct CalibrationRow<'a> {
    pub row: &'a str,
    pub points: Vec<CalibrationPoint<'a>>,
    /// The study's accuracy and validation accuracy.
    pub study: (f64, f64),
}

/// The calibration figure: one panel per row, its points along x with their
/// mean accuracy (blue) and validation accuracy (orange) and 95% whiskers,
/// the study's two values dashed, each point's distance under it, the
/// nearest in green. Returns the SVG text.
pub fn calibration(rows: &[CalibrationRow<'_>]) -> String {
    let (panel_w, panel_h) = (1200.0, 330.0);
    let size = (panel_w, 40.0 + panel_h * rows.len().max(1) as f64);
    let mut svg = Svg::new(size);
    svg.text(
        (panel_w / 2.0, 26.0),
        "Calibration: accuracy (blue) and validation accuracy (orange) per grid point, \
         mean and 95% interval; the study dashed",
        15.0,
        "middle",
    );
    for (i, row) in rows.iter().enumerate() {
        let values = row
            .points
            .iter()
            .flat_map(|p| [p.accuracy, p.val_accuracy])
            .flatten()
            .flat_map(|s| {
                let (lo, hi) = s.interval.unwrap_or((s.mean, s.mean));
                [lo, hi]
            })
            .chain([row.study.0, row.study.1]);
        let k = row.points.len().max(1);
        let area = Panel {
            left: 90.0,
            top: 40.0 + i as f64 * panel_h + 40.0,
            width: panel_w - 130.0,
            height: panel_h - 120.0,
            x: (-0.5, k as f64 - 0.5),
            y: value_range(values, true),
        };
        let labels: Vec<(f64, String)> = row
            .points
            .iter()
            .enumerate()
            .map(|(j, p)| (j as f64, p.name.to_string()))
            .collect();
        area.axes(&mut svg, row.row, "accuracy", &[]);
        for (j, (x, label)) in labels.iter().enumerate() {
            let px = area.px(*x);
            let bottom = area.top + area.height;
            // Two settings a line, so that long points stay in their slot.
            let parts: Vec<&str> = label.split(',').collect();
            let lines: Vec<String> = parts.chunks(2).map(|c| c.join(",")).collect();
            for (l, line) in lines.iter().enumerate() {
                svg.text((px, bottom + 16.0 + 13.0 * l as f64), line, 11.0, "middle");
            }
            let below = bottom + 19.0 + 13.0 * lines.len() as f64;
            let p = &row.points[j];
            let d = p
                .distance
                .map_or_else(|| "d = –".to_string(), |d| format!("d = {d:.3}"));
            let mark = match (p.nearest, p.eligible) {
                (true, _) => " (nearest)",
                (false, false) => " (not eligible)",
                (false, true) => "",
            };
            svg.text((px, below), &format!("{d}{mark}"), 11.0, "middle");
            if p.nearest {
                let half = area.width / k as f64 * 0.4;
                let slot = [
                    (px - half, area.top),
                    (px + half, area.top),
                    (px + half, bottom),
                    (px - half, bottom),
                ];
                svg.polygon(&slot, GREEN, 0.15);
            }
        }
        for (study, color) in [(row.study.0, BLUE), (row.study.1, ORANGE)] {
            let y = area.py(study);
            svg.line(
                (area.left, y),
                (area.left + area.width, y),
                color,
                1.5,
                true,
            );
        }
        for (j, p) in row.points.iter().enumerate() {
            for (summary, color, dx) in [(p.accuracy, BLUE, -6.0), (p.val_accuracy, ORANGE, 6.0)] {
                let Some(s) = summary else { continue };
                let x = area.px(j as f64) + dx;
                if let Some((lo, hi)) = s.interval {
                    svg.line((x, area.py(lo)), (x, area.py(hi)), color, 2.0, false);
                }
                svg.circle((x, area.py(s.mean)), 4.0, color);
            }
        }
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let rounded =
            |t: Vec<f64>| -> Vec<f64> { t.iter().map(|x| (x * 1e6).round() / 1e6).collect() };
        assert_eq!(rounded(ticks(0.0, 1.0, 5)), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(rounded(ticks(0.31, 0.52, 4)), [0.4, 0.5]);
        assert_eq!(rounded(ticks(0.31, 0.52, 6)), [0.35, 0.4, 0.45, 0.5]);
    }

    #[test]
    fn band_chart_is_closed_svg_with_escaped_text() {
        let s = |m: f64| Summary::of(&[m - 0.01, m, m + 0.01]);
        let train: Series = vec![s(0.5), s(0.4), s(0.3)];
        let val: Series = vec![s(0.6), None, s(0.5)];
        let text = band_curves(
            "cnn3a <x> & y",
            [
                BandPanel {
                    metric: "loss",
                    train: &train,
                    val: &val,
                    study: Some(0.34),
                },
                BandPanel {
                    metric: "accuracy",
                    train: &train,
                    val: &val,
                    study: None,
                },
            ],
        );
        assert!(text.starts_with("<svg ") && text.ends_with("</svg>\n"));
        assert!(text.contains("cnn3a &lt;x&gt; &amp; y"));
        assert_eq!(
            text.matches("<polygon").count(),
            4 + 2,
            "two bands and a legend per panel"
        );
        assert!(text.contains("(n = 3)"));
        assert!(text.contains("stroke-dasharray"));
    }
}
