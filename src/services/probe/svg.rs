//! SVG: whether a text's root element is `<svg>`, and the size a browser draws it at (CSS
//! pixels, from its `width` and `height`, or its `viewBox` when they are missing or relative).

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// The MIME type of SVG images.
pub const SVG_MIME: &str = "image/svg+xml";

/// The root element of an SVG document: its drawn size when it says one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvgRoot {
    /// Width and height in CSS pixels, rounded.
    pub size: Option<(i64, i64)>,
}

/// The SVG root element at the start of `head` (after any XML declaration, doctype, comments
/// and processing instructions), or `None` when the first element is not `svg`.
pub fn root(head: &[u8]) -> Option<SvgRoot> {
    let mut reader = Reader::from_reader(head);
    loop {
        match reader.read_event().ok()? {
            Event::Start(element) | Event::Empty(element) => {
                return (element.local_name().as_ref() == b"svg").then(|| SvgRoot {
                    size: drawn_size(&element),
                });
            }
            Event::Decl(_) | Event::DocType(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Text(text) if text.iter().all(u8::is_ascii_whitespace) => {}
            _ => return None,
        }
    }
}

/// The size of an `<svg>` element: `width` and `height` in absolute units, each falling back to
/// the `viewBox`'s when missing or relative (`%`, `em`).
fn drawn_size(element: &BytesStart<'_>) -> Option<(i64, i64)> {
    let attribute = |name: &[u8]| {
        element
            .attributes()
            .flatten()
            .find(|a| a.key.local_name().as_ref() == name)
            .and_then(|a| String::from_utf8(a.value.into_owned()).ok())
    };
    let view_box = attribute(b"viewBox").and_then(|v| {
        let numbers: Vec<f64> = v
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match numbers[..] {
            [_, _, w, h] if w > 0.0 && h > 0.0 => Some((w, h)),
            _ => None,
        }
    });
    let width = attribute(b"width")
        .and_then(|w| css_pixels(&w))
        .or(view_box.map(|v| v.0))?;
    let height = attribute(b"height")
        .and_then(|h| css_pixels(&h))
        .or(view_box.map(|v| v.1))?;
    Some((width.round() as i64, height.round() as i64))
}

/// An absolute SVG length in CSS pixels (`72pt` is 96): `None` for relative units (`%`, `em`,
/// `ex`), anything unparsable, and lengths that are not positive.
fn css_pixels(length: &str) -> Option<f64> {
    let length = length.trim();
    let unit_at = length
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(length.len());
    let (number, unit) = length.split_at(unit_at);
    let number: f64 = number.parse().ok()?;
    let per_unit = match unit.trim() {
        "" | "px" => 1.0,
        "pt" => 96.0 / 72.0,
        "pc" => 16.0,
        "in" => 96.0,
        "cm" => 96.0 / 2.54,
        "mm" => 96.0 / 25.4,
        _ => return None,
    };
    Some(number * per_unit).filter(|px| px.is_finite() && *px > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_absolute_lengths_or_the_view_box() {
        let size = |svg: &str| root(svg.as_bytes()).and_then(|r| r.size);
        assert_eq!(
            size(r#"<svg width="72pt" height="1in" viewBox="0 0 1 1"/>"#),
            Some((96, 96))
        );
        assert_eq!(
            size(r#"<svg width="100%" height="50" viewBox="0,0,640,480"/>"#),
            Some((640, 50))
        );
        assert_eq!(size(r#"<svg viewBox="0 0 10.4 20.6"></svg>"#), Some((10, 21)));
        assert_eq!(size(r#"<svg width="2em"/>"#), None);
        assert_eq!(size(r#"<svg/>"#), None);
    }

    #[test]
    fn only_a_document_whose_first_element_is_svg_is_one() {
        let prolog =
            "<?xml version=\"1.0\"?>\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\">\n<!-- c -->\n";
        assert!(root(format!("{prolog}<svg xmlns=\"http://www.w3.org/2000/svg\"/>").as_bytes()).is_some());
        assert!(root(b"<svg:svg xmlns:svg=\"http://www.w3.org/2000/svg\"/>").is_some());
        assert!(root(b"<html><svg/></html>").is_none());
        assert!(root(b"some text <svg/>").is_none());
        assert!(root(b"").is_none());
    }
}
