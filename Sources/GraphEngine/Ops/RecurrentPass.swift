import TensorCore

// The arithmetic of RNN, GRU and LSTM for one element type: the forward pass of each direction
// and backpropagation through time, cell by cell side by side.

/// The gradients arriving at a recurrent op's outputs, in layout 0; `nil` where none arrives.
struct RecurrentSeeds {
    let y, finalH, finalC: Tensor?
}

/// A recurrent op's outputs `Y`, `Y_h` and (LSTM) `Y_c`, in layout 0.
struct RecurrentOutputs {
    let y, finalH: Tensor
    let finalC: Tensor?
}

/// A recurrent op's input gradients, in layout 0; `nil` where not computed.
struct RecurrentGradients {
    var x, w, r, bias, initialH, initialC, peepholes: Tensor?
}

/// One invocation of a ``Recurrent`` op computed in `T`.
///
/// Per direction, the input projection `X·Wᵀ + biases` of every step is one matrix product;
/// each step then adds `H·Rᵀ` (one product over the batch) and applies the cell. Gates are the
/// spec's (with `f, g, h` the direction's activations and `clip` applied to every gate's
/// pre-activation):
/// - RNN: `H = f(X·Wᵀ + H·Rᵀ + Wb + Rb)`;
/// - GRU: `z = f(·)`, `r = f(·)`, `h̃ = g(X·Whᵀ + (r ⊙ H)·Rhᵀ + Rbh + Wbh)` (or
///   `g(X·Whᵀ + Wbh + r ⊙ (H·Rhᵀ + Rbh))` with `linear_before_reset`), `H = (1 − z) ⊙ h̃ + z ⊙ H`;
/// - LSTM: `i = f(· + Pi ⊙ C)`, `f = f(· + Pf ⊙ C)` (or `1 − i` with `input_forget`),
///   `c̃ = g(·)`, `C = f ⊙ C + i ⊙ c̃`, `o = f(· + Po ⊙ C)`, `H = o ⊙ h(C)`.
///
/// The backward pass replays the forward pass recording each step's state and pre-activations
/// (a ``Tape``), then walks the steps in reverse: each step's gate gradients `dA` give
/// `dH_prev = dA·R` (one product over the batch), and once all steps are done `dX = dA·W`,
/// `dW = dAᵀ·X`, `dR = dAᵀ·H_prev` are one product each.
struct RecurrentPass<T: GEMMScalar> {
    let op: Recurrent
    let inputs: RecurrentInputs
    let clip: T?

    init(op: Recurrent, inputs: RecurrentInputs) {
        self.op = op
        self.inputs = inputs
        clip = op.clip.map { T($0) }
    }

    var shape: RecurrentShape { inputs.shape }

    /// What backpropagation reads of one direction's forward pass, indexed by step in the order
    /// the direction ran them.
    struct Tape {
        /// `[steps + 1, batch, hidden]`: the hidden state before each step, then after the last.
        let states: Tensor
        /// LSTM: the cell state, laid out as `states` (empty for the other kinds).
        let cells: Tensor
        /// `[steps, batch, gates·hidden]`: each gate's pre-activation, before clipping.
        let preactivations: Tensor
        /// GRU `[steps, batch, hidden]`: `r ⊙ H_prev`, or with `linear_before_reset` `H_prev·Rhᵀ + Rbh`
        /// (empty for the other kinds).
        let resets: Tensor

        init(_ kind: Recurrent.Kind, _ shape: RecurrentShape) throws {
            let (steps, batch, hidden) = (shape.steps, shape.batch, shape.hidden)
            states = try Tensor(zeros: T.dtype, shape: [steps + 1, batch, hidden])
            cells = try Tensor(zeros: T.dtype, shape: kind == .lstm ? [steps + 1, batch, hidden] : [0])
            preactivations = try Tensor(zeros: T.dtype, shape: [steps, batch, shape.gateWidth])
            resets = try Tensor(zeros: T.dtype, shape: kind == .gru ? [steps, batch, hidden] : [0])
        }
    }

