//! A flex tensor's f32 values read where they lie: its buffer borrowed when
//! it is contiguous from its start (the usual case for a mask's inputs), a
//! copy otherwise. A 25 MB copy costs 20–50 ms on the 2-core VM (fresh pages),
//! as much as the host kernels that read it.

use burn::tensor::Tensor;
use burn_flex::{Flex, FlexTensor};

/// The values of a float tensor, borrowed from flex's storage or owned.
pub(super) enum Values {
    Shared(FlexTensor, usize),
    Owned(Vec<f32>),
}

impl Values {
    pub(super) fn of<const D: usize>(t: Tensor<D>) -> Result<Values, String> {
        let n = t.shape().num_elements();
        if let Ok(flex) = t.clone().try_into_primitive::<Flex>() {
            let whole = flex.is_contiguous() && flex.layout().start_offset() == 0;
            let f32_aligned = bytemuck::try_cast_slice::<u8, f32>(flex.bytes()).is_ok();
            if whole && f32_aligned && flex.dtype() == burn::tensor::DType::F32 {
                return Ok(Values::Shared(flex, n));
            }
        }
        let data = t.into_data().convert::<f32>();
        data.try_into_vec::<f32>()
            .map(Values::Owned)
            .map_err(|e| format!("{e:?}"))
    }

    /// The first value of a one-element tensor (a rate), 0 when it is empty.
    pub(super) fn first_of(t: Tensor<4>) -> Result<f32, String> {
        Ok(Values::of(t)?.as_slice().first().copied().unwrap_or(0.0))
    }

    pub(super) fn as_slice(&self) -> &[f32] {
        match self {
            Values::Shared(flex, n) => &bytemuck::cast_slice(flex.bytes())[..*n],
            Values::Owned(v) => v,
        }
    }
}

/// A flex float tensor whose f32 values a kernel overwrites: its own buffer
/// when nothing else holds it and the buffer is exactly its values in order
/// (no fresh buffer: on the 2-core VM a fresh 800 KB costs more in page
/// faults than a pass over it), else a copy of the values.
pub(super) struct Writable {
    flex: FlexTensor,
}

impl Writable {
    /// `t`'s buffer, or a copy; an error when `t` is not on flex.
    pub(super) fn of(t: Tensor<4>) -> Result<Writable, String> {
        let n = t.shape().num_elements();
        let flex = t
            .try_into_primitive::<Flex>()
            .map_err(|e| format!("not a flex tensor: {e:?}"))?;
        let whole = flex.is_contiguous()
            && flex.layout().start_offset() == 0
            && flex.dtype() == burn::tensor::DType::F32
            && flex.bytes().len() == n * std::mem::size_of::<f32>()
            && bytemuck::try_cast_slice::<u8, f32>(flex.bytes()).is_ok();
        if whole {
            return Ok(Writable { flex });
        }
        let data = Tensor::<4>::from_primitive::<Flex>(flex)
            .into_data()
            .convert::<f32>();
        Ok(Writable {
            flex: FlexTensor::from_data(data),
        })
    }

    /// The values, copied first if another tensor shares them.
    pub(super) fn values(&mut self) -> &mut [f32] {
        self.flex.storage_mut::<f32>()
    }

    /// Back to a tensor of the shape it had.
    pub(super) fn into_tensor(self) -> Tensor<4> {
        Tensor::from_primitive::<Flex>(self.flex)
    }
}
