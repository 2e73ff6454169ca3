import ONNXModel
import TensorCore

// Einsum: the equation parsed once at load; each run labels the operands' axes and contracts
// them pairwise through matrix products (Einsum+Contraction.swift).

extension OpRegistry {
    mutating func registerEinsum() {
        register("Einsum") { context in
            let equation: String = try context.node.requiredAttribute("equation")
            do {
                return Einsum(equation: try EinsumEquation(equation))
            } catch let error as OpError {
                throw context.invalid("equation", error.message)
            }
        }
        widenForHalfPrecision(["Einsum"])
    }
}

/// An einsum equation: each operand's subscripts and, when explicit, the output's.
///
/// Letters label axes; `...` stands for the axes an operand has beyond its letters (aligned from
/// the right across operands and broadcast, as NumPy does). A letter repeated within an operand
/// takes its diagonal; a letter absent from the output is summed. Without `->`, the output is the
/// ellipsis axes followed by the letters used exactly once, in alphabetical (ASCII) order.
struct EinsumEquation: Sendable {
    /// One subscript: a letter (its ASCII code) or the ellipsis.
    enum Subscript: Equatable, Sendable {
        case letter(UInt8)
        case ellipsis
    }

    let inputs: [[Subscript]]
    /// `nil` in implicit mode.
    let output: [Subscript]?

    init(_ text: String) throws {
        let compact = text.filter { !$0.isWhitespace }
        let sides = compact.components(separatedBy: "->")
        guard sides.count <= 2 else { throw OpError("'\(text)' has more than one '->'") }
        func subscripts(_ term: String) throws -> [Subscript] {
            var result: [Subscript] = []
            var rest = Substring(term)
            while let first = rest.first {
                if rest.hasPrefix("...") {
                    guard !result.contains(.ellipsis) else { throw OpError("'\(term)' has more than one '...'") }
                    result.append(.ellipsis)
                    rest = rest.dropFirst(3)
                } else if let ascii = first.asciiValue, first.isLetter {
                    result.append(.letter(ascii))
                    rest = rest.dropFirst()
                } else {
                    throw OpError("'\(text)' has an invalid subscript '\(first)'")
                }
            }
            return result
        }
        inputs = try sides[0].components(separatedBy: ",").map(subscripts)
        output = sides.count == 2 ? try subscripts(sides[1]) : nil
        if let output {
            let letters = output.compactMap { term -> UInt8? in
                if case .letter(let code) = term { return code }
                return nil
            }
            guard Set(letters).count == letters.count else {
                throw OpError("the output of '\(text)' repeats a subscript")
            }
            for case .letter(let code) in output where !inputs.contains(where: { $0.contains(.letter(code)) }) {
                throw OpError("output subscript '\(Character(UnicodeScalar(code)))' of '\(text)' appears in no input")
            }
            if output.contains(.ellipsis), !inputs.contains(where: { $0.contains(.ellipsis) }) {
                throw OpError("the output of '\(text)' has '...' but no input does")
            }
        }
    }

    /// Integer labels for operands of the given ranks: letters keep their ASCII code, ellipsis
    /// axis `j` of `count` (counted from the first) is `256 + j`. Returns each operand's labels and the output's.
    func labels(ranks: [Int]) throws -> (inputs: [[Int]], output: [Int]) {
        guard ranks.count == inputs.count else {
            throw OpError("the equation has \(inputs.count) operands, got \(ranks.count) inputs")
        }
        var ellipsisCount = 0
        for (terms, rank) in zip(inputs, ranks) {
            let letters = terms.filter { $0 != .ellipsis }.count
            guard terms.contains(.ellipsis) ? letters <= rank : letters == rank else {
                throw OpError("an operand of rank \(rank) has \(letters) subscripts")
            }
            if terms.contains(.ellipsis) { ellipsisCount = max(ellipsisCount, rank - letters) }
        }
        func expand(_ terms: [Subscript], rank: Int) -> [Int] {
            let covered = rank - terms.filter { $0 != .ellipsis }.count
            return terms.flatMap { term -> [Int] in
                switch term {
                case .letter(let code): [Int(code)]
                case .ellipsis: (ellipsisCount - covered..<ellipsisCount).map { 256 + $0 }
                }
            }
        }
        let labeled = zip(inputs, ranks).map { expand($0, rank: $1) }
        let ellipsis = (0..<ellipsisCount).map { 256 + $0 }
        guard let output else {
            var uses: [Int: Int] = [:]
            for labels in labeled { for label in labels where label < 256 { uses[label, default: 0] += 1 } }
            return (labeled, ellipsis + uses.filter { $0.value == 1 }.keys.sorted())
        }
        if !output.contains(.ellipsis), ellipsisCount > 0 {
            throw OpError("'...' covers \(ellipsisCount) axes but the output has no '...' to keep them")
        }
        return (labeled, output.flatMap { term -> [Int] in
            if case .letter(let code) = term { return [Int(code)] }
            return ellipsis
        })
    }
}

