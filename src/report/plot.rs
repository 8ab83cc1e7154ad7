//! SVG figures: line plots, grids of line panels, heat maps with iso-lines and scattered
//! points, and the marching-squares extractor behind the iso-lines.
//!
//! Every figure is rendered into a string with plotters' SVG backend and then written
//! atomically with `crate::fsutil::write_atomic`, so a reader never sees half a file. No
//! fonts are needed: text becomes SVG `<text>` elements laid out by the viewer.
//!
//! Input is checked before anything is drawn; bad input (no data, grid of the wrong size, …)
//! is reported as [`PlotError::Data`] naming the file that was to be written.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::fsutil::write_atomic;

/// Error while rendering or writing a figure: names the file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The drawing library failed while rendering the figure.
    #[error("cannot draw figure {path}: {message}")]
    Draw {
        /// File the figure was meant for.
        path: PathBuf,
        /// What the drawing library reported.
        message: String,
    },
    /// The rendered figure could not be written.
    #[error("cannot write figure {path}: {source}")]
    Write {
        /// File that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The data handed in cannot be plotted (nothing finite to show, grid size mismatch, …).
    #[error("figure {path}: {message}")]
    Data {
        /// File the figure was meant for.
        path: PathBuf,
        /// What is wrong with the data.
        message: String,
    },
}

/// One named curve of a line plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text; an empty label leaves the curve out of the legend.
    pub label: String,
    /// The curve's points, `(x, y)`, joined in the order given. A point that cannot be drawn
    /// (NaN, infinite, or `y <= 0` on a log axis) is skipped and breaks the line there.
    pub points: Vec<(f64, f64)>,
    /// Draw the curve dashed instead of solid.
    pub dashed: bool,
}

/// One small panel of [`line_panels`]: a title and its curves.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel {
    /// Panel title.
    pub title: String,
    /// Curves drawn in this panel.
    pub series: Vec<Series>,
}

/// Scalar field sampled on a regular grid: `values[j * xs.len() + i]` is the value at
/// `(xs[i], ys[j])`.
///
/// Plotting needs at least 2×2 samples, finite and strictly increasing `xs` and `ys`, and
/// `values.len() == xs.len() * ys.len()`. Non-finite values are allowed: such cells are drawn
/// grey and have no iso-lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Sample abscissae, strictly increasing.
    pub xs: Vec<f64>,
    /// Sample ordinates, strictly increasing.
    pub ys: Vec<f64>,
    /// Samples, row by row: `values[j * xs.len() + i]` is the value at `(xs[i], ys[j])`.
    pub values: Vec<f64>,
}

/// A class of scattered points drawn on top of a heat map.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterClass {
    /// Legend text; an empty label leaves the class out of the legend.
    pub label: String,
    /// The points, `(x, y)`. Non-finite points and points outside the map are not drawn.
    pub points: Vec<(f64, f64)>,
}

/// One heat map of [`heatmap_panels`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeatPanel {
    /// Panel title.
    pub title: String,
    /// The field to show; each panel gets its own colour range.
    pub grid: Grid,
    /// Levels at which iso-lines are drawn (may be empty).
    pub contours: Vec<f64>,
}

/// Font family of every text; SVG viewers substitute whatever sans-serif font they have.
const FONT: &str = "sans-serif";
/// Size of a single line plot, in pixels.
const LINE_SIZE: (u32, u32) = (800, 560);
/// Size of one panel of [`line_panels`].
const LINE_PANEL_SIZE: (u32, u32) = (420, 320);
/// Size of a single heat map.
const HEAT_SIZE: (u32, u32) = (640, 560);
/// Width of the colour-bar column of a single heat map.
const HEAT_BAR_WIDTH: u32 = 100;
/// Size of one panel of [`heatmap_panels`].
const HEAT_PANEL_SIZE: (u32, u32) = (400, 360);
/// Width of the colour-bar column of a heat-map panel.
const HEAT_PANEL_BAR_WIDTH: u32 = 80;
/// Height of the band holding the overall title above a grid of panels.
const SUPTITLE_HEIGHT: u32 = 44;
/// Number of colour steps in a colour bar.
const BAR_STEPS: usize = 96;

