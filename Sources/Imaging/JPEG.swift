import CTurboJPEG
import Foundation

/// JPEG decoding through libjpeg-turbo's TurboJPEG API.
///
/// TurboJPEG rather than the classic libjpeg API: libjpeg reports errors by `longjmp` out of an
/// error handler, which Swift cannot catch, so a corrupt file would abort the process;
/// TurboJPEG returns an error code and a message. Its defaults (accurate integer IDCT, smooth
/// chroma upsampling) are the ones PIL decodes with.
enum JPEG {
    static func decode(_ data: Data, path: String) throws -> RGBImage {
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
        guard colorspace != Int32(TJCS_CMYK.rawValue), colorspace != Int32(TJCS_YCCK.rawValue) else {
            throw ImageError.unsupported(path: path, reason: "CMYK JPEGs are not supported; convert the image to RGB")
        }
        guard width > 0, height > 0, Int(width) * Int(height) <= RGBImage.maximumPixels else {
            throw ImageError.unsupported(path: path, reason: "image size \(width)x\(height) exceeds the \(RGBImage.maximumPixels)-pixel limit")
        }
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
        let status = tjDecompress2(handle, &bytes, size, &pixels, width, 0, height, Int32(TJPF_RGB.rawValue), 0)
        // A truncated file decodes with a warning; refuse it rather than return grey rows.
        if status != 0 {
            throw ImageError.corrupt(path: path, reason: String(cString: tjGetErrorStr2(handle)))
        }
        return try RGBImage(width: Int(width), height: Int(height), pixels: pixels)
    }
}
