//! A momentum (exponential-moving-average) teacher, as in MoCo, BYOL and DINO.
//!
//! \[0\] K. He, H. Fan, Y. Wu, S. Xie, R. Girshick, "Momentum Contrast for
//!     Unsupervised Visual Representation Learning", 2019, arXiv:1911.05722, eq. (2).
//! \[1\] J.-B. Grill et al., "Bootstrap Your Own Latent", 2020, arXiv:2006.07733,
//!     §3.1 and §3.2 (the cosine schedule of τ).
//!
//! ```text
//! θ_t ← τ θ_t + (1 − τ) θ_s                       (after each optimiser step on θ_s)
//! τ_k = 1 − (1 − τ_base) · (cos(π k / K) + 1) / 2   (τ_base at k = 0, 1 at k = K)
//! ```
//!
//! The teacher never receives gradients: [`EmaTeacher`] holds plain tensors
//! (not `Var`s, no graph) that are copies of the student's parameters, and
//! exposes them only through a read-only `VarBuilder`. Build the teacher's
//! model from [`EmaTeacher::builder`] with the same constructor and prefix as
//! the student's; the model's layers share storage with the teacher, so after
//! [`EmaTeacher::ema_update`] (which writes in place) the *same* model object
//! computes with the new weights — no rebuild needed (rebuilding is also cheap:
//! it only looks tensors up). Batch-norm running statistics are averaged like
//! the other tensors; a teacher's batch norm in train mode uses batch
//! statistics and never writes its running statistics.
//!
//! ```
//! use sslab::nn::{CnnConfig, EmaTeacher, Params};
//! use candle_core::{Device, Module, Tensor};
//! let dev = Device::Cpu;
//! let student = Params::new(0);
//! let enc = CnnConfig::default().init(student.builder(&dev).pp("enc"))?;
//! let mut teacher = EmaTeacher::new(&student)?;
//! let enc_t = CnnConfig::default().init(teacher.builder(&dev).pp("enc"))?; // built once
//! let x = Tensor::ones((1, 1, 8, 8), candle_core::DType::F32, &dev)?;
//! // … an optimiser changes the student …
//! for (_, v) in student.named_vars() { v.set(&(v.as_tensor() * 2.0)?)?; }
//! teacher.ema_update(&student, 0.0)?; // τ = 0: copy the student
//! let diff = (enc.forward(&x)? - enc_t.forward(&x)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-6); // the teacher model sees the new weights without being rebuilt
//! # Ok::<(), candle_core::Error>(())
//! ```

use super::Params;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::collections::BTreeMap;
use std::sync::Arc;

/// BYOL's cosine schedule of the EMA decay: `τ_base` at step 0, rising to 1 at `total`
/// (steps past `total` give 1; `total = 0` gives `τ_base`).
pub fn cosine_momentum(step: usize, total: usize, base_tau: f64) -> f64 {
    if total == 0 {
        return base_tau;
    }
    let k = step.min(total) as f64 / total as f64;
    1.0 - (1.0 - base_tau) * ((std::f64::consts::PI * k).cos() + 1.0) / 2.0
}

/// A frozen copy of a model's parameters, updated only by an exponential moving average.
pub struct EmaTeacher {
    tensors: Arc<BTreeMap<String, Tensor>>,
}

