//! A reader for the part of the TensorFlow Lite file format (a FlatBuffer,
//! `schema.fbs`) that the segmentation models use: tensors, constant
//! buffers, operators with their options. Every offset is checked: a
//! damaged or hostile file gives an error, never a panic.

use crate::ModelError;

/// A bounds-checked view of a FlatBuffer.
#[derive(Clone, Copy)]
struct Buf<'a>(&'a [u8]);

impl<'a> Buf<'a> {
    fn bytes(&self, at: usize, len: usize) -> Result<&'a [u8], ModelError> {
        at.checked_add(len)
            .and_then(|end| self.0.get(at..end))
            .ok_or(ModelError::Malformed("offset out of range"))
    }

    fn u8(&self, at: usize) -> Result<u8, ModelError> {
        Ok(self.bytes(at, 1)?[0])
    }

    fn u16(&self, at: usize) -> Result<u16, ModelError> {
        let b = self.bytes(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, at: usize) -> Result<u32, ModelError> {
        let b = self.bytes(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&self, at: usize) -> Result<i32, ModelError> {
        Ok(self.u32(at)? as i32)
    }

    /// The position an offset field at `at` points to.
    fn follow(&self, at: usize) -> Result<usize, ModelError> {
        at.checked_add(self.u32(at)? as usize)
            .ok_or(ModelError::Malformed("offset overflow"))
    }
}

/// A FlatBuffer table.
#[derive(Clone, Copy)]
struct Table<'a> {
    buf: Buf<'a>,
    at: usize,
}

impl<'a> Table<'a> {
    fn new(buf: Buf<'a>, at: usize) -> Result<Self, ModelError> {
        // Check the vtable is readable now, so field reads can rely on it.
        let table = Table { buf, at };
        table.vtable()?;
        Ok(table)
    }

    fn vtable(&self) -> Result<(usize, u16), ModelError> {
        let soffset = self.buf.i32(self.at)? as i64;
        let vtable = usize::try_from(self.at as i64 - soffset)
            .map_err(|_| ModelError::Malformed("vtable offset"))?;
        let size = self.buf.u16(vtable)?;
        Ok((vtable, size))
    }

    /// Where field `index` is stored, if present.
    fn field(&self, index: usize) -> Result<Option<usize>, ModelError> {
        let (vtable, size) = self.vtable()?;
        let entry = 4 + 2 * index;
        if entry + 2 > size as usize {
            return Ok(None);
        }
        let offset = self.buf.u16(vtable + entry)?;
        Ok((offset != 0).then_some(self.at + offset as usize))
    }

    fn u8_or(&self, index: usize, default: u8) -> Result<u8, ModelError> {
        self.field(index)?.map_or(Ok(default), |at| self.buf.u8(at))
    }

    fn i32_or(&self, index: usize, default: i32) -> Result<i32, ModelError> {
        self.field(index)?
            .map_or(Ok(default), |at| self.buf.i32(at))
    }

    fn u32_or(&self, index: usize, default: u32) -> Result<u32, ModelError> {
        self.field(index)?
            .map_or(Ok(default), |at| self.buf.u32(at))
    }

    fn table(&self, index: usize) -> Result<Option<Table<'a>>, ModelError> {
        match self.field(index)? {
            None => Ok(None),
            Some(at) => Table::new(self.buf, self.buf.follow(at)?).map(Some),
        }
    }

    /// A vector field: (position of the first element, length).
    fn vector(&self, index: usize) -> Result<Option<(usize, usize)>, ModelError> {
        match self.field(index)? {
            None => Ok(None),
            Some(at) => {
                let start = self.buf.follow(at)?;
                let len = self.buf.u32(start)? as usize;
                Ok(Some((start + 4, len)))
            }
        }
    }

    fn bytes(&self, index: usize) -> Result<&'a [u8], ModelError> {
        match self.vector(index)? {
            None => Ok(&[]),
            Some((at, len)) => self.buf.bytes(at, len),
        }
    }

    fn string(&self, index: usize) -> Result<String, ModelError> {
        Ok(String::from_utf8_lossy(self.bytes(index)?).into_owned())
    }

    fn i32s(&self, index: usize) -> Result<Vec<i32>, ModelError> {
        match self.vector(index)? {
            None => Ok(Vec::new()),
            Some((at, len)) => {
                if len > self.buf.0.len() / 4 {
                    return Err(ModelError::Malformed("vector too long"));
                }
                (0..len).map(|i| self.buf.i32(at + 4 * i)).collect()
            }
        }
    }

    fn tables(&self, index: usize) -> Result<Vec<Table<'a>>, ModelError> {
        match self.vector(index)? {
            None => Ok(Vec::new()),
            Some((at, len)) => {
                if len > self.buf.0.len() / 4 {
                    return Err(ModelError::Malformed("vector too long"));
                }
                (0..len)
                    .map(|i| Table::new(self.buf, self.buf.follow(at + 4 * i)?))
                    .collect()
            }
        }
    }
}