    func forward(packed: [PackedMatrix]?) throws -> RecurrentOutputs {
        let s = shape
        let y = try Tensor(zeros: T.dtype, shape: [s.steps, s.directions, s.batch, s.hidden])
        let finalH = try Tensor(zeros: T.dtype, shape: [s.directions, s.batch, s.hidden])
        let finalC = op.kind == .lstm ? try Tensor(zeros: T.dtype, shape: [s.directions, s.batch, s.hidden]) : nil
        if s.steps > 0, s.batch > 0 {
            for direction in 0..<s.directions {
                try run(direction, packed: packed?[direction], y: y, finalH: finalH, finalC: finalC, tape: nil)
            }
        }
        return RecurrentOutputs(y: y, finalH: finalH, finalC: finalC)
    }

    // MARK: Forward

    /// Runs direction `d` over the sequence, writing its slices of `y`, `finalH` and `finalC`
    /// and, when given, its tape.
    private func run(_ d: Int, packed: PackedMatrix?, y: Tensor, finalH: Tensor, finalC: Tensor?, tape: Tape?) throws {
        let s = shape
        let (batch, hidden, width, directions) = (s.batch, s.hidden, s.gateWidth, s.directions)
        let reversed = op.reversed[d]
        let (f, g) = (op.activations[d][0], op.activations[d].count > 1 ? op.activations[d][1] : op.activations[d][0])
        let output = op.kind == .lstm ? op.activations[d][2] : f
        let biases = try self.biases(d)
        let projection = try inputProjection(d, packed: packed, bias: biases.input)
        let product = try Tensor(zeros: T.dtype, shape: [batch, width])
        let h = try initialState(inputs.initialH, d)
        let c = try initialState(op.kind == .lstm ? inputs.initialC : nil, d)
        // Without a tape, one step's pre-activations and reset terms, overwritten by the next.
        let preactivations = try tape?.preactivations ?? Tensor(zeros: T.dtype, shape: [batch, width])
        let resets = try tape?.resets ?? Tensor(zeros: T.dtype, shape: op.kind == .gru ? [batch, hidden] : [0])
        let recorded = tape == nil ? 0 : 1
        let r = inputs.r.unsafeElements(as: T.self).address(at: d * width * hidden, count: width * hidden)
        let peepholes = inputs.peepholes.map { $0.unsafeElements(as: T.self).address(at: d * 3 * hidden, count: 3 * hidden) }
        let lengths = inputs.lengths
        let (xw, rh) = (projection.unsafeMutableElements(as: T.self), product.unsafeMutableElements(as: T.self))
        let (state, cell) = (h.unsafeMutableElements(as: T.self), c.unsafeMutableElements(as: T.self))
        let recurrentBias = biases.reset
        // GRU without linear_before_reset multiplies the h-block of R after the reset gate.
        let direct = op.kind == .gru && !op.linearBeforeReset ? 2 * hidden : width

        withExtendedLifetime((inputs, projection, product, h, c, preactivations, resets, tape, y, finalH, finalC)) {
            for step in 0..<s.steps {
                let t = reversed ? s.steps - 1 - step : step
                let xwt = xw.address(at: t * batch * width, count: batch * width)
                let pre = preactivations.unsafeMutableElements(as: T.self)
                    .address(at: recorded * step * batch * width, count: batch * width)
                T.gemm(
                    transposeA: false, transposeB: true, m: batch, n: direct, k: hidden, alpha: 1, a: state.address(), lda: hidden,
                    b: r, ldb: hidden, beta: 0, c: rh.address(), ldc: width)
                switch op.kind {
                case .rnn:
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden {
                            let a = xwt[b * width + j] + rh[b * width + j]
                            pre[b * width + j] = a
                            state[b * hidden + j] = f.value(clipped(a))
                        }
                    }
                case .gru:
                    let reset = resets.unsafeMutableElements(as: T.self)
                        .address(at: recorded * step * batch * hidden, count: batch * hidden)
                    // Update and reset gates, then what the candidate's recurrent term reads.
                    for b in 0..<batch {
                        for j in 0..<hidden {
                            guard lengths[b] > t else {
                                reset[b * hidden + j] = 0
                                continue
                            }
                            let (row, z, rr, hh) = (b * width, j, hidden + j, 2 * hidden + j)
                            pre[row + z] = xwt[row + z] + rh[row + z]
                            pre[row + rr] = xwt[row + rr] + rh[row + rr]
                            let gate = f.value(clipped(pre[row + rr]))
                            if op.linearBeforeReset {
                                let q = rh[row + hh] + recurrentBias[j]
                                reset[b * hidden + j] = q
                                pre[row + hh] = xwt[row + hh] + gate * q
                            } else {
                                reset[b * hidden + j] = gate * state[b * hidden + j]
                            }
                        }
                    }
                    if !op.linearBeforeReset {
                        T.gemm(
                            transposeA: false, transposeB: true, m: batch, n: hidden, k: hidden, alpha: 1, a: reset,
                            lda: hidden, b: r + 2 * hidden * hidden, ldb: hidden, beta: 0, c: rh.address(at: 2 * hidden), ldc: width)
                    }
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden {
                            let row = b * width
                            if !op.linearBeforeReset { pre[row + 2 * hidden + j] = xwt[row + 2 * hidden + j] + rh[row + 2 * hidden + j] }
                            let z = f.value(clipped(pre[row + j]))
                            let candidate = g.value(clipped(pre[row + 2 * hidden + j]))
                            state[b * hidden + j] = (1 - z) * candidate + z * state[b * hidden + j]
                        }
                    }
                case .lstm:
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden {
                            let (row, k) = (b * width, b * hidden + j)
                            let previous = cell[k]
                            var ai = xwt[row + j] + rh[row + j]
                            var ao = xwt[row + hidden + j] + rh[row + hidden + j]
                            var af = xwt[row + 2 * hidden + j] + rh[row + 2 * hidden + j]
                            let ac = xwt[row + 3 * hidden + j] + rh[row + 3 * hidden + j]
                            if let p = peepholes {
                                ai += p[j] * previous
                                af += p[2 * hidden + j] * previous
                            }
                            let input = f.value(clipped(ai))
                            let forget = op.inputForget ? 1 - input : f.value(clipped(af))
                            let next = forget * previous + input * g.value(clipped(ac))
                            if let p = peepholes { ao += p[hidden + j] * next }
                            cell[k] = next
                            state[k] = f.value(clipped(ao)) * output.value(next)
                            (pre[row + j], pre[row + hidden + j], pre[row + 2 * hidden + j], pre[row + 3 * hidden + j]) = (ai, ao, af, ac)
                        }
                    }
                }
                let out = y.unsafeMutableElements(as: T.self).address(at: (t * directions + d) * batch * hidden, count: batch * hidden)
                for b in 0..<batch where lengths[b] > t {
                    (out + b * hidden).update(from: state.address(at: b * hidden, count: hidden), count: hidden)
                }
                if let tape {
                    let next = (step + 1) * batch * hidden
                    tape.states.unsafeMutableElements(as: T.self).address(at: next, count: batch * hidden)
                        .update(from: state.address(), count: batch * hidden)
                    if op.kind == .lstm {
                        tape.cells.unsafeMutableElements(as: T.self).address(at: next, count: batch * hidden)
                            .update(from: cell.address(), count: batch * hidden)
                    }
                }
            }
            // Entries of length 0 end in zero states (onnxruntime's choice).
            for b in 0..<batch where lengths[b] > 0 {
                let (to, from) = ((d * batch + b) * hidden, b * hidden)
                finalH.unsafeMutableElements(as: T.self).address(at: to, count: hidden)
                    .update(from: state.address(at: from, count: hidden), count: hidden)
                finalC?.unsafeMutableElements(as: T.self).address(at: to, count: hidden)
                    .update(from: cell.address(at: from, count: hidden), count: hidden)
            }
        }
    }

    /// Direction `d`'s biases: `input` (`Wb + Rb` per gate, without `Rbh` under
    /// `linear_before_reset`), added once to the input projection, and `reset` (`Rbh` there, else empty).
    private func biases(_ d: Int) throws -> (input: [T], reset: [T]) {
        let (width, hidden) = (shape.gateWidth, shape.hidden)
        guard let bias = inputs.bias else { return ([T](repeating: 0, count: width), [T](repeating: 0, count: hidden)) }
        let b = bias.unsafeElements(as: T.self).address(at: d * 2 * width, count: 2 * width)
        return withExtendedLifetime(bias) {
            var input = (0..<width).map { b[$0] + b[width + $0] }
            var reset = [T](repeating: 0, count: hidden)
            if op.linearBeforeReset {
                for j in 0..<hidden {
                    input[2 * hidden + j] = b[2 * hidden + j]
                    reset[j] = b[width + 2 * hidden + j]
                }
            }
            return (input, reset)
        }
    }

    /// `X·W_dᵀ + bias` for every step at once: `[steps·batch, gates·hidden]`, through
    /// the kernel table's products when `W` was packed, else BLAS.
    private func inputProjection(_ d: Int, packed: PackedMatrix?, bias: [T]) throws -> Tensor {
        let (rows, width, depth) = (shape.steps * shape.batch, shape.gateWidth, shape.inputSize)
        let projection = try Tensor(uninitialized: T.dtype, shape: [rows, width])
        let out = projection.unsafeMutableElements(as: T.self)
        withExtendedLifetime((inputs, projection)) {
            bias.withUnsafeBufferPointer { bias in
                guard let biasBase = bias.baseAddress else { return }
                if let packed, T.self == Float.self, let gemm = Kernels.current.gemm {
                    gemm.multiply(
                        m: rows, n: width, k: depth, a: .rowMajor(inputs.x.unsafeElements(as: Float.self).address(), stride: depth),
                        b: .packed(packed), c: asMutableFloat(out.address()), ldc: width, columnBias: asFloat(biasBase))
                    return
                }
                for row in 0..<rows { out.address(at: row * width, count: width).update(from: biasBase, count: width) }
                guard depth > 0 else { return }
                T.gemm(
                    transposeA: false, transposeB: true, m: rows, n: width, k: depth, alpha: 1,
                    a: inputs.x.unsafeElements(as: T.self).address(count: rows * depth), lda: depth,
                    b: inputs.w.unsafeElements(as: T.self).address(at: d * width * depth, count: width * depth), ldb: depth, beta: 1,
                    c: out.address(), ldc: width)
            }
        }
        return projection
    }

    /// A fresh `[batch, hidden]` copy of direction `d`'s slice of `initial` (zeros when omitted).
    private func initialState(_ initial: Tensor?, _ d: Int) throws -> Tensor {
        let count = shape.batch * shape.hidden
        let state = try Tensor(zeros: T.dtype, shape: [shape.batch, shape.hidden])
        if let initial {
            withExtendedLifetime((initial, state)) {
                state.unsafeMutableElements(as: T.self).address(count: count)
                    .update(from: initial.unsafeElements(as: T.self).address(at: d * count, count: count), count: count)
            }
        }
        return state
    }

    @inline(__always) private func clipped(_ x: T) -> T {
        guard let clip else { return x }
        return Swift.min(Swift.max(x, -clip), clip)
    }

    /// The derivative of ``clipped(_:)``: 1 inside the threshold (on it too, as PyTorch's clamp), else 0.
    @inline(__always) private func clipSlope(_ x: T) -> T {
        guard let clip else { return 1 }
        return Swift.abs(x) <= clip ? 1 : 0
    }
}

