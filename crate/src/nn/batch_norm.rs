//! Batch normalisation with a train/eval switch.
//!
//! \[0\] S. Ioffe, C. Szegedy, "Batch Normalization: Accelerating Deep Network
//!     Training by Reducing Internal Covariate Shift", 2015, arXiv:1502.03167, Alg. 1.
//!
//! ```text
//! train:  y = γ ⊙ (x − μ_B) / sqrt(σ²_B + ε) + β        μ_B, σ²_B over batch (and space), σ² biased
//!         running_mean ← (1 − m)·running_mean + m·μ_B
//!         running_var  ← (1 − m)·running_var  + m·σ²_B · n/(n − 1)   (PyTorch's convention, m = 0.1)
//! eval:   y = γ ⊙ (x − running_mean) / sqrt(running_var + ε) + β
//! ```
//!
//! Our own layer rather than `candle_nn::BatchNorm` for two reasons: the
//! running statistics must be read *live* from the store (so that an
//! [`EmaTeacher`](super::EmaTeacher) model sees its updated statistics without
//! being rebuilt; Candle's layer copies them when the store's tensor is not a
//! `Var`), and a model built from constant tensors must not try to update
//! them. The running statistics are stored as `running_mean` / `running_var`
//! (PyTorch's names) next to `weight` / `bias`; they are buffers, not
//! trainable parameters: no gradient reaches them, and
//! [`is_buffer`](super::is_buffer) names them so that
//! [`count_params`](super::count_params) and
//! [`Params::trainable_vars`](super::Params::trainable_vars) leave them out.

use candle_core::{CpuStorage, DType, Layout, ModuleT, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use super::kernels::f32_slice;
use rayon::prelude::*;

/// Batch-norm momentum (PyTorch's default): weight of the new batch statistic.
pub const BN_MOMENTUM: f64 = 0.1;
/// Batch-norm epsilon (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

#[derive(Clone, Debug)]
enum Stat {
    /// Trainable store: updated in place in train mode.
    Tracked(Var),
    /// Constant store (e.g. an EMA teacher): read live, never written.
    Fixed(Tensor),
}

impl Stat {
    fn tensor(&self) -> Tensor {
        match self {
            Stat::Tracked(v) => v.as_detached_tensor(),
            Stat::Fixed(t) => t.detach(),
        }
    }
}

/// A batch-normalisation layer over dimension 1 (`BatchNorm1d` / `BatchNorm2d`).
///
/// Use it through [`ModuleT::forward_t`]: `train = true` normalises with the
/// batch statistics (gradients flow through them) and updates the running
/// statistics; `train = false` uses the running statistics.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    affine: Option<(Tensor, Tensor)>,
    running_mean: Stat,
    running_var: Stat,
    num_features: usize,
}

/// Builds a [`BatchNorm`] over `num_features` channels: parameters `weight` (1),
/// `bias` (0) when `affine`, buffers `running_mean` (0) and `running_var` (1), under `vb`.
pub fn batch_norm(num_features: usize, affine: bool, vb: VarBuilder) -> Result<BatchNorm> {
    if num_features == 0 {
        candle_core::bail!("batch_norm needs num_features > 0, got 0");
    }
    let stat = |name: &str, v: f64| -> Result<Stat> {
        let t = vb.get_with_hints(num_features, name, Init::Const(v))?;
        Ok(if t.is_variable() { Stat::Tracked(Var::from_tensor(&t)?) } else { Stat::Fixed(t) })
    };
    let running_mean = stat("running_mean", 0.0)?;
    let running_var = stat("running_var", 1.0)?;
    let affine = if affine {
        Some((
            vb.get_with_hints(num_features, "weight", Init::Const(1.0))?,
            vb.get_with_hints(num_features, "bias", Init::Const(0.0))?,
        ))
    } else {
        None
    };
    Ok(BatchNorm { affine, running_mean, running_var, num_features })
}

