//! The fixed suite: what each case runs and how much arithmetic that is.

use rnn_models::CellKind;
use serde::{Deserialize, Serialize};

/// One benchmark case: a layer and the shape of its batch (input is `[batch, seq, input]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Short name: `A`, `A-bi`, `B`, …, `A-T400`.
    pub name: String,
    /// The recurrence.
    pub cell: CellKind,
    /// Stacked layers.
    pub layers: usize,
    /// Whether each layer also runs in reverse.
    pub bidirectional: bool,
    /// Sequences per batch.
    pub batch: usize,
    /// Steps per sequence.
    pub seq: usize,
    /// Features per input step.
    pub input: usize,
    /// Hidden features per direction.
    pub hidden: usize,
}

impl Case {
    fn new(
        name: &str,
        cell: CellKind,
        batch: usize,
        seq: usize,
        input: usize,
        hidden: usize,
    ) -> Self {
        Self {
            name: name.into(),
            cell,
            layers: 1,
            bidirectional: false,
            batch,
            seq,
            input,
            hidden,
        }
    }

    fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// Floating-point operations of one forward pass: `2·B·T·G·H·(I + H)` per layer and
    /// direction (the GEMMs; the gate math is a rounding error next to them).
    pub fn forward_flops(&self) -> f64 {
        let g = self.cell.gate_count() as f64;
        let (b, t, h) = (self.batch as f64, self.seq as f64, self.hidden as f64);
        (0..self.layers)
            .map(|layer| {
                let input = if layer == 0 {
                    self.input
                } else {
                    self.directions() * self.hidden
                } as f64;
                2.0 * b * t * g * h * (input + h) * self.directions() as f64
            })
            .sum()
    }

    /// Floating-point operations of a training step: forward + backward ≈ 3 × forward.
    pub fn train_flops(&self) -> f64 {
        3.0 * self.forward_flops()
    }
}

/// The suite of `cargo xtask bench`: A (MNIST rows), A-bi, B (larger), C (GRU), D (RNN),
/// E (2 layers) and the sequence-length sweep A-T25 … A-T400. `quick` shrinks every shape to a
/// seconds-long smoke run with the same structure.
pub fn suite(quick: bool) -> Vec<Case> {
    let (b, t, i, h) = if quick {
        (4, 6, 5, 8)
    } else {
        (64, 28, 28, 128)
    };
    let a = Case::new("A", CellKind::Lstm, b, t, i, h);
    let mut cases = vec![
        a.clone(),
        Case {
            name: "A-bi".into(),
            bidirectional: true,
            ..a.clone()
        },
        if quick {
            Case::new("B", CellKind::Lstm, 4, 10, 6, 12)
        } else {
            Case::new("B", CellKind::Lstm, 64, 100, 64, 256)
        },
        Case {
            name: "C".into(),
            cell: CellKind::Gru,
            ..a.clone()
        },
        Case {
            name: "D".into(),
            cell: CellKind::RnnTanh,
            ..a.clone()
        },
        Case {
            name: "E".into(),
            layers: 2,
            ..a.clone()
        },
    ];
    let sweep: &[usize] = if quick {
        &[3, 6]
    } else {
        &[25, 50, 100, 200, 400]
    };
    cases.extend(sweep.iter().map(|&seq| Case {
        name: format!("A-T{seq}"),
        seq,
        ..a.clone()
    }));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_follow_the_formula() {
        let a = &suite(false)[0];
        // 2·64·28·4·128·(28+128)
        assert_eq!(a.forward_flops(), 2.0 * 64.0 * 28.0 * 4.0 * 128.0 * 156.0);
        let bi = &suite(false)[1];
        assert_eq!(bi.forward_flops(), 2.0 * a.forward_flops());
        let e = suite(false).into_iter().find(|c| c.name == "E").unwrap();
        // The second layer reads 128 features.
        assert_eq!(
            e.forward_flops(),
            a.forward_flops() + 2.0 * 64.0 * 28.0 * 4.0 * 128.0 * 256.0
        );
    }
}