// MARK: - Backward

extension RecurrentPass {
    /// Backpropagation through time: the gradients `wanted` (by input position) of `⟨seeds, outputs⟩`.
    func backward(_ seeds: RecurrentSeeds, wanted: [Bool]) throws -> RecurrentGradients {
        let s = shape
        let (batch, hidden, width) = (s.batch, s.hidden, s.gateWidth)
        func wants(_ index: Int) -> Bool { index < wanted.count && wanted[index] }
        var gradients = RecurrentGradients()
        let x = wants(0) ? try Tensor(zeros: T.dtype, shape: [s.steps, batch, s.inputSize]) : nil
        let w = try Tensor(zeros: T.dtype, shape: inputs.w.shape)
        let r = try Tensor(zeros: T.dtype, shape: inputs.r.shape)
        let bias = try Tensor(zeros: T.dtype, shape: [s.directions, 2 * width])
        let initialH = try Tensor(zeros: T.dtype, shape: [s.directions, batch, hidden])
        let initialC = try Tensor(zeros: T.dtype, shape: [s.directions, batch, hidden])
        let peepholes = try Tensor(zeros: T.dtype, shape: [s.directions, 3 * hidden])
        if s.steps > 0, batch > 0 {
            // The forward pass again, recording; the outputs themselves are not needed.
            let y = try Tensor(zeros: T.dtype, shape: [s.steps, s.directions, batch, hidden])
            let finalH = try Tensor(zeros: T.dtype, shape: [s.directions, batch, hidden])
            let finalC = op.kind == .lstm ? try Tensor(zeros: T.dtype, shape: [s.directions, batch, hidden]) : nil
            for d in 0..<s.directions {
                let tape = try Tape(op.kind, s)
                for (record, initial) in [(tape.states, inputs.initialH), (tape.cells, inputs.initialC)] where record.count > 0 {
                    let start = try initialState(initial, d)
                    withExtendedLifetime((start, record)) {
                        record.unsafeMutableElements(as: T.self).address(count: batch * hidden)
                            .update(from: start.unsafeElements(as: T.self).address(count: batch * hidden), count: batch * hidden)
                    }
                }
                try run(d, packed: nil, y: y, finalH: finalH, finalC: finalC, tape: tape)
                try backward(
                    d, tape: tape, seeds: seeds,
                    into: (x: x, w: w, r: r, bias: bias, initialH: initialH, initialC: initialC, peepholes: peepholes))
            }
        }
        gradients.x = x
        if wants(1) { gradients.w = w }
        if wants(2) { gradients.r = r }
        if wants(3) { gradients.bias = bias }
        if wants(5) { gradients.initialH = initialH }
        if wants(6) { gradients.initialC = initialC }
        if wants(7) { gradients.peepholes = peepholes }
        return gradients
    }

