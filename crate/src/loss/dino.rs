//! DINO: self-distillation from a centred, sharpened teacher.
//!
//! [0] M. Caron, H. Touvron, I. Misra, H. Jégou, J. Mairal, P. Bojanowski,
//!     A. Joulin, "Emerging Properties in Self-Supervised Vision
//!     Transformers", 2021, arXiv:2104.14294, eq. (2)–(4) and Algorithm 1.
//! [1] lightly 1.6.0, `lightly/loss/dino_loss.py`, `DINOLoss.forward` and
//!     `DINOLoss.update_center` (`lightly/models/modules/center.py`).
//!
//! With `T` teacher views `gₜ` and `S` student views `sᵥ` of a batch (each
//! `(B, D)` logits over `D` prototypes), a center `c` and temperatures
//! `τt < τs`:
//!
//! ```text
//! Pₜ = softmax((gₜ − c) / τt)          teacher, no gradient
//! Qᵥ = log_softmax(sᵥ / τs)            student
//!
//! L = 1 / (B · n) · Σ_{t, v : t ≠ v} Σ_b − Pₜ[b] · Qᵥ[b],     n = T·S − min(T, S)
//!
//! c ← m · c + (1 − m) · mean over views and batch of gₜ       (after the step)
//! ```
//!
//! Pairs with the same view index (`t = v`) are skipped, as in lightly,
//! where the first teacher views are the global crops that the first student
//! views also see. Centring prevents one prototype from dominating; the low
//! teacher temperature prevents the uniform collapse.

use super::check_temperature;
use candle_core::{Result, Tensor, D};

/// Checks views and center; returns `(B, D)`.
fn check_views(fname: &str, student: Option<&[Tensor]>, teacher: &[Tensor], center: &Tensor) -> Result<(usize, usize)> {
    let shapes = |v: &[Tensor]| v.iter().map(|t| t.dims().to_vec()).collect::<Vec<_>>();
    let first = teacher.first().or(student.and_then(|s| s.first()));
    let (b, d) = match first.map(|t| t.dims()) {
        Some(&[b, d]) if b > 0 && d > 0 => (b, d),
        _ => (0, 0),
    };
    let all = teacher.iter().chain(student.unwrap_or(&[]));
    let ok = b > 0
        && !teacher.is_empty()
        && student.is_none_or(|s| !s.is_empty())
        && all.into_iter().all(|t| t.dims() == [b, d]);
    if !ok {
        match student {
            Some(s) => candle_core::bail!(
                "{fname} expects non-empty lists of student and teacher views, all of one shape (B, D) with B, D > 0, \
                 got student {:?} and teacher {:?}",
                shapes(s),
                shapes(teacher)
            ),
            None => candle_core::bail!(
                "{fname} expects a non-empty list of teacher views, all of one shape (B, D) with B, D > 0, got {:?}",
                shapes(teacher)
            ),
        }
    }
    let views: Vec<&Tensor> = teacher.iter().chain(student.unwrap_or(&[])).chain([center]).collect();
    super::check_float(fname, &views)?;
    if center.dims() != [1, d] && center.dims() != [d] {
        candle_core::bail!(
            "{fname} expects a center of shape (1, D) or (D,) with D = {d}, got {:?}",
            center.dims()
        );
    }
    Ok((b, d))
}

