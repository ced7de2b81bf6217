//! Self-supervised objectives, each a plain function returning a scalar tensor.
//!
//! Every loss checks its input shapes first and returns an error naming the
//! shapes it got; gradients flow through every op used here (tested).

mod info_nce;

pub use info_nce::{info_nce, info_nce_logits};

use candle_core::{Result, Tensor, D};

/// Cross-entropy between logits and integer class targets, averaged over the batch.
///
/// # Shapes
/// `logits (B, C)`, `targets (B,)` of dtype u32 → scalar.
///
/// Built from `log_softmax` (composed ops with a backward pass), unlike
/// Candle's fused `softmax_last_dim`, which has none.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    match (logits.dims(), targets.dims()) {
        (&[b, c], &[bt]) if b == bt && b > 0 && c > 0 => {}
        (l, t) => candle_core::bail!(
            "cross_entropy expects logits (B, C) and targets (B,) with B, C > 0, got {l:?} and {t:?}"
        ),
    }
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    candle_nn::loss::nll(&logp, targets)
}

/// Fraction of rows whose arg-max logit equals the target.
///
/// # Shapes
/// `logits (B, C)`, `targets (B,)` u32.
pub fn accuracy(logits: &Tensor, targets: &Tensor) -> Result<f64> {
    let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    let tgt: Vec<u32> = targets.to_vec1()?;
    if pred.len() != tgt.len() || pred.is_empty() {
        candle_core::bail!("accuracy: {} predictions for {} targets", pred.len(), tgt.len());
    }
    Ok(pred.iter().zip(&tgt).filter(|(p, t)| p == t).count() as f64 / tgt.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_matches_torch_and_checks_shapes() {
        // import torch, torch.nn.functional as F
        // F.cross_entropy(torch.tensor([[1., 2., 3.], [0., 0., 5.]]), torch.tensor([0, 2])).item()
        // -> 1.210495948791504
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[1f32, 2., 3.], [0., 0., 5.]], &dev).unwrap();
        let t = Tensor::new(&[0u32, 2], &dev).unwrap();
        let l = cross_entropy(&logits, &t).unwrap().to_scalar::<f32>().unwrap();
        assert!((l - 1.210_495_9).abs() < 1e-5, "{l}");
        assert_eq!(accuracy(&logits, &t).unwrap(), 0.5);
        let err = cross_entropy(&logits, &Tensor::new(&[0u32], &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains("[1]"), "{err}");
    }
}
