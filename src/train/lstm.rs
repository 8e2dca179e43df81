//! One LSTM layer over a whole batch: forward pass with a trace, and
//! backpropagation through time.
//!
//! Layout: time-major `[T, B, ·]`, so every step works on contiguous
//! `[B, ·]` rows. Each step does one matrix product for all four gates of the
//! whole batch (`h·w_h`, `[B, H] × [H, 4H]`); input projections that do not
//! depend on the recurrence are done for all steps in one product before the
//! loop, and weight gradients are summed over all steps in one product after
//! it. The equations are those of the ONNX `LSTM` operator (no peepholes),
//! gates in ONNX order `[i, o, f, c]`, activation `g = h = tanh | relu`.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, CowArray, Ix2};

use crate::model::params::LstmParams;
use crate::model::real::Real;
use crate::model::Activation;

/// What the layer reads at each step.
pub enum Input<'a, A> {
    /// A different input per step, `[T, B, I]`.
    Sequence(ArrayView3<'a, A>),
    /// The same input at every step, `[B, I]` (the tutorial's `RepeatVector`).
    Constant(ArrayView2<'a, A>),
    /// No input: only the recurrence (the paper's unconditioned decoder).
    Nothing,
}

/// Everything the backward pass needs from the forward pass.
pub struct Trace<A> {
    /// Post-activation gates per step, `[T, B, 4H]`, order `[i, o, f, g]`.
    pub gates: Array3<A>,
    /// Cell states `[T + 1, B, H]`; index 0 is the initial state.
    pub c: Array3<A>,
    /// Hidden states `[T + 1, B, H]`; index 0 is the initial state.
    pub h: Array3<A>,
    /// `act(c_t)` per step, `[T, B, H]`, kept because the backward pass needs it.
    pub act_c: Array3<A>,
}

impl<A: Real> Trace<A> {
    fn new(steps: usize, batch: usize, hidden: usize) -> Self {
        Trace {
            gates: Array3::zeros((steps, batch, 4 * hidden)),
            c: Array3::zeros((steps + 1, batch, hidden)),
            h: Array3::zeros((steps + 1, batch, hidden)),
            act_c: Array3::zeros((steps, batch, hidden)),
        }
    }

    pub fn steps(&self) -> usize {
        self.gates.len_of(Axis(0))
    }

    /// The hidden states after each step, `[T, B, H]`.
    pub fn outputs(&self) -> ArrayView3<'_, A> {
        self.h.slice(s![1.., .., ..])
    }

    /// The final hidden state `[B, H]` (the encoder's embedding).
    pub fn last_h(&self) -> ArrayView2<'_, A> {
        self.h.index_axis(Axis(0), self.steps())
    }

    pub fn last_c(&self) -> ArrayView2<'_, A> {
        self.c.index_axis(Axis(0), self.steps())
    }
}

#[inline(always)]
fn act<A: Real>(a: Activation, x: A) -> A {
    match a {
        Activation::Tanh => x.act_tanh(),
        Activation::Relu => x.max(A::zero()),
    }
}

/// Derivative of the activation, from its output `y = act(x)`.
#[inline(always)]
fn act_grad_from_output<A: Real>(a: Activation, y: A) -> A {
    match a {
        Activation::Tanh => A::one() - y * y,
        Activation::Relu => {
            if y > A::zero() {
                A::one()
            } else {
                A::zero()
            }
        }
    }
}

/// Turns pre-activation gates into gate values and advances the cell by one
/// step, for every row of the batch.
fn cell_forward<A: Real>(
    a: Activation,
    hidden: usize,
    gates: &mut [A],
    c_prev: &[A],
    c: &mut [A],
    act_c: &mut [A],
    h: &mut [A],
) {
    let rows = c.len() / hidden;
    for r in 0..rows {
        let g = &mut gates[r * 4 * hidden..(r + 1) * 4 * hidden];
        let o_ = r * hidden;
        for j in 0..hidden {
            let i = g[j].sigmoid();
            let o = g[hidden + j].sigmoid();
            let f = g[2 * hidden + j].sigmoid();
            let cand = act(a, g[3 * hidden + j]);
            g[j] = i;
            g[hidden + j] = o;
            g[2 * hidden + j] = f;
            g[3 * hidden + j] = cand;
            let cn = f * c_prev[o_ + j] + i * cand;
            let ac = act(a, cn);
            c[o_ + j] = cn;
            act_c[o_ + j] = ac;
            h[o_ + j] = o * ac;
        }
    }
}

