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

    pub(super) fn as_slice(&self) -> &[f32] {
        match self {
            Values::Shared(flex, n) => &bytemuck::cast_slice(flex.bytes())[..*n],
            Values::Owned(v) => v,
        }
    }
}