/// `Einsum` (opsets 12, 28).
struct Einsum: DifferentiableOperator {
    let equation: EinsumEquation

    /// One multiply-add per combination of every label's extent (each output element summed over
    /// the labels it contracts).
    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let shapes = try (0..<inputs.count).map { try inputs.required($0).shape }
        let (labels, _) = try equation.labels(ranks: shapes.map(\.count))
        var extents: [Int: Int] = [:]
        for (shape, axes) in zip(shapes, labels) {
            for (size, label) in zip(shape, axes) { extents[label] = max(extents[label] ?? 1, size) }
        }
        return WorkBudget.product(Array(extents.values))
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let operands = try (0..<inputs.count).map { try inputs.required($0) }
        guard let first = operands.first, operands.allSatisfy({ $0.dtype == first.dtype }) else {
            throw OpError("Einsum needs one or more inputs of one type, got \(operands.map(\.dtype))")
        }
        let (labels, output) = try equation.labels(ranks: operands.map(\.rank))
        return [try EinsumContraction.evaluate(zip(operands, labels).map { LabeledTensor($0, $1) }, output: output)]
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues {
        // Each operand's gradient reads every other operand.
        let needed = wanted.indices.filter { j in wanted.indices.contains { $0 != j && wanted[$0] } }
        return SavedValues(inputs: Set(needed))
    }

    /// The gradient of operand `i` is the einsum of the output gradient with the other operands,
    /// onto operand `i`'s distinct labels; labels only operand `i` had (summed away) are
    /// broadcast back, and repeated labels put the result on the diagonal.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shapes = try step.inputShapes.indices.map { try step.inputShape($0) }
        let (labels, output) = try equation.labels(ranks: shapes.map(\.count))
        return try shapes.indices.map { i -> Tensor? in
            guard step.wants(i) else { return nil }
            var operands = [LabeledTensor(g, output)]
            for j in shapes.indices where j != i { operands.append(LabeledTensor(try step.input(j), labels[j])) }
            var sizes: [Int: Int] = [:]
            for operand in operands { for (label, size) in zip(operand.labels, operand.tensor.shape) { sizes[label] = max(sizes[label] ?? 1, size) } }
            var distinct: [Int] = []
            for label in labels[i] where !distinct.contains(label) { distinct.append(label) }
            let present = distinct.filter { sizes[$0] != nil }
            var gradient = try EinsumContraction.evaluate(operands, output: present)
            // Broadcast along the labels only this operand had (at its own extents).
            let ownSizes = Dictionary(zip(labels[i], shapes[i]), uniquingKeysWith: { a, _ in a })
            let full = distinct.map { sizes[$0] ?? ownSizes[$0] ?? 1 }
            if present.count < distinct.count {
                let strides = Shape.strides(gradient.shape)
                let viewStrides = distinct.map { label in present.firstIndex(of: label).map { strides[$0] } ?? 0 }
                gradient = try stridedCopy(gradient, shape: full, strides: viewStrides)
            }
            guard distinct.count < labels[i].count else { return gradient }
            // Repeated labels: the values sit on the diagonal of a zero tensor of the operand's shape.
            let target = labels[i].map { label in full[distinct.firstIndex(of: label) ?? 0] }
            let result = try Tensor(zeros: gradient.dtype, shape: target)
            let strides = Shape.strides(target)
            var diagonal = [Int](repeating: 0, count: distinct.count)
            for (axis, label) in labels[i].enumerated() { diagonal[distinct.firstIndex(of: label) ?? 0] += strides[axis] }
            try stridedScatter(gradient, into: result, strides: diagonal, offset: 0)
            return result
        }
    }
}
