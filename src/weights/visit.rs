//! The two visitors behind save and load: one reads every tensor of a model
//! with its dotted name, the other writes checked data back by name.
use super::WeightsError;
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::prelude::{Device, HasShape, Shape, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// One tensor of a model: its name, its shape and, when asked for, its data.
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

/// Reads every tensor, in the model's order.
struct Reader {
    with_data: bool,
    out: Vec<Entry>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Reader {
    type Viewer = (ViewTensorName, ViewTensorRef);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _opts: TensorOptions<S, f32, D>,
        (name, t): (String, &Tensor<S, f32, D>),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        let shape = t.shape().concrete().into_iter().collect();
        let data = if self.with_data {
            t.as_vec()
        } else {
            Vec::new()
        };
        self.out.push(Entry { name, shape, data });
        Ok(None)
    }
}

/// The model's tensors in its own order, with their data if `with_data`.
pub(crate) fn read<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
    with_data: bool,
) -> Vec<Entry> {
    let mut reader = Reader {
        with_data,
        out: Vec::new(),
    };
    let walked = M::iter_tensors(&mut RecursiveWalker {
        m: (String::new(), model),
        f: &mut reader,
    });
    match walked {
        Ok(_) => reader.out,
        Err(never) => match never {},
    }
}

/// Writes data, already checked against the model's names and shapes.
struct Writer<'a> {
    path: &'a PathBuf,
    data: &'a HashMap<String, Vec<f32>>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Writer<'_> {
    type Viewer = (ViewTensorName, ViewTensorMut);
    type Err = WeightsError;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _opts: TensorOptions<S, f32, D>,
        (name, t): (String, &mut Tensor<S, f32, D>),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        let expected: Vec<usize> = t.shape().concrete().into_iter().collect();
        match self.data.get(&name) {
            Some(d) if d.len() == t.shape().num_elements() => {
                t.copy_from(d);
                Ok(None)
            }
            // Unreachable after the checks in `load`, but an error, not a panic.
            _ => Err(WeightsError::Missing {
                path: self.path.clone(),
                name,
                expected_shape: expected,
                unused: Vec::new(),
            }),
        }
    }
}

/// Copies `data[name]` into each tensor of the model.
pub(crate) fn write<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &mut M,
    path: &PathBuf,
    data: &HashMap<String, Vec<f32>>,
) -> Result<(), WeightsError> {
    let mut writer = Writer { path, data };
    M::iter_tensors(&mut RecursiveWalker {
        m: (String::new(), model),
        f: &mut writer,
    })
    .map(|_| ())
}