/// Colours of successive curves (matplotlib's "tab10").
const LINE_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Marker colours of successive scatter classes; they stand out on both colour maps.
const SCATTER_COLOURS: [RGBColor; 6] = [
    RGBColor(0, 0, 0),
    RGBColor(255, 221, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

/// Diverging map, blue (-1) through white (0) to red (+1), as stops at -1, -0.5, 0, 0.5, 1.
const DIVERGING: [(u8, u8, u8); 5] = [
    (33, 102, 172),
    (146, 197, 222),
    (247, 247, 247),
    (244, 165, 130),
    (178, 24, 43),
];

/// Sequential map (viridis), as evenly spaced stops from low to high.
const SEQUENTIAL: [(u8, u8, u8); 5] = [
    (68, 1, 84),
    (59, 82, 139),
    (33, 145, 140),
    (94, 201, 98),
    (253, 231, 37),
];

/// A colour map is resolved in this many steps (an even number, so its middle is exact).
const COLOUR_LEVELS: f64 = 256.0;

/// Colour of cells whose value is not finite.
const MISSING_COLOUR: RGBColor = RGBColor(190, 190, 190);

/// Result of the drawing code; turned into [`PlotError::Draw`] at the top.
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Drawing area of an SVG figure.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// Line plot: several series, legend, axis labels, optional log-scale y (values `<= 0` are
/// dropped then). Axis ranges are computed from the data with a small margin; NaN/inf points
/// are skipped.
///
/// Returns [`PlotError::Data`] when `series` is empty or holds no drawable point.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), PlotError> {
    if series.is_empty() {
        return Err(data_error(path, "no series to plot"));
    }
    let prepared = prepare_series(series, log_y);
    let Some(ranges) = line_ranges(&prepared, log_y) else {
        let what = if log_y { "finite positive" } else { "finite" };
        return Err(data_error(path, format!("no {what} points to plot")));
    };
    let style = LineStyle::full();
    render(path, LINE_SIZE, |root| {
        let axes = Axes {
            title,
            x_label,
            y_label,
        };
        draw_line_chart(root, &axes, &prepared, &ranges, &style)
    })
}

/// Same as [`line_plot`] but a grid of small panels (one per [`LinePanel`]) in one SVG, `cols`
/// per row (fewer when there are fewer panels). Each panel has its own axis ranges and a
/// linear y axis; a panel without drawable points is drawn empty.
///
/// Returns [`PlotError::Data`] when `panels` is empty, `cols` is 0, or no panel holds a
/// drawable point.
pub fn line_panels(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    panels: &[LinePanel],
    cols: usize,
) -> Result<(), PlotError> {
    if panels.is_empty() {
        return Err(data_error(path, "no panels to plot"));
    }
    if cols == 0 {
        return Err(data_error(path, "number of columns must be at least 1"));
    }
    let prepared: Vec<_> = panels
        .iter()
        .map(|p| {
            let series = prepare_series(&p.series, false);
            let ranges = line_ranges(&series, false);
            (p.title.as_str(), series, ranges)
        })
        .collect();
    if prepared.iter().all(|(_, _, r)| r.is_none()) {
        return Err(data_error(path, "no finite points to plot in any panel"));
    }
    let (rows, cols) = grid_shape(panels.len(), cols);
    let size = panel_figure_size(LINE_PANEL_SIZE, rows, cols, title);
    let style = LineStyle::panel();
    render(path, size, |root| {
        let body = titled(root, title)?;
        let areas = body.split_evenly((rows, cols));
        for ((panel_title, series, ranges), area) in prepared.iter().zip(areas.iter()) {
            let axes = Axes {
                title: panel_title,
                x_label,
                y_label,
            };
            let ranges = ranges.clone().unwrap_or(LineRanges {
                x: 0.0..1.0,
                y: 0.0..1.0,
                log_y: false,
            });
            draw_line_chart(area, &axes, series, &ranges, &style)?;
        }
        Ok(())
    })
}

/// Heat map of `grid` (diverging blue–white–red colour map centred at 0 when the data has
/// both signs, otherwise a sequential map), with iso-lines at each value of `contours` (the
/// line at 0 solid black and thicker, others thin, dashed and dark on a faint light halo),
/// points of each class on top (distinct marker colour per class, small, semi-transparent),
/// and a colour bar with its value range (the data's minimum and maximum printed below and
/// above it).
///
/// Cells are centred on the samples; non-finite samples are drawn grey. Returns
/// [`PlotError::Data`] when the grid is malformed (see [`Grid`]) or has no finite value.
pub fn heatmap(
    path: &Path,
    title: &str,
    grid: &Grid,
    contours: &[f64],
    scatter: &[ScatterClass],
) -> Result<(), PlotError> {
    let heat = HeatData::new(path, grid)?;
    let style = HeatStyle::full();
    render(path, HEAT_SIZE, |root| {
        draw_heat(root, title, &heat, contours, scatter, &style)
    })
}

/// Several heat maps side by side (e.g. four hidden neurons, or the same random net under
/// different activations), `cols` per row (fewer when there are fewer panels), each with its
/// own title, own colour range and colour bar, optional contours, no scatter.
///
/// Returns [`PlotError::Data`] when `panels` is empty, `cols` is 0, or a panel's grid is
/// malformed or has no finite value (the message names the panel).
pub fn heatmap_panels(
    path: &Path,
    title: &str,
    panels: &[HeatPanel],
    cols: usize,
) -> Result<(), PlotError> {
    if panels.is_empty() {
        return Err(data_error(path, "no panels to plot"));
    }
    if cols == 0 {
        return Err(data_error(path, "number of columns must be at least 1"));
    }
    let heats = panels
        .iter()
        .enumerate()
        .map(|(k, p)| {
            HeatData::new(path, &p.grid).map_err(|e| match e {
                PlotError::Data { path, message } => PlotError::Data {
                    path,
                    message: format!("panel {k} ({:?}): {message}", p.title),
                },
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (rows, cols) = grid_shape(panels.len(), cols);
    let size = panel_figure_size(HEAT_PANEL_SIZE, rows, cols, title);
    let style = HeatStyle::panel();
    render(path, size, |root| {
        let body = titled(root, title)?;
        let areas = body.split_evenly((rows, cols));
        for ((panel, heat), area) in panels.iter().zip(&heats).zip(areas.iter()) {
            draw_heat(area, &panel.title, heat, &panel.contours, &[], &style)?;
        }
        Ok(())
    })
}

/// Marching squares: iso-line segments of `grid` at `level`, in data coordinates.
///
/// A sample equal to the level counts as above it. Saddle cells (two diagonal corners above,
/// two below) are resolved by the average of the four corners: when it is above the level
/// the two above corners are joined. Cells with a non-finite corner are skipped, as are
/// zero-length segments. A malformed grid (see [`Grid`]; monotonicity is not needed here) or
/// a non-finite level gives no segments.
pub fn contour_segments(grid: &Grid, level: f64) -> Vec<((f64, f64), (f64, f64))> {
    raw_segments(grid, level)
        .into_iter()
        .map(|(a, b)| (edge_point(grid, level, a), edge_point(grid, level, b)))
        .filter(|(a, b)| a != b)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Rendering plumbing
// ---------------------------------------------------------------------------------------------

/// Builds a [`PlotError::Data`] for `path`.
fn data_error(path: &Path, message: impl Into<String>) -> PlotError {
    PlotError::Data {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Renders a figure of `size` pixels with `draw` into an SVG string and writes it to `path`.
fn render<F>(path: &Path, size: (u32, u32), draw: F) -> Result<(), PlotError>
where
    F: for<'a> FnOnce(&Area<'a>) -> DrawResult,
{
    let draw_error = |e: DrawingAreaErrorKind<std::io::Error>| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root).map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    write_atomic(path, svg.as_bytes()).map_err(|source| PlotError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Draws `title` in a band at the top of `root` (when not empty) and returns the rest.
fn titled<'a>(
    root: &Area<'a>,
    title: &str,
) -> Result<Area<'a>, DrawingAreaErrorKind<std::io::Error>> {
    if title.is_empty() {
        return Ok(root.clone());
    }
    let (band, body) = root.split_vertically(SUPTITLE_HEIGHT);
    let (w, h) = band.dim_in_pixel();
    let style = TextStyle::from((FONT, 24).into_font())
        .pos(Pos::new(HPos::Center, VPos::Center))
        .color(&BLACK);
    band.draw_text(title, &style, (w as i32 / 2, h as i32 / 2))?;
    Ok(body)
}

/// Rows and columns of a grid of `n >= 1` panels with at most `cols >= 1` per row.
fn grid_shape(n: usize, cols: usize) -> (usize, usize) {
    let cols = cols.clamp(1, n.max(1));
    (n.div_ceil(cols), cols)
}

/// Pixel size of a figure holding `rows` × `cols` panels of `panel` pixels, plus the band of
/// the overall title when there is one.
fn panel_figure_size(panel: (u32, u32), rows: usize, cols: usize, title: &str) -> (u32, u32) {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let band = if title.is_empty() { 0 } else { SUPTITLE_HEIGHT };
    (
        panel.0.saturating_mul(count(cols)),
        panel.1.saturating_mul(count(rows)).saturating_add(band),
    )
}

/// Formats a tick value of an axis `span` long (`end - start`, also on a log axis), with
/// just enough decimals to tell ticks apart; a value below a billionth of the span is shown as 0 (rounding noise of the tick
/// positions).
fn fmt_tick(v: f64, span: f64) -> String {
    if !(span.is_finite() && span > 0.0 && v.is_finite()) {
        return fmt_num(v);
    }
    if v == 0.0 || v.abs() < span * 1e-9 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        // Enough mantissa digits to resolve the span at this magnitude. Both logarithms are
        // of finite positive numbers, so the casts are exact.
        let digits = (a.log10().floor() - span.log10().floor() + 1.0).clamp(1.0, 6.0) as usize;
        return format!("{v:.digits$e}");
    }
    // Enough decimals to resolve the span, and at least two significant digits of the value
    // itself (a log axis has small ticks on a long span).
    let decimals = (3.0 - span.log10().floor())
        .max(1.0 - a.log10().floor())
        .clamp(0.0, 10.0) as usize;
    trim_decimals(format!("{v:.decimals$}"))
}

/// Drops trailing zeros (and a trailing point) of a number printed with decimals.
fn trim_decimals(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Formats a number with about four significant digits, switching to exponent notation for
/// very large or very small magnitudes.
fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    // `a` is in [1e-3, 1e5), so the exponent is in [-3, 4] and the cast is exact.
    let exponent = a.log10().floor() as i32;
    let decimals = usize::try_from((3 - exponent).clamp(0, 6)).unwrap_or(0);
    trim_decimals(format!("{v:.decimals$}"))
}

/// `[lo, hi]` widened by `frac` of its length on each side (or by a tenth of its magnitude,
/// or 1, when it is a single value), staying finite.
fn pad_linear(lo: f64, hi: f64, frac: f64) -> Range<f64> {
    let margin = if hi > lo {
        (hi - lo) * frac
    } else if lo != 0.0 {
        lo.abs() * 0.1
    } else {
        1.0
    };
    let (a, b) = (lo - margin, hi + margin);
    if a.is_finite() && b.is_finite() && a < b {
        a..b
    } else if hi > lo {
        lo..hi
    } else {
        // A single value of huge magnitude: extend towards zero instead.
        if lo > 0.0 { lo * 0.9..hi } else { lo..hi * 0.9 }
    }
}

/// `[lo, hi]` (both > 0) widened by a small factor on each side, for a log axis.
fn pad_log(lo: f64, hi: f64) -> Range<f64> {
    let factor = if hi > lo { (hi / lo).powf(0.04) } else { 2.0 };
    let (a, b) = (lo / factor, hi * factor);
    if a > 0.0 && b.is_finite() && a < b {
        a..b
    } else if hi > lo {
        lo..hi
    } else {
        lo * 0.5..hi
    }
}

/// Smallest and largest of the finite values, if any.
fn finite_bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

// ---------------------------------------------------------------------------------------------
// Line plots
// ---------------------------------------------------------------------------------------------

/// A series ready to draw: its drawable points split into runs at skipped points.
struct PreparedSeries<'a> {
    label: &'a str,
    dashed: bool,
    colour: RGBColor,
    runs: Vec<Vec<(f64, f64)>>,
}

/// Axis ranges of a line chart.
#[derive(Clone)]
struct LineRanges {
    x: Range<f64>,
    y: Range<f64>,
    log_y: bool,
}

/// Texts around a chart.
struct Axes<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
}

/// Sizes used by a line chart.
struct LineStyle {
    caption: u32,
    font: u32,
    margin: u32,
    x_area: u32,
    y_area: u32,
    stroke: u32,
    dash: (u32, u32),
}

impl LineStyle {
    fn full() -> Self {
        LineStyle {
            caption: 22,
            font: 14,
            margin: 16,
            x_area: 50,
            y_area: 80,
            stroke: 2,
            dash: (8, 5),
        }
    }

    fn panel() -> Self {
        LineStyle {
            caption: 16,
            font: 11,
            margin: 8,
            x_area: 38,
            y_area: 62,
            stroke: 2,
            dash: (6, 4),
        }
    }
}

/// Splits each series into runs of drawable points and gives it its colour.
fn prepare_series(series: &[Series], log_y: bool) -> Vec<PreparedSeries<'_>> {
    series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let mut runs = Vec::new();
            let mut run = Vec::new();
            for &(x, y) in &s.points {
                let ok = x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
                if ok {
                    run.push((x, y));
                } else if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
            if !run.is_empty() {
                runs.push(run);
            }
            PreparedSeries {
                label: &s.label,
                dashed: s.dashed,
                colour: LINE_COLOURS[k % LINE_COLOURS.len()],
                runs,
            }
        })
        .collect()
}

/// Axis ranges covering every drawable point with a small margin; `None` without points.
fn line_ranges(series: &[PreparedSeries<'_>], log_y: bool) -> Option<LineRanges> {
    let points = || series.iter().flat_map(|s| s.runs.iter().flatten());
    let (x0, x1) = finite_bounds(points().map(|p| p.0))?;
    let (y0, y1) = finite_bounds(points().map(|p| p.1))?;
    let y = if log_y {
        pad_log(y0, y1)
    } else {
        pad_linear(y0, y1, 0.05)
    };
    Some(LineRanges {
        x: pad_linear(x0, x1, 0.02),
        y,
        log_y,
    })
}

/// Draws a complete line chart (caption, axes, curves, legend) into `area`.
fn draw_line_chart(
    area: &Area<'_>,
    axes: &Axes<'_>,
    series: &[PreparedSeries<'_>],
    ranges: &LineRanges,
    style: &LineStyle,
) -> DrawResult {
    // A log axis is a different coordinate type, hence the generic helper.
    if ranges.log_y {
        draw_line_chart_on(
            area,
            axes,
            series,
            ranges.x.clone(),
            ranges.y.clone().log_scale(),
            style,
        )
    } else {
        draw_line_chart_on(
            area,
            axes,
            series,
            ranges.x.clone(),
            ranges.y.clone(),
            style,
        )
    }
}

/// Draws a line chart on a y coordinate of any kind (linear or logarithmic).
fn draw_line_chart_on<Y>(
    area: &Area<'_>,
    axes: &Axes<'_>,
    series: &[PreparedSeries<'_>],
    x_range: Range<f64>,
    y_spec: Y,
    style: &LineStyle,
) -> DrawResult
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let x_span = x_range.end - x_range.start;
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(style.margin)
        .x_label_area_size(style.x_area)
        .y_label_area_size(style.y_area);
    if !axes.title.is_empty() {
        builder.caption(axes.title, (FONT, style.caption));
    }
    let mut chart = builder.build_cartesian_2d(x_range, y_spec)?;
    let y_range = chart.y_range();
    let y_span = y_range.end - y_range.start;
    let x_fmt = move |v: &f64| fmt_tick(*v, x_span);
    let y_fmt = move |v: &f64| fmt_tick(*v, y_span);
    chart
        .configure_mesh()
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .x_desc(axes.x_label)
        .y_desc(axes.y_label)
        .label_style((FONT, style.font))
        .axis_desc_style((FONT, style.font + 1))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()?;

    let mut any_label = false;
    for s in series {
        let line_style = s.colour.stroke_width(style.stroke);
        let mut labelled = s.label.is_empty();
        for run in &s.runs {
            let anno = if run.len() == 1 {
                chart.draw_series(run.iter().map(|&p| Circle::new(p, 3, s.colour.filled())))?
            } else if s.dashed {
                chart.draw_series(DashedLineSeries::new(
                    run.iter().copied(),
                    style.dash.0,
                    style.dash.1,
                    line_style,
                ))?
            } else {
                chart.draw_series(LineSeries::new(run.iter().copied(), line_style))?
            };
            if !labelled {
                labelled = true;
                any_label = true;
                let (dashed, dash) = (s.dashed, style.dash);
                anno.label(s.label).legend(move |(x, y)| {
                    let pts = vec![(x, y), (x + 24, y)];
                    if dashed {
                        DashedPathElement::new(pts, dash.0, dash.1, line_style).into_dyn()
                    } else {
                        PathElement::new(pts, line_style).into_dyn()
                    }
                });
            }
        }
    }
    if any_label {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, style.font))
            .draw()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Heat maps
// ---------------------------------------------------------------------------------------------

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ColourMap {
    /// Blue–white–red over `[-half, half]`, white at 0.
    Diverging { half: f64 },
    /// Viridis over `[lo, hi]`.
    Sequential { lo: f64, hi: f64 },
}

impl ColourMap {
    /// The map suited to data spanning `[min, max]` (both finite, `min <= max`).
    fn for_data(min: f64, max: f64) -> Self {
        if min < 0.0 && max > 0.0 {
            let half = min.abs().max(max);
            ColourMap::Diverging { half }
        } else {
            // Exactly `[min, max]`, or a small range around a single value.
            let r = pad_linear(min, max, 0.0);
            ColourMap::Sequential {
                lo: r.start,
                hi: r.end,
            }
        }
    }

    /// The value range covered by the colour bar.
    fn range(self) -> Range<f64> {
        match self {
            ColourMap::Diverging { half } => -half..half,
            ColourMap::Sequential { lo, hi } => lo..hi,
        }
    }

    /// Colour of `v`; values outside the range get the end colours, non-finite ones grey.
    fn colour(self, v: f64) -> RGBColor {
        if !v.is_finite() {
            return MISSING_COLOUR;
        }
        let r = self.range();
        let t = ((v - r.start) / (r.end - r.start)).clamp(0.0, 1.0);
        // Quantised to 257 levels, as colour tables usually are: neighbouring cells then
        // often share a colour and merge into one rectangle, which keeps the SVG small.
        let t = if t.is_finite() {
            (t * COLOUR_LEVELS).round() / COLOUR_LEVELS
        } else {
            0.5
        };
        let stops = match self {
            ColourMap::Diverging { .. } => &DIVERGING,
            ColourMap::Sequential { .. } => &SEQUENTIAL,
        };
        interpolate_stops(stops, t)
    }
}

/// Colour at `t` in `[0, 1]` along evenly spaced colour stops.
fn interpolate_stops(stops: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let last = stops.len().saturating_sub(1);
    let Some(&first) = stops.first() else {
        return MISSING_COLOUR;
    };
    if last == 0 {
        return RGBColor(first.0, first.1, first.2);
    }
    let pos = t.clamp(0.0, 1.0) * last as f64;
    // `pos` is in [0, last], so the cast cannot truncate out of range.
    let k = (pos.floor() as usize).min(last - 1);
    let f = pos - k as f64;
    let (a, b) = (stops[k], stops[k + 1]);
    let mix = |p: u8, q: u8| {
        let v = f64::from(p) + (f64::from(q) - f64::from(p)) * f;
        // Clamped to the byte range first, so the cast is exact.
        v.round().clamp(0.0, 255.0) as u8
    };
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A validated grid with what drawing it needs.
struct HeatData<'a> {
    grid: &'a Grid,
    /// Cell boundaries along x: cell `i` spans `xb[i]..xb[i + 1]`, centred on `xs[i]`.
    xb: Vec<f64>,
    /// Cell boundaries along y.
    yb: Vec<f64>,
    min: f64,
    max: f64,
    map: ColourMap,
}

impl<'a> HeatData<'a> {
    /// Checks `grid` (see [`Grid`]) and prepares it for drawing.
    fn new(path: &Path, grid: &'a Grid) -> Result<Self, PlotError> {
        check_grid_shape(grid).map_err(|m| data_error(path, m))?;
        check_axis("xs", &grid.xs).map_err(|m| data_error(path, m))?;
        check_axis("ys", &grid.ys).map_err(|m| data_error(path, m))?;
        let (min, max) = finite_bounds(grid.values.iter().copied())
            .ok_or_else(|| data_error(path, "grid has no finite value"))?;
        Ok(HeatData {
            grid,
            xb: cell_bounds(&grid.xs),
            yb: cell_bounds(&grid.ys),
            min,
            max,
            map: ColourMap::for_data(min, max),
        })
    }

    fn x_range(&self) -> Range<f64> {
        self.xb[0]..self.xb[self.xb.len() - 1]
    }

    fn y_range(&self) -> Range<f64> {
        self.yb[0]..self.yb[self.yb.len() - 1]
    }
}

/// Checks that the grid has at least 2×2 samples and one value per sample.
fn check_grid_shape(grid: &Grid) -> Result<(), String> {
    let (nx, ny) = (grid.xs.len(), grid.ys.len());
    if nx < 2 || ny < 2 {
        return Err(format!("grid must be at least 2x2, got {nx}x{ny}"));
    }
    if nx.checked_mul(ny) != Some(grid.values.len()) {
        return Err(format!(
            "grid of {nx}x{ny} samples needs {} values, got {}",
            nx.saturating_mul(ny),
            grid.values.len()
        ));
    }
    Ok(())
}

/// Checks that axis samples are finite and strictly increasing.
fn check_axis(name: &str, axis: &[f64]) -> Result<(), String> {
    if let Some(k) = axis.iter().position(|v| !v.is_finite()) {
        return Err(format!("{name}[{k}] is not finite"));
    }
    if let Some(k) = axis.windows(2).position(|w| w[1] <= w[0]) {
        return Err(format!(
            "{name} must be strictly increasing (at index {})",
            k + 1
        ));
    }
    if let (Some(first), Some(last)) = (axis.first(), axis.last())
        && !(last - first).is_finite()
    {
        return Err(format!("{name} spans more than a finite range"));
    }
    Ok(())
}

/// Boundaries of cells centred on `centres` (at least two, increasing): midpoints between
/// neighbours, and half a step beyond each end.
fn cell_bounds(centres: &[f64]) -> Vec<f64> {
    let n = centres.len();
    let mut b = Vec::with_capacity(n + 1);
    b.push(centres[0] - (centres[1] - centres[0]) / 2.0);
    b.extend(centres.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0));
    b.push(centres[n - 1] + (centres[n - 1] - centres[n - 2]) / 2.0);
    b
}

/// Sizes used by a heat map.
struct HeatStyle {
    caption: u32,
    font: u32,
    margin: u32,
    x_area: u32,
    y_area: u32,
    bar_width: u32,
    bar_label_area: u32,
    marker: u32,
}

impl HeatStyle {
    fn full() -> Self {
        HeatStyle {
            caption: 20,
            font: 13,
            margin: 12,
            x_area: 36,
            y_area: 56,
            bar_width: HEAT_BAR_WIDTH,
            bar_label_area: 56,
            marker: 3,
        }
    }

    fn panel() -> Self {
        HeatStyle {
            caption: 15,
            font: 11,
            margin: 8,
            x_area: 28,
            y_area: 46,
            bar_width: HEAT_PANEL_BAR_WIDTH,
            bar_label_area: 48,
            marker: 2,
        }
    }
}

/// Draws one heat map with contours, scatter and colour bar into `area`.
fn draw_heat(
    area: &Area<'_>,
    title: &str,
    heat: &HeatData<'_>,
    contours: &[f64],
    scatter: &[ScatterClass],
    style: &HeatStyle,
) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let (map_area, bar_area) = area.split_horizontally(w.saturating_sub(style.bar_width));

    let mut builder = ChartBuilder::on(&map_area);
    builder
        .margin(style.margin)
        .x_label_area_size(style.x_area)
        .y_label_area_size(style.y_area);
    if !title.is_empty() {
        builder.caption(title, (FONT, style.caption));
    }
    let (xr, yr) = (heat.x_range(), heat.y_range());
    let (x_span, y_span) = (xr.end - xr.start, yr.end - yr.start);
    let mut chart = builder.build_cartesian_2d(xr.clone(), yr.clone())?;
    let x_fmt = move |v: &f64| fmt_tick(*v, x_span);
    let y_fmt = move |v: &f64| fmt_tick(*v, y_span);
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, style.font))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()?;

    // Cells, one rectangle per run of equal colour along a row.
    let grid = heat.grid;
    let nx = grid.xs.len();
    let mut cells = Vec::new();
    for (j, row) in grid.values.chunks(nx).enumerate() {
        let mut start = 0;
        let mut current = heat.map.colour(row[0]);
        for i in 1..=nx {
            let next = row.get(i).map(|&v| heat.map.colour(v));
            if next != Some(current) {
                cells.push(Rectangle::new(
                    [(heat.xb[start], heat.yb[j]), (heat.xb[i], heat.yb[j + 1])],
                    current.filled(),
                ));
                if let Some(c) = next {
                    current = c;
                    start = i;
                }
            }
        }
    }
    chart.draw_series(cells)?;

    // Iso-lines.
    for &level in contours.iter().filter(|l| l.is_finite()) {
        let lines = contour_polylines(grid, level);
        if level == 0.0 {
            let line_style = BLACK.stroke_width(2);
            chart.draw_series(lines.into_iter().map(|l| PathElement::new(l, line_style)))?;
        } else {
            // A faint light halo keeps the dark dashes visible on dark colours too.
            let halo = WHITE.mix(0.5).stroke_width(3);
            chart.draw_series(lines.iter().map(|l| PathElement::new(l.clone(), halo)))?;
            let line_style = RGBColor(30, 30, 30).stroke_width(1);
            chart.draw_series(
                lines
                    .into_iter()
                    .map(|l| DashedPathElement::new(l, 5, 3, line_style)),
            )?;
        }
    }

    // Scattered points.
    let inside =
        |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && xr.contains(&x) && yr.contains(&y);
    let mut any_label = false;
    for (k, class) in scatter.iter().enumerate() {
        let colour = SCATTER_COLOURS[k % SCATTER_COLOURS.len()];
        let fill = colour.mix(0.7).filled();
        let outline = BLACK.mix(0.55).stroke_width(1);
        let points: Vec<(f64, f64)> = class.points.iter().copied().filter(inside).collect();
        let marker = style.marker;
        let anno = chart.draw_series(points.iter().map(|&p| Circle::new(p, marker, fill)))?;
        if !class.label.is_empty() {
            any_label = true;
            anno.label(class.label.as_str()).legend(move |(x, y)| {
                EmptyElement::at((x + 8, y))
                    + Circle::new((0, 0), marker + 1, fill)
                    + Circle::new((0, 0), marker + 1, outline)
            });
        }
        chart.draw_series(points.iter().map(|&p| Circle::new(p, marker, outline)))?;
    }
    if any_label {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, style.font))
            .draw()?;
    }

    // Colour bar, aligned with the plotting area of the map.
    let (_, plot_y) = chart.plotting_area().get_pixel_range();
    draw_colour_bar(&bar_area, heat, plot_y, style)
}

