//! Colourisation: show the network a gray image and ask for its colours.
//!
//! [0] R. Zhang, P. Isola, A. A. Efros, "Colorful Image Colorization", ECCV
//!     2016, arXiv:1603.08511.
//! [1] github.com/richzhang/colorization.
//!
//! ```text
//! T(x) = (gray(x), x),    gray(x) = 0.2989·R + 0.587·G + 0.114·B
//! ```
//!
//! [0] works in CIE Lab: the input is the lightness L and the target the
//! colour channels ab, quantised into 313 bins and predicted as a class with
//! rebalanced weights. This simplified version keeps RGB: the input is the
//! luma (the weights of [`crate::augment::rgb_to_grayscale`]) and the target
//! the original RGB image, for a regression loss. The task is not defined for
//! gray (1-channel) data such as MNIST: there is no colour to predict.

use candle_core::{Result, Tensor};

/// The colourisation pair `(gray input, RGB target)` of a batch of RGB images.
///
/// Errors on anything but `(B, 3, H, W)`; for 1-channel data the task is not
/// applicable (there is no colour to predict) and the message says so.
///
/// # Shapes
/// `x (B, 3, H, W)` → `gray (B, 1, H, W)`, `target (B, 3, H, W)` (= `x`).
pub fn colorization_pair(x: &Tensor) -> Result<(Tensor, Tensor)> {
    match x.dims() {
        &[_, 3, _, _] => {}
        &[_, 1, _, _] => candle_core::bail!(
            "colorization_pair: colourisation is not applicable to 1-channel (gray) images, got shape {:?}; \
             it needs RGB images (B, 3, H, W)",
            x.dims()
        ),
        d => candle_core::bail!("colorization_pair expects RGB images (B, 3, H, W), got shape {d:?}"),
    }
    let gray = crate::augment::rgb_to_grayscale(x)?;
    Ok((gray, x.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::test_util::{assert_close, max_diff, pattern};

    #[test]
    fn colorization_pair_gray_weights_and_target() {
        let x = pattern(2, 3, 4, 5);
        let (g, t) = colorization_pair(&x).unwrap();
        assert_eq!(g.dims(), &[2, 1, 4, 5]);
        assert_eq!(max_diff(&t, &x), 0.0);
        let r = x.narrow(1, 0, 1).unwrap();
        let gg = x.narrow(1, 1, 1).unwrap();
        let b = x.narrow(1, 2, 1).unwrap();
        let want = ((r * 0.2989).unwrap() + (gg * 0.587).unwrap() + (b * 0.114).unwrap()).unwrap();
        assert!(max_diff(&g, &want) < 1e-6);
        // a pure-red pixel
        let red = Tensor::from_vec(vec![1f32, 0.0, 0.0], (1, 3, 1, 1), &candle_core::Device::Cpu).unwrap();
        assert_close(&colorization_pair(&red).unwrap().0, &[0.2989], 1e-7);
        let e = colorization_pair(&pattern(1, 1, 4, 4)).unwrap_err().to_string();
        assert!(e.contains("not applicable") && e.contains("[1, 1, 4, 4]"), "{e}");
        assert!(colorization_pair(&pattern(1, 2, 4, 4)).is_err());
    }
}
