import CTurboJPEG
import Foundation
import TensorCore

/// JPEG decoding through libjpeg-turbo's TurboJPEG API.
///
/// TurboJPEG rather than the classic libjpeg API: libjpeg reports errors by `longjmp` out of an
/// error handler, which Swift cannot catch, so a corrupt file would abort the process;
/// TurboJPEG returns an error code and a message. Its defaults (accurate integer IDCT, smooth
/// chroma upsampling) are the ones PIL decodes with.
enum JPEG {
    static func decode(_ data: Data, path: String, checkSize: (_ width: Int, _ height: Int) throws -> Void) throws -> RGBImage {
        guard let handle = tjInitDecompress() else { throw ImageError.corrupt(path: path, reason: "cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        var bytes = [UInt8](data)
        var width: Int32 = 0
        var height: Int32 = 0
        var subsampling: Int32 = 0
        var colorspace: Int32 = 0
        let size = UInt(bytes.count)
        guard tjDecompressHeader3(handle, &bytes, size, &width, &height, &subsampling, &colorspace) == 0 else {
            throw ImageError.corrupt(path: path, reason: String(cString: tjGetErrorStr2(handle)))
        }
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let channels = cmyk ? 4 : 3
        // The decoded samples, and the RGB result of a CMYK file.
        let decodedBytes = try RGBImage.decodingBytes(
            width: Int(width), height: Int(height), bytesPerPixel: channels + (cmyk ? 3 : 0), path: path)
        try checkSize(Int(width), Int(height))
        return try MemoryBudget.withReservation(decodedBytes, for: "image \(path) decoded at \(width)x\(height)") {
            var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
            let format = cmyk ? TJPF_CMYK : TJPF_RGB
            let status = tjDecompress2(handle, &bytes, size, &pixels, width, 0, height, Int32(format.rawValue), 0)
            // A truncated file decodes with a warning; refuse it rather than return grey rows.
            if status != 0 {
                throw ImageError.corrupt(path: path, reason: String(cString: tjGetErrorStr2(handle)))
            }
            if cmyk { pixels = rgb(fromCMYK: pixels) }
            return try RGBImage(width: Int(width), height: Int(height), pixels: pixels)
        }
    }

    /// CMYK as stored by Adobe applications (inverted), to RGB the way PIL converts it:
    /// with k' = 255 − K, each channel is k' − X · k' / 255, the product rounded as PIL does.
    static func rgb(fromCMYK cmyk: [UInt8]) -> [UInt8] {
        let count = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: count * 3)
        func multiplyDivide255(_ a: Int, _ b: Int) -> Int {
            let t = a * b + 128
            return ((t >> 8) + t) >> 8
        }
        for p in 0..<count {
            // TurboJPEG returns the stored (inverted) values; PIL inverts them back first.
            let k = Int(cmyk[p * 4 + 3])
            for c in 0..<3 {
                let x = 255 - Int(cmyk[p * 4 + c])
                rgb[p * 3 + c] = UInt8(clamping: k - multiplyDivide255(x, k))
            }
        }
        return rgb
    }
}
