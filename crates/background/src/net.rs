//! Runs a segmentation model: the graph read by [`crate::tflite`] turned
//! into a fixed plan of float kernels over NHWC buffers allocated once.
//! Float16 weights are widened and filters are rearranged when the model is
//! loaded, so that the inner loops run over output channels (contiguous,
//! which the compiler vectorises).

use crate::tflite::{self, Activation, DataType, OpKind, Padding};
use crate::ModelError;

/// A tensor's place in the plan.
enum Slot {
    /// Computed while running (a buffer of `len` floats).
    Live,
    /// A constant.
    Const(Vec<f32>),
    /// Integer constant (shapes, axes).
    Ints(Vec<i32>),
}

/// One step of the plan.
enum Step {
    Conv {
        input: usize,
        output: usize,
        /// Filter as [ky][kx][in][out].
        filter: Vec<f32>,
        bias: Vec<f32>,
        kernel: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
        activation: Activation,
    },
    Depthwise {
        input: usize,
        output: usize,
        /// Filter as [ky][kx][channel].
        filter: Vec<f32>,
        bias: Vec<f32>,
        kernel: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
        activation: Activation,
    },
    TransposeConv {
        input: usize,
        output: usize,
        /// Filter as [ky][kx][in][out].
        filter: Vec<f32>,
        bias: Vec<f32>,
        kernel: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
    },
    AveragePool {
        input: usize,
        output: usize,
        filter: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
        activation: Activation,
    },
    /// Mean over height and width.
    SpatialMean { input: usize, output: usize },
    Binary {
        a: usize,
        b: usize,
        output: usize,
        multiply: bool,
        activation: Activation,
    },
    Unary {
        input: usize,
        output: usize,
        function: Unary,
    },
    Resize {
        input: usize,
        output: usize,
        align_corners: bool,
        half_pixel_centers: bool,
    },
}

#[derive(Clone, Copy)]
enum Unary {
    HardSwish,
    Relu,
    Logistic,
}

/// A loaded model, ready to run again and again.
pub struct Net {
    slots: Vec<Slot>,
    /// [n, h, w, c] of every tensor (1s in front for fewer dimensions).
    shapes: Vec<[usize; 4]>,
    buffers: Vec<Vec<f32>>,
    steps: Vec<Step>,
    input: usize,
    output: usize,
    /// The next step of a run in progress (`None`: no run started).
    next: Option<usize>,
}