/// One step of the backward pass through the cell. `dh` is the total gradient
/// on `h_t`; `dc` holds the gradient on `c_t` coming from step `t + 1` and
/// leaves holding the gradient on `c_{t-1}`. Writes the gradient on the
/// pre-activation gates into `dgates`.
#[allow(clippy::too_many_arguments)]
fn cell_backward<A: Real>(
    a: Activation,
    hidden: usize,
    gates: &[A],
    c_prev: &[A],
    act_c: &[A],
    dh: &[A],
    dc: &mut [A],
    dgates: &mut [A],
) {
    let one = A::one();
    let rows = dh.len() / hidden;
    for r in 0..rows {
        let g = &gates[r * 4 * hidden..(r + 1) * 4 * hidden];
        let dg = &mut dgates[r * 4 * hidden..(r + 1) * 4 * hidden];
        let o_ = r * hidden;
        for j in 0..hidden {
            let (i, o, f, cand) = (g[j], g[hidden + j], g[2 * hidden + j], g[3 * hidden + j]);
            let ac = act_c[o_ + j];
            let dhj = dh[o_ + j];
            let dcj = dc[o_ + j] + dhj * o * act_grad_from_output(a, ac);
            dg[j] = dcj * cand * i * (one - i);
            dg[hidden + j] = dhj * ac * o * (one - o);
            dg[2 * hidden + j] = dcj * c_prev[o_ + j] * f * (one - f);
            dg[3 * hidden + j] = dcj * i * act_grad_from_output(a, cand);
            dc[o_ + j] = dcj * f;
        }
    }
}

fn slice_of<'a, A>(v: &'a ArrayView2<'_, A>) -> &'a [A] {
    v.as_slice()
        .expect("trace rows are contiguous (invariant of Trace::new)")
}

/// Runs one LSTM layer for `steps` steps from the initial state `(h0, c0)`
/// (zeros when `None`).
pub fn forward<A: Real>(
    p: &LstmParams<A>,
    a: Activation,
    input: &Input<'_, A>,
    steps: usize,
    batch: usize,
    h0: Option<ArrayView2<'_, A>>,
    c0: Option<ArrayView2<'_, A>>,
) -> Trace<A> {
    let hidden = p.hidden();
    let mut tr = Trace::new(steps, batch, hidden);
    if let Some(h0) = h0 {
        tr.h.index_axis_mut(Axis(0), 0).assign(&h0);
    }
    if let Some(c0) = c0 {
        tr.c.index_axis_mut(Axis(0), 0).assign(&c0);
    }
    // Input projections that do not depend on the recurrence, for all steps.
    match input {
        Input::Sequence(x) => {
            let x2 = step_rows(*x);
            let mut g2 = tr
                .gates
                .view_mut()
                .into_shape_with_order((steps * batch, 4 * hidden))
                .expect("gates are contiguous");
            g2.assign(
                &p.b.broadcast((steps * batch, 4 * hidden))
                    .expect("bias broadcasts"),
            );
            general_mat_mul(A::one(), &x2, &p.w_x, A::one(), &mut g2);
        }
        Input::Constant(e) => {
            let mut xw =
                p.b.broadcast((batch, 4 * hidden))
                    .expect("bias broadcasts")
                    .to_owned();
            general_mat_mul(A::one(), e, &p.w_x, A::one(), &mut xw);
            tr.gates.assign(
                &xw.broadcast((steps, batch, 4 * hidden))
                    .expect("broadcasts"),
            );
        }
        Input::Nothing => {
            tr.gates.assign(
                &p.b.broadcast((steps, batch, 4 * hidden))
                    .expect("bias broadcasts"),
            );
        }
    }
    for t in 0..steps {
        step_forward(p, a, &mut tr, t);
    }
    tr
}

