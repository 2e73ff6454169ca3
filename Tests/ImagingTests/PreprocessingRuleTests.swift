import Imaging
import TestSupport
import Testing

@Suite struct PreprocessingRuleTests {
    func image(width: Int, height: Int) throws -> RGBImage {
        try RGBImage(width: width, height: height, pixels: (0..<width * height * 3).map { UInt8(($0 * 37) % 251) })
    }

    @Test func imagesOfTheInputSizeAreUsedAsTheyAre() throws {
        let evaluation = Preprocessing.evaluation(height: 64, width: 64, normalization: .none)
        #expect(evaluation.resize == 73 && evaluation.inputSizedAsIs)
        let same = try image(width: 64, height: 64)
        #expect(try evaluation.resizedAndCropped(same) == same)
        #expect(evaluation.steps(width: 64, height: 64) == "as is")
        #expect(evaluation.steps(width: 97, height: 131) == "resize the shorter side to 73, centre crop 64x64")
        // Other sizes still get torchvision's Resize(73) + CenterCrop(64).
        let other = try image(width: 97, height: 131)
        var torchvision = evaluation
        torchvision.inputSizedAsIs = false
        #expect(try evaluation.resizedAndCropped(other) == torchvision.resizedAndCropped(other))
        // The plain initializer is torchvision's transform exactly: an input-sized image is resized too.
        #expect(try torchvision.resizedAndCropped(same) != same)
        #expect(evaluation.summary == "images of 64x64 as they are; others: resize the shorter side to 73, centre crop 64x64; normalize mean [0.0, 0.0, 0.0] std [1.0, 1.0, 1.0]")
    }

    @Test func batchesReportEachFilesOwnSize() throws {
        let folder = try Fixtures.temporaryDirectory()
        let urls = [folder.appendingPathComponent("a.png"), folder.appendingPathComponent("b.png")]
        try PNG.write(try image(width: 64, height: 64), to: urls[0])
        try PNG.write(try image(width: 80, height: 70), to: urls[1])
        let (tensor, images, sizes) = try Preprocessing.evaluation(height: 64, width: 64).batch(urls)
        #expect(tensor.shape == [2, 3, 64, 64] && images.count == 2)
        #expect(sizes.map(\.width) == [64, 80] && sizes.map(\.height) == [64, 70])
    }
}
