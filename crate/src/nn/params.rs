//! A parameter store whose initial values come from the run's seed.

use crate::rng::{derive_seed, SeededRng};
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

/// Trainable parameters, initialised reproducibly.
///
/// Each tensor's initial value is drawn from a generator seeded by the store's
/// seed and the parameter's name (`"enc.conv1.weight"`), so the same seed
/// gives the same model whatever order the layers are built in. Candle's
/// initialisation hints (constant, normal, uniform, Kaiming) are honoured.
///
/// ```
/// use sslab::nn::{linear, Params};
/// use candle_core::{Device, Module, Tensor};
/// let params = Params::new(42);
/// let layer = linear(3, 2, params.builder(&Device::Cpu).pp("fc"))?;
/// let again = linear(3, 2, Params::new(42).builder(&Device::Cpu).pp("fc"))?;
/// let x = Tensor::ones((1, 3), candle_core::DType::F32, &Device::Cpu)?;
/// assert_eq!(layer.forward(&x)?.to_vec2::<f32>()?, again.forward(&x)?.to_vec2::<f32>()?);
/// assert_eq!(params.num_elements(), 3 * 2 + 2);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Params {
    map: VarMap,
    seed: u64,
}

impl Params {
    /// An empty store whose parameters will be initialised from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { map: VarMap::new(), seed }
    }

    /// The seed parameters are initialised from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A `VarBuilder` (f32) that creates parameters in this store.
    pub fn builder(&self, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, dev.clone())
    }

    /// All trainable variables, sorted by name.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// All trainable variables with their names, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The trainable variables with their names, sorted by name: [`named_vars`](Self::named_vars)
    /// without the batch-norm running statistics ([`is_buffer`](super::is_buffer)).
    /// Pass these to an optimiser with weight decay.
    pub fn named_trainable_vars(&self) -> Vec<(String, Var)> {
        self.named_vars().into_iter().filter(|(n, _)| !super::is_buffer(n)).collect()
    }

    /// Copies into this store the current values of `source`'s variables whose
    /// names start with `prefix` (batch-norm statistics included), e.g. a
    /// pretrained encoder `"enc."` into a fresh one for fine-tuning. Every
    /// such variable here must exist in `source` with the same shape; the
    /// copy is independent of `source` afterwards. Returns how many were copied.
    pub fn load_from(&self, source: &Params, prefix: &str) -> Result<usize> {
        let src: std::collections::HashMap<String, Var> = source.named_vars().into_iter().collect();
        let mut n = 0;
        for (name, var) in self.named_vars().into_iter().filter(|(n, _)| n.starts_with(prefix)) {
            let Some(s) = src.get(&name) else {
                candle_core::bail!("load_from: the source has no parameter {name}");
            };
            if s.dims() != var.dims() {
                candle_core::bail!("load_from: {name} is {:?} in the source but {:?} here", s.dims(), var.dims());
            }
            var.set(&s.as_tensor().to_device(var.device())?.to_dtype(var.dtype())?)?;
            n += 1;
        }
        Ok(n)
    }

    /// The current value of every variable by name (for a checkpoint's model
    /// group): the tensors share storage with the variables.
    pub fn named_tensors(&self) -> std::collections::HashMap<String, Tensor> {
        self.named_vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect()
    }

    /// Sets every variable from `tensors` by name (a checkpoint's model
    /// group, say); an error naming `what` and the first variable that is
    /// missing there or has another shape. Tensors are moved to the
    /// variable's device and dtype. All are checked before any is set, so on
    /// an error the store is unchanged.
    pub fn set_from(&self, tensors: &std::collections::HashMap<String, Tensor>, what: &str) -> Result<()> {
        let vars = self.named_vars();
        let mut pairs = Vec::with_capacity(vars.len());
        for (name, var) in &vars {
            let Some(t) = tensors.get(name) else {
                candle_core::bail!("{what}: parameter {name} is missing");
            };
            if t.dims() != var.dims() {
                candle_core::bail!("{what}: parameter {name} has shape {:?}, the model needs {:?}", t.dims(), var.dims());
            }
            pairs.push((var, t));
        }
        for (var, t) in pairs {
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// The trainable variables, sorted by name (no batch-norm running statistics).
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.named_trainable_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// Total number of scalars in the store, batch-norm running statistics included
    /// (see [`count_params`](super::count_params) for trainable parameters only).
    pub fn num_elements(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The underlying Candle `VarMap` (for saving and loading safetensors).
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    fn init_tensor(&self, shape: &Shape, name: &str, init: Init, dev: &Device) -> Result<Tensor> {
        let mut rng = SeededRng::new(derive_seed(self.seed, name));
        match init {
            Init::Const(v) => Tensor::full(v as f32, shape, dev),
            Init::Randn { mean, stdev } => rng.randn(shape, stdev, dev)? + mean,
            Init::Uniform { lo, up } => rng.rand_uniform(shape, lo, up, dev),
            Init::Kaiming { dist, fan, non_linearity } => {
                let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => rng.randn(shape, std, dev),
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        rng.rand_uniform(shape, -bound, bound, dev)
                    }
                }
            }
        }
    }
}