impl EmaTeacher {
    /// A deep copy of every tensor in `student` (parameters and batch-norm
    /// statistics), detached. Create it after the student model is built.
    pub fn new(student: &Params) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (name, var) in student.named_vars() {
            map.insert(name, var.as_tensor().copy()?.detach());
        }
        Ok(Self { tensors: Arc::new(map) })
    }

    /// The teacher's tensors with their names, sorted (plain tensors: no gradient reaches them).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Number of tensors held.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the teacher holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// A read-only `VarBuilder` (f32) over the teacher's tensors: build the same
    /// architecture with the same prefixes as the student. Asking for a name the
    /// teacher lacks, or with another shape, is an error. On the teacher's own
    /// device the model shares storage with the teacher (see the [module docs](self)).
    pub fn builder(&self, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(TeacherBackend { tensors: self.tensors.clone() }), DType::F32, dev.clone())
    }

    /// `θ_t ← τ θ_t + (1 − τ) θ_s` for every tensor, in place; `tau` in `[0, 1]`.
    /// The student must hold exactly the teacher's names and shapes.
    pub fn ema_update(&mut self, student: &Params, tau: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&tau) {
            candle_core::bail!("ema_update: tau must be in [0, 1], got {tau}");
        }
        let sv = student.named_vars();
        if sv.len() != self.tensors.len() {
            candle_core::bail!(
                "ema_update: the student has {} tensors, the teacher {} (create the teacher after building the model)",
                sv.len(),
                self.tensors.len()
            );
        }
        for (name, var) in &sv {
            let t = match self.tensors.get(name) {
                Some(t) => t,
                None => candle_core::bail!("ema_update: the teacher has no tensor named {name}"),
            };
            if t.dims() != var.dims() {
                candle_core::bail!("ema_update: {name} is {:?} in the teacher and {:?} in the student", t.dims(), var.dims());
            }
            let s = var.as_detached_tensor().to_dtype(t.dtype())?.to_device(t.device())?;
            let new = ((t * tau)? + (s * (1.0 - tau))?)?.contiguous()?;
            t.flatten_all()?.slice_set(&new.flatten_all()?, 0, 0)?;
        }
        Ok(())
    }
}

struct TeacherBackend {
    tensors: Arc<BTreeMap<String, Tensor>>,
}