/// A time-major `[T, B, N]` tensor as `[T·B, N]` rows, so that one matrix
/// product covers every step; copies only when the view is not contiguous.
pub fn step_rows<A: Clone>(x: ArrayView3<'_, A>) -> CowArray<'_, A, Ix2> {
    let (steps, batch, n) = x.dim();
    let rows = (steps * batch, n);
    match x.into_shape_with_order(rows) {
        Ok(v) => CowArray::from(v),
        Err(_) => CowArray::from(
            x.as_standard_layout()
                .into_owned()
                .into_shape_with_order(rows)
                .expect("a standard-layout array reshapes"),
        ),
    }
}

/// Step `t`: adds the recurrence `h_{t-1}·w_h` to the gates already holding
/// the input part, then advances the cell.
fn step_forward<A: Real>(p: &LstmParams<A>, a: Activation, tr: &mut Trace<A>, t: usize) {
    let hidden = p.hidden();
    let (h_prev, mut h_next) = tr.h.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
    let mut g = tr.gates.index_axis_mut(Axis(0), t);
    general_mat_mul(A::one(), &h_prev, &p.w_h, A::one(), &mut g);
    let (c_prev, mut c_next) = tr.c.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
    let mut ac = tr.act_c.index_axis_mut(Axis(0), t);
    cell_forward(
        a,
        hidden,
        as_mut_slice(&mut g),
        slice_of(&c_prev.view()),
        as_mut_slice(&mut c_next),
        as_mut_slice(&mut ac),
        as_mut_slice(&mut h_next),
    );
}

/// Step `t` backwards through the cell: `dh` is the total gradient on
/// `h_t`, `dc` carries the cell gradient from `t + 1` to `t - 1`; the
/// pre-activation gate gradient lands in `dgates[t]`.
fn step_backward<A: Real>(
    a: Activation,
    tr: &Trace<A>,
    t: usize,
    dh: &Array2<A>,
    dc: &mut Array2<A>,
    dgates: &mut Array3<A>,
) {
    let hidden = tr.h.len_of(Axis(2));
    let mut dg = dgates.index_axis_mut(Axis(0), t);
    cell_backward(
        a,
        hidden,
        slice_of(&tr.gates.index_axis(Axis(0), t)),
        slice_of(&tr.c.index_axis(Axis(0), t)),
        slice_of(&tr.act_c.index_axis(Axis(0), t)),
        slice_of(&dh.view()),
        dc.as_slice_mut().expect("owned array is contiguous"),
        as_mut_slice(&mut dg),
    );
}

/// Recurrent weight and bias gradients of all steps in one product:
/// `dw_h = Σ_t h_{t-1}ᵀ·dG_t`, `db = Σ_t dG_t`. Returns `dG` as
/// `[T·B, 4H]` for the input-weight gradient.
fn recurrent_grads<'g, A: Real>(
    tr: &Trace<A>,
    dgates: &'g Array3<A>,
    grads: &mut LstmParams<A>,
) -> ArrayView2<'g, A> {
    let (steps, batch, hidden) = (tr.steps(), tr.h.len_of(Axis(1)), tr.h.len_of(Axis(2)));
    let dg2 = dgates
        .view()
        .into_shape_with_order((steps * batch, 4 * hidden))
        .expect("contiguous");
    let h_prev = tr.h.slice(s![..steps, .., ..]);
    let h_prev = h_prev
        .into_shape_with_order((steps * batch, hidden))
        .expect("h rows are contiguous");
    general_mat_mul(A::one(), &h_prev.t(), &dg2, A::one(), &mut grads.w_h);
    grads.b += &dg2.sum_axis(Axis(0));
    dg2
}

fn as_mut_slice<'a, A>(v: &'a mut ArrayViewMut2<'_, A>) -> &'a mut [A] {
    v.as_slice_mut()
        .expect("trace rows are contiguous (invariant of Trace::new)")
}

/// Gradients a layer sends back to what fed it.
pub struct Backward<A> {
    /// Gradient on the initial hidden state `h0`, `[B, H]`.
    pub dh0: Array2<A>,
    /// Gradient on the initial cell state `c0`, `[B, H]`.
    pub dc0: Array2<A>,
    /// Gradient on a `Constant` input, `[B, I]` (None for other inputs: the
    /// encoder's input is data and needs none).
    pub dinput: Option<Array2<A>>,
}

/// Backpropagation through time. `dh_out` is the gradient on each step's
/// output `h_1..h_T` (`[T, B, H]`), `dh_last`/`dc_last` extra gradient on the
/// final state. Parameter gradients are added into `grads`.
#[allow(clippy::too_many_arguments)]
pub fn backward<A: Real>(
    p: &LstmParams<A>,
    a: Activation,
    input: &Input<'_, A>,
    tr: &Trace<A>,
    dh_out: Option<ArrayView3<'_, A>>,
    dh_last: Option<ArrayView2<'_, A>>,
    dc_last: Option<ArrayView2<'_, A>>,
    grads: &mut LstmParams<A>,
) -> Backward<A> {
    let (steps, batch, hidden) = (tr.steps(), tr.h.len_of(Axis(1)), p.hidden());
    let mut dgates = Array3::<A>::zeros((steps, batch, 4 * hidden));
    let mut dh = Array2::<A>::zeros((batch, hidden));
    let mut dc = Array2::<A>::zeros((batch, hidden));
    if let Some(d) = dh_last {
        dh += &d;
    }
    if let Some(d) = dc_last {
        dc += &d;
    }
    for t in (0..steps).rev() {
        if let Some(d) = &dh_out {
            dh += &d.index_axis(Axis(0), t);
        }
        step_backward(a, tr, t, &dh, &mut dc, &mut dgates);
        // dh_{t-1} = dG_t · w_hᵀ (overwrites: the old dh is fully consumed).
        let dg = dgates.index_axis(Axis(0), t);
        general_mat_mul(A::one(), &dg, &p.w_h.t(), A::zero(), &mut dh);
    }
    let dg2 = recurrent_grads(tr, &dgates, grads);
    let dinput = match input {
        Input::Sequence(x) => {
            let x2 = step_rows(*x);
            general_mat_mul(A::one(), &x2.t(), &dg2, A::one(), &mut grads.w_x);
            None
        }
        Input::Constant(e) => {
            let dsum = dgates.sum_axis(Axis(0));
            general_mat_mul(A::one(), &e.t(), &dsum, A::one(), &mut grads.w_x);
            Some(dsum.dot(&p.w_x.t()))
        }
        Input::Nothing => None,
    };
    Backward {
        dh0: dh,
        dc0: dc,
        dinput,
    }
}