impl SimpleBackend for Params {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("parameter {name} exists with shape {:?}, requested {:?}", var.dims(), s.dims());
            }
            return Ok(var.as_tensor().clone());
        }
        let t = self.init_tensor(&s, name, h, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        match data.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("no parameter named {name} (and no shape to create it)"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_from_copies_by_name_and_names_a_missing_or_misshaped_tensor() {
        let dev = Device::Cpu;
        let p = Params::new(1);
        let w = p.builder(&dev).get_with_hints((2, 3), "x.w", Init::Const(0.0)).unwrap();
        let b = p.builder(&dev).get_with_hints(3, "x.b", Init::Const(0.0)).unwrap();
        let mut t = std::collections::HashMap::new();
        t.insert("x.w".to_string(), Tensor::ones((2, 3), DType::F64, &dev).unwrap());
        let e = p.set_from(&t, "ck/model.safetensors").unwrap_err().to_string();
        assert!(e.contains("ck/model.safetensors: parameter x.b is missing"), "{e}");
        assert_eq!(w.to_vec2::<f32>().unwrap(), vec![vec![0.0; 3]; 2], "nothing is set on an error");
        t.insert("x.b".to_string(), Tensor::ones(4, DType::F32, &dev).unwrap());
        let e = p.set_from(&t, "ck").unwrap_err().to_string();
        assert!(e.contains("x.b has shape [4], the model needs [3]"), "{e}");
        t.insert("x.b".to_string(), Tensor::full(2f32, 3, &dev).unwrap());
        p.set_from(&t, "ck").unwrap();
        assert_eq!(w.to_vec2::<f32>().unwrap(), vec![vec![1.0; 3]; 2]); // converted from f64
        assert_eq!(b.to_vec1::<f32>().unwrap(), vec![2.0; 3]);
    }

    #[test]
    fn params_same_seed_same_values_regardless_of_order() {
        let dev = Device::Cpu;
        let a = Params::new(1);
        let wa = a.builder(&dev).get_with_hints((4, 5), "x.w", candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
        let _ = a.builder(&dev).get_with_hints(3, "y.b", Init::Const(0.5)).unwrap();
        let b = Params::new(1);
        let _ = b.builder(&dev).get_with_hints(3, "y.b", Init::Const(0.5)).unwrap();
        let wb = b.builder(&dev).get_with_hints((4, 5), "x.w", candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
        assert_eq!(wa.to_vec2::<f32>().unwrap(), wb.to_vec2::<f32>().unwrap());
        let c = Params::new(2);
        let wc = c.builder(&dev).get_with_hints((4, 5), "x.w", candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
        assert_ne!(wa.to_vec2::<f32>().unwrap(), wc.to_vec2::<f32>().unwrap());
        let names: Vec<String> = a.named_vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["x.w", "y.b"]);
        assert_eq!(a.num_elements(), 23);
    }

    #[test]
    fn params_kaiming_has_the_right_scale_and_shape_mismatch_errors() {
        let p = Params::new(0);
        let vb = p.builder(&Device::Cpu);
        let w = vb.get_with_hints((256, 400), "w", candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
        let std = w.flatten_all().unwrap().var(0).unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
        let want = (2.0f32 / 400.0).sqrt();
        assert!((std - want).abs() / want < 0.03, "{std} vs {want}");
        let err = vb.get_with_hints((3, 3), "w", Init::Const(0.0)).unwrap_err().to_string();
        assert!(err.contains("[256, 400]") && err.contains("[3, 3]"), "{err}");
    }
}