/// Element types of tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// 32-bit float.
    F32,
    /// 16-bit float (constant weights, dequantized on loading).
    F16,
    /// 32-bit integer (shapes and axes).
    I32,
    /// Any other type (not used by the supported models).
    Other(u8),
}

/// A tensor of the graph.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Its name in the model.
    pub name: String,
    /// Dimensions (NHWC for images).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DataType,
    /// The constant data, if it has any.
    pub data: Option<Vec<u8>>,
}

/// Padding of convolutions and pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, zeros around.
    Same,
    /// Only where the filter fits.
    Valid,
}

/// An activation fused into an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
}

/// An operator and what it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    /// Float16 constant → float32.
    Dequantize,
    /// 2-D convolution (filter OHWI).
    Conv2d {
        /// Padding.
        padding: Padding,
        /// Stride (x, y).
        stride: (usize, usize),
        /// Fused activation.
        activation: Activation,
    },
    /// Depthwise convolution (filter 1HWC).
    DepthwiseConv2d {
        /// Padding.
        padding: Padding,
        /// Stride (x, y).
        stride: (usize, usize),
        /// Fused activation.
        activation: Activation,
    },
    /// Average pooling.
    AveragePool {
        /// Padding.
        padding: Padding,
        /// Stride (x, y).
        stride: (usize, usize),
        /// Filter (width, height).
        filter: (usize, usize),
        /// Fused activation.
        activation: Activation,
    },
    /// Mean over axes given by the second input.
    Mean {
        /// Keep reduced dimensions as 1.
        keep_dims: bool,
    },
    /// Element-wise addition with broadcasting.
    Add(Activation),
    /// Element-wise multiplication with broadcasting.
    Mul(Activation),
    /// x · relu6(x + 3) / 6.
    HardSwish,
    /// max(x, 0).
    Relu,
    /// 1 / (1 + e^-x).
    Logistic,
    /// Bilinear resizing to the size given by the second input.
    ResizeBilinear {
        /// Corners aligned.
        align_corners: bool,
        /// Pixel centres at +0.5.
        half_pixel_centers: bool,
    },
    /// MediaPipe's `Convolution2DTransposeBias` (filter OHWI, bias).
    TransposeConvBias {
        /// Padding.
        padding: Padding,
        /// Stride (x, y).
        stride: (usize, usize),
    },
}

/// One operator of the graph.
#[derive(Debug, Clone)]
pub struct Op {
    /// What it does.
    pub kind: OpKind,
    /// Input tensor indices (-1: none).
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
}

/// The model's single subgraph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Every tensor.
    pub tensors: Vec<TensorInfo>,
    /// Operators in execution order.
    pub ops: Vec<Op>,
    /// Graph inputs.
    pub inputs: Vec<usize>,
    /// Graph outputs.
    pub outputs: Vec<usize>,
}

fn padding(code: u8) -> Result<Padding, ModelError> {
    match code {
        0 => Ok(Padding::Same),
        1 => Ok(Padding::Valid),
        _ => Err(ModelError::Malformed("padding")),
    }
}

fn activation(code: u8) -> Result<Activation, ModelError> {
    match code {
        0 => Ok(Activation::None),
        1 => Ok(Activation::Relu),
        3 => Ok(Activation::Relu6),
        other => Err(ModelError::Unsupported(format!("fused activation {other}"))),
    }
}

fn positive(v: i32, what: &'static str) -> Result<usize, ModelError> {
    usize::try_from(v)
        .ok()
        .filter(|v| (1..=4096).contains(v))
        .ok_or(ModelError::Malformed(what))
}

