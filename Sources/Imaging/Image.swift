import Foundation
import TensorCore

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R, G, B`.
///
/// This is what PIL's `Image.open(path).convert("RGB")` gives, the starting point of
/// torchvision preprocessing.
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// `height * width * 3` bytes.
    public var pixels: [UInt8]

    /// The largest image we decode (8192 x 8192 pixels): a declared size beyond it is refused
    /// before any pixel buffer is allocated.
    public static let maximumPixels = 1 << 26

    /// An image from `width × height × 3` bytes, row-major RGB; throws when the count is wrong or the image too large.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, let bytes = MemoryBudget.product(width, height, 3), pixels.count == bytes else {
            throw ImageError.invalid("an RGB image of \(width)x\(height) pixels cannot hold \(pixels.count) bytes")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Reads a PNG or JPEG file (the format comes from its first bytes, not its name).
    ///
    /// `checkSize` sees the width and height the file declares before any pixel is decoded, and
    /// may refuse them (``Preprocessing`` refuses sizes whose resize would not fit).
    public init(contentsOf url: URL, checkSize: (_ width: Int, _ height: Int) throws -> Void = { _, _ in }) throws {
        let data: Data
        do { data = try FileIO.data(of: url.path) } catch let error as FileError {
            throw ImageError.unreadable(path: url.path, reason: error.reason)
        }
        try self.init(data: data, path: url.path, checkSize: checkSize)
    }

    /// Decodes PNG or JPEG bytes; `path` only labels errors.
    public init(data: Data, path: String = "<memory>", checkSize: (_ width: Int, _ height: Int) throws -> Void = { _, _ in }) throws {
        let head = [UInt8](data.prefix(8))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            self = try PNG.decode(data, path: path, checkSize: checkSize)
        } else if head.starts(with: [0xFF, 0xD8, 0xFF]) {
            self = try JPEG.decode(data, path: path, checkSize: checkSize)
        } else {
            throw ImageError.unsupported(path: path, reason: "not a PNG or JPEG file")
        }
    }

    /// Refuses a declared image size beyond ``maximumPixels``, or whose decoding buffers (`bytesPerPixel`
    /// in all) would not fit the ``MemoryBudget``; returns those bytes.
    static func decodingBytes(width: Int, height: Int, bytesPerPixel: Int, path: String) throws -> Int {
        guard width > 0, height > 0, let pixels = MemoryBudget.product(width, height), pixels <= maximumPixels,
            let bytes = MemoryBudget.product(pixels, bytesPerPixel)
        else {
            throw ImageError.unsupported(path: path, reason: "image size \(width)x\(height) exceeds the \(maximumPixels)-pixel limit")
        }
        return bytes
    }
}

/// Errors reading or writing images; each names the file.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    /// The file cannot be read.
    case unreadable(path: String, reason: String)
    /// The file cannot be written.
    case unwritable(path: String, reason: String)
    /// The file is not a PNG or JPEG we decode.
    case unsupported(path: String, reason: String)
    /// The file's data is damaged or truncated.
    case corrupt(path: String, reason: String)
    /// Pixels, sizes or arguments that cannot make an image.
    case invalid(String)

    /// The problem in words, naming the file.
    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read image \(path): \(reason)"
        case .unwritable(let path, let reason): "cannot write image \(path): \(reason)"
        case .unsupported(let path, let reason): "\(path): \(reason)"
        case .corrupt(let path, let reason): "\(path) is corrupt or truncated: \(reason)"
        case .invalid(let reason): reason
        }
    }
}