impl BatchNorm {
    /// Number of channels normalised.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The running mean `(C,)` (a detached view).
    pub fn running_mean(&self) -> Tensor {
        self.running_mean.tensor()
    }

    /// The running variance `(C,)` (a detached view).
    pub fn running_var(&self) -> Tensor {
        self.running_var.tensor()
    }

    /// Whether train mode updates running statistics (a trainable store).
    fn tracks_running_stats(&self) -> bool {
        matches!(self.running_mean, Stat::Tracked(_)) || matches!(self.running_var, Stat::Tracked(_))
    }

    /// Moves the tracked running statistics towards the batch `mean` and
    /// biased `var` (any shape with `C` values), the variance unbiased over
    /// the `n` values per channel.
    fn update_running_stats(&self, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        if let Stat::Tracked(rm) = &self.running_mean {
            let m = mean.detach().flatten_all()?;
            rm.set(&((rm.as_detached_tensor() * (1.0 - BN_MOMENTUM))? + (m * BN_MOMENTUM)?)?)?;
        }
        if let Stat::Tracked(rv) = &self.running_var {
            let v = (var.detach().flatten_all()? * (n as f64 / (n as f64 - 1.0)))?;
            rv.set(&((rv.as_detached_tensor() * (1.0 - BN_MOMENTUM))? + (v * BN_MOMENTUM)?)?)?;
        }
        Ok(())
    }
}

impl ModuleT for BatchNorm {
    /// # Shapes
    /// `(B, C)`, `(B, C, T)` or `(B, C, H, W)` → the same shape.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dims = x.dims();
        if dims.len() < 2 || dims[1] != self.num_features {
            candle_core::bail!(
                "BatchNorm expects (B, {}, …), got shape {dims:?}",
                self.num_features
            );
        }
        let c = self.num_features;
        let mut bshape = vec![1usize; dims.len()];
        bshape[1] = c;
        let y = if train {
            let n = x.elem_count() / c;
            if n < 2 {
                candle_core::bail!("BatchNorm in train mode needs more than 1 value per channel, got shape {dims:?}");
            }
            if x.device().is_cpu() && x.dtype() == DType::F32 {
                // the fused op differentiates through the batch statistics itself; the
                // statistics are computed here only when there are running ones to update
                if self.tracks_running_stats() {
                    let stats = x.contiguous()?.apply_op1_no_bwd(&ChannelStats)?;
                    self.update_running_stats(&stats.get(0)?, &stats.get(1)?, n)?;
                }
                let (w, b) = match &self.affine {
                    Some((w, b)) => (w.clone(), b.clone()),
                    None => (Tensor::ones(c, DType::F32, x.device())?, Tensor::zeros(c, DType::F32, x.device())?),
                };
                return x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, FusedBatchNorm);
            }
            let red: Vec<usize> = std::iter::once(0).chain(2..dims.len()).collect();
            let mean = x.mean_keepdim(red.clone())?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(red)?;
            self.update_running_stats(&mean, &var, n)?;
            xc.broadcast_div(&(var + BN_EPS)?.sqrt()?)?
        } else {
            let mean = self.running_mean.tensor().reshape(bshape.as_slice())?;
            let var = self.running_var.tensor().reshape(bshape.as_slice())?;
            x.broadcast_sub(&mean)?.broadcast_div(&(var + BN_EPS)?.sqrt()?)?
        };
        match &self.affine {
            Some((w, b)) => y
                .broadcast_mul(&w.reshape(bshape.as_slice())?)?
                .broadcast_add(&b.reshape(bshape.as_slice())?),
            None => Ok(y),
        }
    }
}