/// DINO's loss: the cross-entropy from each teacher view's centred, sharpened
/// distribution `softmax((gₜ − c)/τt)` to each student view's
/// `log_softmax(sᵥ/τs)`, averaged over the batch and over the view pairs with
/// `t ≠ v`; equals lightly's `DINOLoss(..)(teacher, student)` with its center
/// set to `center` (lightly's argument order is teacher first). The teacher
/// and the center are detached; only the student views receive gradients.
/// The paper uses `τs = 0.1`, `τt = 0.04`–`0.07`. Update the center after the
/// step with [`dino_update_center`].
///
/// # Shapes
/// `student [S × (B, D)]`, `teacher [T × (B, D)]`, `center (1, D)` or `(D,)` → scalar.
///
/// # Errors
/// If either list is empty, the views differ in shape or are not `(B, D)`
/// with `B, D > 0`, no pair `t ≠ v` exists (one teacher and one student view),
/// the center is not `(1, D)` / `(D,)`, or a temperature is not positive and
/// finite.
pub fn dino(student: &[Tensor], teacher: &[Tensor], center: &Tensor, student_temp: f64, teacher_temp: f64) -> Result<Tensor> {
    let (b, d) = check_views("dino", Some(student), teacher, center)?;
    check_temperature("dino", "student_temp", student_temp)?;
    check_temperature("dino", "teacher_temp", teacher_temp)?;
    let (nt, ns) = (teacher.len(), student.len());
    let n_terms = nt * ns - nt.min(ns);
    if n_terms == 0 {
        candle_core::bail!(
            "dino needs at least one pair of a teacher and a student view with different indices, \
             got {nt} teacher view(s) and {ns} student view(s)"
        );
    }
    let c = center.detach().reshape((1, 1, d))?;
    let t = Tensor::stack(teacher, 0)?.detach(); // (T, B, D)
    let p = candle_nn::ops::softmax(&(t.broadcast_sub(&c)? / teacher_temp)?, D::Minus1)?;
    let s = Tensor::stack(student, 0)?; // (S, B, D)
    let q = candle_nn::ops::log_softmax(&(s / student_temp)?, D::Minus1)?;
    // cross[t, v] = Σ_b Σ_d P[t, b, d] · Q[v, b, d]
    let cross = p.reshape((nt, b * d))?.matmul(&q.reshape((ns, b * d))?.t()?)?; // (T, S)
    let mask: Vec<f32> = (0..nt).flat_map(|i| (0..ns).map(move |j| if i == j { 0.0 } else { 1.0 })).collect();
    let mask = Tensor::from_vec(mask, (nt, ns), cross.device())?.to_dtype(cross.dtype())?;
    (cross * mask)?.sum_all()? * (-1.0 / (n_terms * b) as f64)
}