fn shape4(shape: &[usize]) -> Result<[usize; 4], ModelError> {
    if shape.len() > 4 {
        return Err(ModelError::Unsupported(format!("{}-D tensor", shape.len())));
    }
    let mut out = [1; 4];
    out[4 - shape.len()..].copy_from_slice(shape);
    // Far above what a segmentation model needs; keeps a damaged file
    // from asking for gigabytes.
    out.iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .filter(|n| *n <= 1 << 24)
        .ok_or(ModelError::Malformed("tensor too large"))?;
    Ok(out)
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let value = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((113 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(value)
}

fn floats(t: &tflite::TensorInfo) -> Result<Option<Vec<f32>>, ModelError> {
    let Some(data) = &t.data else { return Ok(None) };
    let count: usize = t.shape.iter().product();
    match t.dtype {
        DataType::F32 if data.len() == count * 4 => Ok(Some(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )),
        DataType::F16 if data.len() == count * 2 => Ok(Some(
            data.chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        )),
        _ => Err(ModelError::Malformed("constant size")),
    }
}

/// Padding before the first row/column, as TensorFlow Lite computes it.
fn pad_before(
    padding: Padding,
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
) -> usize {
    match padding {
        Padding::Valid => 0,
        Padding::Same => ((output.saturating_sub(1)) * stride + kernel).saturating_sub(input) / 2,
    }
}

/// [o][ky][kx][i] → [ky][kx][i][o].
fn to_kkio(filter: &[f32], o: usize, kh: usize, kw: usize, i: usize) -> Vec<f32> {
    let mut out = vec![0.0; filter.len()];
    for oc in 0..o {
        for ky in 0..kh {
            for kx in 0..kw {
                for ic in 0..i {
                    out[((ky * kw + kx) * i + ic) * o + oc] =
                        filter[((oc * kh + ky) * kw + kx) * i + ic];
                }
            }
        }
    }
    out
}

impl Net {
    /// Loads a `.tflite` model of the supported operators.
    pub fn load(model: &[u8]) -> Result<Net, ModelError> {
        let graph = tflite::read(model)?;
        let mut slots: Vec<Slot> = Vec::with_capacity(graph.tensors.len());
        let mut shapes = Vec::with_capacity(graph.tensors.len());
        for t in &graph.tensors {
            shapes.push(shape4(&t.shape)?);
            slots.push(match (&t.data, t.dtype) {
                (None, _) => Slot::Live,
                (Some(data), DataType::I32) => Slot::Ints(
                    data.chunks_exact(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                (Some(_), _) => Slot::Const(floats(t)?.unwrap_or_default()),
            });
        }
        let (&input, &output) = graph
            .inputs
            .first()
            .zip(graph.outputs.first())
            .ok_or(ModelError::Malformed("no input or output"))?;
        let mut steps = Vec::new();
        let tensor =
            |i: i32| usize::try_from(i).map_err(|_| ModelError::Malformed("missing tensor"));
        for op in &graph.ops {
            let arg = |n: usize| {
                op.inputs
                    .get(n)
                    .copied()
                    .ok_or(ModelError::Malformed("operator inputs"))
                    .and_then(tensor)
            };
            let out = op
                .outputs
                .first()
                .copied()
                .ok_or(ModelError::Malformed("operator outputs"))
                .and_then(tensor)?;
            let konst = |slots: &[Slot], i: usize| match &slots[i] {
                Slot::Const(v) => Ok(v.clone()),
                _ => Err(ModelError::Unsupported(
                    "weights that are not constant".into(),
                )),
            };
            let bias = |slots: &[Slot], n: usize, len: usize| -> Result<Vec<f32>, ModelError> {
                match op.inputs.get(n).copied() {
                    None | Some(-1) => Ok(vec![0.0; len]),
                    Some(i) => {
                        let b = konst(slots, tensor(i)?)?;
                        if b.len() == len {
                            Ok(b)
                        } else {
                            Err(ModelError::Malformed("bias size"))
                        }
                    }
                }
            };
            match &op.kind {
                OpKind::Dequantize => {
                    // Constant weights: widened once, here.
                    let value = konst(&slots, arg(0)?)?;
                    slots[out] = Slot::Const(value);
                }
                OpKind::Conv2d {
                    padding,
                    stride,
                    activation,
                } => {
                    let (i, f) = (arg(0)?, arg(1)?);
                    let [o, kh, kw, ic] = shapes[f];
                    let filter = konst(&slots, f)?;
                    if filter.len() != o * kh * kw * ic || shapes[i][3] != ic || shapes[out][3] != o
                    {
                        return Err(ModelError::Malformed("convolution shapes"));
                    }
                    steps.push(Step::Conv {
                        input: i,
                        output: out,
                        filter: to_kkio(&filter, o, kh, kw, ic),
                        bias: bias(&slots, 2, o)?,
                        kernel: (kw, kh),
                        stride: *stride,
                        pad: (
                            pad_before(*padding, shapes[i][2], shapes[out][2], kw, stride.0),
                            pad_before(*padding, shapes[i][1], shapes[out][1], kh, stride.1),
                        ),
                        activation: *activation,
                    });
                }
                OpKind::DepthwiseConv2d {
                    padding,
                    stride,
                    activation,
                } => {
                    let (i, f) = (arg(0)?, arg(1)?);
                    let [_, kh, kw, c] = shapes[f];
                    let filter = konst(&slots, f)?;
                    if filter.len() != kh * kw * c || shapes[i][3] != c || shapes[out][3] != c {
                        return Err(ModelError::Malformed("depthwise shapes"));
                    }
                    steps.push(Step::Depthwise {
                        input: i,
                        output: out,
                        filter,
                        bias: bias(&slots, 2, c)?,
                        kernel: (kw, kh),
                        stride: *stride,
                        pad: (
                            pad_before(*padding, shapes[i][2], shapes[out][2], kw, stride.0),
                            pad_before(*padding, shapes[i][1], shapes[out][1], kh, stride.1),
                        ),
                        activation: *activation,
                    });
                }
                OpKind::TransposeConvBias { padding, stride } => {
                    let (i, f) = (arg(0)?, arg(1)?);
                    let [o, kh, kw, ic] = shapes[f];
                    let filter = konst(&slots, f)?;
                    if filter.len() != o * kh * kw * ic || shapes[i][3] != ic || shapes[out][3] != o
                    {
                        return Err(ModelError::Malformed("transpose convolution shapes"));
                    }
                    let pad = |input: usize, k: usize, s: usize| match padding {
                        Padding::Same => (k.saturating_sub((input.saturating_sub(1)) % s + 1)) / 2,
                        Padding::Valid => 0,
                    };
                    steps.push(Step::TransposeConv {
                        input: i,
                        output: out,
                        filter: to_kkio(&filter, o, kh, kw, ic),
                        bias: bias(&slots, 2, o)?,
                        kernel: (kw, kh),
                        stride: *stride,
                        pad: (
                            pad(shapes[i][2], kw, stride.0),
                            pad(shapes[i][1], kh, stride.1),
                        ),
                    });
                }
                OpKind::AveragePool {
                    padding,
                    stride,
                    filter,
                    activation,
                } => {
                    let i = arg(0)?;
                    steps.push(Step::AveragePool {
                        input: i,
                        output: out,
                        filter: *filter,
                        stride: *stride,
                        pad: (
                            pad_before(*padding, shapes[i][2], shapes[out][2], filter.0, stride.0),
                            pad_before(*padding, shapes[i][1], shapes[out][1], filter.1, stride.1),
                        ),
                        activation: *activation,
                    });
                }
                OpKind::Mean { .. } => {
                    let (i, axes) = (arg(0)?, arg(1)?);
                    let spatial = matches!(&slots[axes], Slot::Ints(a) if { let mut a = a.clone(); a.sort_unstable(); a == [1, 2] });
                    if !spatial || shapes[out][3] != shapes[i][3] {
                        return Err(ModelError::Unsupported("a mean over other axes".into()));
                    }
                    steps.push(Step::SpatialMean {
                        input: i,
                        output: out,
                    });
                }
                OpKind::Add(activation) | OpKind::Mul(activation) => {
                    steps.push(Step::Binary {
                        a: arg(0)?,
                        b: arg(1)?,
                        output: out,
                        multiply: matches!(op.kind, OpKind::Mul(_)),
                        activation: *activation,
                    });
                }
                OpKind::HardSwish | OpKind::Relu | OpKind::Logistic => {
                    steps.push(Step::Unary {
                        input: arg(0)?,
                        output: out,
                        function: match op.kind {
                            OpKind::HardSwish => Unary::HardSwish,
                            OpKind::Relu => Unary::Relu,
                            _ => Unary::Logistic,
                        },
                    });
                }
                OpKind::ResizeBilinear {
                    align_corners,
                    half_pixel_centers,
                } => {
                    steps.push(Step::Resize {
                        input: arg(0)?,
                        output: out,
                        align_corners: *align_corners,
                        half_pixel_centers: *half_pixel_centers,
                    });
                }
            }
        }
        // Every step writes a computed buffer and reads floats of the
        // right channel count (a damaged file must not make a kernel index
        // out of range).
        for step in &steps {
            let (inputs, out) = step_tensors(step);
            if !matches!(slots[out], Slot::Live) {
                return Err(ModelError::Malformed("an operator writes a constant"));
            }
            for i in inputs {
                if matches!(slots[i], Slot::Ints(_)) {
                    return Err(ModelError::Malformed("integers where floats belong"));
                }
            }
            let same_channels = match step {
                Step::AveragePool { input, .. }
                | Step::Resize { input, .. }
                | Step::SpatialMean { input, .. } => shapes[*input][3] == shapes[out][3],
                Step::Unary { input, .. } => shapes[*input] == shapes[out],
                _ => true,
            };
            if !same_channels {
                return Err(ModelError::Malformed("operator shapes"));
            }
        }
        let buffers = slots
            .iter()
            .zip(&shapes)
            .map(|(slot, shape)| match slot {
                Slot::Live => vec![0.0; shape.iter().product()],
                _ => Vec::new(),
            })
            .collect();
        if !matches!(slots[input], Slot::Live) || shapes[input][3] != 3 || shapes[output][3] != 1 {
            return Err(ModelError::Unsupported(
                "a model that is not image to mask".into(),
            ));
        }
        Ok(Net {
            slots,
            shapes,
            buffers,
            steps,
            input,
            output,
            next: None,
        })
    }

    /// The input's (width, height).
    pub fn input_size(&self) -> (usize, usize) {
        (self.shapes[self.input][2], self.shapes[self.input][1])
    }

    /// Runs the model on an RGB image of [`Net::input_size`] with values in
    /// 0..1 (row-major, 3 floats per pixel); returns the mask (one value
    /// per pixel, 0..1 as the model gives it).
    pub fn run(&mut self, rgb: &[f32]) -> Result<&[f32], ModelError> {
        self.start(rgb)?;
        while !self.step() {}
        Ok(&self.buffers[self.output])
    }

    /// Starts a run on an RGB image (as for [`Net::run`]) that
    /// [`Net::resume`] carries on in slices, so that a model's time can be
    /// spread over several camera frames. A run in progress is dropped.
    pub fn start(&mut self, rgb: &[f32]) -> Result<(), ModelError> {
        let input = &mut self.buffers[self.input];
        if rgb.len() != input.len() {
            return Err(ModelError::Shape(format!(
                "{} input values, expected {}",
                rgb.len(),
                input.len()
            )));
        }
        input.copy_from_slice(rgb);
        self.next = Some(0);
        Ok(())
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.next.is_some()
    }

    /// Carries on the run in progress until `deadline` has passed (at least
    /// one operator each call); the mask once the run is complete.
    pub fn resume(&mut self, deadline: std::time::Instant) -> Option<&[f32]> {
        self.next?;
        loop {
            if self.step() {
                return Some(&self.buffers[self.output]);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Runs the model like [`Net::run`] and says where the time went: the
    /// total per kind of operator, slowest first (for the benchmark).
    pub fn run_profiled(
        &mut self,
        rgb: &[f32],
    ) -> Result<Vec<(&'static str, std::time::Duration)>, ModelError> {
        self.start(rgb)?;
        let mut totals: Vec<(&'static str, std::time::Duration)> = Vec::new();
        loop {
            let kind = self.next.and_then(|i| self.steps.get(i)).map(step_kind);
            let started = std::time::Instant::now();
            let done = self.step();
            if let Some(kind) = kind {
                let took = started.elapsed();
                match totals.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, t)) => *t += took,
                    None => totals.push((kind, took)),
                }
            }
            if done {
                break;
            }
        }
        totals.sort_by_key(|t| std::cmp::Reverse(t.1));
        Ok(totals)
    }

    /// Runs the next operator; true when that completed the run.
    fn step(&mut self) -> bool {
        let Some(i) = self.next else {
            return true;
        };
        if let Some(step) = self.steps.get(i) {
            let out = step_output(step);
            let mut target = std::mem::take(&mut self.buffers[out]);
            self.execute(step, &mut target);
            self.buffers[out] = target;
        }
        let done = i + 1 >= self.steps.len();
        self.next = (!done).then_some(i + 1);
        done
    }

    /// The data of tensor `i` (a computed buffer or a constant).
    fn data(&self, i: usize) -> &[f32] {
        match &self.slots[i] {
            Slot::Const(v) => v,
            _ => &self.buffers[i],
        }
    }

    fn execute(&self, step: &Step, out: &mut [f32]) {
        match step {
            Step::Conv {
                input,
                output,
                filter,
                bias,
                kernel,
                stride,
                pad,
                activation,
            } => {
                conv(
                    self.data(*input),
                    self.shapes[*input],
                    filter,
                    bias,
                    *kernel,
                    *stride,
                    *pad,
                    out,
                    self.shapes[*output],
                );
                activate(out, *activation);
            }
            Step::Depthwise {
                input,
                output,
                filter,
                bias,
                kernel,
                stride,
                pad,
                activation,
            } => {
                depthwise(
                    self.data(*input),
                    self.shapes[*input],
                    filter,
                    bias,
                    *kernel,
                    *stride,
                    *pad,
                    out,
                    self.shapes[*output],
                );
                activate(out, *activation);
            }
            Step::TransposeConv {
                input,
                output,
                filter,
                bias,
                kernel,
                stride,
                pad,
            } => {
                transpose_conv(
                    self.data(*input),
                    self.shapes[*input],
                    filter,
                    bias,
                    *kernel,
                    *stride,
                    *pad,
                    out,
                    self.shapes[*output],
                );
            }
            Step::AveragePool {
                input,
                output,
                filter,
                stride,
                pad,
                activation,
            } => {
                average_pool(
                    self.data(*input),
                    self.shapes[*input],
                    *filter,
                    *stride,
                    *pad,
                    out,
                    self.shapes[*output],
                );
                activate(out, *activation);
            }
            Step::SpatialMean { input, .. } => {
                let [_, h, w, c] = self.shapes[*input];
                let data = self.data(*input);
                out.fill(0.0);
                for px in data.chunks_exact(c) {
                    for (o, v) in out.iter_mut().zip(px) {
                        *o += v;
                    }
                }
                let n = (h * w).max(1) as f32;
                out.iter_mut().for_each(|o| *o /= n);
            }
            Step::Binary {
                a,
                b,
                multiply,
                activation,
                output,
            } => {
                binary(
                    self.data(*a),
                    self.shapes[*a],
                    self.data(*b),
                    self.shapes[*b],
                    *multiply,
                    out,
                    self.shapes[*output],
                );
                activate(out, *activation);
            }
            Step::Unary {
                input, function, ..
            } => {
                let data = self.data(*input);
                match function {
                    Unary::HardSwish => out
                        .iter_mut()
                        .zip(data)
                        .for_each(|(o, x)| *o = x * (x + 3.0).clamp(0.0, 6.0) / 6.0),
                    Unary::Relu => out.iter_mut().zip(data).for_each(|(o, x)| *o = x.max(0.0)),
                    Unary::Logistic => out
                        .iter_mut()
                        .zip(data)
                        .for_each(|(o, x)| *o = 1.0 / (1.0 + (-x).exp())),
                }
            }
            Step::Resize {
                input,
                output,
                align_corners,
                half_pixel_centers,
            } => {
                resize_bilinear(
                    self.data(*input),
                    self.shapes[*input],
                    out,
                    self.shapes[*output],
                    *align_corners,
                    *half_pixel_centers,
                );
            }
        }
    }
}

/// The float tensors a step reads, and the one it writes.
fn step_tensors(step: &Step) -> (Vec<usize>, usize) {
    match step {
        Step::Conv { input, output, .. }
        | Step::Depthwise { input, output, .. }
        | Step::TransposeConv { input, output, .. }
        | Step::AveragePool { input, output, .. }
        | Step::SpatialMean { input, output }
        | Step::Unary { input, output, .. }
        | Step::Resize { input, output, .. } => (vec![*input], *output),
        Step::Binary { a, b, output, .. } => (vec![*a, *b], *output),
    }
}

/// What kind of operator a step is, for profiles.
fn step_kind(step: &Step) -> &'static str {
    match step {
        Step::Conv { kernel: (1, 1), .. } => "pointwise convolution",
        Step::Conv { .. } => "convolution",
        Step::Depthwise { .. } => "depthwise convolution",
        Step::TransposeConv { .. } => "transposed convolution",
        Step::AveragePool { .. } => "average pooling",
        Step::SpatialMean { .. } => "mean",
        Step::Binary { .. } => "add / multiply",
        Step::Unary { .. } => "activation",
        Step::Resize { .. } => "bilinear resize",
    }
}

fn step_output(step: &Step) -> usize {
    match step {
        Step::Conv { output, .. }
        | Step::Depthwise { output, .. }
        | Step::TransposeConv { output, .. }
        | Step::AveragePool { output, .. }
        | Step::SpatialMean { output, .. }
        | Step::Binary { output, .. }
        | Step::Unary { output, .. }
        | Step::Resize { output, .. } => *output,
    }
}

fn activate(data: &mut [f32], activation: Activation) {
    match activation {
        Activation::None => {}
        Activation::Relu => data.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Relu6 => data.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
    }
}

/// The input row or column a filter tap lands on, if inside.
#[inline]
fn tap(out: usize, stride: usize, k: usize, pad: usize, size: usize) -> Option<usize> {
    (out * stride + k).checked_sub(pad).filter(|i| *i < size)
}

#[allow(clippy::too_many_arguments)]
fn conv(
    input: &[f32],
    [_, h, w, c]: [usize; 4],
    filter: &[f32],
    bias: &[f32],
    (kw, kh): (usize, usize),
    (sx, sy): (usize, usize),
    (px, py): (usize, usize),
    out: &mut [f32],
    [_, oh, ow, o]: [usize; 4],
) {
    if (kw, kh, sx, sy, px, py) == (1, 1, 1, 1, 0, 0) && (oh, ow) == (h, w) {
        return pointwise(input, h * w, c, filter, bias, o, out);
    }
    for oy in 0..oh {
        for ox in 0..ow {
            let acc = &mut out[(oy * ow + ox) * o..][..o];
            acc.copy_from_slice(bias);
            for ky in 0..kh {
                let Some(iy) = tap(oy, sy, ky, py, h) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(ix) = tap(ox, sx, kx, px, w) else {
                        continue;
                    };
                    let pixel = &input[(iy * w + ix) * c..][..c];
                    let taps = &filter[(ky * kw + kx) * c * o..][..c * o];
                    for (v, row) in pixel.iter().zip(taps.chunks_exact(o)) {
                        for (a, f) in acc.iter_mut().zip(row) {
                            *a += v * f;
                        }
                    }
                }
            }
        }
    }
}

/// Pixels and output channels a pointwise block keeps in registers.
const BLOCK_PIXELS: usize = 4;
const BLOCK_CHANNELS: usize = 8;

/// A 1×1 convolution (most of the model's work): `pixels` rows of `c`
/// inputs times the [c][o] filter. Blocks of four pixels by eight output
/// channels accumulate in registers, so each filter row loaded serves four
/// pixels and no accumulator goes through memory per input channel.
fn pointwise(
    input: &[f32],
    pixels: usize,
    c: usize,
    filter: &[f32],
    bias: &[f32],
    o: usize,
    out: &mut [f32],
) {
    let blocked_o = o - o % BLOCK_CHANNELS;
    let mut p = 0;
    while p + BLOCK_PIXELS <= pixels {
        let rows: [&[f32]; BLOCK_PIXELS] = std::array::from_fn(|q| &input[(p + q) * c..][..c]);
        for ob in (0..blocked_o).step_by(BLOCK_CHANNELS) {
            let mut acc = [[0f32; BLOCK_CHANNELS]; BLOCK_PIXELS];
            for a in &mut acc {
                a.copy_from_slice(&bias[ob..ob + BLOCK_CHANNELS]);
            }
            for ci in 0..c {
                let taps = &filter[ci * o + ob..][..BLOCK_CHANNELS];
                for (a, row) in acc.iter_mut().zip(&rows) {
                    let v = row[ci];
                    for (x, f) in a.iter_mut().zip(taps) {
                        *x += v * f;
                    }
                }
            }
            for (q, a) in acc.iter().enumerate() {
                out[(p + q) * o + ob..][..BLOCK_CHANNELS].copy_from_slice(a);
            }
        }
        if blocked_o < o {
            for (q, row) in rows.iter().enumerate() {
                pointwise_pixel(
                    row,
                    filter,
                    bias,
                    o,
                    blocked_o,
                    &mut out[(p + q) * o..][..o],
                );
            }
        }
        p += BLOCK_PIXELS;
    }
    for p in p..pixels {
        pointwise_pixel(
            &input[p * c..][..c],
            filter,
            bias,
            o,
            0,
            &mut out[p * o..][..o],
        );
    }
}

/// Output channels `from..o` of one pixel of a 1×1 convolution.
fn pointwise_pixel(
    pixel: &[f32],
    filter: &[f32],
    bias: &[f32],
    o: usize,
    from: usize,
    out: &mut [f32],
) {
    let acc = &mut out[from..];
    acc.copy_from_slice(&bias[from..]);
    for (v, row) in pixel.iter().zip(filter.chunks_exact(o)) {
        for (a, f) in acc.iter_mut().zip(&row[from..]) {
            *a += v * f;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn depthwise(
    input: &[f32],
    [_, h, w, c]: [usize; 4],
    filter: &[f32],
    bias: &[f32],
    (kw, kh): (usize, usize),
    (sx, sy): (usize, usize),
    (px, py): (usize, usize),
    out: &mut [f32],
    [_, oh, ow, _]: [usize; 4],
) {
    for oy in 0..oh {
        for ox in 0..ow {
            let acc = &mut out[(oy * ow + ox) * c..][..c];
            acc.copy_from_slice(bias);
            for ky in 0..kh {
                let Some(iy) = tap(oy, sy, ky, py, h) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(ix) = tap(ox, sx, kx, px, w) else {
                        continue;
                    };
                    let pixel = &input[(iy * w + ix) * c..][..c];
                    let taps = &filter[(ky * kw + kx) * c..][..c];
                    for ((a, v), f) in acc.iter_mut().zip(pixel).zip(taps) {
                        *a += v * f;
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn transpose_conv(
    input: &[f32],
    [_, h, w, c]: [usize; 4],
    filter: &[f32],
    bias: &[f32],
    (kw, kh): (usize, usize),
    (sx, sy): (usize, usize),
    (px, py): (usize, usize),
    out: &mut [f32],
    [_, oh, ow, o]: [usize; 4],
) {
    for px_out in out.chunks_exact_mut(o) {
        px_out.copy_from_slice(bias);
    }
    for iy in 0..h {
        for ix in 0..w {
            let pixel = &input[(iy * w + ix) * c..][..c];
            for ky in 0..kh {
                let Some(oy) = (iy * sy + ky).checked_sub(py).filter(|y| *y < oh) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(ox) = (ix * sx + kx).checked_sub(px).filter(|x| *x < ow) else {
                        continue;
                    };
                    let acc = &mut out[(oy * ow + ox) * o..][..o];
                    let taps = &filter[(ky * kw + kx) * c * o..][..c * o];
                    if o == 1 {
                        // One output channel (the mask): a dot product.
                        acc[0] += dot(pixel, taps);
                        continue;
                    }
                    for (v, row) in pixel.iter().zip(taps.chunks_exact(o)) {
                        for (a, f) in acc.iter_mut().zip(row) {
                            *a += v * f;
                        }
                    }
                }
            }
        }
    }
}

/// The dot product of two slices, in eight lanes the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((l, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn average_pool(
    input: &[f32],
    [_, h, w, c]: [usize; 4],
    (fw, fh): (usize, usize),
    (sx, sy): (usize, usize),
    (px, py): (usize, usize),
    out: &mut [f32],
    [_, oh, ow, _]: [usize; 4],
) {
    for oy in 0..oh {
        for ox in 0..ow {
            let acc = &mut out[(oy * ow + ox) * c..][..c];
            acc.fill(0.0);
            let mut count = 0usize;
            for ky in 0..fh {
                let Some(iy) = tap(oy, sy, ky, py, h) else {
                    continue;
                };
                for kx in 0..fw {
                    let Some(ix) = tap(ox, sx, kx, px, w) else {
                        continue;
                    };
                    count += 1;
                    for (a, v) in acc.iter_mut().zip(&input[(iy * w + ix) * c..][..c]) {
                        *a += v;
                    }
                }
            }
            let n = count.max(1) as f32;
            acc.iter_mut().for_each(|a| *a /= n);
        }
    }
}

/// a ∘ b with NHWC broadcasting (a dimension of 1 repeats).
fn binary(
    a: &[f32],
    sa: [usize; 4],
    b: &[f32],
    sb: [usize; 4],
    multiply: bool,
    out: &mut [f32],
    so: [usize; 4],
) {
    let op = |x: f32, y: f32| if multiply { x * y } else { x + y };
    if sa == so && sb == so {
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            *o = op(*x, *y);
        }
        return;
    }
    // One operand a per-channel vector ([1, 1, 1, c], as in squeeze and
    // excitation): applied pixel by pixel.
    let [_, _, _, channels] = so;
    for (full, sf, vector, sv) in [(a, sa, b, sb), (b, sb, a, sa)] {
        if sf == so && sv == [1, 1, 1, channels] && vector.len() == channels && channels > 0 {
            for (o, x) in out
                .chunks_exact_mut(channels)
                .zip(full.chunks_exact(channels))
            {
                for ((o, x), y) in o.iter_mut().zip(x).zip(vector) {
                    *o = op(*x, *y);
                }
            }
            return;
        }
    }
    let index = |s: [usize; 4], y: usize, x: usize, ch: usize| {
        let (y, x, ch) = (
            if s[1] == 1 { 0 } else { y },
            if s[2] == 1 { 0 } else { x },
            if s[3] == 1 { 0 } else { ch },
        );
        (y * s[2] + x) * s[3] + ch
    };
    let [_, h, w, c] = so;
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let (xa, xb) = (
                    a.get(index(sa, y, x, ch)).copied().unwrap_or(0.0),
                    b.get(index(sb, y, x, ch)).copied().unwrap_or(0.0),
                );
                out[(y * w + x) * c + ch] = op(xa, xb);
            }
        }
    }
}

/// TensorFlow Lite's bilinear resizing (reference kernel semantics).
fn resize_bilinear(
    input: &[f32],
    [_, h, w, c]: [usize; 4],
    out: &mut [f32],
    [_, oh, ow, _]: [usize; 4],
    align_corners: bool,
    half_pixel_centers: bool,
) {
    let scale = |i: usize, o: usize| {
        if align_corners && o > 1 {
            (i as f32 - 1.0) / (o as f32 - 1.0)
        } else {
            i as f32 / o as f32
        }
    };
    let (scale_y, scale_x) = (scale(h, oh), scale(w, ow));
    let place = |v: usize, scale: f32, size: usize| {
        let scaled = if half_pixel_centers {
            (v as f32 + 0.5) * scale - 0.5
        } else {
            v as f32 * scale
        };
        let lower = (scaled.floor() as isize).max(0) as usize;
        let upper = (scaled.ceil() as usize).min(size - 1);
        (scaled, lower.min(size - 1), upper)
    };
    for oy in 0..oh {
        let (iy, y0, y1) = place(oy, scale_y, h);
        let dy = iy - y0 as f32;
        for ox in 0..ow {
            let (ix, x0, x1) = place(ox, scale_x, w);
            let dx = ix - x0 as f32;
            let at = |y: usize, x: usize| &input[(y * w + x) * c..][..c];
            let (p00, p10, p01, p11) = (at(y0, x0), at(y1, x0), at(y0, x1), at(y1, x1));
            let o = &mut out[(oy * ow + ox) * c..][..c];
            for ch in 0..c {
                o[ch] = p00[ch] * (1.0 - dy) * (1.0 - dx)
                    + p10[ch] * dy * (1.0 - dx)
                    + p01[ch] * (1.0 - dy) * dx
                    + p11[ch] * dy * dx;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_widen_exactly() {
        for (bits, value) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x0001, 5.960_464_5e-8),
            (0x7bff, 65504.0),
            (0x0000, 0.0),
        ] {
            assert_eq!(f16_to_f32(bits), value, "{bits:#x}");
        }
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
