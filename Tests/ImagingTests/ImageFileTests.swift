import Foundation
import Imaging
import TensorCore
import TestSupport
import Testing

/// Decoding against PIL's `Image.open(path).convert("RGB")` (goldens from tools/export_image_goldens.py).
@Suite struct ImageFileTests {
    static func pixels(_ image: RGBImage) throws -> Tensor {
        try Tensor(shape: [image.height, image.width, 3], scalars: image.pixels)
    }

    @Test(arguments: [
        "rgb8.png", "gray8.png", "gray_alpha.png", "rgba8.png", "palette.png", "rgb16.png", "photo420.jpg", "photo444.jpg",
        "gray.jpg", "cmyk.jpg",
    ])
    func decodesLikePIL(_ name: String) throws {
        let image = try RGBImage(contentsOf: Fixtures.url("images/\(name)"))
        let golden = try Tensor(npyAt: Fixtures.url("images/decoded/\((name as NSString).deletingPathExtension).npy"))
        // Exact: PNG is lossless and both sides decode JPEG with libjpeg-turbo's accurate IDCT.
        #expect(try Self.pixels(image).withUnsafeBytes { Array($0) } == golden.withUnsafeBytes { Array($0) }, "\(name)")
    }

    @Test func sixteenBitGrayKeepsTheHighByte() throws {
        // PIL clips 16-bit grayscale at 255; we scale it like 16-bit colour (high byte).
        let image = try RGBImage(contentsOf: Fixtures.url("images/gray16.png"))
        let golden = try Tensor(npyAt: Fixtures.url("images/decoded/gray16_highbyte.npy"))
        #expect(try Self.pixels(image).withUnsafeBytes { Array($0) } == golden.withUnsafeBytes { Array($0) })
    }

    @Test func brokenFilesAreNamedErrors() {
        for (name, fragment) in [
            ("truncated.jpg", "corrupt or truncated"), ("truncated.png", "corrupt or truncated"),
            ("not_an_image.png", "not a PNG or JPEG file"),
        ] {
            let text = errorText { try RGBImage(contentsOf: Fixtures.url("images/\(name)")) }
            #expect(text.contains(name) && text.contains(fragment), "\(name): \(text)")
        }
        #expect(errorText { try RGBImage(contentsOf: URL(fileURLWithPath: "/nonexistent/x.png")) }.contains("cannot read image /nonexistent/x.png"))
    }

    @Test func pngRoundTrips() throws {
        let image = try RGBImage(contentsOf: Fixtures.url("images/rgb8.png"))
        let data = try PNG.encode(width: image.width, height: image.height, channels: 3, pixels: image.pixels)
        #expect(try RGBImage(data: data) == image)
        #expect(throws: (any Error).self) { try PNG.encode(width: 2, height: 2, channels: 3, pixels: [1, 2, 3]) }
    }

    @Test func everyChannelCountAndDepthWritesAndReadsBack() throws {
        // 2x1 pixels; reading back gives PIL's RGB: gray replicated, alpha dropped, 16 bits -> high byte.
        let gray8 = try RGBImage(data: PNG.encode(width: 2, height: 1, channels: 1, pixels: [10, 200]))
        #expect(gray8.pixels == [10, 10, 10, 200, 200, 200])
        let grayAlpha = try RGBImage(data: PNG.encode(width: 2, height: 1, channels: 2, pixels: [10, 0, 200, 255]))
        #expect(grayAlpha.pixels == [10, 10, 10, 200, 200, 200])
        let rgba = try RGBImage(data: PNG.encode(width: 2, height: 1, channels: 4, pixels: [1, 2, 3, 0, 4, 5, 6, 128]))
        #expect(rgba.pixels == [1, 2, 3, 4, 5, 6])
        let gray16 = try RGBImage(data: PNG.encode(width: 2, height: 1, channels: 1, samples: [0x1234, 0xFF01]))
        #expect(gray16.pixels == [0x12, 0x12, 0x12, 0xFF, 0xFF, 0xFF])
        let rgb16 = try RGBImage(data: PNG.encode(width: 1, height: 1, channels: 3, samples: [0x0100, 0x8000, 0xFFFF]))
        #expect(rgb16.pixels == [0x01, 0x80, 0xFF])
    }
}