/// Draws the colour bar of `heat` into `area`, spanning the pixel rows `plot_y` of the figure.
fn draw_colour_bar(
    area: &Area<'_>,
    heat: &HeatData<'_>,
    plot_y: Range<i32>,
    style: &HeatStyle,
) -> DrawResult {
    let (_, top) = area.get_base_pixel();
    let (_, h) = area.dim_in_pixel();
    let bottom = top + i32::try_from(h).unwrap_or(i32::MAX);
    let margin_top = u32::try_from(plot_y.start - top).unwrap_or(0);
    let margin_bottom = u32::try_from(bottom - plot_y.end).unwrap_or(0);
    let range = heat.map.range();
    let span = range.end - range.start;
    let mut chart = ChartBuilder::on(area)
        .margin_top(margin_top)
        .margin_bottom(margin_bottom)
        .margin_left(style.margin)
        .margin_right(4)
        .right_y_label_area_size(style.bar_label_area)
        .build_cartesian_2d(0.0..1.0, range.clone())?;
    let y_fmt = move |v: &f64| fmt_tick(*v, span);
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(7)
        .label_style((FONT, style.font))
        .y_label_formatter(&y_fmt)
        .draw()?;
    let steps = (0..BAR_STEPS).map(|k| {
        let v0 = range.start + span * k as f64 / BAR_STEPS as f64;
        let v1 = range.start + span * (k + 1) as f64 / BAR_STEPS as f64;
        let colour = heat.map.colour(v0 + (v1 - v0) / 2.0);
        Rectangle::new([(0.0, v0), (1.0, v1)], colour.filled())
    });
    chart.draw_series(steps)?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, range.start), (1.0, range.end)],
        BLACK.mix(0.6).stroke_width(1),
    )))?;

    // The data's own extremes, above and below the bar.
    let (bar_x, _) = chart.plotting_area().get_pixel_range();
    let centre_x = bar_x.start + (bar_x.end - bar_x.start) / 2;
    let text = TextStyle::from((FONT, style.font).into_font()).color(&BLACK);
    let above = text.pos(Pos::new(HPos::Center, VPos::Bottom));
    let below = text.pos(Pos::new(HPos::Center, VPos::Top));
    let origin = area.get_base_pixel();
    let local = |x: i32, y: i32| (x - origin.0, y - origin.1);
    area.draw_text(
        &format!("max {}", fmt_num(heat.max)),
        &above,
        local(centre_x, plot_y.start - 4),
    )?;
    area.draw_text(
        &format!("min {}", fmt_num(heat.min)),
        &below,
        local(centre_x, plot_y.end + 4),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Marching squares
// ---------------------------------------------------------------------------------------------

/// A grid edge, where an iso-line can cross: `H(i, j)` joins samples `(i, j)` and
/// `(i + 1, j)`; `V(i, j)` joins `(i, j)` and `(i, j + 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Edge {
    H(usize, usize),
    V(usize, usize),
}