/// Per-channel `[mean; biased variance]`, `(2, C)`, of a contiguous
/// `(B, C, …)` tensor (no backward).
struct ChannelStats;
/// Train-mode batch norm `γ ⊙ (x − μ_B)/sqrt(σ²_B + ε) + β` on the CPU in
/// one pass, with a two-pass backward ([`FusedBatchNormBackward`]) that
/// differentiates through the batch statistics:
///
/// ```text
/// x̂ = (x − μ)·r, r = 1/sqrt(σ² + ε), N values per channel, g = ∂L/∂y
/// ∂L/∂β = Σ g     ∂L/∂γ = Σ g·x̂     ∂L/∂x = γ·r/N · (N·g − ∂L/∂β − x̂·∂L/∂γ)
/// ```
///
/// The composed form reduces over the batch and spatial axes with Candle's
/// strided reductions, several times in the forward and backward passes: it
/// made a MoCo step with a batch-normed CNN about 7× slower than without.
struct FusedBatchNorm;
/// `(x, γ, g)` ↦ `[∂L/∂x (flattened); ∂L/∂γ; ∂L/∂β]`.
struct FusedBatchNormBackward;


/// `(B, C, S)` of a `(B, C, …)` layout.
fn bcs(l: &Layout) -> Result<(usize, usize, usize)> {
    let d = l.shape().dims();
    if d.len() < 2 || d[1] == 0 {
        candle_core::bail!("batch norm expects (B, C, …), got {:?}", l.shape());
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Per-channel mean and biased variance (two passes over each channel).
fn channel_stats(x: &[f32], b: usize, c: usize, s: usize) -> Vec<(f32, f32)> {
    let n = (b * s).max(1) as f64;
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let planes = (0..b).map(|bi| &x[(bi * c + ci) * s..(bi * c + ci + 1) * s]);
            let mean = planes.clone().map(|p| p.iter().map(|&v| f64::from(v)).sum::<f64>()).sum::<f64>() / n;
            let var = planes.map(|p| p.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>()).sum::<f64>() / n;
            (mean as f32, var as f32)
        })
        .collect()
}

impl candle_core::CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "sslab-channel-stats"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(st, l, "batch norm")?;
        let (b, c, s) = bcs(l)?;
        let stats = channel_stats(x, b, c, s);
        let out: Vec<f32> = stats.iter().map(|p| p.0).chain(stats.iter().map(|p| p.1)).collect();
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