/// torchvision's Resize, CenterCrop, ToTensor and Normalize against our `Preprocessing`.
@Suite struct PreprocessingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let file: String
        var testDescription: String { file }
    }

    static let cases: [Case] = {
        let folder = Fixtures.url("images/preprocessed")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".npy") }.sorted().map { Case(file: $0) }
    }()

    @Test func goldensArePresent() { #expect(Self.cases.count >= 20) }

    /// Float tensors must equal torchvision's bit for bit: both sides compute x / 255 − mean, then
    /// divide by std, in float32, from identical 8-bit pixels. Tolerance 0.
    @Test(arguments: cases)
    func matchesTorchvision(_ testCase: Case) throws {
        // <image>_<R>_<C>[_rgb|_half|_nonorm].npy
        let parts = (testCase.file as NSString).deletingPathExtension.split(separator: "_").map(String.init)
        let numbers = parts.compactMap { Int($0) }
        let resize = numbers[0]
        let crop = numbers[1]
        let stem = parts.prefix { Int($0) == nil }.joined(separator: "_")
        let source = ["rgb8": "rgb8.png", "photo420": "photo420.jpg", "gray8": "gray8.png", "palette": "palette.png"][stem] ?? ""
        let image = try RGBImage(contentsOf: Fixtures.url("images/\(source)"))
        let normalization: Preprocessing.Normalization =
            parts.last == "half" ? .half : parts.last == "nonorm" ? .none : .imagenet
        let preprocessing = Preprocessing(resize: resize, crop: (crop, crop), normalization: normalization)
        let golden = try Tensor(npyAt: Fixtures.url("images/preprocessed/\(testCase.file)"))
        if parts.last == "rgb" {
            let cropped = try preprocessing.resizedAndCropped(image)
            let ours = try Tensor(shape: [cropped.height, cropped.width, 3], scalars: cropped.pixels)
            #expect(ours.shape == golden.shape)
            #expect(ours.withUnsafeBytes { Array($0) } == golden.withUnsafeBytes { Array($0) }, "\(testCase.file)")
        } else {
            let ours = try preprocessing.tensor(image)
            let comparison = try TensorComparison(ours, golden)
            #expect(comparison.sameShape && comparison.maxAbsoluteDifference == 0, "\(testCase.file): \(comparison)")
            // For channels-last (Keras) models: the same values as [H, W, 3].
            var channelsLast = preprocessing
            channelsLast.layout = .nhwc
            let planes = try golden.scalars(as: Float.self)
            let (height, width) = (golden.shape[1], golden.shape[2])
            let interleaved = (0..<height * width).flatMap { p in (0..<3).map { planes[$0 * height * width + p] } }
            let nhwc = try channelsLast.tensor(image)
            #expect(nhwc.shape == [height, width, 3])
            #expect(try nhwc.scalars(as: Float.self) == interleaved, "\(testCase.file) nhwc")
        }
    }
}

@Suite struct ColormapTests {
    func table(_ colormap: Colormap) -> [UInt8] { (0...255).flatMap { level in let c = colormap.color(UInt8(level)); return [c.0, c.1, c.2] } }

    func golden(_ name: String) throws -> [UInt8] {
        try Tensor(npyAt: Fixtures.url("images/colormaps/\(name).npy")).scalars(as: UInt8.self)
    }

    @Test func matchOpenCVAndMatplotlibExactly() throws {
        #expect(try table(.jet) == golden("opencv_jet"))
        #expect(try table(.turbo) == golden("opencv_turbo"))
        #expect(try table(.viridis) == golden("opencv_viridis"))
        #expect(try table(.inferno) == golden("opencv_inferno"))
        #expect(try table(.redBlue) == golden("matplotlib_RdBu"))
        #expect(table(.gray) == (0...255).flatMap { [UInt8($0), UInt8($0), UInt8($0)] })
    }

    @Test func levelsTruncateLikeNumPy() {
        #expect(Colormap.level(0.9999999) == 254)
        #expect(Colormap.level(1) == 255 && Colormap.level(-0.5) == 0 && Colormap.level(.nan) == 0)
    }
}