/// Iso-line segments as pairs of crossed edges. Each edge belongs to at most two cells and
/// is used by exactly one segment of each, so segments chain into polylines by their edges.
fn raw_segments(grid: &Grid, level: f64) -> Vec<(Edge, Edge)> {
    let mut out = Vec::new();
    if check_grid_shape(grid).is_err() || !level.is_finite() {
        return out;
    }
    let nx = grid.xs.len();
    let value = |i: usize, j: usize| grid.values[j * nx + i];
    for j in 0..grid.ys.len() - 1 {
        for i in 0..nx - 1 {
            // Corners counter-clockwise from bottom-left; edge k joins corners k and k+1.
            let c = [
                value(i, j),
                value(i + 1, j),
                value(i + 1, j + 1),
                value(i, j + 1),
            ];
            if c.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let edges = [
                Edge::H(i, j),
                Edge::V(i + 1, j),
                Edge::H(i, j + 1),
                Edge::V(i, j),
            ];
            let above = c.map(|v| v >= level);
            let crossed: Vec<usize> = (0..4).filter(|&k| above[k] != above[(k + 1) % 4]).collect();
            match crossed[..] {
                [a, b] => out.push((edges[a], edges[b])),
                [_, _, _, _] => {
                    // Saddle: cut off the two corners on the other side from the centre.
                    let centre = c.iter().map(|v| v * 0.25).sum::<f64>() >= level;
                    for k in 0..4 {
                        if above[k] != centre {
                            // Corner k lies between edges k-1 and k.
                            out.push((edges[(k + 3) % 4], edges[k]));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Where the iso-line at `level` crosses `edge`, by linear interpolation. Depends on the edge
/// alone, so the two cells sharing an edge agree exactly.
fn edge_point(grid: &Grid, level: f64, edge: Edge) -> (f64, f64) {
    let nx = grid.xs.len();
    let value = |i: usize, j: usize| grid.values[j * nx + i];
    let fraction = |a: f64, b: f64| {
        let t = (level - a) / (b - a);
        if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.5
        }
    };
    let lerp = |p: f64, q: f64, t: f64| p + (q - p) * t;
    match edge {
        Edge::H(i, j) => {
            let t = fraction(value(i, j), value(i + 1, j));
            (lerp(grid.xs[i], grid.xs[i + 1], t), grid.ys[j])
        }
        Edge::V(i, j) => {
            let t = fraction(value(i, j), value(i, j + 1));
            (grid.xs[i], lerp(grid.ys[j], grid.ys[j + 1], t))
        }
    }
}

/// Iso-lines of `grid` at `level` as polylines (closed ones end where they start).
fn contour_polylines(grid: &Grid, level: f64) -> Vec<Vec<(f64, f64)>> {
    let segments = raw_segments(grid, level);
    let mut by_edge: HashMap<Edge, Vec<usize>> = HashMap::new();
    for (k, &(a, b)) in segments.iter().enumerate() {
        by_edge.entry(a).or_default().push(k);
        by_edge.entry(b).or_default().push(k);
    }
    let mut used = vec![false; segments.len()];
    let walk = |start: Edge, used: &mut Vec<bool>| {
        let mut line = vec![edge_point(grid, level, start)];
        let mut at = start;
        while let Some(&k) = by_edge
            .get(&at)
            .and_then(|ks| ks.iter().find(|&&k| !used[k]))
        {
            used[k] = true;
            let (a, b) = segments[k];
            at = if a == at { b } else { a };
            line.push(edge_point(grid, level, at));
        }
        line
    };
    let mut lines = Vec::new();
    // Open lines first, from their ends, so they come out whole; then the closed loops.
    let ends: Vec<Edge> = segments
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .filter(|e| by_edge.get(e).is_some_and(|ks| ks.len() == 1))
        .collect();
    for end in ends {
        let line = walk(end, &mut used);
        if line.len() > 1 {
            lines.push(line);
        }
    }
    for k in 0..segments.len() {
        if !used[k] {
            let line = walk(segments[k].0, &mut used);
            if line.len() > 1 {
                lines.push(line);
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|k| a + (b - a) * k as f64 / (n - 1) as f64)
            .collect()
    }

    fn sample(xs: &[f64], ys: &[f64], f: impl Fn(f64, f64) -> f64) -> Grid {
        let values = ys
            .iter()
            .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Grid {
            xs: xs.to_vec(),
            ys: ys.to_vec(),
            values,
        }
    }

    fn square_grid(n: usize, f: impl Fn(f64, f64) -> f64) -> Grid {
        let axis = linspace(-2.0, 2.0, n);
        sample(&axis, &axis, f)
    }

    fn same_segment(s: ((f64, f64), (f64, f64)), a: (f64, f64), b: (f64, f64)) -> bool {
        let close =
            |p: (f64, f64), q: (f64, f64)| (p.0 - q.0).abs() < 1e-12 && (p.1 - q.1).abs() < 1e-12;
        (close(s.0, a) && close(s.1, b)) || (close(s.0, b) && close(s.1, a))
    }

    fn assert_svg(path: &Path, title: &str) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.starts_with("<svg"),
            "not an SVG: {}",
            &text[..text.len().min(80)]
        );
        assert!(text.contains(title), "title {title:?} missing");
        assert!(text.trim_end().ends_with("</svg>"));
    }

    fn assert_data_error(result: Result<(), PlotError>, path: &Path) {
        match result {
            Err(PlotError::Data { path: p, message }) => {
                assert_eq!(p, path);
                assert!(!message.is_empty());
            }
            other => panic!("expected a data error, got {other:?}"),
        }
        assert!(!path.exists(), "nothing must be written on bad input");
    }

    #[test]
    fn circle_contour_follows_the_circle() {
        let grid = square_grid(41, |x, y| x * x + y * y);
        let step = 0.1;
        let segments = contour_segments(&grid, 1.0);
        assert!(segments.len() > 20, "only {} segments", segments.len());
        for (a, b) in segments {
            for (x, y) in [a, b] {
                let r = x.hypot(y);
                assert!((r - 1.0).abs() <= step, "point ({x}, {y}) at radius {r}");
            }
        }
        let lines = contour_polylines(&grid, 1.0);
        assert_eq!(lines.len(), 1, "one closed loop expected");
        let line = &lines[0];
        assert_eq!(line.first(), line.last(), "loop must be closed");
    }

    #[test]
    fn linear_field_gives_a_straight_line() {
        let grid = square_grid(21, |x, y| x + 2.0 * y);
        let segments = contour_segments(&grid, 0.3);
        assert!(!segments.is_empty());
        for (a, b) in &segments {
            for (x, y) in [*a, *b] {
                assert!((x + 2.0 * y - 0.3).abs() < 1e-12, "({x}, {y}) off the line");
            }
        }
        let lines = contour_polylines(&grid, 0.3);
        assert_eq!(lines.len(), 1, "one open line expected");
        assert_eq!(lines[0].len(), segments.len() + 1);
    }

    #[test]
    fn constant_field_has_no_iso_line() {
        let grid = square_grid(5, |_, _| 1.5);
        for level in [0.0, 1.5, 2.0] {
            assert!(contour_segments(&grid, level).is_empty(), "level {level}");
        }
    }

    #[test]
    fn saddle_is_resolved_by_the_centre() {
        // Corners: (0,0)=1, (1,0)=0, (0,1)=0, (1,1)=1; centre average 0.5.
        let grid = Grid {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
            values: vec![1.0, 0.0, 0.0, 1.0],
        };
        // Centre above: the two high corners are joined, the low corners cut off.
        let s = contour_segments(&grid, 0.5);
        assert_eq!(s.len(), 2);
        assert!(s.iter().any(|&g| same_segment(g, (0.5, 0.0), (1.0, 0.5))));
        assert!(s.iter().any(|&g| same_segment(g, (0.0, 0.5), (0.5, 1.0))));
        // Centre below: the high corners are cut off.
        let s = contour_segments(&grid, 0.6);
        assert_eq!(s.len(), 2);
        assert!(s.iter().any(|&g| same_segment(g, (0.4, 0.0), (0.0, 0.4))));
        assert!(s.iter().any(|&g| same_segment(g, (1.0, 0.6), (0.6, 1.0))));
    }

    #[test]
    fn nan_cells_are_skipped() {
        let axis = [0.0, 1.0, 2.0];
        let mut grid = sample(&axis, &axis, |x, _| x);
        assert_eq!(contour_segments(&grid, 0.5).len(), 2);
        grid.values[0] = f64::NAN; // sample (0, 0): only cell (0, 0) is lost
        let s = contour_segments(&grid, 0.5);
        assert_eq!(s.len(), 1);
        assert!(same_segment(s[0], (0.5, 1.0), (0.5, 2.0)));
        grid.values[4] = f64::NAN; // centre sample: every cell is lost
        assert!(contour_segments(&grid, 0.5).is_empty());
    }

    #[test]
    fn value_equal_to_level_counts_as_above() {
        let grid = Grid {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
            values: vec![0.0, 1.0, 0.0, 1.0],
        };
        assert!(contour_segments(&grid, 0.0).is_empty());
        let s = contour_segments(&grid, 1.0);
        assert_eq!(s.len(), 1);
        assert!(same_segment(s[0], (1.0, 0.0), (1.0, 1.0)));
    }

    #[test]
    fn malformed_grid_has_no_iso_line() {
        let short = Grid {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
            values: vec![0.0, 1.0, 2.0],
        };
        assert!(contour_segments(&short, 0.5).is_empty());
        let thin = Grid {
            xs: vec![0.0],
            ys: vec![0.0, 1.0],
            values: vec![0.0, 1.0],
        };
        assert!(contour_segments(&thin, 0.5).is_empty());
        let good = square_grid(3, |x, _| x);
        assert!(contour_segments(&good, f64::NAN).is_empty());
    }

    fn curves() -> Vec<Series> {
        let xs = linspace(0.0, 10.0, 50);
        vec![
            Series {
                label: "train".into(),
                points: xs.iter().map(|&x| (x, (-x / 3.0).exp())).collect(),
                dashed: false,
            },
            Series {
                label: "test".into(),
                points: xs
                    .iter()
                    .map(|&x| {
                        (
                            x,
                            if x > 5.0 && x < 6.0 {
                                f64::NAN
                            } else {
                                1.2 * (-x / 4.0).exp()
                            },
                        )
                    })
                    .collect(),
                dashed: true,
            },
            Series {
                label: String::new(),
                points: vec![(0.0, -1.0), (10.0, 0.5)],
                dashed: false,
            },
        ]
    }

    #[test]
    fn line_plot_writes_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.svg");
        line_plot(&path, "Loss curve", "epoch", "loss", &curves(), false).unwrap();
        assert_svg(&path, "Loss curve");
        let log_path = dir.path().join("sub/loss-log.svg");
        line_plot(&log_path, "Log loss", "epoch", "loss", &curves(), true).unwrap();
        assert_svg(&log_path, "Log loss");
    }

    #[test]
    fn line_panels_write_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panels.svg");
        let panels: Vec<LinePanel> = ["relu", "gelu", "learned"]
            .iter()
            .map(|t| LinePanel {
                title: t.to_string(),
                series: curves(),
            })
            .chain(std::iter::once(LinePanel {
                title: "empty".into(),
                series: vec![],
            }))
            .collect();
        line_panels(&path, "Activations", "x", "f(x)", &panels, 3).unwrap();
        assert_svg(&path, "Activations");
        assert_svg(&path, "learned");
    }

    #[test]
    fn heatmap_writes_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heat.svg");
        let mut grid = square_grid(41, |x, y| x * y);
        grid.values[7] = f64::NAN;
        let scatter = vec![
            ScatterClass {
                label: "class 0".into(),
                points: vec![(-1.0, -1.0), (1.0, 1.0), (f64::NAN, 0.0), (9.0, 9.0)],
            },
            ScatterClass {
                label: "class 1".into(),
                points: vec![(-1.0, 1.0), (1.0, -1.0)],
            },
        ];
        heatmap(&path, "XOR decision", &grid, &[0.0, -1.0, 1.0], &scatter).unwrap();
        assert_svg(&path, "XOR decision");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("class 1"));
        assert!(text.contains("<rect"));
        assert!(text.contains("<circle"));

        // One-signed data uses the sequential map; a constant field still draws.
        let seq = dir.path().join("seq.svg");
        heatmap(
            &seq,
            "Distance",
            &square_grid(11, |x, y| x * x + y * y),
            &[1.0],
            &[],
        )
        .unwrap();
        assert_svg(&seq, "Distance");
        let flat = dir.path().join("flat.svg");
        heatmap(&flat, "Flat", &square_grid(3, |_, _| 2.0), &[2.0], &[]).unwrap();
        assert_svg(&flat, "Flat");
    }

    #[test]
    fn heatmap_panels_write_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("neurons.svg");
        let panels: Vec<HeatPanel> = (0..4)
            .map(|k| HeatPanel {
                title: format!("neuron {k}"),
                grid: square_grid(21, move |x, y| (x + k as f64 * y).tanh()),
                contours: vec![0.0],
            })
            .collect();
        heatmap_panels(&path, "Hidden neurons", &panels, 2).unwrap();
        assert_svg(&path, "Hidden neurons");
        assert_svg(&path, "neuron 3");
    }

    #[test]
    fn bad_input_is_a_data_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);

        assert_data_error(
            line_plot(&p("a.svg"), "t", "x", "y", &[], false),
            &p("a.svg"),
        );
        let nan = vec![Series {
            label: "nan".into(),
            points: vec![(0.0, f64::NAN), (f64::INFINITY, 1.0)],
            dashed: false,
        }];
        assert_data_error(
            line_plot(&p("b.svg"), "t", "x", "y", &nan, false),
            &p("b.svg"),
        );
        let negative = vec![Series {
            label: "neg".into(),
            points: vec![(0.0, -1.0), (1.0, 0.0)],
            dashed: false,
        }];
        assert_data_error(
            line_plot(&p("c.svg"), "t", "x", "y", &negative, true),
            &p("c.svg"),
        );
        assert_data_error(line_panels(&p("d.svg"), "t", "x", "y", &[], 2), &p("d.svg"));
        let panel = LinePanel {
            title: "p".into(),
            series: curves(),
        };
        assert_data_error(
            line_panels(&p("e.svg"), "t", "x", "y", std::slice::from_ref(&panel), 0),
            &p("e.svg"),
        );

        let bad_grids = [
            Grid {
                xs: vec![0.0, 1.0],
                ys: vec![0.0, 1.0],
                values: vec![0.0; 3],
            },
            Grid {
                xs: vec![0.0],
                ys: vec![0.0, 1.0],
                values: vec![0.0; 2],
            },
            Grid {
                xs: vec![1.0, 0.0],
                ys: vec![0.0, 1.0],
                values: vec![0.0; 4],
            },
            Grid {
                xs: vec![0.0, 1.0],
                ys: vec![0.0, f64::NAN],
                values: vec![0.0; 4],
            },
            Grid {
                xs: vec![0.0, 1.0],
                ys: vec![0.0, 1.0],
                values: vec![f64::NAN; 4],
            },
        ];
        for (k, grid) in bad_grids.iter().enumerate() {
            let path = p(&format!("grid{k}.svg"));
            assert_data_error(heatmap(&path, "t", grid, &[], &[]), &path);
            let panels = [HeatPanel {
                title: "p".into(),
                grid: grid.clone(),
                contours: vec![],
            }];
            let path = p(&format!("panels{k}.svg"));
            assert_data_error(heatmap_panels(&path, "t", &panels, 1), &path);
        }
        assert_data_error(heatmap_panels(&p("f.svg"), "t", &[], 1), &p("f.svg"));
        let ok = HeatPanel {
            title: "ok".into(),
            grid: square_grid(3, |x, y| x + y),
            contours: vec![],
        };
        assert_data_error(heatmap_panels(&p("g.svg"), "t", &[ok], 0), &p("g.svg"));
    }

    #[test]
    fn unwritable_path_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let path = file.join("plot.svg");
        match line_plot(&path, "t", "x", "y", &curves(), false) {
            Err(PlotError::Write { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected a write error, got {other:?}"),
        }
    }

    #[test]
    fn numbers_are_formatted_compactly() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(-0.25), "-0.25");
        assert_eq!(fmt_num(1234.5678), "1235");
        assert_eq!(fmt_num(0.30000000000000004), "0.3");
        assert_eq!(fmt_num(1e-5), "1.0e-5");
        assert_eq!(fmt_num(2.5e6), "2.5e6");
        assert_eq!(fmt_tick(5.5e-17, 2.0), "0");
        assert_eq!(fmt_tick(0.25, 2.0), "0.25");
        assert_eq!(fmt_tick(0.2, 2.0), "0.2");
        assert_eq!(fmt_tick(1000.2, 1.0), "1000.2");
        assert_eq!(fmt_tick(1500.0, 2000.0), "1500");
        assert_eq!(fmt_tick(2.5e6, 1e6), "2.5e6");
        assert_eq!(fmt_tick(1e-5, 1.0), "1.0e-5");
        assert_eq!(fmt_tick(0.01, 1e4), "0.01");
        assert_eq!(fmt_tick(0.02, 2.5), "0.02");
    }

    #[test]
    fn colour_maps() {
        let div = ColourMap::for_data(-1.0, 3.0);
        assert_eq!(div, ColourMap::Diverging { half: 3.0 });
        assert_eq!(div.colour(0.0), RGBColor(247, 247, 247));
        assert_eq!(div.colour(-3.0), RGBColor(33, 102, 172));
        assert_eq!(div.colour(3.0), RGBColor(178, 24, 43));
        assert_eq!(div.colour(f64::NAN), MISSING_COLOUR);
        let seq = ColourMap::for_data(0.0, 2.0);
        assert_eq!(seq, ColourMap::Sequential { lo: 0.0, hi: 2.0 });
        assert_eq!(seq.colour(0.0), RGBColor(68, 1, 84));
        assert_eq!(seq.colour(2.0), RGBColor(253, 231, 37));
        let flat = ColourMap::for_data(2.0, 2.0).range();
        assert!(flat.start < 2.0 && flat.end > 2.0);
        for (lo, hi) in [
            (f64::MAX, f64::MAX),
            (-f64::MAX, -f64::MAX),
            (0.0, 0.0),
            (1.0, 1.0),
        ] {
            let r = pad_linear(lo, hi, 0.05);
            assert!(
                r.start.is_finite() && r.end.is_finite() && r.start < r.end,
                "{r:?}"
            );
            assert!(r.start <= lo && r.end >= hi, "{r:?}");
        }
    }
}
