//! The one place that knows how the fused op packs its outputs.

use std::ops::Range;

use super::kernel::Dims;

/// The layout of the fused op's single output (an autodiff node has one): `out ++ h_n ++ c_n`,
/// with `out: [batch, seq, D·hidden]` (directions side by side), `h_n` and — LSTM only —
/// `c_n: [D, batch, hidden]`. The gradient flowing back has the same layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedLayout {
    rows: usize,
    batch: usize,
    hidden: usize,
    directions: usize,
    has_c: bool,
}

impl PackedLayout {
    /// The layout of a layer of `directions` directions with one direction's sizes `d`.
    pub fn new(d: &Dims, directions: usize) -> Self {
        Self {
            rows: d.rows(),
            batch: d.batch,
            hidden: d.hidden,
            directions,
            has_c: d.kind.has_cell_state(),
        }
    }

    fn out_len(&self) -> usize {
        self.rows * self.directions * self.hidden
    }

    fn state_len(&self) -> usize {
        self.directions * self.batch * self.hidden
    }

    /// Total elements.
    pub fn len(&self) -> usize {
        self.out_len() + self.state_len() * if self.has_c { 2 } else { 1 }
    }

    /// Where `out` lies.
    pub fn out(&self) -> Range<usize> {
        0..self.out_len()
    }

    /// Where `h_n` lies.
    pub fn h_n(&self) -> Range<usize> {
        self.out_len()..self.out_len() + self.state_len()
    }

    /// Where `c_n` lies (LSTM only).
    pub fn c_n(&self) -> Option<Range<usize>> {
        let start = self.out_len() + self.state_len();
        self.has_c.then(|| start..start + self.state_len())
    }

    /// `(out, h_n, c_n)` of a packed buffer; `c_n` is empty without a cell state.
    pub fn split<'a>(&self, packed: &'a [f32]) -> (&'a [f32], &'a [f32], &'a [f32]) {
        let (out, rest) = packed.split_at(self.out_len());
        let (h, c) = rest.split_at(self.state_len());
        (out, h, c)
    }

    /// [`Self::split`], mutably.
    pub fn split_mut<'a>(
        &self,
        packed: &'a mut [f32],
    ) -> (&'a mut [f32], &'a mut [f32], &'a mut [f32]) {
        let (out, rest) = packed.split_at_mut(self.out_len());
        let (h, c) = rest.split_at_mut(self.state_len());
        (out, h, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellKind;

    #[test]
    fn parts_tile_the_buffer_in_order() {
        for (kind, has_c) in [(CellKind::Lstm, true), (CellKind::Gru, false)] {
            let d = Dims {
                kind,
                seq: 5,
                batch: 3,
                input: 2,
                hidden: 4,
            };
            let layout = PackedLayout::new(&d, 2);
            assert_eq!(layout.out(), 0..5 * 3 * 2 * 4);
            assert_eq!(layout.h_n(), 120..120 + 24);
            assert_eq!(layout.c_n(), has_c.then_some(144..168));
            let expected_len = if has_c { 168 } else { 144 };
            assert_eq!(layout.len(), expected_len);
            let buf = vec![0.0; layout.len()];
            let (out, h, c) = layout.split(&buf);
            assert_eq!(
                (out.len(), h.len(), c.len()),
                (120, 24, if has_c { 24 } else { 0 })
            );
        }
    }
}