    /// Walks direction `d`'s steps in reverse and adds its gradients into `into` (each input's
    /// gradient; `x` accumulates over directions, the others have one slice per direction).
    private func backward(
        _ d: Int, tape: Tape, seeds: RecurrentSeeds,
        into out: (x: Tensor?, w: Tensor, r: Tensor, bias: Tensor, initialH: Tensor, initialC: Tensor, peepholes: Tensor)
    ) throws {
        let s = shape
        let (steps, batch, hidden, width, depth, directions) = (s.steps, s.batch, s.hidden, s.gateWidth, s.inputSize, s.directions)
        let reversed = op.reversed[d]
        let (f, g) = (op.activations[d][0], op.activations[d].count > 1 ? op.activations[d][1] : op.activations[d][0])
        let output = op.kind == .lstm ? op.activations[d][2] : f
        let lengths = inputs.lengths
        // Gate gradients: by time for the input side (dX, dW, dWb), by step for the recurrent
        // side (dR, dRb), where GRU's linear_before_reset makes them differ.
        let gateGradients = try Tensor(zeros: T.dtype, shape: [steps, batch, width])
        let recurrentGradients = try Tensor(zeros: T.dtype, shape: [steps, batch, width])
        let dh = try Tensor(zeros: T.dtype, shape: [batch, hidden])
        let dhPrevious = try Tensor(zeros: T.dtype, shape: [batch, hidden])
        let dc = try Tensor(zeros: T.dtype, shape: [batch, hidden])
        let throughReset = try Tensor(zeros: T.dtype, shape: [batch, hidden])
        let r = inputs.r.unsafeElements(as: T.self).address(at: d * width * hidden, count: width * hidden)
        let peepholes = inputs.peepholes.map { $0.unsafeElements(as: T.self).address(at: d * 3 * hidden, count: 3 * hidden) }
        let dPeepholes = out.peepholes.unsafeMutableElements(as: T.self).address(at: d * 3 * hidden, count: 3 * hidden)
        let direct = op.kind == .gru && !op.linearBeforeReset ? 2 * hidden : width

        withExtendedLifetime((inputs, tape, seeds, gateGradients, recurrentGradients, dh, dhPrevious, dc, throughReset, out)) {
            var (dH, dHPrevious) = (dh.unsafeMutableElements(as: T.self), dhPrevious.unsafeMutableElements(as: T.self))
            let dC = dc.unsafeMutableElements(as: T.self)
            let states = tape.states.unsafeElements(as: T.self)
            let block = batch * hidden
            // The final states' gradients; entries of length 0 ended in constant zeros.
            for b in 0..<batch where lengths[b] > 0 {
                let (to, from) = (b * hidden, (d * batch + b) * hidden)
                if let seed = seeds.finalH {
                    dH.address(at: to, count: hidden)
                        .update(from: seed.unsafeElements(as: T.self).address(at: from, count: hidden), count: hidden)
                }
                if let seed = seeds.finalC {
                    dC.address(at: to, count: hidden)
                        .update(from: seed.unsafeElements(as: T.self).address(at: from, count: hidden), count: hidden)
                }
            }
            for step in stride(from: steps - 1, through: 0, by: -1) {
                let t = reversed ? steps - 1 - step : step
                let pre = tape.preactivations.unsafeElements(as: T.self).address(at: step * batch * width, count: batch * width)
                let dA = gateGradients.unsafeMutableElements(as: T.self).address(at: t * batch * width, count: batch * width)
                let dRec = recurrentGradients.unsafeMutableElements(as: T.self).address(at: step * batch * width, count: batch * width)
                let previous = states.address(at: step * block, count: block)
                if let seed = seeds.y {
                    let dy = seed.unsafeElements(as: T.self).address(at: (t * directions + d) * block, count: block)
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden { dH[b * hidden + j] += dy[b * hidden + j] }
                    }
                }
                // Rows past their length were carried through unchanged.
                for b in 0..<batch where lengths[b] <= t {
                    dHPrevious.address(at: b * hidden, count: hidden)
                        .update(from: dH.address(at: b * hidden, count: hidden), count: hidden)
                }
                switch op.kind {
                case .rnn:
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden {
                            let (a, k) = (pre[b * width + j], b * hidden + j)
                            let da = dH[k] * f.derivative(clipped(a)) * clipSlope(a)
                            (dA[b * width + j], dRec[b * width + j], dHPrevious[k]) = (da, da, 0)
                        }
                    }
                case .gru:
                    let resets = tape.resets.unsafeElements(as: T.self).address(at: step * block, count: block)
                    // The candidate's gradient first: without linear_before_reset the reset
                    // gate's gradient needs it multiplied by Rh.
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden {
                            let (row, k) = (b * width, b * hidden + j)
                            let z = f.value(clipped(pre[row + j]))
                            let a = pre[row + 2 * hidden + j]
                            let da = dH[k] * (1 - z) * g.derivative(clipped(a)) * clipSlope(a)
                            dA[row + 2 * hidden + j] = da
                            dRec[row + 2 * hidden + j] = op.linearBeforeReset ? da * f.value(clipped(pre[row + hidden + j])) : da
                        }
                    }
                    let u = throughReset.unsafeMutableElements(as: T.self)
                    if !op.linearBeforeReset {
                        T.gemm(
                            transposeA: false, transposeB: false, m: batch, n: hidden, k: hidden, alpha: 1,
                            a: dRec + 2 * hidden, lda: width, b: r + 2 * hidden * hidden, ldb: hidden, beta: 0, c: u.address(),
                            ldc: hidden)
                    }
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden {
                            let (row, k) = (b * width, b * hidden + j)
                            let (az, ar) = (pre[row + j], pre[row + hidden + j])
                            let (z, gate) = (f.value(clipped(az)), f.value(clipped(ar)))
                            let candidate = g.value(clipped(pre[row + 2 * hidden + j]))
                            let dz = dH[k] * (previous[k] - candidate)
                            let dr: T
                            if op.linearBeforeReset {
                                dr = dA[row + 2 * hidden + j] * resets[k]
                                dHPrevious[k] = dH[k] * z
                            } else {
                                dr = u[k] * previous[k]
                                dHPrevious[k] = dH[k] * z + u[k] * gate
                            }
                            let daz = dz * f.derivative(clipped(az)) * clipSlope(az)
                            let dar = dr * f.derivative(clipped(ar)) * clipSlope(ar)
                            (dA[row + j], dA[row + hidden + j]) = (daz, dar)
                            (dRec[row + j], dRec[row + hidden + j]) = (daz, dar)
                        }
                    }
                case .lstm:
                    let cells = tape.cells.unsafeElements(as: T.self)
                    let cellBefore = cells.address(at: step * block, count: block)
                    let cellAfter = cells.address(at: (step + 1) * block, count: block)
                    for b in 0..<batch where lengths[b] > t {
                        for j in 0..<hidden {
                            let (row, k) = (b * width, b * hidden + j)
                            let (ai, ao, af, ac) = (pre[row + j], pre[row + hidden + j], pre[row + 2 * hidden + j], pre[row + 3 * hidden + j])
                            let input = f.value(clipped(ai))
                            let gate = f.value(clipped(ao))
                            let forget = op.inputForget ? 1 - input : f.value(clipped(af))
                            let candidate = g.value(clipped(ac))
                            let (cell, before) = (cellAfter[k], cellBefore[k])
                            let dao = dH[k] * output.value(cell) * f.derivative(clipped(ao)) * clipSlope(ao)
                            var dCell = dC[k] + dH[k] * gate * output.derivative(cell)
                            if let p = peepholes {
                                dCell += dao * p[hidden + j]
                                dPeepholes[hidden + j] += dao * cell
                            }
                            var di = dCell * candidate
                            let dForget = dCell * before
                            var daf: T = 0
                            if op.inputForget { di -= dForget } else { daf = dForget * f.derivative(clipped(af)) * clipSlope(af) }
                            let dai = di * f.derivative(clipped(ai)) * clipSlope(ai)
                            let dac = dCell * input * g.derivative(clipped(ac)) * clipSlope(ac)
                            var dBefore = dCell * forget
                            if let p = peepholes {
                                dBefore += dai * p[j] + daf * p[2 * hidden + j]
                                dPeepholes[j] += dai * before
                                dPeepholes[2 * hidden + j] += daf * before
                            }
                            dC[k] = dBefore
                            dHPrevious[k] = 0
                            (dA[row + j], dA[row + hidden + j], dA[row + 2 * hidden + j], dA[row + 3 * hidden + j]) = (dai, dao, daf, dac)
                            (dRec[row + j], dRec[row + hidden + j], dRec[row + 2 * hidden + j], dRec[row + 3 * hidden + j]) = (dai, dao, daf, dac)
                        }
                    }
                }
                // dH_prev += dA·R over the gates that read H_prev directly.
                T.gemm(
                    transposeA: false, transposeB: false, m: batch, n: hidden, k: direct, alpha: 1, a: dRec, lda: width,
                    b: r, ldb: hidden, beta: 1, c: dHPrevious.address(), ldc: hidden)
                swap(&dH, &dHPrevious)
            }
            out.initialH.unsafeMutableElements(as: T.self).address(at: d * block, count: block).update(from: dH.address(), count: block)
            if op.kind == .lstm {
                out.initialC.unsafeMutableElements(as: T.self).address(at: d * block, count: block)
                    .update(from: dC.address(), count: block)
            }

            let rows = steps * batch
            let dAll = gateGradients.unsafeElements(as: T.self)
            let dRecAll = recurrentGradients.unsafeElements(as: T.self)
            let weights = d * width * depth
            if let dx = out.x, depth > 0 {
                T.gemm(
                    transposeA: false, transposeB: false, m: rows, n: depth, k: width, alpha: 1, a: dAll.address(), lda: width,
                    b: inputs.w.unsafeElements(as: T.self).address(at: weights, count: width * depth), ldb: depth, beta: 1,
                    c: dx.unsafeMutableElements(as: T.self).address(count: rows * depth), ldc: depth)
            }
            if depth > 0 {
                T.gemm(
                    transposeA: true, transposeB: false, m: width, n: depth, k: rows, alpha: 1, a: dAll.address(), lda: width,
                    b: inputs.x.unsafeElements(as: T.self).address(count: rows * depth), ldb: depth, beta: 0,
                    c: out.w.unsafeMutableElements(as: T.self).address(at: weights, count: width * depth), ldc: depth)
            }
            let dR = out.r.unsafeMutableElements(as: T.self).address(at: d * width * hidden, count: width * hidden)
            T.gemm(
                transposeA: true, transposeB: false, m: direct, n: hidden, k: rows, alpha: 1, a: dRecAll.address(), lda: width,
                b: states.address(count: rows * hidden), ldb: hidden, beta: 0, c: dR, ldc: hidden)
            if direct < width {
                // GRU's Rh multiplied r ⊙ H_prev.
                T.gemm(
                    transposeA: true, transposeB: false, m: hidden, n: hidden, k: rows, alpha: 1, a: dRecAll.address(at: 2 * hidden),
                    lda: width, b: tape.resets.unsafeElements(as: T.self).address(count: rows * hidden), ldb: hidden, beta: 0,
                    c: dR + 2 * hidden * hidden, ldc: hidden)
            }
            let dB = out.bias.unsafeMutableElements(as: T.self).address(at: d * 2 * width, count: 2 * width)
            for row in 0..<rows {
                for j in 0..<width {
                    dB[j] += dAll[row * width + j]
                    dB[width + j] += dRecAll[row * width + j]
                }
            }
        }
    }
}
