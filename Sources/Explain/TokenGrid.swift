import GraphEngine
import TensorCore

/// How a transformer's `[N, tokens, C]` tensor maps to a `[N, C, h, w]` grid: leading
/// class/distillation tokens are dropped and the rest laid out row by row.
public struct TokenGrid: Sendable, Equatable, CustomStringConvertible {
    /// Tokens before the patch tokens (1 for a class token, 2 with a distillation token).
    public var prefixTokens: Int
    /// Rows of patch tokens.
    public var height: Int
    /// Columns of patch tokens.
    public var width: Int

    /// A grid of `height` × `width` patches after `prefixTokens` class or register tokens.
    public init(prefixTokens: Int, height: Int, width: Int) {
        self.prefixTokens = prefixTokens
        self.height = height
        self.width = width
    }

    /// The prefix and the grid in words.
    public var description: String { "\(prefixTokens) prefix token(s), \(height)x\(width) grid" }

    /// The grid for `tokens` tokens of an input `inputHeight` x `inputWidth`: the fewest prefix
    /// tokens (0 to 5: a class token, a distillation token, up to four register tokens) that
    /// leave a grid with the input's aspect ratio.
    public static func infer(tokens: Int, inputHeight: Int, inputWidth: Int) throws -> TokenGrid {
        for prefix in 0...min(5, max(tokens - 1, 0)) {
            let patches = tokens - prefix
            // h / w = H / W and h * w = patches.
            for height in 1...max(patches, 1) where patches % height == 0 {
                let width = patches / height
                if height * inputWidth == width * inputHeight { return TokenGrid(prefixTokens: prefix, height: height, width: width) }
            }
        }
        throw ExplainError.invalidInput(
            "cannot lay \(tokens) tokens out as a grid for a \(inputHeight)x\(inputWidth) input; give the grid explicitly")
    }

    /// The tokens this grid lays out, `prefixTokens + height · width`, or an error when a part is
    /// out of range (a negative prefix, an empty grid) or the count overflows.
    package func tokenCount() throws -> Int {
        guard prefixTokens >= 0, height >= 1, width >= 1 else {
            throw ExplainError.invalidConfiguration("a token grid needs a prefix of 0 or more tokens and at least one row and column, got \(self)")
        }
        guard let patches = MemoryBudget.product(height, width),
            case (let total, false) = patches.addingReportingOverflow(prefixTokens)
        else { throw ExplainError.invalidConfiguration("a \(self) has more tokens than can be counted") }
        return total
    }

    /// `[N, tokens, C]` as `[N, C, h, w]`.
    package func spatial(_ tokens: Tensor) throws -> Tensor {
        let needed = try tokenCount()
        guard tokens.rank == 3, tokens.shape[1] == needed else {
            throw ExplainError.invalidInput("a \(self) needs \(needed) tokens, the layer has shape \(tokens.shape)")
        }
        let (batch, count, channels) = (tokens.shape[0], tokens.shape[1], tokens.shape[2])
        let grid = try tokens.sliced(axis: 1, prefixTokens..<count).reshaped([batch, height, width, channels])
        return try grid.transposed([0, 3, 1, 2])
    }
}