impl SimpleBackend for TeacherBackend {
    fn get(&self, s: Shape, name: &str, _h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            candle_core::bail!("EmaTeacher: {name} is {:?}, the model asks for {:?}", t.dims(), s.dims());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("EmaTeacher has no tensor named {name} (build the student first, with the same prefix)"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{batch_norm, linear, CnnConfig};
    use candle_core::{Module, ModuleT};

    fn setup() -> (Params, crate::nn::Linear) {
        let p = Params::new(0);
        let l = linear(2, 2, p.builder(&Device::Cpu).pp("fc")).unwrap();
        let named = p.named_vars();
        named[0].1.set(&Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap()).unwrap(); // fc.bias
        named[1].1.set(&Tensor::new(&[[1f32, 0.], [0., 1.]], &Device::Cpu).unwrap()).unwrap(); // fc.weight
        (p, l)
    }

    #[test]
    fn ema_update_math_is_exact_and_tau_extremes() {
        let (p, _) = setup();
        let mut t = EmaTeacher::new(&p).unwrap();
        for (_, v) in p.named_vars() {
            v.set(&(v.as_tensor() * 3.0).unwrap()).unwrap();
        }
        // tau = 1 keeps the teacher
        t.ema_update(&p, 1.0).unwrap();
        assert_eq!(t.named_tensors()[0].1.to_vec1::<f32>().unwrap(), vec![1., 2.]);
        // 0.75 * [1, 2] + 0.25 * [3, 6] = [1.5, 3]
        t.ema_update(&p, 0.75).unwrap();
        assert_eq!(t.named_tensors()[0].1.to_vec1::<f32>().unwrap(), vec![1.5, 3.]);
        assert_eq!(t.named_tensors()[1].1.to_vec2::<f32>().unwrap(), vec![vec![1.5, 0.], vec![0., 1.5]]);
        // tau = 0 copies the student
        t.ema_update(&p, 0.0).unwrap();
        assert_eq!(t.named_tensors()[0].1.to_vec1::<f32>().unwrap(), vec![3., 6.]);
        assert!(t.ema_update(&p, 1.5).is_err());
        // a student with an extra parameter is rejected
        let _ = linear(2, 1, p.builder(&Device::Cpu).pp("extra")).unwrap();
        assert!(t.ema_update(&p, 0.5).unwrap_err().to_string().contains("tensors"));
    }

    #[test]
    fn ema_teacher_tensors_get_no_gradient_and_models_see_updates() {
        let dev = Device::Cpu;
        let (p, student) = setup();
        let mut t = EmaTeacher::new(&p).unwrap();
        assert!(t.named_tensors().iter().all(|(_, x)| !x.is_variable()));
        let teacher = linear(2, 2, t.builder(&dev).pp("fc")).unwrap();
        let x = Tensor::new(&[[1f32, -1.]], &dev).unwrap();
        let loss = (student.forward(&x).unwrap() * teacher.forward(&x).unwrap()).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        assert!(p.vars().iter().all(|v| g.get(v.as_tensor()).is_some()));
        assert!(t.named_tensors().iter().all(|(_, x)| g.get(x).is_none()));
        assert!(g.get(teacher.weight()).is_none());
        // the existing teacher model sees an update
        for (_, v) in p.named_vars() {
            v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
        }
        t.ema_update(&p, 0.5).unwrap();
        assert_eq!(teacher.forward(&x).unwrap().to_vec2::<f32>().unwrap(), vec![vec![1.0, 0.5]]);
        // wrong prefix / architecture errors name the parameter
        let err = CnnConfig::default().init(t.builder(&dev)).err().unwrap().to_string();
        assert!(err.contains("conv1.weight"), "{err}");
    }

    #[test]
    fn ema_teacher_batch_norm_reads_live_statistics_and_never_writes_them() {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let bn = batch_norm(2, true, p.builder(&dev).pp("bn")).unwrap();
        let mut t = EmaTeacher::new(&p).unwrap();
        let bn_t = batch_norm(2, true, t.builder(&dev).pp("bn")).unwrap();
        let x = Tensor::new(&[[1f32, 2.], [3., 6.]], &dev).unwrap();
        bn_t.forward_t(&x, true).unwrap();
        assert_eq!(bn_t.running_mean().to_vec1::<f32>().unwrap(), vec![0., 0.], "teacher must not write");
        bn.forward_t(&x, true).unwrap(); // student running mean: 0.1 * [2, 4]
        t.ema_update(&p, 0.0).unwrap();
        let rm: Vec<f32> = bn_t.running_mean().to_vec1().unwrap();
        assert!((rm[0] - 0.2).abs() < 1e-6 && (rm[1] - 0.4).abs() < 1e-6, "{rm:?}");
    }

    /// The module doctest, run with the unit tests.
    #[test]
    fn ema_doc_example_small_cnn_teacher_built_once() {
        let dev = Device::Cpu;
        let student = Params::new(0);
        let enc = CnnConfig::default().init(student.builder(&dev).pp("enc")).unwrap();
        let mut teacher = EmaTeacher::new(&student).unwrap();
        let enc_t = CnnConfig::default().init(teacher.builder(&dev).pp("enc")).unwrap();
        let x = Tensor::ones((1, 1, 8, 8), DType::F32, &dev).unwrap();
        let before = enc_t.forward(&x).unwrap();
        for (_, v) in student.named_vars() {
            v.set(&(v.as_tensor() * 2.0).unwrap()).unwrap();
        }
        teacher.ema_update(&student, 0.0).unwrap();
        let after = enc_t.forward(&x).unwrap();
        let diff = (enc.forward(&x).unwrap() - &after).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let moved = (after - before).unwrap().abs().unwrap().max_all().unwrap();
        assert!(moved.to_scalar::<f32>().unwrap() > 1e-4);
    }

    #[test]
    fn ema_cosine_momentum_schedule() {
        assert!((cosine_momentum(0, 100, 0.996) - 0.996).abs() < 1e-12);
        assert!((cosine_momentum(50, 100, 0.996) - 0.998).abs() < 1e-12);
        assert!((cosine_momentum(100, 100, 0.99) - 1.0).abs() < 1e-12);
        assert!((cosine_momentum(200, 100, 0.99) - 1.0).abs() < 1e-12);
        assert_eq!(cosine_momentum(3, 0, 0.9), 0.9);
    }
}
