import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R, G, B`.
///
/// This is what PIL's `Image.open(path).convert("RGB")` gives, the starting point of
/// torchvision preprocessing.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `height * width * 3` bytes.
    public var pixels: [UInt8]

    /// The largest image we decode (8192 x 8192 pixels): a declared size beyond it is refused
    /// before any pixel buffer is allocated.
    public static let maximumPixels = 1 << 26

    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw ImageError.invalid("an RGB image of \(width)x\(height) needs \(max(width * height * 3, 0)) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Reads a PNG or JPEG file (the format comes from its first bytes, not its name).
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ImageError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        try self.init(data: data, path: url.path)
    }

    /// Decodes PNG or JPEG bytes; `path` only labels errors.
    public init(data: Data, path: String = "<memory>") throws {
        let head = [UInt8](data.prefix(8))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            self = try PNG.decode(data, path: path)
        } else if head.starts(with: [0xFF, 0xD8, 0xFF]) {
            self = try JPEG.decode(data, path: path)
        } else {
            throw ImageError.unsupported(path: path, reason: "not a PNG or JPEG file")
        }
    }
}

/// Errors reading or writing images; each names the file.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read image \(path): \(reason)"
        case .unsupported(let path, let reason): "\(path): \(reason)"
        case .corrupt(let path, let reason): "\(path) is corrupt or truncated: \(reason)"
        case .invalid(let reason): reason
        }
    }
}
