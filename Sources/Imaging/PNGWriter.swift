import CZlib
import Foundation

/// PNG files written directly with zlib, so the compression level is ours to choose (libpng's
/// simplified writer offers its default or one fixed "fast" setting only).
///
/// The format (ISO/IEC 15948): the signature, an `IHDR` chunk, the scanlines in one `IDAT`
/// chunk as a zlib stream (each row prefixed by its filter type), and `IEND`; every chunk ends
/// with the CRC-32 of its type and data. Rows are filtered with Paeth, which suits photographs
/// and smooth heatmaps and costs little next to deflate.
enum PNGWriter {
    /// - Parameters:
    ///   - depth: 8 or 16 bits per sample; 16-bit samples most significant byte first.
    ///   - bytes: `height` rows of `width * channels` samples.
    static func encode(width: Int, height: Int, channels: Int, depth: Int, bytes: UnsafeRawBufferPointer, level: Int32) throws -> Data {
        let pixelBytes = channels * depth / 8
        let (rowBytes, overflow) = width.multipliedReportingOverflow(by: pixelBytes)
        guard !overflow, width <= Int(Int32.max), height <= Int(Int32.max), bytes.count == rowBytes * height, (0...9).contains(level) else {
            throw ImageError.invalid("cannot encode a \(width)x\(height) PNG of \(channels) channels at level \(level)")
        }
        // Filtered scanlines: a filter-type byte, then the row's differences to its Paeth predictor.
        var filtered = [UInt8](repeating: 0, count: (rowBytes + 1) * height)
        guard let source = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { throw ImageError.invalid("no pixels to encode") }
        filtered.withUnsafeMutableBufferPointer { out in
            for y in 0..<height {
                let row = source + y * rowBytes
                let above: UnsafePointer<UInt8>? = y > 0 ? UnsafePointer(source + (y - 1) * rowBytes) : nil
                let start = y * (rowBytes + 1)
                out[start] = 4
                for x in 0..<rowBytes {
                    let a = x >= pixelBytes ? Int(row[x - pixelBytes]) : 0
                    let b = above.map { Int($0[x]) } ?? 0
                    let c = x >= pixelBytes ? (above.map { Int($0[x - pixelBytes]) } ?? 0) : 0
                    let p = a + b - c
                    let (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
                    let predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                    out[start + 1 + x] = row[x] &- UInt8(truncatingIfNeeded: predictor)
                }
            }
        }
        var compressedSize = compressBound(uLong(filtered.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
        let status = compress2(&compressed, &compressedSize, filtered, uLong(filtered.count), level)
        guard status == Z_OK else { throw ImageError.invalid("PNG encoding failed: zlib status \(status)") }

        var data = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        data.reserveCapacity(Int(compressedSize) + 64)
        let colorType: UInt8 = [1: 0, 2: 4, 3: 2, 4: 6][channels] ?? 2
        var header = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        header += [UInt8(depth), colorType, 0, 0, 0]
        chunk("IHDR", header, into: &data)
        compressed.withUnsafeBufferPointer { chunk("IDAT", UnsafeBufferPointer(rebasing: $0.prefix(Int(compressedSize))), into: &data) }
        chunk("IEND", [], into: &data)
        return data
    }

    private static func chunk<Bytes: Collection>(_ type: String, _ payload: Bytes, into data: inout Data) where Bytes.Element == UInt8 {
        let typeBytes = Array(type.utf8)
        data.append(contentsOf: bigEndian(UInt32(payload.count)))
        data.append(contentsOf: typeBytes)
        data.append(contentsOf: payload)
        var crc = crc32(0, typeBytes, uInt(typeBytes.count))
        let contiguous = Array(payload)
        crc = contiguous.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, uInt($0.count)) }
        data.append(contentsOf: bigEndian(UInt32(crc)))
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32($0))) } }
}
