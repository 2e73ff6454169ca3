/// How a 4-D image-like tensor orders its axes.
///
/// PyTorch, and so every ONNX `Conv`, reads `[N, C, H, W]`; Keras models exported by tf2onnx
/// take `[N, H, W, C]` images, and Swin-style transformers keep `[N, H, W, C]` feature maps.
public enum ImageLayout: String, Sendable, CaseIterable, CustomStringConvertible {
    /// `[N, C, H, W]`, channels first.
    case nchw
    /// `[N, H, W, C]`, channels last.
    case nhwc

    /// The axis of the channels in a batch.
    public var channelAxis: Int { self == .nchw ? 1 : 3 }
    /// The axis of the rows in a batch.
    public var heightAxis: Int { self == .nchw ? 2 : 1 }
    /// The axis of the columns in a batch.
    public var widthAxis: Int { self == .nchw ? 3 : 2 }
    /// `nchw` or `nhwc`.
    public var description: String { rawValue }

    /// The permutation that turns a tensor of this layout into `[N, C, H, W]`.
    public var toChannelsFirst: [Int] { self == .nchw ? [0, 1, 2, 3] : [0, 3, 1, 2] }

    /// Height and width of a 4-D `shape` read in this layout.
    public func spatialSize(of shape: [Int]) -> (height: Int, width: Int)? {
        shape.count == 4 ? (shape[heightAxis], shape[widthAxis]) : nil
    }
}