impl candle_core::CustomOp3 for FusedBatchNorm {
    fn name(&self) -> &'static str {
        "sslab-batch-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w, bias) = (f32_slice(s1, l1, "batch norm")?, f32_slice(s2, l2, "batch norm weight")?, f32_slice(s3, l3, "batch norm bias")?);
        let (b, c, s) = bcs(l1)?;
        if w.len() != c || bias.len() != c {
            candle_core::bail!("batch norm: weight {:?} or bias {:?} does not match {:?}", l2.shape(), l3.shape(), l1.shape());
        }
        let stats = channel_stats(x, b, c, s);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(s.max(1)).zip(x.par_chunks(s.max(1))).enumerate().for_each(|(i, (yp, xp))| {
            let ci = i % c;
            let (mean, var) = stats[ci];
            let scale = w[ci] / (var + BN_EPS as f32).sqrt();
            let shift = bias[ci] - mean * scale;
            for (o, &v) in yp.iter_mut().zip(xp) {
                *o = v * scale + shift;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = w.elem_count();
        let n = x.elem_count();
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &FusedBatchNormBackward)?;
        let gx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let gw = packed.narrow(0, n, c)?;
        let gb = packed.narrow(0, n + c, c)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

impl candle_core::CustomOp3 for FusedBatchNormBackward {
    fn name(&self) -> &'static str {
        "sslab-batch-norm-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (f32_slice(s1, l1, "batch norm backward")?, f32_slice(s2, l2, "batch norm backward")?, f32_slice(s3, l3, "batch norm backward")?);
        let (b, c, s) = bcs(l1)?;
        if g.len() != x.len() || w.len() != c {
            candle_core::bail!("batch norm backward: gradient {:?} for x {:?}", l3.shape(), l1.shape());
        }
        let stats = channel_stats(x, b, c, s);
        // per channel: (Σ g, Σ g·x̂)
        let sums: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let (mean, var) = stats[ci];
                let r = 1.0 / (var + BN_EPS as f32).sqrt();
                let (mut sg, mut sgx) = (0f64, 0f64);
                for bi in 0..b {
                    let o = (bi * c + ci) * s;
                    for (&gv, &xv) in g[o..o + s].iter().zip(&x[o..o + s]) {
                        sg += f64::from(gv);
                        sgx += f64::from(gv * (xv - mean) * r);
                    }
                }
                (sg as f32, sgx as f32)
            })
            .collect();
        let nn = (b * s) as f32;
        let mut out = vec![0f32; x.len() + 2 * c];
        let (gx, params) = out.split_at_mut(x.len());
        gx.par_chunks_mut(s.max(1)).zip(x.par_chunks(s.max(1))).zip(g.par_chunks(s.max(1))).enumerate().for_each(|(i, ((gxp, xp), gp))| {
            let ci = i % c;
            let (mean, var) = stats[ci];
            let r = 1.0 / (var + BN_EPS as f32).sqrt();
            let (sg, sgx) = sums[ci];
            let k = w[ci] * r / nn;
            for ((o, &xv), &gv) in gxp.iter_mut().zip(xp).zip(gp) {
                *o = k * (nn * gv - sg - (xv - mean) * r * sgx);
            }
        });
        for (ci, &(sg, sgx)) in sums.iter().enumerate() {
            params[ci] = sgx;
            params[c + ci] = sg;
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;
    use candle_core::Device;

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * w.abs().max(1.0), "element {i}: got {g}, want {w}");
        }
    }

    /// ```python
    /// import torch
    /// bn = torch.nn.BatchNorm2d(2)
    /// with torch.no_grad(): bn.weight.copy_(torch.tensor([1.5, -0.5])); bn.bias.copy_(torch.tensor([0.1, 0.2]))
    /// x = torch.sin(0.7 * torch.arange(24.) + 0.3).reshape(3, 2, 2, 2).requires_grad_()
    /// w = torch.arange(24.).reshape(3, 2, 2, 2) / 10
    /// y = bn(x); (y * w).sum().backward()
    /// y.flatten()[:8], x.grad.flatten()[:8], bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var
    /// bn.eval(); bn(x).flatten()[:4]
    /// ```
    #[test]
    fn batch_norm_train_and_eval_match_torch() {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let vb = p.builder(&dev);
        let bn = batch_norm(2, true, vb.pp("bn")).unwrap();
        let named = p.named_vars();
        let var = |n: &str| named.iter().find(|(k, _)| k == n).unwrap().1.clone();
        var("bn.weight").set(&Tensor::new(&[1.5f32, -0.5], &dev).unwrap()).unwrap();
        var("bn.bias").set(&Tensor::new(&[0.1f32, 0.2], &dev).unwrap()).unwrap();
        let x = Var::from_tensor(
            &Tensor::arange(0f32, 24., &dev).unwrap().affine(0.7, 0.3).unwrap().sin().unwrap().reshape((3, 2, 2, 2)).unwrap(),
        )
        .unwrap();
        let w = (Tensor::arange(0f32, 24., &dev).unwrap().reshape((3, 2, 2, 2)).unwrap() / 10.).unwrap();
        let y = bn.forward_t(x.as_tensor(), true).unwrap();
        assert_close(&flat(&y)[..8], &WANT_Y, 1e-4);
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_close(&flat(g.get(x.as_tensor()).unwrap())[..8], &WANT_GX, 1e-3);
        assert_close(&flat(g.get(var("bn.weight").as_tensor()).unwrap()), &WANT_GW, 1e-4);
        assert_close(&flat(g.get(var("bn.bias").as_tensor()).unwrap()), &WANT_GB, 1e-4);
        assert!(g.get(var("bn.running_mean").as_tensor()).is_none());
        // running statistics were updated in place in the store
        assert_close(&flat(var("bn.running_mean").as_tensor()), &WANT_RM, 1e-4);
        assert_close(&flat(var("bn.running_var").as_tensor()), &WANT_RV, 1e-4);
        let ye = bn.forward_t(x.as_tensor(), false).unwrap();
        assert_close(&flat(&ye)[..4], &WANT_EVAL, 1e-4);
        // errors
        assert!(bn.forward_t(&Tensor::zeros((3, 5), candle_core::DType::F32, &dev).unwrap(), true).is_err());
        assert!(bn.forward_t(&Tensor::zeros((1, 2), candle_core::DType::F32, &dev).unwrap(), true).is_err());
    }

    #[rustfmt::skip]
    const WANT_Y: [f32; 8] = [-0.108796, 1.275321, 1.656098, 0.854451, 0.02103, 0.514894, 0.791267, 0.720165];
    #[rustfmt::skip]
    const WANT_GX: [f32; 8] = [-2.492507, -1.681965, -1.275202, -1.344289, 0.787473, 0.520195, 0.337338, 0.289358];
    const WANT_GW: [f32; 2] = [-2.857256, 3.081486];
    const WANT_GB: [f32; 2] = [11.400001, 16.2];
    const WANT_RM: [f32; 2] = [0.037788, -0.019522];
    const WANT_RV: [f32; 2] = [0.938187, 0.947743];
    const WANT_EVAL: [f32; 4] = [0.499129, 1.344598, 1.577191, 1.087515];

    /// The fused CPU op equals the composed form (Candle ops, as on other
    /// devices) in value and in all three gradients, for 2-D, 3-D and 4-D
    /// inputs; `ChannelStats` gives the batch mean and biased variance.
    #[test]
    fn fused_batch_norm_matches_the_composed_form() {
        let dev = Device::Cpu;
        let mut rng = crate::rng::SeededRng::new(5);
        for shape in [vec![3usize, 5, 4, 6], vec![7, 5], vec![2, 5, 9]] {
            let x = Var::from_tensor(&(rng.randn(shape.as_slice(), 2.0, &dev).unwrap() + 0.7).unwrap()).unwrap();
            let w = Var::from_tensor(&rng.randn(5, 1.0, &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&rng.randn(5, 1.0, &dev).unwrap()).unwrap();
            let r = rng.randn(shape.as_slice(), 1.0, &dev).unwrap();
            let mut bshape = vec![1usize; shape.len()];
            bshape[1] = 5;
            let red: Vec<usize> = std::iter::once(0).chain(2..shape.len()).collect();
            let mean = x.as_tensor().mean_keepdim(red.clone()).unwrap();
            let xc = x.as_tensor().broadcast_sub(&mean).unwrap();
            let var = xc.sqr().unwrap().mean_keepdim(red).unwrap();
            let composed = xc
                .broadcast_div(&(&var + BN_EPS).unwrap().sqrt().unwrap())
                .unwrap()
                .broadcast_mul(&w.as_tensor().reshape(bshape.as_slice()).unwrap())
                .unwrap()
                .broadcast_add(&b.as_tensor().reshape(bshape.as_slice()).unwrap())
                .unwrap();
            let fused = x.as_tensor().apply_op3(w.as_tensor(), b.as_tensor(), FusedBatchNorm).unwrap();
            let stats = x.as_tensor().apply_op1_no_bwd(&ChannelStats).unwrap();
            assert_close(&flat(&stats.get(0).unwrap()), &flat(&mean), 1e-5);
            assert_close(&flat(&stats.get(1).unwrap()), &flat(&var), 1e-4);
            assert_close(&flat(&fused), &flat(&composed), 1e-4);
            let g1 = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (composed * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (what, v) in [("x", &x), ("weight", &w), ("bias", &b)] {
                let (a, e) = (flat(g1.get(v.as_tensor()).unwrap()), flat(g2.get(v.as_tensor()).unwrap()));
                assert_eq!(a.len(), e.len(), "{what}");
                assert_close(&a, &e, 1e-3);
            }
        }
    }
}
