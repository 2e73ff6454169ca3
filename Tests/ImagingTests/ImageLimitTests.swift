import Foundation
import Imaging
import TensorCore
import TestSupport
import Testing

/// Image sizes declared by a file or asked for by a resize are checked before any pixel buffer exists.
@Suite struct ImageLimitTests {
    /// C4: 1,000,000 x 1 pixels in 2,986 bytes; the resize to 73 would make 73,000,000 x 73.
    @Test func extremeAspectRatiosAreRefusedBeforeDecoding() throws {
        let prep = Preprocessing(resize: 73, crop: (64, 64))
        #expect(errorText { try prep.resizedSize(width: 1_000_000, height: 1) }
            == "resizing a 1000000x1 image to a shorter side of 73 makes it 73000000x73 pixels, more than the 67108864-pixel limit")
        var declared: (Int, Int)?
        let url = Fixtures.url("hostile/wide.png")
        #expect(errorText { try prep.load(url) } == "\(url.path): resizing a 1000000x1 image to a shorter side of 73 makes it 73000000x73 pixels, more than the 67108864-pixel limit")
        // The size check sees the header's numbers before the decoder runs.
        _ = try? RGBImage(contentsOf: Fixtures.url("hostile/wide.jpg")) { width, height in
            declared = (width, height)
            throw ImageError.invalid("stop")
        }
        #expect(declared.map { [$0.0, $0.1] } == [65_500, 1])
        #expect(try prep.resizedSize(width: 640, height: 480) == (97, 73))
    }

    @Test func resizesAndCropsOutOfRangeAreRefused() throws {
        for resize in [0, -1, 8193, Int.max] {
            #expect(throws: ImageError.self) { try Preprocessing(resize: resize, crop: nil).validate() }
        }
        try Preprocessing(resize: 8192, crop: (1, 1)).validate()
        // A model may declare any input size; the evaluation transform must not trap on it.
        let huge = Preprocessing.evaluation(height: Int.max, width: Int.max)
        #expect(errorText { try huge.validate() }.contains("each side must be at least 1 and the crop within the 67108864-pixel limit"))
        #expect(throws: ImageError.self) { try RGBImage(width: Int.max, height: 2, pixels: []) }
    }

    @Test func decodedImagesCountAgainstTheBudget() throws {
        // The file's 18 KB fit; its 97 x 131 pixels, decoded with alpha and converted, take 89 KB.
        let text = MemoryBudget.withLimit(40 << 10) { errorText { try RGBImage(contentsOf: Fixtures.url("images/rgb8.png")) } }
        #expect(text.contains("rgb8.png decoded at") && text.contains("more than the memory budget allows"), "\(text)")
    }
}
