import CPNG
import Foundation
import TensorCore

/// PNG files through libpng's simplified API (`png_image`), which reports errors instead of
/// jumping out of the caller, so it is safe from Swift.
public enum PNG {
    /// Decodes any PNG (gray, gray+alpha, RGB, RGBA, palette; 8 or 16 bits) to 8-bit RGB, the way
    /// PIL's `convert("RGB")` does: alpha is dropped, not composited; 16-bit samples keep their
    /// high byte. (PIL clips 16-bit grayscale at 255 instead; we scale it like colour.)
    static func decode(_ data: Data, path: String, checkSize: (_ width: Int, _ height: Int) throws -> Void) throws -> RGBImage {
        // libpng reads from the buffer until finish_read, so both calls happen inside one borrow.
        try data.withUnsafeBytes { raw in
            var image = png_image()
            image.version = png_uint_32(PNG_IMAGE_VERSION)
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                throw ImageError.corrupt(path: path, reason: message(&image))
            }
            defer { png_image_free(&image) }
            let sixteen = image.format & png_uint_32(PNG_FORMAT_FLAG_LINEAR) != 0
            // Read with alpha, so libpng never composites; 16-bit files stay linear 16-bit (no gamma change).
            image.format = png_uint_32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA) | (sixteen ? png_uint_32(PNG_FORMAT_FLAG_LINEAR) : 0)
            let (width, height) = (Int(image.width), Int(image.height))
            // The samples as read (4 per pixel, 2 bytes each in 16-bit files) and the RGB result.
            let bytes = try RGBImage.decodingBytes(width: width, height: height, bytesPerPixel: sixteen ? 11 : 7, path: path)
            try checkSize(width, height)
            return try MemoryBudget.withReservation(bytes, for: "image \(path) decoded at \(width)x\(height)") {
                try finish(&image, width: width, height: height, sixteen: sixteen, path: path)
            }
        }
    }

    /// The zlib level PNGs are written at. Overlays are working pictures, so speed wins over size:
    /// `tools/bench_end_to_end.py` measured 256 ResNet-50 overlays of 224x224 at level 1 against
    /// level 6 (zlib's default): 10.7 MiB against 8.5 MiB, and `gradcam --images` 0.7 s (2%) less
    /// processor time (28.8 s against 29.5 s, the encoding overlapping the model's work).
    public static let defaultLevel: Int32 = 1

    /// Decodes the pixels of an image whose header `png_image_begin_read_from_memory` has read.
    private static func finish(_ image: inout png_image, width: Int, height: Int, sixteen: Bool, path: String) throws -> RGBImage {
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        if sixteen {
            var samples = [UInt16](repeating: 0, count: width * height * 4)
            guard png_image_finish_read(&image, nil, &samples, 0, nil) != 0 else {
                throw ImageError.corrupt(path: path, reason: message(&image))
            }
            for p in 0..<width * height { for c in 0..<3 { rgb[p * 3 + c] = UInt8(samples[p * 4 + c] >> 8) } }
        } else {
            var samples = [UInt8](repeating: 0, count: width * height * 4)
            guard png_image_finish_read(&image, nil, &samples, 0, nil) != 0 else {
                throw ImageError.corrupt(path: path, reason: message(&image))
            }
            for p in 0..<width * height { for c in 0..<3 { rgb[p * 3 + c] = samples[p * 4 + c] } }
        }
        return try RGBImage(width: width, height: height, pixels: rgb)
    }

    /// Encodes 8-bit pixels with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels.
    package static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8], level: Int32 = defaultLevel) throws -> Data {
        guard (1...4).contains(channels), width > 0, height > 0, pixels.count == width * height * channels else {
            throw ImageError.invalid("cannot encode \(pixels.count) bytes as a \(width)x\(height) PNG with \(channels) channels")
        }
        return try pixels.withUnsafeBytes { try PNGWriter.encode(width: width, height: height, channels: channels, depth: 8, bytes: $0, level: level) }
    }

    /// Encodes 16-bit samples (stored as written, e.g. a heatmap scaled to 0...65535) with 1 to 4 channels.
    package static func encode(width: Int, height: Int, channels: Int, samples: [UInt16], level: Int32 = defaultLevel) throws -> Data {
        guard (1...4).contains(channels), width > 0, height > 0, samples.count == width * height * channels else {
            throw ImageError.invalid("cannot encode \(samples.count) samples as a \(width)x\(height) PNG with \(channels) channels")
        }
        // PNG stores 16-bit samples most significant byte first.
        let bigEndian = samples.map(\.bigEndian)
        return try bigEndian.withUnsafeBytes { try PNGWriter.encode(width: width, height: height, channels: channels, depth: 16, bytes: $0, level: level) }
    }

    /// Writes an RGB image.
    public static func write(_ image: RGBImage, to url: URL, level: Int32 = defaultLevel) throws {
        let data = try encode(width: image.width, height: image.height, channels: 3, pixels: image.pixels, level: level)
        do { try FileIO.write(data, to: url) } catch let error as FileError {
            throw ImageError.unwritable(path: url.path, reason: error.reason)
        }
    }

    private static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