/// DINO's center update `m · center + (1 − m) · mean(teacher)`, the mean over
/// all teacher views and the batch; as lightly's `DINOLoss.update_center`
/// with `center_momentum = m` (the paper uses 0.9). Returns a detached tensor
/// of the center's shape.
///
/// # Shapes
/// `center (1, D)` or `(D,)`, `teacher_outputs [T × (B, D)]` → the center's shape.
///
/// # Errors
/// If the list is empty, the views differ in shape or are not `(B, D)` with
/// `B, D > 0`, the center is not `(1, D)` / `(D,)`, or the momentum is not in
/// `[0, 1]`.
pub fn dino_update_center(center: &Tensor, teacher_outputs: &[Tensor], momentum: f64) -> Result<Tensor> {
    check_views("dino_update_center", None, teacher_outputs, center)?;
    if !(0.0..=1.0).contains(&momentum) {
        candle_core::bail!("dino_update_center: momentum must be in [0, 1], got {momentum}");
    }
    let batch_center = Tensor::stack(teacher_outputs, 0)?.detach().mean((0, 1))?.reshape(center.shape())?;
    (center.detach() * momentum)? + (batch_center * (1.0 - momentum))?
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, assert_no_grad, scalar, wave, wave_var, zeros};
    use super::*;
    use candle_core::{Device, Var};

    /// Reference: lightly 1.6.0, torch 2.15 (CPU, f32).
    ///
    /// ```python
    /// import torch
    /// from lightly.loss import DINOLoss
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// D = 10
    /// teacher = [wave(40, 0.37, 0.1, False, (4, D)), wave(40, 0.53, 0.7, True, (4, D))]
    /// student = [wave(40, 0.23, 0.0, True, (4, D)).requires_grad_(), wave(40, 0.61, 0.3, False, (4, D)).requires_grad_(),
    ///            wave(40, 0.19, 1.1, True, (4, D)).requires_grad_()]
    /// center = 0.1 * wave(D, 0.5, 0.0, False, (1, D))
    /// loss_fn = DINOLoss(output_dim=D, teacher_temp=0.04, student_temp=0.1, center_momentum=0.9)
    /// loss_fn.center = center.reshape(1, 1, D).clone()
    /// loss = loss_fn(teacher, student); loss.backward()
    /// loss.item(), [(s.grad.flatten()[:6], s.grad.norm()) for s in student]
    /// loss_fn.center.flatten()   # after forward's update_center
    /// ```
    #[test]
    fn dino_matches_lightly_value_gradients_and_center_update() {
        let d = 10;
        let teacher = [wave_var(40, 0.37, 0.1, false, &[4, d]), wave_var(40, 0.53, 0.7, true, &[4, d])];
        let student = [
            wave_var(40, 0.23, 0.0, true, &[4, d]),
            wave_var(40, 0.61, 0.3, false, &[4, d]),
            wave_var(40, 0.19, 1.1, true, &[4, d]),
        ];
        let center = Var::from_tensor(&(wave(d, 0.5, 0.0, false, &[1, d]) * 0.1).unwrap()).unwrap();
        let t: Vec<Tensor> = teacher.iter().map(|v| v.as_tensor().clone()).collect();
        let s: Vec<Tensor> = student.iter().map(|v| v.as_tensor().clone()).collect();
        let loss = dino(&s, &t, center.as_tensor(), 0.1, 0.04).unwrap();
        assert_close(&[scalar(&loss)], &[8.890_800_5], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &student[0], &[0.042660497, 0.21383792, 0.098404452, 0.028247971, 0.0054019638, 0.00075083895], 1.23521459);
        #[rustfmt::skip]
        assert_grad(&g, &student[1], &[0.00040968572, 0.057251189, 0.46302542, 0.037255071, -0.40485761, -0.14964372], 1.35058129);
        #[rustfmt::skip]
        assert_grad(&g, &student[2], &[0.80389917, 0.17798997, 0.026771491, -0.06104058, -0.40527764, -0.14953564], 1.87851787);
        for v in &teacher {
            assert_no_grad(&g, v.as_tensor());
        }
        assert_no_grad(&g, center.as_tensor());

        let new = dino_update_center(center.as_tensor(), &t, 0.9).unwrap();
        assert_eq!(new.dims(), &[1, d]);
        #[rustfmt::skip]
        let want = [0.010546589, 0.063815892, 0.10042738, 0.11189421, 0.096057504, 0.057499677, 0.0062805898,
                    -0.044661831, -0.082777306, -0.099010378];
        assert_close(&new.flatten_all().unwrap().to_vec1::<f32>().unwrap(), &want, 1e-4);
    }

    #[test]
    fn dino_invariants_uniform_value_center_shift_and_shapes() {
        let dev = Device::Cpu;
        let (b, d) = (3, 7);
        // constant teacher → uniform P; zero student → Q = −ln D everywhere: L = ln D
        let t = vec![Tensor::full(2f32, (b, d), &dev).unwrap(); 2];
        let s = vec![zeros(&[b, d]); 3];
        let l = scalar(&dino(&s, &t, &zeros(&[d]), 0.1, 0.04).unwrap());
        assert!((l - (d as f32).ln()).abs() < 1e-5, "{l}");
        // a center shifted by a constant and a (D,) center give the same loss as (1, D)
        let t = vec![wave(21, 0.37, 0.1, false, &[b, d]), wave(21, 0.53, 0.7, true, &[b, d])];
        let s = vec![wave(21, 0.23, 0.0, true, &[b, d]), wave(21, 0.61, 0.3, false, &[b, d])];
        let c = (wave(d, 0.5, 0.0, false, &[1, d]) * 0.1).unwrap();
        let l0 = scalar(&dino(&s, &t, &c, 0.1, 0.04).unwrap());
        let l1 = scalar(&dino(&s, &t, &(&c + 5.0).unwrap().flatten_all().unwrap(), 0.1, 0.04).unwrap());
        assert!((l0 - l1).abs() < 1e-4 * l0, "{l0} vs {l1}");
        // two views each: the mean of the two cross-view cross-entropies
        let ce = |ti: &Tensor, si: &Tensor| {
            let p = candle_nn::ops::softmax(&(ti.broadcast_sub(&c).unwrap() / 0.04).unwrap(), D::Minus1).unwrap();
            let q = candle_nn::ops::log_softmax(&(si / 0.1).unwrap(), D::Minus1).unwrap();
            -scalar(&(p * q).unwrap().sum_all().unwrap()) / b as f32
        };
        let want = (ce(&t[0], &s[1]) + ce(&t[1], &s[0])) / 2.0;
        assert!((l0 - want).abs() < 1e-4 * want, "{l0} vs {want}");
        // momentum 1 keeps the center, 0 replaces it by the batch mean
        let kept = dino_update_center(&c, &t, 1.0).unwrap();
        assert_eq!(kept.to_vec2::<f32>().unwrap(), c.to_vec2::<f32>().unwrap());
        let fresh = dino_update_center(&c.flatten_all().unwrap(), &t, 0.0).unwrap();
        let mean = Tensor::stack(&t, 0).unwrap().mean((0, 1)).unwrap();
        assert_close(&fresh.to_vec1::<f32>().unwrap(), &mean.to_vec1::<f32>().unwrap(), 1e-5);
    }

    #[test]
    fn dino_errors_name_function_and_shapes() {
        let v = |s: &[usize]| zeros(s);
        let c = v(&[8]);
        let e = dino(&[v(&[4, 8])], &[v(&[4, 8]), v(&[3, 8])], &c, 0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("dino") && e.contains("[[4, 8]]") && e.contains("[[4, 8], [3, 8]]"), "{e}");
        let e = dino(&[], &[v(&[4, 8])], &c, 0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("dino") && e.contains("student []"), "{e}");
        let e = dino(&[v(&[4, 8])], &[], &c, 0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("teacher []"), "{e}");
        let e = dino(&[v(&[0, 8]), v(&[0, 8])], &[v(&[0, 8])], &c, 0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("[0, 8]"), "{e}");
        let e = dino(&[v(&[2, 4, 8])], &[v(&[2, 4, 8])], &c, 0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("[2, 4, 8]"), "{e}");
        let e = dino(&[v(&[4, 8])], &[v(&[4, 8])], &c, 0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("1 teacher view(s) and 1 student view(s)"), "{e}");
        let e = dino(&vec![v(&[4, 8]); 2], &[v(&[4, 8])], &v(&[1, 7]), 0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("center") && e.contains("[1, 7]") && e.contains("D = 8"), "{e}");
        let e = dino(&vec![v(&[4, 8]); 2], &[v(&[4, 8])], &c, 0.1, 0.0).unwrap_err().to_string();
        assert!(e.contains("dino") && e.contains("teacher_temp"), "{e}");
        let e = dino(&vec![v(&[4, 8]); 2], &[v(&[4, 8])], &c, -0.1, 0.04).unwrap_err().to_string();
        assert!(e.contains("student_temp"), "{e}");
        let e = dino_update_center(&c, &[v(&[4, 8])], 1.5).unwrap_err().to_string();
        assert!(e.contains("dino_update_center") && e.contains("momentum"), "{e}");
        let e = dino_update_center(&c, &[], 0.9).unwrap_err().to_string();
        assert!(e.contains("dino_update_center") && e.contains("[]"), "{e}");
        let e = dino_update_center(&v(&[2, 8]), &[v(&[4, 8])], 0.9).unwrap_err().to_string();
        assert!(e.contains("dino_update_center") && e.contains("[2, 8]"), "{e}");
    }
}
