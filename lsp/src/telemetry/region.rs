//! A span of a document followed through later edits: where a completion
//! was inserted, or where it would have gone.

use std::ops::Range;

use crate::document::TextEdit;

/// A byte range of a document that moves with edits before it and grows
/// over edits that touch it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedRegion {
    pub bytes: Range<usize>,
    /// Whether an insertion at the region's end joins it. True while the
    /// user may still be typing (or accepting) there; false once a
    /// completion was accepted whole, so that what the user types after it
    /// is not counted as part of it.
    pub grows_at_end: bool,
}

impl TrackedRegion {
    /// An empty region at `byte` (a cursor), growing at its end.
    pub fn at(byte: usize) -> TrackedRegion {
        TrackedRegion { bytes: byte..byte, grows_at_end: true }
    }

    /// Follows one edit; returns whether the edit touched the region.
    pub fn apply(&mut self, edit: &TextEdit) -> bool {
        let (start, end) = (self.bytes.start, self.bytes.end);
        let delta = edit.new_end_byte as isize - edit.old_end_byte as isize;
        let shift = |b: usize| b.saturating_add_signed(delta);
        let before = edit.old_end_byte <= start && edit.start_byte < start;
        let after = edit.start_byte > end || (edit.start_byte == end && !self.grows_at_end && start < end);
        if before {
            self.bytes = shift(start)..shift(end);
            false
        } else if after {
            false
        } else {
            // Overlapping or adjacent: the region covers what the edit wrote.
            self.bytes = start.min(edit.start_byte)..shift(end.max(edit.old_end_byte));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Point;

    fn edit(start: usize, old_end: usize, new_end: usize) -> TextEdit {
        let p = Point::default();
        TextEdit {
            start_byte: start,
            old_end_byte: old_end,
            new_end_byte: new_end,
            start_point: p,
            old_end_point: p,
            new_end_point: p,
        }
    }

    /// Applies `(start, old_end, inserted)` edits to `text` and the region,
    /// and returns the region's text.
    fn follow(text: &str, mut region: TrackedRegion, edits: &[(usize, usize, &str)]) -> String {
        let mut text = text.to_owned();
        for &(start, old_end, inserted) in edits {
            text.replace_range(start..old_end, inserted);
            region.apply(&edit(start, old_end, start + inserted.len()));
        }
        text[region.bytes].to_owned()
    }

    #[test]
    fn an_empty_region_collects_what_is_typed_at_it() {
        let text = "let x = ;\n";
        let typed = [(8, 8, "4"), (9, 9, "2"), (0, 0, "// hi\n")];
        assert_eq!(follow(text, TrackedRegion::at(8), &typed), "42");
    }

    #[test]
    fn an_accepted_region_moves_with_edits_before_it_and_ignores_typing_after_it() {
        let text = "let x = 42;\n";
        let region = TrackedRegion { bytes: 8..10, grows_at_end: false };
        let edits = [(0, 3, "const"), (12, 12, " + 1"), (0, 0, "\n")];
        assert_eq!(follow(text, region, &edits), "42");
    }

    #[test]
    fn edits_inside_and_across_the_region_are_part_of_it() {
        let text = "call(alpha, beta)";
        let region = TrackedRegion { bytes: 5..16, grows_at_end: false };
        assert_eq!(follow(text, region.clone(), &[(7, 9, "PH")]), "alPHa, beta");
        assert_eq!(follow(text, region.clone(), &[(12, 17, "gamma)")]), "alpha, gamma)");
        assert_eq!(follow(text, region, &[(0, 16, "x")]), "x");
    }
}