/// Reads a `.tflite` model.
pub fn read(model: &[u8]) -> Result<Graph, ModelError> {
    let buf = Buf(model);
    let root = Table::new(buf, buf.u32(0)? as usize)?;
    let codes: Vec<(i32, String)> = root
        .tables(1)?
        .iter()
        .map(|c| {
            let deprecated = i32::from(c.u8_or(0, 0)? as i8);
            let builtin = c.i32_or(3, 0)?;
            Ok((deprecated.max(builtin), c.string(1)?))
        })
        .collect::<Result<_, ModelError>>()?;
    let buffers: Vec<&[u8]> = root
        .tables(4)?
        .iter()
        .map(|b| b.bytes(0))
        .collect::<Result<_, _>>()?;
    let subgraphs = root.tables(2)?;
    let graph = subgraphs
        .first()
        .ok_or(ModelError::Malformed("no subgraph"))?;
    let tensors = graph
        .tables(0)?
        .iter()
        .map(|t| {
            let shape = t
                .i32s(0)?
                .into_iter()
                .map(|d| usize::try_from(d).map_err(|_| ModelError::Malformed("dimension")))
                .collect::<Result<Vec<_>, _>>()?;
            let dtype = match t.u8_or(1, 0)? {
                0 => DataType::F32,
                1 => DataType::F16,
                2 => DataType::I32,
                other => DataType::Other(other),
            };
            let data = buffers
                .get(t.u32_or(2, 0)? as usize)
                .filter(|b| !b.is_empty())
                .map(|b| b.to_vec());
            Ok(TensorInfo {
                name: t.string(3)?,
                shape,
                dtype,
                data,
            })
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let index = |list: Vec<i32>| -> Result<Vec<usize>, ModelError> {
        list.into_iter()
            .map(|i| {
                usize::try_from(i)
                    .ok()
                    .filter(|i| *i < tensors.len())
                    .ok_or(ModelError::Malformed("tensor index"))
            })
            .collect()
    };
    let inputs = index(graph.i32s(1)?)?;
    let outputs = index(graph.i32s(2)?)?;
    let mut ops = Vec::new();
    for op in graph.tables(3)? {
        let (code, custom) = codes
            .get(op.u32_or(0, 0)? as usize)
            .ok_or(ModelError::Malformed("opcode index"))?;
        let options = op.table(4)?;
        let opt_u8 = |i: usize, d: u8| options.map_or(Ok(d), |o| o.u8_or(i, d));
        let opt_i32 = |i: usize, d: i32| options.map_or(Ok(d), |o| o.i32_or(i, d));
        let kind = match code {
            6 => OpKind::Dequantize,
            3 => OpKind::Conv2d {
                padding: padding(opt_u8(0, 0)?)?,
                stride: (
                    positive(opt_i32(1, 1)?, "stride")?,
                    positive(opt_i32(2, 1)?, "stride")?,
                ),
                activation: activation(opt_u8(3, 0)?)?,
            },
            4 => {
                if opt_i32(3, 1)? != 1 {
                    return Err(ModelError::Unsupported("depth multiplier".into()));
                }
                OpKind::DepthwiseConv2d {
                    padding: padding(opt_u8(0, 0)?)?,
                    stride: (
                        positive(opt_i32(1, 1)?, "stride")?,
                        positive(opt_i32(2, 1)?, "stride")?,
                    ),
                    activation: activation(opt_u8(4, 0)?)?,
                }
            }
            1 => OpKind::AveragePool {
                padding: padding(opt_u8(0, 0)?)?,
                stride: (
                    positive(opt_i32(1, 1)?, "stride")?,
                    positive(opt_i32(2, 1)?, "stride")?,
                ),
                filter: (
                    usize::try_from(opt_i32(3, 1)?).map_err(|_| ModelError::Malformed("filter"))?,
                    usize::try_from(opt_i32(4, 1)?).map_err(|_| ModelError::Malformed("filter"))?,
                ),
                activation: activation(opt_u8(5, 0)?)?,
            },
            40 => OpKind::Mean {
                keep_dims: opt_u8(0, 0)? != 0,
            },
            0 => OpKind::Add(activation(opt_u8(0, 0)?)?),
            18 => OpKind::Mul(activation(opt_u8(0, 0)?)?),
            117 => OpKind::HardSwish,
            19 => OpKind::Relu,
            14 => OpKind::Logistic,
            23 => OpKind::ResizeBilinear {
                align_corners: opt_u8(2, 0)? != 0,
                half_pixel_centers: opt_u8(3, 0)? != 0,
            },
            32 if custom == "Convolution2DTransposeBias" => {
                // TfLiteTransposeConvParams: padding, stride_width, stride_height (i32 each).
                let raw = op.bytes(5)?;
                let word = |i: usize| -> Result<i32, ModelError> {
                    let b = raw
                        .get(4 * i..4 * i + 4)
                        .ok_or(ModelError::Malformed("transpose conv options"))?;
                    Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                };
                OpKind::TransposeConvBias {
                    padding: match word(0)? {
                        1 => Padding::Same,
                        2 => Padding::Valid,
                        _ => return Err(ModelError::Malformed("transpose conv padding")),
                    },
                    stride: (positive(word(1)?, "stride")?, positive(word(2)?, "stride")?),
                }
            }
            32 => return Err(ModelError::Unsupported(format!("custom operator {custom}"))),
            other => return Err(ModelError::Unsupported(format!("operator {other}"))),
        };
        let check = |list: Vec<i32>| -> Result<Vec<i32>, ModelError> {
            if list
                .iter()
                .all(|i| *i == -1 || usize::try_from(*i).is_ok_and(|i| i < tensors.len()))
            {
                Ok(list)
            } else {
                Err(ModelError::Malformed("operator tensor index"))
            }
        };
        ops.push(Op {
            kind,
            inputs: check(op.i32s(1)?)?,
            outputs: check(op.i32s(2)?)?,
        });
    }
    Ok(Graph {
        tensors,
        ops,
        inputs,
        outputs,
    })
}