/// The conditional decoder: each step's input is the layer's own dense output
/// at the previous step (`y_{t-1} = h_{t-1}·w_out + b_out`, zeros at `t = 0`).
/// Returns the trace and the outputs `y`, `[T, B, F]`.
#[allow(clippy::too_many_arguments)]
pub fn forward_feedback<A: Real>(
    p: &LstmParams<A>,
    a: Activation,
    w_out: &Array2<A>,
    b_out: &ndarray::Array1<A>,
    steps: usize,
    batch: usize,
    h0: ArrayView2<'_, A>,
    c0: ArrayView2<'_, A>,
) -> (Trace<A>, Array3<A>) {
    let hidden = p.hidden();
    let features = w_out.ncols();
    let mut tr = Trace::new(steps, batch, hidden);
    tr.h.index_axis_mut(Axis(0), 0).assign(&h0);
    tr.c.index_axis_mut(Axis(0), 0).assign(&c0);
    let mut y = Array3::<A>::zeros((steps, batch, features));
    tr.gates.assign(
        &p.b.broadcast((steps, batch, 4 * hidden))
            .expect("bias broadcasts"),
    );
    for t in 0..steps {
        if t > 0 {
            let mut g = tr.gates.index_axis_mut(Axis(0), t);
            general_mat_mul(
                A::one(),
                &y.index_axis(Axis(0), t - 1),
                &p.w_x,
                A::one(),
                &mut g,
            );
        }
        step_forward(p, a, &mut tr, t);
        let mut yt = y.index_axis_mut(Axis(0), t);
        yt.assign(&b_out.broadcast((batch, features)).expect("bias broadcasts"));
        general_mat_mul(
            A::one(),
            &tr.h.index_axis(Axis(0), t + 1),
            w_out,
            A::one(),
            &mut yt,
        );
    }
    (tr, y)
}

/// Backward pass of [`forward_feedback`], given the loss gradient on its
/// outputs `dy` (`[T, B, F]`). Adds into the LSTM and dense gradients and
/// returns the gradients on the initial state.
#[allow(clippy::too_many_arguments)]
pub fn backward_feedback<A: Real>(
    p: &LstmParams<A>,
    a: Activation,
    w_out: &Array2<A>,
    tr: &Trace<A>,
    y: &Array3<A>,
    dy: ArrayView3<'_, A>,
    grads: &mut LstmParams<A>,
    grad_w_out: &mut Array2<A>,
    grad_b_out: &mut ndarray::Array1<A>,
) -> Backward<A> {
    let (steps, batch, hidden) = (tr.steps(), tr.h.len_of(Axis(1)), p.hidden());
    let features = w_out.ncols();
    let mut dgates = Array3::<A>::zeros((steps, batch, 4 * hidden));
    let mut dh_rec = Array2::<A>::zeros((batch, hidden));
    let mut dc = Array2::<A>::zeros((batch, hidden));
    let mut dy_carry = Array2::<A>::zeros((batch, features));
    for t in (0..steps).rev() {
        let dyt = &dy.index_axis(Axis(0), t) + &dy_carry;
        let ht = tr.h.index_axis(Axis(0), t + 1);
        general_mat_mul(A::one(), &ht.t(), &dyt, A::one(), grad_w_out);
        *grad_b_out += &dyt.sum_axis(Axis(0));
        let mut dh = dh_rec.clone();
        general_mat_mul(A::one(), &dyt, &w_out.t(), A::one(), &mut dh);
        step_backward(a, tr, t, &dh, &mut dc, &mut dgates);
        let dg = dgates.index_axis(Axis(0), t);
        general_mat_mul(A::one(), &dg, &p.w_h.t(), A::zero(), &mut dh_rec);
        if t > 0 {
            let y_prev = y.index_axis(Axis(0), t - 1);
            general_mat_mul(A::one(), &y_prev.t(), &dg, A::one(), &mut grads.w_x);
            general_mat_mul(A::one(), &dg, &p.w_x.t(), A::zero(), &mut dy_carry);
        }
    }
    recurrent_grads(tr, &dgates, grads);
    Backward {
        dh0: dh_rec,
        dc0: dc,
        dinput: None,
    }
}
