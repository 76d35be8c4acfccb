//! A bitmap backend whose text is laid out with `ab_glyph` directly.
//!
//! plotters 0.3.7's `ab_glyph` renderer (src/style/font/ab_glyph.rs) puts each glyph at the
//! pen position without its left side bearing, so letters drift apart and together
//! ("ep och", "T rouser"). [`TextBackend`] keeps [`BitMapBackend`] for everything but text,
//! which it lays out itself: pen advance plus kerning, each glyph at its own pixel bounds,
//! the baseline at the font's ascent, and the box `ascent - descent` high.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, Glyph, PxScale, ScaleFont};
use plotters::backend::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// The one font every label is drawn in (the family a style names is ignored).
fn face(bytes: &'static [u8]) -> Option<&'static FontRef<'static>> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(bytes).ok())
        .as_ref()
}

/// Glyphs of one line of text placed from (0, 0) at the top left, and the box they fill.
struct Layout {
    glyphs: Vec<Glyph>,
    width: i32,
    height: i32,
}

fn layout(font: &FontRef<'static>, size: f64, text: &str) -> Layout {
    let scale = PxScale::from(size as f32);
    let scaled = font.as_scaled(scale);
    let ascent = scaled.ascent();
    let mut glyphs = Vec::with_capacity(text.len());
    let mut x = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(previous) = previous {
            x += scaled.kern(previous, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(x, ascent)));
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    let height = ascent - scaled.descent();
    Layout {
        glyphs,
        width: x.ceil() as i32,
        height: height.ceil() as i32,
    }
}

/// [`BitMapBackend`] with correctly spaced text in the embedded font.
pub struct TextBackend<'a> {
    inner: BitMapBackend<'a>,
    font: Option<&'static FontRef<'static>>,
}

impl<'a> TextBackend<'a> {
    /// Wrap `inner`; text is drawn in the TrueType font `font_bytes` (plotters' own text
    /// path is the fallback should the font not parse).
    pub fn new(inner: BitMapBackend<'a>, font_bytes: &'static [u8]) -> Self {
        TextBackend {
            inner,
            font: face(font_bytes),
        }
    }
}

type BitMapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

impl DrawingBackend for TextBackend<'_> {
    type ErrorType = BitMapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (w, h): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.blit_bitmap(pos, (w, h), src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<BitMapError>> {
        let Some(font) = self.font else {
            return self.inner.estimate_text_size(text, style);
        };
        let laid = layout(font, style.size(), text);
        Ok((laid.width.max(0) as u32, laid.height.max(0) as u32))
    }

    /// Same anchoring and rotation as plotters' default `draw_text`, with our layout.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        let Some(font) = self.font else {
            return self.inner.draw_text(text, style, pos);
        };
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let laid = layout(font, style.size(), text);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -laid.width,
            HPos::Center => -laid.width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -laid.height / 2,
            VPos::Bottom => -laid.height,
        };
        let transform = style.transform();
        let (w, h) = self.get_size();
        let mut coverage = Vec::new();
        for glyph in laid.glyphs {
            let Some(outlined) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outlined.px_bounds();
            let (x0, y0) = (bounds.min.x as i32, bounds.min.y as i32);
            outlined.draw(|x, y, c| coverage.push((x0 + x as i32, y0 + y as i32, c)));
        }
        for (x, y, c) in coverage {
            let (x, y) = transform.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if c > 0.0 && x >= 0 && y >= 0 && x < w as i32 && y < h as i32 {
                let ink = BackendColor {
                    alpha: color.alpha * f64::from(c.min(1.0)),
                    ..color
                };
                self.inner.draw_pixel((x, y), ink)?;
            }
        }
        Ok(())
    }
}
